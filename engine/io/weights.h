/*
 * Binding checkpoint tensors to model fields by name, through one table per component
 * (STYLE §12): the component's loader lists every parameter it expects with its shape,
 * then wb_bind resolves the whole table against a safetensors file, reports every
 * missing, extra or mis-shaped tensor at once, and converts the data to fp32 in one
 * owned block. GEMM operands (wb_add_panels) of an F16 / BF16 file stay 16-bit in that
 * block unless the binder asks otherwise (weight_binder.store): the GEMM drivers widen
 * them per k-block, with bit-identical results (gemm.h). WB_STORE_BF16 rounds every GEMM
 * operand to bf16 in the k-pair panels of the bf16 products (GEMM_BF16X2).
 *
 * Single-threaded; used only while loading.
 */
#ifndef CS_WEIGHTS_H
#define CS_WEIGHTS_H

#include "gemm.h"
#include "safetensors.h"

enum { WB_MAX_NAME = 192, WB_MAX_DIMS = 4 };

/* How GEMM operands (wb_add_panels) are kept; other tensors are always fp32. */
typedef enum wb_store {
    WB_STORE_FILE = 0, /* in the file's dtype when F16 / BF16 (cs_load_params.weights_dtype
                        * "file"), else fp32; random weights: fp32 */
    WB_STORE_FP32,     /* widened to fp32 ("fp32") */
    WB_STORE_BF16,     /* rounded to bf16, bf16 products (cs_load_params.precision "bf16") */
} wb_store;

typedef struct wb_entry {
    char name[WB_MAX_NAME];
    float **dst;        /* set to the tensor's fp32 data by wb_bind (plain entries) */
    gemm_weights *gdst; /* or set to the packed GEMM operand (wb_add_panels) */
    int ndim;
    int64_t shape[WB_MAX_DIMS];
    int64_t panels; /* gdst only: gemm.h's panel layout of this width */
} wb_entry;

typedef struct weight_binder {
    wb_entry *entries;
    int64_t count, cap;
    bool overflow; /* a name did not fit or an allocation failed: wb_bind fails */
    struct lora_module_table *modules; /* NULL, or where linear/conv binds register (lora_modules.h) */
    wb_store store; /* how GEMM operands are kept (wb_load sets it from its source) */
} weight_binder;

/* The weights of one component: one allocation, owned by the component. fp32 tensors and
 * 16-bit GEMM operands (each rounded up to a whole float) in the order of the table. */
typedef struct weight_block {
    float *data;
    int64_t numel; /* in floats (4-byte words) */
} weight_block;

void wb_init(weight_binder *b);
void wb_deinit(weight_binder *b);

/* Expects tensor `name` (printf format) with the given shape (ndim <= 4, dims after
 * `ndim`); on bind, *dst points at its fp32 data. */
void wb_add(weight_binder *b, float **dst, int ndim, const int64_t *shape, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Expects a layer's GEMM operand: like wb_add, but stored in gemm.h's panel layout of
 * `width` rows (dims after the first flattened), packed in place once its data is in,
 * and of the dtype b->store gives it. */
void wb_add_panels(weight_binder *b, gemm_weights *dst, int64_t width, int ndim,
                   const int64_t *shape, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Shorthand for 1-D to 4-D shapes. */
#define WB_SHAPE(...) ((const int64_t[]){__VA_ARGS__})
#define wb_add1(b, dst, d0, ...) wb_add(b, dst, 1, WB_SHAPE(d0), __VA_ARGS__)
#define wb_add2(b, dst, d0, d1, ...) wb_add(b, dst, 2, WB_SHAPE(d0, d1), __VA_ARGS__)
#define wb_add4(b, dst, d0, d1, d2, d3, ...) wb_add(b, dst, 4, WB_SHAPE(d0, d1, d2, d3), __VA_ARGS__)

/* Resolves every entry in f. Tensors in the file that no entry names are errors unless
 * listed in `ignored` (NULL-terminated; may be NULL), e.g. buffers such as position_ids.
 * On success *out owns the data and every *dst is set. The file's mapped pages of every
 * tensor read are released (st_release), so a 16-bit file does not stay resident twice. */
cs_status wb_bind(const weight_binder *b, const st_file *f, const char *const *ignored,
                  weight_block *out, char *msg, size_t msg_size);

/* Deterministic random weights (uniform, PyTorch-like scale; a pure function of seed) for
 * every entry, for tests and benchmarks of configurations that have no checkpoint. On
 * success *out owns the data and every *dst is set. */
cs_status wb_fill_random(const weight_binder *b, uint64_t seed, weight_block *out, char *msg,
                         size_t msg_size);

/* Writes the random weights of wb_fill_random (same seed, same values before rounding) as
 * a safetensors file of `dtype` (ST_F32, ST_F16 or ST_BF16) at path: a full-size model
 * to load, for memory and speed measurements of 16-bit checkpoints. */
cs_status wb_write_random(const weight_binder *b, uint64_t seed, st_dtype dtype,
                          const char *path, char *msg, size_t msg_size);

/* Where a component's weights come from: bound from `file`, else random from `seed`
 * (wb_fill_random), GEMM operands kept as `store` says; or with write_path set, random
 * weights written there as write_dtype (wb_write_random; *out stays empty). */
typedef struct wb_source {
    const st_file *file;
    wb_store store;
    uint64_t seed;
    const char *write_path;
    st_dtype write_dtype;
} wb_source;

/* The one of wb_bind / wb_fill_random / wb_write_random that src names. */
cs_status wb_load(weight_binder *b, const wb_source *src, const char *const *ignored,
                  weight_block *out, char *msg, size_t msg_size);

void weight_block_free(weight_block *w);

#endif
