/* Golden handler for kind "unet" (being implemented). */
#include "golden.h"

static cs_status run(golden_case *gc, char *msg, size_t n) {
    return cs_errf(CS_ERR_UNSUPPORTED, msg, n, "%s: the unet replay is not implemented yet", gc->dir);
}

const golden_handler golden_unet_handler = {"unet", run};
