/* Compiles the public header alone under -std=c11 -Wpedantic -Werror. */
#include <cfgserve/cfgserve.h>

int cs_public_header_compiles(void);
int cs_public_header_compiles(void) {
    return CS_OK;
}
