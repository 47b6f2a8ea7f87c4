/*
 * Multi-head attention of ops.h as one fused, flash-style kernel: no (tokens × tokens)
 * score matrix exists anywhere. A work item is (batch, head, block of queries); it walks
 * the keys in blocks of FA_KEYS and per block computes, in the transposed orientation
 * that suits our GEMM micro-kernel (gemm_kernels.h: C(8 × 48) += A(8 × k) · B(k × 48)),
 *   Sᵀ = k qᵀ          keys down (A panels of 8 keys), queries across (B panels of 48),
 *   online softmax     down each query's column: running max m and sum l per query,
 *                      P = exp(scale·S - m_new), earlier sums rescaled by exp(m_old - m_new),
 *   Oᵀ += vᵀ Pᵀ        A = vᵀ panels (8 head dims × keys), B = Pᵀ exactly as the first
 *                      product left it (keys × 48 queries), so P is never moved,
 * and at the end writes O = Oᵀ / l back transposed. The softmax runs across 48 queries
 * at once (one vector lane each) on rows that are contiguous in L1. Everything an item
 * touches (its query panels, one key and one value block, Sᵀ and Oᵀ: a few hundred KiB)
 * stays in the core's cache; the former design streamed 16 MB chunks of scores through
 * memory three times.
 *
 * Determinism: the micro-kernels give the same bits on every ISA (one FMA chain per
 * element in k order), key blocks are walked in one fixed order, and a query's numbers
 * depend only on its own row of q and the keys/values, never on the other queries of its
 * item, the batch, the thread count or the item split. The exp is ops_simd.h's (AVX-512 and
 * AVX2 give the same bits; SSE2, on a CPU without AVX2, may differ in the last bits, as
 * for every ops kernel).
 *
 * Scratch is per pool chunk (cs_malloc, like gemm.c's packing buffers), not from the ctx
 * arena, so the measuring pass reserves nothing.
 *
 * Thread safety: only the given buffers are touched; a ctx has one caller thread.
 */
#include "ops.h"

#include <math.h>
#include <string.h>

#include "gemm.h"
#include "gemm_kernels.h"
#include "ops_simd.h"
#include "threadpool.h"

enum {
    FA_QPANELS = 2,                   /* query panels of 48 per item */
    FA_QUERIES = FA_QPANELS * GEMM_NR, /* queries per item */
    FA_TILE = GEMM_MR * GEMM_NR,
};

static int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

/* Keys per block, a multiple of GEMM_MR: the Pᵀ panel (keys × 48) is the B operand of
 * the second product, so keep it at GEMM_KC; fewer for wide heads, so one key and one
 * value block (2 · keys · head_dim floats) stay near 1 MiB. */
static int64_t key_block(int64_t hd) {
    int64_t keys = (1 << 17) / (2 * hd) / GEMM_MR * GEMM_MR;
    if (keys > GEMM_KC) keys = GEMM_KC;
    return keys < GEMM_MR ? GEMM_MR : keys;
}

/* ---- the online softmax of one block, 48 queries wide ---- */

/* s: `keys` rows of 48 scores (one query a lane), in place: scaled, then P; masked
 * scores hold -inf (P 0). m, l: the running max and sum per query, updated; alpha: how
 * much the earlier sums shrink, exp(m_old - m_new). Every query has a key it sees in its
 * first block, so m is finite from then on. */
static void softmax_block_sse2(float *s, int64_t keys, float scale, float *m, double *l,
                               float *alpha) {
    for (int v = 0; v < GEMM_NR; v += 4) {
        const __m128 sc = _mm_set1_ps(scale);
        __m128 mx = _mm_loadu_ps(m + v);
        const __m128 m_old = mx;
        for (int64_t r = 0; r < keys; r++) {
            const __m128 x = _mm_mul_ps(_mm_loadu_ps(s + r * GEMM_NR + v), sc);
            _mm_storeu_ps(s + r * GEMM_NR + v, x);
            mx = _mm_max_ps(mx, x);
        }
        __m128 sum = _mm_setzero_ps();
        for (int64_t r = 0; r < keys; r++) {
            const __m128 e = ops_exp_nonpos4(_mm_sub_ps(_mm_loadu_ps(s + r * GEMM_NR + v), mx));
            _mm_storeu_ps(s + r * GEMM_NR + v, e);
            sum = _mm_add_ps(sum, e);
        }
        const __m128 a = ops_exp_nonpos4(_mm_sub_ps(m_old, mx));
        float sums[4], as[4];
        _mm_storeu_ps(sums, sum);
        _mm_storeu_ps(as, a);
        _mm_storeu_ps(m + v, mx);
        for (int i = 0; i < 4; i++) {
            alpha[v + i] = as[i];
            l[v + i] = l[v + i] * as[i] + sums[i];
        }
    }
}

