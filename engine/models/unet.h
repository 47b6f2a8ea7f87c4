/*
 * UNet2DConditionModel (diffusers 0.27): loading from a diffusers unet/ folder and the
 * forward pass eps = unet(sample, timesteps, encoder_hidden_states[, timestep_cond]
 * [, class_labels]).
 *
 *   t -> time_proj (sinusoidal) [+ cond_proj(timestep_cond)] -> linear_1 -> SiLU -> linear_2
 *     [+ class embedding | concat] [-> time_embedding_act]  = emb;  resnets get SiLU(emb)
 *   sample -> conv_in -> down blocks (residual stack) -> mid block
 *          -> up blocks (concat residuals) -> GroupNorm -> SiLU -> conv_out
 *
 * Every batch row has its own timestep (and class label / timestep_cond), so rows of
 * different jobs at different steps run in one call.
 *
 * Threads: a unet_model is read-only after unet_load and may be shared by any number of
 * threads, each running unet_forward with its own cs_ctx. Activations come only from the
 * ctx arena (size it with unet_activation_bytes); the forward never allocates.
 */
#ifndef CS_UNET_H
#define CS_UNET_H

#include "ctx.h"
#include "safetensors.h"
#include "weights.h"
#include "unet_config.h"

typedef struct unet_model unet_model;

/* Loads <dir>/config.json and <dir>/diffusion_pytorch_model.safetensors. Every missing,
 * extra or mis-shaped tensor is reported in msg. */
cs_status unet_load(const char *dir, wb_store store, unet_model **out, char *msg, size_t msg_size);
/* A model of cfg's architecture with its weights bound from f (diffusers names). */
cs_status unet_new_bound(const unet_config *cfg, const st_file *f, wb_store store, unet_model **out,
                         char *msg, size_t msg_size);
/* Writes the weights unet_new_random(cfg, seed) makes (rounded to dtype: ST_F32, ST_F16
 * or ST_BF16) as a diffusers diffusion_pytorch_model.safetensors at path. */
cs_status unet_write_random(const unet_config *cfg, uint64_t seed, st_dtype dtype,
                            const char *path, char *msg, size_t msg_size);

/* A model with the architecture of cfg and no weights: only for measuring passes
 * (unet_activation_bytes), e.g. to plan memory for a full-size model from its config. */
cs_status unet_new_unweighted(const unet_config *cfg, unet_model **out, char *msg, size_t msg_size);

/* A model with the architecture of cfg and deterministic random weights (uniform,
 * PyTorch-like scale; a pure function of seed): tests and benchmarks of configurations
 * that have no checkpoint at hand, e.g. full-size SD 1.5 from its config.json. */
cs_status unet_new_random(const unet_config *cfg, uint64_t seed, unet_model **out, char *msg,
                          size_t msg_size);
/* The same weights kept as `store` says (WB_STORE_BF16: rounded, bf16 products). */
cs_status unet_new_random_store(const unet_config *cfg, uint64_t seed, wb_store store,
                                unet_model **out, char *msg, size_t msg_size);

void unet_free(unet_model *m);

const unet_config *unet_get_config(const unet_model *m);
/* Every weight, in binding order (tests compare two loads bit for bit). */
const weight_block *unet_weights(const unet_model *m);

/* The layers a LoRA may patch ("lora_unet_" names; lora_modules.h). */
const struct lora_module_table *unet_lora_modules(const unet_model *m);

/* Number of parameters (floats) of the architecture. */
int64_t unet_param_count(const unet_model *m);

typedef struct unet_input {
    const float *sample; /* (B, in_channels, H, W) */
    int64_t batch, height, width;
    const float *timesteps; /* (B); float because Euler-type samplers use fractional t */
    const float *context;   /* encoder_hidden_states (B, context_len, cross_attention_dim) */
    int64_t context_len;
    const float *timestep_cond;  /* (B, time_cond_proj_dim) or NULL (then no cond_proj term,
                                    as in diffusers); must be NULL without time_cond_proj_dim */
    const int64_t *class_labels; /* (B); required iff the model has a class embedding */
} unet_input;

/* Validates shapes and values: B >= 1, H and W positive multiples of
 * unet_config_size_multiple, 1 <= context_len, sizes within bounds, finite timesteps,
 * class labels present and in range when needed, timestep_cond only when the model has
 * cond_proj. */
cs_status unet_check_input(const unet_model *m, const unet_input *in, char *msg, size_t msg_size);

/* out(B, out_channels, H, W) = UNet(in). The input must pass unet_check_input (asserted
 * for shapes). Taps (ctx_tap) the reference's debug names: time_proj, time_embedding,
 * conv_in, down_blocks.N.hidden, down_blocks.N.resK, mid_block, up_blocks.N,
 * conv_norm_out (before SiLU), conv_out. While c->measuring, pointers are not read. */
void unet_forward(cs_ctx *c, const unet_model *m, const unet_input *in, float *out);

/* Peak arena bytes of one forward at this shape on a ctx whose pool has `threads` threads
 * (1: none), found by a measuring pass; a ctx of exactly this size runs the forward (with
 * any pool: a plan for fewer threads than the pool has only forgoes row groups). Assumes
 * the worst case of the optional inputs. */
size_t unet_activation_bytes(const unet_model *m, int64_t batch, int64_t height, int64_t width,
                             int64_t context_len, int threads);

/* How many row groups (ctx_rows.h) unet_forward splits a batch into on `threads` threads:
 * min(threads, batch) for a model small enough that its rows run best side by side (its
 * weights fit a shared cache and a row's activations a core's own; one group: the batch
 * serially on one thread), else 0 (the batch as one, each kernel shared by the threads;
 * always so on one thread). */
int unet_row_groups(const unet_model *m, int64_t batch, int64_t height, int64_t width,
                    int64_t context_len, int threads);

#endif
