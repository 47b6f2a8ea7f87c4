/*
 * Tensor kernels: every computation a forward pass does on activations.
 *
 * Conventions: fp32, contiguous, row-major. Images are NCHW (B, C, H, W); token
 * sequences are (B, L, D). Weights use PyTorch's layouts: Linear (out, in), Conv2d
 * (out, in, kh, kw). Outputs come first in the argument list. Output buffers never
 * alias inputs unless a function says so ("in place").
 *
 * Every kernel returns immediately when c->measuring (see ctx.h); kernels that need
 * scratch (conv2d, attention) take it from the ctx arena and give it back before
 * returning, and while measuring they reserve and release it without touching data, so
 * the measured peak includes it. Matrix kernels add their FLOPs (2 per multiply-add) to
 * c->flops (real passes only).
 *
 * Each fast kernel has a plain reference twin in ops_ref.c (op_<name>_ref) used by the
 * unit tests on odd shapes.
 *
 * Thread safety: kernels only touch the buffers they are given and the ctx. Kernels may
 * split their element-wise work over the ctx's thread pool (ctx_start_pool); every
 * output element is computed by the same operations whatever the split, so results do
 * not depend on the number of threads or on batch companions.
 */
#ifndef CS_OPS_H
#define CS_OPS_H

#include "ctx.h"
#include "ctx_profile.h"
#include "gemm.h"

/* ---- matrix products ---- */

/* y(B, rows, out) = x(B, rows, in) · w(out, in)ᵀ + b(out); b may be NULL.
 * Each of the B items is its own sgemm: OpenBLAS's result for a row depends on the
 * matrix height and the row's position in it, so items sharing one call would change
 * each other's last bits, and a job's image would depend on its batch companions. */
void op_linear(cs_ctx *c, float *y, const float *x, const float *w, const float *b,
               int64_t batch, int64_t rows, int64_t in, int64_t out);

/* y(rows, out) = x(rows, in) · w(out, in)ᵀ + b(out) with w in gemm.h's panel layout
 * (gemm_pack_panels, width GEMM_NR) and our own kernels: the rows of every batch item go
 * in one product (the weights are read once), each row's bits independent of the others
 * and of the thread count (gemm.h). b may be NULL. */
void op_linear_packed(cs_ctx *c, float *y, const float *x, gemm_weights w_packed, const float *b,
                      int64_t rows, int64_t in, int64_t out);

/* LoRA side path of one item: y(rows, out) += scale · (x(rows, in) · down(r, in)ᵀ) ·
 * up(out, r)ᵀ, with two sgemms through an (rows, r) arena scratch, so the result of a
 * row depends only on that item. While measuring only the scratch is reserved. */
void op_linear_lowrank(cs_ctx *c, float *y, const float *x, const float *down, const float *up,
                       float scale, int64_t rows, int64_t in, int64_t rank, int64_t out);

typedef struct op_conv2d_shape {
    int64_t batch, in_ch, height, width; /* input (B, Cin, H, W) */
    int64_t out_ch, kernel;              /* square kernel kh = kw = kernel */
    int64_t stride;
    int64_t pad_top, pad_left, pad_bottom, pad_right; /* zero padding */
} op_conv2d_shape;

/* Output spatial size of a conv: (H + pt + pb - k) / stride + 1, likewise W. */
int64_t op_conv2d_out_h(const op_conv2d_shape *s);
int64_t op_conv2d_out_w(const op_conv2d_shape *s);

/* y(B, Cout, Ho, Wo) = conv(x(B, Cin, H, W), w(Cout, Cin, k, k)) + b(Cout); b may be NULL.
 * im2col + sgemm; 1×1 stride-1 unpadded convs go straight to sgemm. */
void op_conv2d(cs_ctx *c, float *y, const float *x, const float *w, const float *b,
               const op_conv2d_shape *s);

/* op_conv2d with w (out_ch, in_ch·k·k) in gemm.h's panel layout (width GEMM_MR) and our
 * own kernels, the input patches packed tile by tile (no im2col buffer, no arena
 * scratch); each output element's bits independent of the batch and thread count. */
void op_conv2d_packed(cs_ctx *c, float *y, const float *x, gemm_weights w_packed, const float *b,
                      const op_conv2d_shape *s);

/* LoCon side path of one image (s->batch must be 1; s->out_ch is the layer's output):
 * y(out, Ho, Wo) += scale · up(out, r) · conv(x, down(r, in, k, k)) with the layer's
 * stride and padding (s). Scratch (r, Ho·Wo) plus the conv's im2col come from the arena. */
void op_conv2d_lowrank(cs_ctx *c, float *y, const float *x, const float *down, const float *up,
                       float scale, const op_conv2d_shape *s, int64_t rank);

/* Multi-head scaled dot-product attention on (B, L, heads*head_dim) rows addressed with
 * strides, so fused or split q/k/v projections need no permute:
 *   q row i of batch b, head h starts at q + (b*Lq + i)*q_stride + h*head_dim,
 *   k/v rows likewise with kv_stride, out rows with out_stride.
 * out = softmax(scale · q kᵀ [+ causal mask]) v. causal: row i sees keys 0..i. */
