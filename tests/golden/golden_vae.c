/* Golden handler for kind "vae" (being implemented). */
#include "golden.h"

static cs_status run(golden_case *gc, char *msg, size_t n) {
    return cs_errf(CS_ERR_UNSUPPORTED, msg, n, "%s: the vae replay is not implemented yet", gc->dir);
}

const golden_handler golden_vae_handler = {"vae", run};
