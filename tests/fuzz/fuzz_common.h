/*
 * Shared by the libFuzzer targets (tests/fuzz/fuzz_*.c): the invariant macro and the
 * golden tiny model, loaded once, for the targets that exercise the model's own rules.
 */
#ifndef CS_FUZZ_COMMON_H
#define CS_FUZZ_COMMON_H

#include <cfgserve/cfgserve.h>

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "common.h" /* cs_assert_fail */

/* An accepted input that breaks an invariant is a finding even if nothing faults. */
#define FUZZ_REQUIRE(cond)                                                                         \
    do {                                                                                           \
        if (!(cond)) cs_assert_fail(#cond, __FILE__, __LINE__);                                    \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* The golden tiny pipeline (64x64), or NULL when the reference folder is absent: the
 * targets then fuzz the syntax alone. Loaded once; never freed (the process ends). */
static inline cs_model *fuzz_tiny_model(void) {
    static cs_model *m;
    static int tried;
    if (!tried) {
        tried = 1;
        char msg[512];
        const char *dir = getenv("CS_FUZZ_MODEL");
        if (!dir) dir = CS_GOLDEN_DIR "/pipeline_tiny/model";
        if (cs_model_load(dir, &m, msg, sizeof msg) != CS_OK) {
            fprintf(stderr, "fuzz: no tiny model (%s); model-free parsing only\n", msg);
            m = NULL;
        }
    }
    return m;
}

/* The bundled CLIP tokenizer (config/clip-tokenizer); exits when it does not load, since
 * every input would otherwise be skipped silently. */
#include "tokenizer.h"
static inline cs_tokenizer *fuzz_clip_tokenizer(void) {
    static cs_tokenizer *t;
    if (!t) {
        char msg[512];
        if (tokenizer_load(CS_SOURCE_DIR "/config/clip-tokenizer", &t, msg, sizeof msg) != CS_OK) {
            fprintf(stderr, "fuzz: cannot load the CLIP tokenizer: %s\n", msg);
            exit(2);
        }
    }
    return t;
}

#endif