typedef struct op_attn_shape {
    int64_t batch, heads, q_len, kv_len, head_dim;
    int64_t q_stride, kv_stride, out_stride;
    float scale;
    bool causal;
    /* q·kᵀ and P·v as bf16 products (gemm_kernels.h: operands rounded to bf16, fp32
     * accumulation), as the layer's bf16 weights ask; the softmax stays fp32. */
    bool bf16;
} op_attn_shape;
void op_attention(cs_ctx *c, float *out, const float *q, const float *k, const float *v,
                  const op_attn_shape *s);

/* ---- normalisation ---- */

/* GroupNorm over (B, C, HW) with `groups` groups; gamma/beta (C) may be NULL (identity).
 * Statistics are accumulated in double. */
void op_group_norm(cs_ctx *c, float *y, const float *x, const float *gamma, const float *beta,
                   int64_t batch, int64_t channels, int64_t hw, int64_t groups, float eps);

/* LayerNorm over the last dim of (rows, dim); gamma/beta may be NULL. */
void op_layer_norm(cs_ctx *c, float *y, const float *x, const float *gamma, const float *beta,
                   int64_t rows, int64_t dim, float eps);

/* ---- element-wise (y may equal x: in place allowed) ---- */

void op_silu(cs_ctx *c, float *y, const float *x, int64_t n);       /* x·σ(x) */
void op_gelu(cs_ctx *c, float *y, const float *x, int64_t n);       /* exact, erf form */
void op_quick_gelu(cs_ctx *c, float *y, const float *x, int64_t n); /* x·σ(1.702x) */
void op_scale(cs_ctx *c, float *y, const float *x, float s, int64_t n);
void op_clamp(cs_ctx *c, float *y, const float *x, float lo, float hi, int64_t n);
void op_copy(cs_ctx *c, float *y, const float *x, int64_t n);
/* y = a + b (y may equal a or b). */
void op_add(cs_ctx *c, float *y, const float *a, const float *b, int64_t n);

/* y(B, C, HW) += v(B, C) broadcast over HW (timestep embedding into a resnet). */
void op_add_channel_bias(cs_ctx *c, float *y, const float *v, int64_t batch, int64_t channels,
                         int64_t hw);

/* Adaptive GroupNorm tail, in place: y(B,C,HW) = y·(1 + scale(B,C)) + shift(B,C), where
 * scale_shift(B, 2C) holds scale in [:, :C] and shift in [:, C:]. */
void op_scale_shift(cs_ctx *c, float *y, const float *scale_shift, int64_t batch,
                    int64_t channels, int64_t hw);

/* GEGLU: x(rows, 2·inner) -> y(rows, inner) = x[:, :inner] · gelu(x[:, inner:]). */
void op_geglu(cs_ctx *c, float *y, const float *x, int64_t rows, int64_t inner);

/* ---- layout ---- */

/* (B, C, HW) <-> (B, HW, C). */
void op_nchw_to_nlc(cs_ctx *c, float *y, const float *x, int64_t batch, int64_t channels,
                    int64_t hw);
void op_nlc_to_nchw(cs_ctx *c, float *y, const float *x, int64_t batch, int64_t channels,
                    int64_t hw);

/* y(B, Ca+Cb, HW) = cat(a(B, Ca, HW), b(B, Cb, HW)) along channels. */
void op_concat_channels(cs_ctx *c, float *y, const float *a, int64_t ca, const float *b,
                        int64_t cb, int64_t batch, int64_t hw);

/* Nearest-neighbour 2× upsampling: (B, C, H, W) -> (B, C, 2H, 2W). */
void op_upsample_nearest2x(cs_ctx *c, float *y, const float *x, int64_t batch,
                           int64_t channels, int64_t h, int64_t w);

/* ---- embeddings ---- */

/* y(n, dim) = table[ids[i]] for i < n. ids are checked by the caller (0 <= id < rows). */
void op_embedding(cs_ctx *c, float *y, const float *table, const int64_t *ids, int64_t n,
                  int64_t dim);

/* diffusers get_timestep_embedding: y(B, dim) for timesteps t(B) (float: Euler uses
 * fractional timesteps). half = dim/2, freq_j = exp(-ln(10000)·j / (half - freq_shift)),
 * arg = t·freq_j; y = [sin | cos], or [cos | sin] when flip_sin_to_cos; odd dim pads 0. */
void op_timestep_embedding(cs_ctx *c, float *y, const float *t, int64_t batch, int64_t dim,
                           bool flip_sin_to_cos, float freq_shift);

/* ---- reference twins (plain loops, for tests) ---- */

void op_linear_ref(float *y, const float *x, const float *w, const float *b, int64_t rows,
                   int64_t in, int64_t out);
void op_conv2d_ref(float *y, const float *x, const float *w, const float *b,
                   const op_conv2d_shape *s);
/* One output of op_conv2d_ref, (item n, channel co, row oh, column ow), unrounded: for
 * tests that sample the outputs of a product too large to check whole. */
double op_conv2d_ref_at(const float *x, const float *w, const float *b, const op_conv2d_shape *s,
                        int64_t n, int64_t co, int64_t oh, int64_t ow);
void op_attention_ref(float *out, const float *q, const float *k, const float *v,
                      const op_attn_shape *s);
void op_group_norm_ref(float *y, const float *x, const float *gamma, const float *beta,
                       int64_t batch, int64_t channels, int64_t hw, int64_t groups, float eps);
void op_layer_norm_ref(float *y, const float *x, const float *gamma, const float *beta,
                       int64_t rows, int64_t dim, float eps);

#endif
