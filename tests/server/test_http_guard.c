/* The header doors (http_guard.c): the API key as Bearer or as the password of Basic
 * credentials, and what is refused (wrong, prefixed or longer keys, other schemes, broken
 * base64, no colon, a NUL inside). */
#include "check.h"
#include "http_guard.h"

static void test_authorization(void) {
    const char *key = "s3cret-key";
    CHECK(guard_authorization_ok("Bearer s3cret-key", key));
    CHECK(guard_authorization_ok("bearer s3cret-key", key));
    CHECK(!guard_authorization_ok("Bearer s3cret-kez", key));
    CHECK(!guard_authorization_ok("Bearer s3cret", key));
    CHECK(!guard_authorization_ok("Bearer s3cret-key-and-more", key));
    CHECK(!guard_authorization_ok(NULL, key));
    CHECK(!guard_authorization_ok("Token s3cret-key", key));
    CHECK(!guard_authorization_ok("s3cret-key", key));
    /* Basic: base64("user:s3cret-key"), any user name, a colon in the password kept. */
    CHECK(guard_authorization_ok("Basic dXNlcjpzM2NyZXQta2V5", key));
    CHECK(guard_authorization_ok("basic  OnMzY3JldC1rZXk=", key)); /* ":s3cret-key" */
    CHECK(guard_authorization_ok("Basic YTpiOmM=", "b:c"));        /* "a:b:c" */
    CHECK(!guard_authorization_ok("Basic dXNlcjpzM2NyZXQta2V6", key)); /* "user:s3cret-kez" */
    CHECK(!guard_authorization_ok("Basic czNjcmV0LWtleQ==", key));     /* "s3cret-key", no colon */
    CHECK(!guard_authorization_ok("Basic dXNlcjpzM2NyZXQta2V5AA==", key)); /* trailing NUL */
    CHECK(!guard_authorization_ok("Basic !!!!", key));
    CHECK(!guard_authorization_ok("Basic ", key));
}

int main(void) {
    test_authorization();
    CHECK_DONE();
}
