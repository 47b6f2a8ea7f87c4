/*
 * libFuzzer target for the safetensors reader: st_parse on arbitrary bytes, then every
 * tensor it accepts is checked against the invariants readers rely on (range inside the
 * buffer, size = numel x element size, found by name) and read, so ASan sees any access
 * outside the input. Built with -DCS_FUZZ=ON and clang; run by tests/fuzz/run_fuzz.sh.
 */
#include "safetensors.h"

#include <string.h>

/* An accepted file that breaks an invariant is a finding even if no read faults. */
#define FUZZ_REQUIRE(cond)                                                                         \
    do {                                                                                           \
        if (!(cond)) cs_assert_fail(#cond, __FILE__, __LINE__);                                    \
    } while (0)

enum { FUZZ_MAX_READ = 1 << 14 }; /* elements read in full; larger tensors are sampled */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static float fbuf[FUZZ_MAX_READ];
    static int64_t ibuf[FUZZ_MAX_READ];
    char msg[512];
    st_file *f = NULL;
    cs_status st = st_parse(data, size, "fuzz", &f, msg, sizeof msg);
    if (st != CS_OK) {
        FUZZ_REQUIRE(f == NULL && memchr(msg, 0, sizeof msg) && msg[0] != 0);
        return 0;
    }
    for (int64_t i = 0; i < f->count; i++) {
        const st_tensor *t = &f->tensors[i];
        size_t esize = st_dtype_size(t->dtype);
        FUZZ_REQUIRE(esize > 0 && t->ndim >= 0 && t->ndim <= ST_MAX_DIMS && t->numel >= 0);
        FUZZ_REQUIRE(t->nbytes == (size_t)t->numel * esize);
        FUZZ_REQUIRE(t->offset >= 8 && t->offset <= size && t->nbytes <= size - t->offset);
        int64_t numel = 1;
        for (int d = 0; d < t->ndim; d++)
            numel *= t->shape[d];
        FUZZ_REQUIRE(numel == t->numel);
        FUZZ_REQUIRE(st_find(f, t->name) == t);
        if (i > 0) FUZZ_REQUIRE(strcmp(f->tensors[i - 1].name, t->name) < 0);
        bool is_float =
            t->dtype == ST_F32 || t->dtype == ST_F16 || t->dtype == ST_BF16 || t->dtype == ST_F64;
        if (t->numel <= FUZZ_MAX_READ) {
            cs_status rs = is_float ? st_read_f32(f, t, fbuf, msg, sizeof msg)
                                    : st_read_i64(f, t, ibuf, msg, sizeof msg);
            FUZZ_REQUIRE(rs == CS_OK);
            /* The other kind of read must refuse without touching the data. */
            rs = is_float ? st_read_i64(f, t, ibuf, msg, sizeof msg)
                          : st_read_f32(f, t, fbuf, msg, sizeof msg);
            FUZZ_REQUIRE(rs == CS_ERR_FORMAT);
        } else {
            /* Touch the first and last byte of the range so an out-of-bounds one faults. */
            volatile uint8_t sink = data[t->offset];
            sink = data[t->offset + t->nbytes - 1];
            (void)sink;
        }
    }
    /* No two non-empty ranges share a byte (pairwise, for the small counts fuzzing makes). */
    for (int64_t i = 0; i < f->count && f->count <= 512; i++) {
        const st_tensor *a = &f->tensors[i];
        for (int64_t j = i + 1; j < f->count && a->nbytes; j++) {
            const st_tensor *b = &f->tensors[j];
            if (b->nbytes == 0) continue;
            FUZZ_REQUIRE(a->offset + a->nbytes <= b->offset || b->offset + b->nbytes <= a->offset);
        }
    }
    st_close(f);
    return 0;
}
