/* The golden pipeline's tiny UNet architecture (CS_GOLDEN_DIR/pipeline_tiny/model/unet) with
 * random weights, for tests that run whole UNet passes (test_threadpool, test_ctx_profile). */
#ifndef CS_TEST_TINY_UNET_H
#define CS_TEST_TINY_UNET_H

#include <stdio.h>

#include "unet.h"

/* The model (seeded with `seed`) and its config in *cfg; NULL, with the loader's message
 * printed, when it cannot be made. */
static inline unet_model *tiny_unet_new(uint64_t seed, unet_config *cfg) {
    unet_model *m = NULL;
    char msg[1024] = "";
    cs_status st = unet_config_load(CS_GOLDEN_DIR "/pipeline_tiny/model/unet/config.json", cfg,
                                    msg, sizeof msg);
    if (st == CS_OK) st = unet_new_random(cfg, seed, &m, msg, sizeof msg);
    if (st != CS_OK) fprintf(stderr, "tiny unet: %s\n", msg);
    return st == CS_OK ? m : NULL;
}

#endif
