/*
 * The layers a LoRA may patch, one table per component (UNet, text encoder). linear_bind
 * and conv_bind register every layer of a component whose binder carries a table and
 * store its slot (1 + index) in the layer, so a forward pass finds the LoRA entry of a
 * layer by index and a LoRA file is matched by generating each layer's kohya name
 * (underscores are ambiguous, so names are never parsed back into paths).
 *
 * Built while loading (single-threaded); read-only afterwards.
 */
#ifndef CS_LORA_MODULES_H
#define CS_LORA_MODULES_H

#include "gemm.h"

enum { LORA_MODULE_NAME = 224 };

typedef struct lora_module {
    char name[LORA_MODULE_NAME]; /* kohya name: prefix + module path with '.' -> '_' */
    bool conv;                   /* Conv2d with a kernel×kernel weight; else Linear */
    int64_t in, out, kernel;     /* kernel 1 for Linear (and 1×1 convs bound as Linear) */
    gemm_weights *w;             /* the layer's weight (out, in[·k·k]) in its panel layout
                                    (layers.h); for fusing */
} lora_module;

typedef struct lora_module_table {
    const char *prefix; /* "lora_unet_" or "lora_te_" */
    lora_module *items;
    int count, cap;
    bool overflow; /* an allocation failed or a name did not fit: the table is unusable */
} lora_module_table;

/* Registers a layer; returns its slot (1 + index), or 0 when t is NULL (a component LoRA
 * never patches, e.g. the VAE) or on overflow. */
int32_t lora_module_add(lora_module_table *t, const char *path, bool conv, int64_t in,
                        int64_t out, int64_t kernel, gemm_weights *w);
void lora_module_table_free(lora_module_table *t);

#endif
