/*
 * libFuzzer target for the restricted unpickler (and, for inputs starting "PK", the whole
 * .ckpt zip reader): arbitrary bytes must be refused with a message or give a state dict
 * whose entries are well formed; ASan/UBSan watch every access. Built with -DCS_FUZZ=ON;
 * run by tests/fuzz/run_fuzz_unpickle.sh (seeds from tests/fuzz/make_ckpt.py).
 */
#include <string.h>

#include "ckpt.h"
#include "unpickle.h"

#define FUZZ_REQUIRE(cond)                                                                         \
    do {                                                                                           \
        if (!(cond)) cs_assert_fail(#cond, __FILE__, __LINE__);                                    \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char msg[512];
    msg[0] = '\0';
    if (size >= 2 && data[0] == 'P' && data[1] == 'K') {
        st_file *f = NULL;
        int64_t step;
        cs_status st = ckpt_parse(data, size, "fuzz", &f, &step, msg, sizeof msg);
        FUZZ_REQUIRE(st == CS_OK ? f != NULL : (f == NULL && msg[0] != 0));
        for (int64_t i = 0; f && i < f->count; i++) {
            const st_tensor *t = &f->tensors[i];
            FUZZ_REQUIRE(t->offset <= f->size && t->nbytes <= f->size - t->offset);
            float x;
            if (t->numel > 0 && t->dtype == ST_F32) memcpy(&x, f->data + t->offset, 4);
        }
        st_close(f);
        return 0;
    }
    pk_state_dict sd;
    cs_status st = unpickle_state_dict(data, size, "fuzz", &sd, msg, sizeof msg);
    if (st != CS_OK) {
        FUZZ_REQUIRE(sd.count == 0 && memchr(msg, 0, sizeof msg) && msg[0] != 0);
        return 0;
    }
    for (int64_t i = 0; i < sd.count; i++) {
        const pk_tensor *t = &sd.tensors[i];
        FUZZ_REQUIRE(t->name && t->storage_key && t->ndim >= 0 && t->ndim <= ST_MAX_DIMS);
        FUZZ_REQUIRE(t->storage_offset >= 0 && t->storage_numel >= 0);
        for (int d = 0; d < t->ndim; d++) FUZZ_REQUIRE(t->shape[d] >= 0);
    }
    pk_state_dict_free(&sd);
    return 0;
}
