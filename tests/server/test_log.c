/* log_quote: one safe log line from any text — quotes, backslashes and control bytes
 * escaped, long text cut at a UTF-8 character boundary with "...". */
#include "check.h"
#include "log.h"

int main(void) {
    char buf[32];
    CHECK(!strcmp(log_quote("a red star", buf, sizeof buf), "a red star"));
    CHECK(!strcmp(log_quote(NULL, buf, sizeof buf), ""));
    CHECK(!strcmp(log_quote("say \"hi\"\\\n", buf, sizeof buf), "say \\\"hi\\\"\\\\\\x0a"));
    /* 40 bytes into 32: cut with "..." */
    CHECK(!strcmp(log_quote("0123456789012345678901234567890123456789", buf, sizeof buf),
                  "0123456789012345678901234567..."));
    /* a cut never splits a UTF-8 character (é is 2 bytes, 世 3) */
    log_quote("0123456789012345678901234\xc3\xa9\xc3\xa9\xe4\xb8\x96\xe4\xb8\x96", buf, sizeof buf);
    CHECK_EQ_INT(strlen(buf) < sizeof buf, 1);
    CHECK(!strcmp(buf + strlen(buf) - 3, "..."));
    const unsigned char before = (unsigned char)buf[strlen(buf) - 4];
    CHECK(before < 0x80 || before == 0xa9); /* ends after a whole é, or in the ASCII part */
    CHECK_DONE();
}