OPS_TARGET_AVX2 static void softmax_block_avx2(float *s, int64_t keys, float scale, float *m,
                                               double *l, float *alpha) {
    for (int v = 0; v < GEMM_NR; v += 8) {
        const __m256 sc = _mm256_set1_ps(scale);
        __m256 mx = _mm256_loadu_ps(m + v);
        const __m256 m_old = mx;
        for (int64_t r = 0; r < keys; r++) {
            const __m256 x = _mm256_mul_ps(_mm256_loadu_ps(s + r * GEMM_NR + v), sc);
            _mm256_storeu_ps(s + r * GEMM_NR + v, x);
            mx = _mm256_max_ps(mx, x);
        }
        __m256 sum = _mm256_setzero_ps();
        for (int64_t r = 0; r < keys; r++) {
            const __m256 e =
                ops_exp_nonpos8(_mm256_sub_ps(_mm256_loadu_ps(s + r * GEMM_NR + v), mx));
            _mm256_storeu_ps(s + r * GEMM_NR + v, e);
            sum = _mm256_add_ps(sum, e);
        }
        const __m256 a = ops_exp_nonpos8(_mm256_sub_ps(m_old, mx));
        float sums[8], as[8];
        _mm256_storeu_ps(sums, sum);
        _mm256_storeu_ps(as, a);
        _mm256_storeu_ps(m + v, mx);
        for (int i = 0; i < 8; i++) {
            alpha[v + i] = as[i];
            l[v + i] = l[v + i] * as[i] + sums[i];
        }
    }
}

/* softmax_block_avx2 on 16 lanes: the same operations per lane, so the same bits. */
OPS_TARGET_AVX512 static void softmax_block_avx512(float *s, int64_t keys, float scale,
                                                   float *m, double *l, float *alpha) {
    for (int v = 0; v < GEMM_NR; v += 16) {
        const __m512 sc = _mm512_set1_ps(scale);
        __m512 mx = _mm512_loadu_ps(m + v);
        const __m512 m_old = mx;
        for (int64_t r = 0; r < keys; r++) {
            const __m512 x = _mm512_mul_ps(_mm512_loadu_ps(s + r * GEMM_NR + v), sc);
            _mm512_storeu_ps(s + r * GEMM_NR + v, x);
            mx = _mm512_max_ps(mx, x);
        }
        __m512 sum = _mm512_setzero_ps();
        for (int64_t r = 0; r < keys; r++) {
            const __m512 e =
                ops_exp_nonpos16(_mm512_sub_ps(_mm512_loadu_ps(s + r * GEMM_NR + v), mx));
            _mm512_storeu_ps(s + r * GEMM_NR + v, e);
            sum = _mm512_add_ps(sum, e);
        }
        const __m512 a = ops_exp_nonpos16(_mm512_sub_ps(m_old, mx));
        float sums[16], as[16];
        _mm512_storeu_ps(sums, sum);
        _mm512_storeu_ps(as, a);
        _mm512_storeu_ps(m + v, mx);
        for (int i = 0; i < 16; i++) {
            alpha[v + i] = as[i];
            l[v + i] = l[v + i] * as[i] + sums[i];
        }
    }
}

typedef void (*softmax_block_fn)(float *s, int64_t keys, float scale, float *m, double *l,
                                 float *alpha);

/* ---- the items ---- */

typedef struct flash_job {
    float *out;
    const float *q, *k, *v;
    const op_attn_shape *s;
    int64_t qblocks, kb, hdp; /* query blocks per head, keys per block, head_dim padded to 8 */
    gemm_kernel_fn kern;
    softmax_block_fn softmax;
} flash_job;

typedef struct flash_scratch {
    float *qb;    /* FA_QPANELS panels of hd × 48: the item's queries (B operand) */
    float *ka;    /* kb / 8 panels of hd × 8: one key block (A operand) */
    float *va;    /* hdp / 8 panels of kb × 8: one value block, transposed (A operand) */
    float *st;    /* FA_QPANELS blocks of kb × 48: Sᵀ, then Pᵀ (B operand) */
    float *ot;    /* FA_QPANELS × (hdp / 8) tiles of 8 × 48: Oᵀ */
    float *m, *alpha;
    double *l;
} flash_scratch;

