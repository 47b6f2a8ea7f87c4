/* The golden pipeline model (CS_GOLDEN_DIR/pipeline_tiny/model) that the session-level unit
 * tests run on. */
#ifndef CS_TEST_GOLDEN_MODEL_H
#define CS_TEST_GOLDEN_MODEL_H

#include <stdio.h>
#include <sys/stat.h>

#include "cfgserve/cfgserve.h"

enum { GOLDEN_LOADED = 0, GOLDEN_ABSENT = -1, GOLDEN_LOAD_FAILED = 1 };

/* Loads the model at dir into *m (GOLDEN_LOADED); GOLDEN_ABSENT when the golden data is not
 * there (the test has nothing to run: a note is printed), GOLDEN_LOAD_FAILED with the
 * loader's message printed. */
static inline int golden_model_load(const char *dir, cs_model **m) {
    struct stat sb;
    *m = NULL;
    if (stat(dir, &sb) != 0) {
        printf("golden model not found at %s; nothing to test\n", dir);
        return GOLDEN_ABSENT;
    }
    char msg[2048];
    if (cs_model_load(dir, m, msg, sizeof msg) != CS_OK) {
        fprintf(stderr, "load %s: %s\n", dir, msg);
        return GOLDEN_LOAD_FAILED;
    }
    return GOLDEN_LOADED;
}

#endif
