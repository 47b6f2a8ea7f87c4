/*
 * Binding checkpoint tensors to model fields by name, through one table per component
 * (STYLE §12): the component's loader lists every parameter it expects with its shape,
 * then wb_bind resolves the whole table against a safetensors file, reports every
 * missing, extra or mis-shaped tensor at once, and converts the data to fp32 in one
 * owned block.
 *
 * Single-threaded; used only while loading.
 */
#ifndef CS_WEIGHTS_H
#define CS_WEIGHTS_H

#include "safetensors.h"

enum { WB_MAX_NAME = 192, WB_MAX_DIMS = 4 };

typedef struct wb_entry {
    char name[WB_MAX_NAME];
    float **dst; /* set to the tensor's fp32 data by wb_bind */
    int ndim;
    int64_t shape[WB_MAX_DIMS];
    int64_t panels; /* > 0: stored in gemm.h's panel layout of this width (wb_set_panels) */
} wb_entry;

typedef struct weight_binder {
    wb_entry *entries;
    int64_t count, cap;
    bool overflow; /* a name did not fit or an allocation failed: wb_bind fails */
    struct lora_module_table *modules; /* NULL, or where linear/conv binds register (lora_modules.h) */
} weight_binder;

/* The fp32 weights of one component: one allocation, owned by the component. */
typedef struct weight_block {
    float *data;
    int64_t numel;
} weight_block;

void wb_init(weight_binder *b);
void wb_deinit(weight_binder *b);

/* Expects tensor `name` (printf format) with the given shape (ndim <= 4, dims after
 * `ndim`); on bind, *dst points at its fp32 data. */
void wb_add(weight_binder *b, float **dst, int ndim, const int64_t *shape, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* The entry added last is stored in gemm.h's panel layout of `width` rows (dims after
 * the first flattened), packed in place once its data is in: the layer's GEMM operand. */
void wb_set_panels(weight_binder *b, int64_t width);

/* Shorthand for 1-D to 4-D shapes. */
#define WB_SHAPE(...) ((const int64_t[]){__VA_ARGS__})
#define wb_add1(b, dst, d0, ...) wb_add(b, dst, 1, WB_SHAPE(d0), __VA_ARGS__)
#define wb_add2(b, dst, d0, d1, ...) wb_add(b, dst, 2, WB_SHAPE(d0, d1), __VA_ARGS__)
#define wb_add4(b, dst, d0, d1, d2, d3, ...) wb_add(b, dst, 4, WB_SHAPE(d0, d1, d2, d3), __VA_ARGS__)

/* Resolves every entry in f. Tensors in the file that no entry names are errors unless
 * listed in `ignored` (NULL-terminated; may be NULL), e.g. buffers such as position_ids.
 * On success *out owns the fp32 data and every *dst is set. */
cs_status wb_bind(const weight_binder *b, const st_file *f, const char *const *ignored,
                  weight_block *out, char *msg, size_t msg_size);

/* Deterministic random weights (uniform, PyTorch-like scale; a pure function of seed) for
 * every entry, for tests and benchmarks of configurations that have no checkpoint. On
 * success *out owns the data and every *dst is set. */
cs_status wb_fill_random(const weight_binder *b, uint64_t seed, weight_block *out, char *msg,
                         size_t msg_size);

void weight_block_free(weight_block *w);

#endif
