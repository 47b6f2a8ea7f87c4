/* Golden handler for kind "text_encoder" (being implemented). */
#include "golden.h"

static cs_status run(golden_case *gc, char *msg, size_t n) {
    return cs_errf(CS_ERR_UNSUPPORTED, msg, n, "%s: the text_encoder replay is not implemented yet", gc->dir);
}

const golden_handler golden_text_encoder_handler = {"text_encoder", run};
