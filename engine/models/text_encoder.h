/*
 * The CLIP text encoder (transformers CLIPTextModel) of Stable Diffusion 1.x / 2.x:
 * token + position embeddings, pre-LN transformer layers with causal self-attention,
 * final LayerNorm, and the pooled end-of-text row.
 *
 * Loads a transformers folder (config.json + model.safetensors, tensor names
 * "text_model.…"); the config is read strictly (config.h). hidden_act may be
 * "quick_gelu" (OpenAI CLIP, SD 1.x) or "gelu" (OpenCLIP, SD 2.x).
 *
 * A text_encoder is read-only after load and may be shared by threads; each forward
 * pass uses its caller's cs_ctx (one thread at a time).
 */
#ifndef CS_TEXT_ENCODER_H
#define CS_TEXT_ENCODER_H

#include "ctx.h"
#include "safetensors.h"
#include "weights.h"

typedef enum te_activation { TE_ACT_QUICK_GELU, TE_ACT_GELU } te_activation;

/* The fields of CLIPTextConfig that change inference. */
typedef struct te_config {
    int64_t vocab_size;
    int64_t hidden_size;       /* D */
    int64_t intermediate_size; /* MLP width */
    int64_t num_layers;
    int64_t num_heads;     /* head_dim = D / num_heads */
    int64_t max_positions; /* longest sequence */
    float layer_norm_eps;
    te_activation act;
    int64_t eos_token_id; /* 2 selects transformers' legacy pooling rule */
} te_config;

typedef struct text_encoder text_encoder; /* read-only after load */

/* Reads a CLIPTextConfig config.json strictly: unknown fields, unsupported values
 * (hidden_act, architectures, ...) and inconsistent sizes are errors naming the field. */
cs_status text_encoder_read_config(const char *path, te_config *cfg, char *msg, size_t n);
/* The same for a config built in memory (json; NULL = read path, which labels errors). */
cs_status text_encoder_read_config_src(const char *path, const char *json, te_config *cfg,
                                       char *msg, size_t n);

/* Loads dir/config.json and dir/model.safetensors. On failure *out is NULL. */
cs_status text_encoder_load(const char *dir, wb_store store, text_encoder **out, char *msg,
                            size_t n);
/* A model of cfg's architecture with its weights bound from f (transformers names). */
cs_status text_encoder_new_bound(const te_config *cfg, const st_file *f, wb_store store,
                                 text_encoder **out, char *msg, size_t n);
/* As unet_write_random, for text_encoder_new_random's weights (model.safetensors). */
cs_status text_encoder_write_random(const te_config *cfg, uint64_t seed, st_dtype dtype,
                                    const char *path, char *msg, size_t n);
/* A model of cfg's architecture with deterministic random weights (wb_fill_random):
 * benchmarks of configurations without a checkpoint. */
cs_status text_encoder_new_random(const te_config *cfg, uint64_t seed, text_encoder **out,
                                  char *msg, size_t n);
void text_encoder_free(text_encoder *m);

const te_config *text_encoder_config(const text_encoder *m);
/* Every weight, in binding order (tests compare two loads bit for bit). */
const weight_block *text_encoder_weights(const text_encoder *m);
int64_t text_encoder_hidden_size(const text_encoder *m);
int64_t text_encoder_max_length(const text_encoder *m); /* max_position_embeddings */
int64_t text_encoder_num_layers(const text_encoder *m);
/* The layers a LoRA may patch ("lora_te_" names; lora_modules.h). */
const struct lora_module_table *text_encoder_lora_modules(const text_encoder *m);

/* Validates untrusted input before a forward pass: batch >= 1, 1 <= len <=
 * max_position_embeddings, every id in [0, vocab_size). ids is (batch, len). */
cs_status text_encoder_check_ids(const text_encoder *m, const int64_t *ids, int64_t batch,
                                 int64_t len, char *msg, size_t n);

/* Validates a requested clip_skip: 0 <= clip_skip <= num_layers (diffusers indexes
 * hidden_states[-(clip_skip + 1)], so num_layers selects the embeddings). */
cs_status text_encoder_check_clip_skip(const text_encoder *m, int clip_skip, char *msg, size_t n);

/*
 * ids (B, L), checked with text_encoder_check_ids; clip_skip checked with
 * text_encoder_check_clip_skip (both asserted here).
 * out (B, L, D): final_layer_norm(hidden_states[-(clip_skip + 1)]), i.e. last_hidden_state
 * when clip_skip == 0 and diffusers' clip_skip rule otherwise.
 * pooled (B, D) or NULL: transformers' pooler_output (last_hidden_state at the end-of-text
 * row), always from the full network whatever clip_skip is.
 * hidden_states[i] (i = 0: embeddings, i = num_layers: last layer before the final norm)
 * go to the ctx tap as "hidden_states.<i>" with dims (B, L, D).
 * While c->measuring nothing is read or written (ids may be NULL).
 */
void text_encoder_forward(cs_ctx *c, const text_encoder *m, const int64_t *ids, int64_t batch,
                          int64_t len, int clip_skip, float *out, float *pooled);

/* Arena bytes text_encoder_forward needs for (batch, len), any clip_skip, with or without
 * pooled (a measuring pass). */
size_t text_encoder_activation_bytes(const text_encoder *m, int64_t batch, int64_t len);

#endif
