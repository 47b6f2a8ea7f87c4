/* Golden handler for kind "tokenizer" (being implemented). */
#include "golden.h"

static cs_status run(golden_case *gc, char *msg, size_t n) {
    return cs_errf(CS_ERR_UNSUPPORTED, msg, n, "%s: the tokenizer replay is not implemented yet", gc->dir);
}

const golden_handler golden_tokenizer_handler = {"tokenizer", run};