static bool scratch_new(flash_scratch *x, int64_t hd, int64_t kb, int64_t hdp) {
    *x = (flash_scratch){
        .qb = cs_malloc((size_t)(FA_QUERIES * hd) * sizeof(float)),
        .ka = cs_malloc((size_t)(kb * hd) * sizeof(float)),
        .va = cs_malloc((size_t)(kb * hdp) * sizeof(float)),
        .st = cs_malloc((size_t)(FA_QUERIES * kb) * sizeof(float)),
        .ot = cs_malloc((size_t)(FA_QUERIES * hdp) * sizeof(float)),
        .m = cs_malloc(FA_QUERIES * sizeof(float)),
        .alpha = cs_malloc(GEMM_NR * sizeof(float)),
        .l = cs_malloc(FA_QUERIES * sizeof(double)),
    };
    return x->qb && x->ka && x->va && x->st && x->ot && x->m && x->alpha && x->l;
}

static void scratch_free(flash_scratch *x) {
    free(x->qb), free(x->ka), free(x->va), free(x->st), free(x->ot), free(x->m);
    free(x->alpha), free(x->l);
}

/* `rows` rows of `cols` values at base (row stride ld) as panels of `width` rows:
 * dst[(p · cols + c) · width + r] = base[(p + r) · ld + c]; rows and columns past the
 * data, up to `padded` rows and `cols_pad` columns, are zero. */
static void pack_panels(float *dst, const float *base, int64_t ld, int64_t rows, int64_t padded,
                        int64_t cols, int64_t width) {
    for (int64_t p = 0; p < padded; p += width) {
        float *panel = dst + p * cols;
        for (int64_t r = 0; r < width; r++) {
            if (p + r >= rows) {
                for (int64_t c = 0; c < cols; c++) panel[c * width + r] = 0.0f;
                continue;
            }
            const float *src = base + (p + r) * ld;
            for (int64_t c = 0; c < cols; c++) panel[c * width + r] = src[c];
        }
    }
}

/* vᵀ of `keys` value rows (stride ld) as panels of 8 head dims: dst[(dp · kpad + kk) · 8
 * + d] = v[kk][dp + d]; zero past keys (up to kpad) and past hd (up to hdp). */
static void pack_values(float *dst, const float *v, int64_t ld, int64_t keys, int64_t kpad,
                        int64_t hd, int64_t hdp) {
    for (int64_t dp = 0; dp < hdp; dp += GEMM_MR) {
        const int64_t w = hd - dp < GEMM_MR ? hd - dp : GEMM_MR;
        float *panel = dst + dp * kpad;
        for (int64_t kk = 0; kk < kpad; kk++) {
            float *row = panel + kk * GEMM_MR;
            if (kk < keys) {
                memcpy(row, v + kk * ld + dp, (size_t)w * sizeof(float));
                memset(row + w, 0, (size_t)(GEMM_MR - w) * sizeof(float));
            } else {
                memset(row, 0, GEMM_MR * sizeof(float));
            }
        }
    }
}

