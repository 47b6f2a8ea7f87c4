/* base64_decode: RFC 4648 vectors, and every malformed form refused with a reason. */
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "check.h"

static void ok(const char *in, const char *want) {
    uint8_t *out = NULL;
    size_t len = 0;
    char why[128] = "";
    CHECK(base64_decode(in, strlen(in), &out, &len, why, sizeof why) == 0);
    CHECK_EQ_INT(len, strlen(want));
    CHECK(out && memcmp(out, want, len) == 0);
    free(out);
}

static void bad(const char *in, const char *text) {
    uint8_t *out = (uint8_t *)1;
    size_t len = 7;
    char why[128] = "";
    CHECK(base64_decode(in, strlen(in), &out, &len, why, sizeof why) != 0);
    CHECK(out == NULL && len == 0);
    CHECK_STR_CONTAINS(why, text);
}

int main(void) {
    ok("Zg==", "f");
    ok("Zm8=", "fo");
    ok("Zm9v", "foo");
    ok("Zm9vYg==", "foob");
    ok("Zm9vYmE=", "fooba");
    ok("Zm9vYmFy", "foobar");
    ok("+/+/", "\xfb\xff\xbf");
    bad("", "multiple of 4");
    bad("Zm9", "multiple of 4");
    bad("Zm 9", "character ' '");
    bad("Zm9v\nYmFy", "multiple of 4");
    bad("Zm=v", "'=' at 2");
    bad("Z===", "'=' at 1");
    bad("Zm-v", "character '-'");
    bad("Zh==", "unused bits");
    bad("Zm9=", "unused bits");
    bad("Zm\x01v", "byte 0x01");
    CHECK_DONE();
}