static void flash_item(const flash_job *j, flash_scratch *x, int64_t item) {
    const op_attn_shape *s = j->s;
    const int64_t lq = s->q_len, lk = s->kv_len, hd = s->head_dim, hdp = j->hdp;
    const int64_t bh = item / j->qblocks, b = bh / s->heads, h = bh % s->heads;
    const int64_t q0 = item % j->qblocks * FA_QUERIES;
    const int64_t queries = lq - q0 < FA_QUERIES ? lq - q0 : FA_QUERIES;
    const int64_t npanel = (queries + GEMM_NR - 1) / GEMM_NR, ndp = hdp / GEMM_MR;
    pack_panels(x->qb, j->q + (b * lq + q0) * s->q_stride + h * hd, s->q_stride, queries,
                npanel * GEMM_NR, hd, GEMM_NR);
    memset(x->ot, 0, (size_t)(npanel * GEMM_NR * hdp) * sizeof(float));
    for (int64_t i = 0; i < npanel * GEMM_NR; i++) x->m[i] = -INFINITY, x->l[i] = 0.0;
    /* Causal queries see keys [0, q + 1): no key block past the item's last query. */
    const int64_t key_end = s->causal && q0 + queries < lk ? q0 + queries : lk;
    for (int64_t k0 = 0; k0 < key_end; k0 += j->kb) {
        const int64_t keys = key_end - k0 < j->kb ? key_end - k0 : j->kb;
        const int64_t kpad = round_up(keys, GEMM_MR);
        pack_panels(x->ka, j->k + (b * lk + k0) * s->kv_stride + h * hd, s->kv_stride, keys, kpad,
                    hd, GEMM_MR);
        pack_values(x->va, j->v + (b * lk + k0) * s->kv_stride + h * hd, s->kv_stride, keys,
                    kpad, hd, hdp);
        for (int64_t t = 0; t < npanel; t++) {
            float *st = x->st + t * kpad * GEMM_NR; /* (kpad keys, 48 queries) */
            for (int64_t i = 0; i < kpad; i += GEMM_MR)
                j->kern(hd, x->ka + i * hd, x->qb + t * hd * GEMM_NR, st + i * GEMM_NR, GEMM_NR,
                        false);
            /* Padding keys, and keys after a causal query, get no weight. */
            for (int64_t kk = keys; kk < kpad; kk++)
                for (int64_t c = 0; c < GEMM_NR; c++) st[kk * GEMM_NR + c] = -INFINITY;
            if (s->causal) {
                for (int64_t kk = 0; kk < keys; kk++)
                    for (int64_t c = 0; c < GEMM_NR; c++)
                        if (k0 + kk > q0 + t * GEMM_NR + c) st[kk * GEMM_NR + c] = -INFINITY;
            }
            float *m = x->m + t * GEMM_NR;
            j->softmax(st, kpad, s->scale, m, x->l + t * GEMM_NR, x->alpha);
            float *ot = x->ot + t * hdp * GEMM_NR; /* (hdp dims, 48 queries) */
            for (int64_t d = 0; d < hdp; d++)
                for (int64_t c = 0; c < GEMM_NR; c++) ot[d * GEMM_NR + c] *= x->alpha[c];
            for (int64_t dp = 0; dp < ndp; dp++)
                j->kern(kpad, x->va + dp * kpad * GEMM_MR, st, ot + dp * FA_TILE, GEMM_NR, true);
        }
    }
    for (int64_t t = 0; t < npanel; t++) {
        const float *ot = x->ot + t * hdp * GEMM_NR;
        for (int64_t c = 0; c < GEMM_NR && t * GEMM_NR + c < queries; c++) {
            const float inv = (float)(1.0 / x->l[t * GEMM_NR + c]);
            float *dst = j->out + (b * lq + q0 + t * GEMM_NR + c) * s->out_stride + h * hd;
            for (int64_t d = 0; d < hd; d++) dst[d] = ot[d * GEMM_NR + c] * inv;
        }
    }
}

static void flash_items(void *arg, int64_t i0, int64_t i1) {
    const flash_job *j = arg;
    flash_scratch x;
    CS_ASSERT(scratch_new(&x, j->s->head_dim, j->kb, j->hdp));
    for (int64_t it = i0; it < i1; it++) flash_item(j, &x, it);
    scratch_free(&x);
}

void op_attention(cs_ctx *c, float *out, const float *q, const float *k, const float *v,
                  const op_attn_shape *s) {
    const int64_t lq = s->q_len, lk = s->kv_len, hd = s->head_dim;
    CS_ASSERT(s->batch >= 0 && s->heads > 0 && lq >= 0 && lk > 0 && hd > 0);
    CS_ASSERT(s->q_stride >= s->heads * hd && s->kv_stride >= s->heads * hd &&
              s->out_stride >= s->heads * hd);
    if (c->measuring || s->batch == 0 || lq == 0) return;
    flash_job j = {.out = out,
                   .q = q,
                   .k = k,
                   .v = v,
                   .s = s,
                   .qblocks = (lq + FA_QUERIES - 1) / FA_QUERIES,
                   .kb = key_block(hd),
                   .hdp = round_up(hd, GEMM_MR),
                   .kern = gemm_kernel_active(),
                   .softmax = ops_have_avx512() ? softmax_block_avx512
                              : ops_have_avx2() ? softmax_block_avx2
                                                : softmax_block_sse2};
    threadpool_for(c->pool, s->batch * s->heads * j.qblocks, 1, flash_items, &j);
    c->flops += 4.0 * (double)s->batch * (double)s->heads * (double)lq * (double)lk * (double)hd;
}
