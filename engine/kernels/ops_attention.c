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
 * at once (one vector lane each) on rows that are contiguous in L1. A panel whose queries
 * end within its first 16 or 32 columns (64 tokens: 48 + 16) runs both products on the
 * narrow kernels and the softmax on those lanes only; the other columns are never read.
 * Everything an item touches (its query panels, one key and one value block, Sᵀ and Oᵀ: a
 * few hundred KiB) stays in the core's cache; the former design streamed 16 MB chunks of
 * scores through memory three times. The key and value panels are packed once per head, before the
 * items run (every query block of a head reads all of them: packing them per item cost
 * about a fifth of the products at 4096 tokens).
 *
 * bf16 (op_attn_shape.bf16): the same walk with the bf16 micro-kernels; q, k, v and P
 * are rounded to bf16 k pairs as they are packed (P once per block, after the fp32
 * softmax), the scores and Oᵀ accumulate in fp32.
 *
 * Determinism: the micro-kernels give the same bits on every ISA (one FMA chain per
 * element in k order), key blocks are walked in one fixed order, and a query's numbers
 * depend only on its own row of q and the keys/values, never on the other queries of its
 * item, the batch, the thread count or the item split. The exp is ops_simd.h's (AVX-512 and
 * AVX2 give the same bits; SSE2, on a CPU without AVX2, may differ in the last bits, as
 * for every ops kernel).
 *
 * The packed keys and values come from the ctx arena (the measuring pass reserves them);
 * an item's scratch is the running thread's (scratch.h), like gemm.c's packing buffers.
 *
 * Thread safety: only the given buffers are touched; a ctx has one caller thread.
 */
#include "ops.h"

#include <math.h>
#include <string.h>

#include "gemm.h"
#include "gemm_bf16.h"
#include "gemm_kernels.h"
#include "ops_simd.h"
#include "scratch.h"
#include "threadpool.h"

enum {
    FA_QPANELS = 2,                   /* query panels of 48 per item */
    FA_QUERIES = FA_QPANELS * GEMM_NR, /* queries per item */
    FA_TILE = GEMM_MR * GEMM_NR,
    FA_WIDTHS = GEMM_NR / 16, /* query widths a panel is run at: 16, 32, 48 */
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
                               float *alpha, int lanes) {
    for (int v = 0; v < lanes; v += 4) {
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
                                               double *l, float *alpha, int lanes) {
    for (int v = 0; v < lanes; v += 8) {
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
                                                   float *m, double *l, float *alpha,
                                                   int lanes) {
    for (int v = 0; v < lanes; v += 16) {
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
                                 float *alpha, int lanes);

/* ---- keys and values, packed once per head ---- */

/* A unit is 4 bytes: one float, or one bf16 k pair (gemm_kernels.h). Per (batch, head),
 * the key panels (A operand of Sᵀ = k qᵀ) take lk8 · kunit units and the value panels
 * (A operand of Oᵀ += vᵀ Pᵀ) lk8 · vunit, lk8 the keys rounded up to 8: block k0 of each
 * starts at k0 · kunit and k0 · vunit. */
typedef struct kv_layout {
    int64_t lk8, kunit, vunit;
    int64_t kb, hdp; /* keys per block; head_dim padded to 8 */
} kv_layout;

/* Keys of block k0 as packed (a multiple of 8): the value panels' stride, even for a
 * causal item that stops short of the block. */
static int64_t packed_keys(const kv_layout *lay, int64_t lk, int64_t k0) {
    return round_up(lk - k0 < lay->kb ? lk - k0 : lay->kb, GEMM_MR);
}

/* `rows` rows of `cols` values at base (row stride ld) as panels of `width` rows (a
 * multiple of 8), rows past the data up to `padded` zero; fp32: dst[(p · cols + c) · width
 * + r] = base[(p + r) · ld + c]; pairs: column pairs (c, c + 1) rounded to one bf16 pair,
 * ⌈cols / 2⌉ of them (the partner of an odd last column zero). */
static void pack_panels(void *dst, const float *base, int64_t ld, int64_t rows, int64_t padded,
                        int64_t cols, int64_t width, bool pairs) {
    const int64_t units = pairs ? (cols + 1) / 2 : cols;
    const gemm_panel8_fn panel8 = gemm_panel8_active();
    for (int64_t p = 0; p < padded; p += width) {
        for (int64_t r0 = 0; r0 < width; r0 += 8) {
            const float *src[8];
            for (int r = 0; r < 8; r++)
                src[r] = p + r0 + r < rows ? base + (p + r0 + r) * ld : NULL;
            if (pairs)
                gemm_bf16_panel8_pairs((gemm_pair *)dst + p * units + r0, width, src, cols, 0,
                                       units);
            else
                panel8((float *)dst + p * units + r0, width, src, units);
        }
    }
}

/* vᵀ of `keys` value rows (stride ld) as panels of 8 head dims, zero past keys (up to
 * kpad, a multiple of 8) and past hd (up to hdp); for dp a multiple of 8, fp32: dst[dp ·
 * kpad + kk · 8 + d] = v[kk][dp + d]; pairs: key pairs, dst[dp · kpad / 2 + kk / 2 · 8 +
 * d] = pair (v[kk][dp + d], v[kk + 1][dp + d]) for even kk. */
static void pack_values(void *dst, const float *v, int64_t ld, int64_t keys, int64_t kpad,
                        int64_t hd, int64_t hdp, bool pairs) {
    const int64_t step = pairs ? 2 : 1;
    for (int64_t dp = 0; dp < hdp; dp += GEMM_MR) {
        const int64_t dims = hd - dp < GEMM_MR ? hd - dp : GEMM_MR; /* dims with data */
        for (int64_t kk = 0; kk < kpad; kk += step) {
            // Straight from v: a staged copy's 8 scalar stores read back as one vector
            // stalled store forwarding (half of the packing at 64 tokens).
            const float *lo = kk < keys ? v + kk * ld + dp : NULL;
            const float *hi = pairs && kk + 1 < keys ? v + (kk + 1) * ld + dp : NULL;
            if (pairs) {
                gemm_pair *row = (gemm_pair *)dst + dp * kpad / 2 + kk / 2 * GEMM_MR;
                for (int64_t d = 0; d < GEMM_MR; d++)
                    row[d] = gemm_bf16_pair(lo && d < dims ? lo[d] : 0.0f,
                                            hi && d < dims ? hi[d] : 0.0f);
            } else {
                float *row = (float *)dst + dp * kpad + kk * GEMM_MR;
                if (lo && dims == GEMM_MR) {
                    memcpy(row, lo, GEMM_MR * sizeof *row);
                } else {
                    for (int64_t d = 0; d < GEMM_MR; d++)
                        row[d] = lo && d < dims ? lo[d] : 0.0f;
                }
            }
        }
    }
}

typedef struct kv_job {
    float *kp, *vp; /* per (batch, head): lk8 · kunit and lk8 · vunit units */
    const float *k, *v;
    const op_attn_shape *s;
    kv_layout lay;
    int64_t kblocks;
} kv_job;

/* Item (batch, head, key block): its key and value panels. */
static void kv_items(void *arg, int64_t i0, int64_t i1) {
    const kv_job *j = arg;
    const op_attn_shape *s = j->s;
    const int64_t lk = s->kv_len, hd = s->head_dim;
    for (int64_t it = i0; it < i1; it++) {
        const int64_t bh = it / j->kblocks, b = bh / s->heads, h = bh % s->heads;
        const int64_t k0 = it % j->kblocks * j->lay.kb;
        const int64_t keys = lk - k0 < j->lay.kb ? lk - k0 : j->lay.kb;
        const int64_t kpad = packed_keys(&j->lay, lk, k0);
        const int64_t src = (b * lk + k0) * s->kv_stride + h * hd;
        pack_panels(j->kp + (bh * j->lay.lk8 + k0) * j->lay.kunit, j->k + src, s->kv_stride,
                    keys, kpad, hd, GEMM_MR, s->bf16);
        pack_values(j->vp + (bh * j->lay.lk8 + k0) * j->lay.vunit, j->v + src, s->kv_stride,
                    keys, kpad, hd, j->lay.hdp, s->bf16);
    }
}

/* ---- the items ---- */

typedef struct flash_job {
    float *out;
    const float *q, *kp, *vp; /* kp, vp: kv_items' panels */
    const op_attn_shape *s;
    kv_layout lay;
    int64_t qblocks; /* query blocks per head */
    /* Per FA_WIDTHS width (16, 32, 48 queries: a panel's last queries may end before its
     * 48 columns, as the default model's 64 and 16 tokens do), the kernels: */
    gemm_kernel_fn kern[FA_WIDTHS];
    gemm_kernel_bf16_fn kern16[FA_WIDTHS]; /* s->bf16 */
    /* s->bf16 where the split kernels are faster (gemm_kernels.h): each pair panel of k or
     * v is split into floats (a2) just before the kernel reads it */
    gemm_kernel_split_fn split[FA_WIDTHS];
    gemm_pair_tile_fn pair_tile; /* s->bf16: P to pairs */
    softmax_block_fn softmax;
} flash_job;

typedef struct flash_scratch {
    float *qb;    /* FA_QPANELS panels of hd × 48 (pairs: ⌈hd / 2⌉ × 48): the item's queries */
    float *st;    /* FA_QPANELS blocks of kb × 48: Sᵀ, then Pᵀ (fp32: the B operand) */
    gemm_pair *pt; /* bf16: Pᵀ of one panel as kb / 2 rows of 48 pairs (B operand) */
    float *a2;     /* split: one k or v panel as floats */
    float *ot;    /* FA_QPANELS × (hdp / 8) tiles of 8 × 48: Oᵀ */
    float *m, *alpha;
    double *l;
} flash_scratch;

/* The calling thread's scratch for items of head_dim hd, key block kb (scratch.h). */
static flash_scratch item_scratch(int64_t hd, int64_t kb, int64_t hdp) {
    char *rows = scratch_get(SCRATCH_ATTN_ROWS,
                             FA_QUERIES * sizeof(double) + (FA_QUERIES + GEMM_NR) * sizeof(float));
    float *m = (float *)(void *)(rows + FA_QUERIES * sizeof(double));
    return (flash_scratch){
        .qb = scratch_get(SCRATCH_ATTN_Q, (size_t)(FA_QUERIES * hd) * sizeof(float)),
        .st = scratch_get(SCRATCH_ATTN_S, (size_t)(FA_QUERIES * kb) * sizeof(float)),
        .pt = scratch_get(SCRATCH_ATTN_P, (size_t)(GEMM_NR * kb / 2) * sizeof(gemm_pair)),
        .a2 = scratch_get(SCRATCH_ATTN_SPLIT,
                          (size_t)(2 * GEMM_MR * (hd > kb ? hd : kb)) * sizeof(float)),
        .ot = scratch_get(SCRATCH_ATTN_O, (size_t)(FA_QUERIES * hdp) * sizeof(float)),
        .l = (double *)(void *)rows,
        .m = m,
        .alpha = m + FA_QUERIES,
    };
}

/* st (kpad keys × 48 queries) = k qᵀ of key panels ka and query panel qb, in the first
 * 16 · (wi + 1) query columns (the rest of st untouched). */
static void scores(const flash_job *j, flash_scratch *x, float *st, const float *ka,
                   const float *qb, int64_t kpad, int wi) {
    const int64_t ku = j->lay.kunit;
    for (int64_t i = 0; i < kpad; i += GEMM_MR) {
        if (j->split[wi]) {
            gemm_bf16_split_panel(x->a2, (const gemm_pair *)ka + i * ku, ku);
            j->split[wi](ku, x->a2, (const gemm_pair *)qb, st + i * GEMM_NR, GEMM_NR, false);
        } else if (j->kern16[wi])
            j->kern16[wi](ku, (const gemm_pair *)ka + i * ku, (const gemm_pair *)qb,
                          st + i * GEMM_NR, GEMM_NR, false);
        else
            j->kern[wi](ku, ka + i * ku, qb, st + i * GEMM_NR, GEMM_NR, false);
    }
}

/* ot (hdp dims × 48 queries) += vᵀ Pᵀ of the first kpad keys of value panels va (packed
 * for vpad keys: a causal item may stop short of the block) and P in st, in the first
 * 16 · (wi + 1) query columns. */
static void weigh_values(const flash_job *j, flash_scratch *x, float *ot, const float *va,
                         int64_t vpad, const float *st, int64_t kpad, int wi) {
    if (j->kern16[wi]) {
        // Rounds all 48 columns; those past the panel's lanes are stale and never read.
        j->pair_tile(x->pt, st, kpad);
        for (int64_t dp = 0; dp < j->lay.hdp / GEMM_MR; dp++) {
            const gemm_pair *panel = (const gemm_pair *)va + dp * vpad / 2 * GEMM_MR;
            if (j->split[wi]) {
                gemm_bf16_split_panel(x->a2, panel, kpad / 2);
                j->split[wi](kpad / 2, x->a2, x->pt, ot + dp * FA_TILE, GEMM_NR, true);
            } else {
                j->kern16[wi](kpad / 2, panel, x->pt, ot + dp * FA_TILE, GEMM_NR, true);
            }
        }
    } else {
        for (int64_t dp = 0; dp < j->lay.hdp / GEMM_MR; dp++)
            j->kern[wi](kpad, va + dp * vpad * GEMM_MR, st, ot + dp * FA_TILE, GEMM_NR, true);
    }
}

static void flash_item(const flash_job *j, flash_scratch *x, int64_t item) {
    const op_attn_shape *s = j->s;
    const int64_t lq = s->q_len, lk = s->kv_len, hd = s->head_dim, hdp = j->lay.hdp;
    const int64_t bh = item / j->qblocks, b = bh / s->heads, h = bh % s->heads;
    const int64_t q0 = item % j->qblocks * FA_QUERIES;
    const int64_t queries = lq - q0 < FA_QUERIES ? lq - q0 : FA_QUERIES;
    const int64_t npanel = (queries + GEMM_NR - 1) / GEMM_NR, ku = j->lay.kunit;
    pack_panels(x->qb, j->q + (b * lq + q0) * s->q_stride + h * hd, s->q_stride, queries,
                npanel * GEMM_NR, hd, GEMM_NR, s->bf16);
    memset(x->ot, 0, (size_t)(npanel * GEMM_NR * hdp) * sizeof(float));
    for (int64_t i = 0; i < npanel * GEMM_NR; i++) x->m[i] = -INFINITY, x->l[i] = 0.0;
    /* Causal queries see keys [0, q + 1): no key block past the item's last query. */
    const int64_t key_end = s->causal && q0 + queries < lk ? q0 + queries : lk;
    for (int64_t k0 = 0; k0 < key_end; k0 += j->lay.kb) {
        const int64_t keys = key_end - k0 < j->lay.kb ? key_end - k0 : j->lay.kb;
        const int64_t kpad = round_up(keys, GEMM_MR), vpad = packed_keys(&j->lay, lk, k0);
        const float *ka = j->kp + (bh * j->lay.lk8 + k0) * ku;
        const float *va = j->vp + (bh * j->lay.lk8 + k0) * j->lay.vunit;
        for (int64_t t = 0; t < npanel; t++) {
            /* The panel's queries end before `lanes`: columns past them are never read. */
            const int64_t in_panel = queries - t * GEMM_NR < GEMM_NR ? queries - t * GEMM_NR
                                                                    : GEMM_NR;
            const int wi = (int)((in_panel + 15) / 16) - 1, lanes = 16 * (wi + 1);
            float *st = x->st + t * kpad * GEMM_NR; /* (kpad keys, 48 queries) */
            scores(j, x, st, ka, x->qb + t * ku * GEMM_NR, kpad, wi);
            /* Padding keys, and keys after a causal query, get no weight. */
            for (int64_t kk = keys; kk < kpad; kk++)
                for (int64_t c = 0; c < lanes; c++) st[kk * GEMM_NR + c] = -INFINITY;
            if (s->causal) {
                for (int64_t kk = 0; kk < keys; kk++)
                    for (int64_t c = 0; c < lanes; c++)
                        if (k0 + kk > q0 + t * GEMM_NR + c) st[kk * GEMM_NR + c] = -INFINITY;
            }
            float *m = x->m + t * GEMM_NR;
            j->softmax(st, kpad, s->scale, m, x->l + t * GEMM_NR, x->alpha, lanes);
            float *ot = x->ot + t * hdp * GEMM_NR; /* (hdp dims, 48 queries) */
            for (int64_t d = 0; d < hdp; d++)
                for (int64_t c = 0; c < lanes; c++) ot[d * GEMM_NR + c] *= x->alpha[c];
            weigh_values(j, x, ot, va, vpad, st, kpad, wi);
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
    flash_scratch x = item_scratch(j->s->head_dim, j->lay.kb, j->lay.hdp);
    for (int64_t it = i0; it < i1; it++) flash_item(j, &x, it);
}

void op_attention(cs_ctx *c, float *out, const float *q, const float *k, const float *v,
                  const op_attn_shape *s) {
    CTX_PROFILE_OP(c, CS_OP_ATTENTION);
    const int64_t lq = s->q_len, lk = s->kv_len, hd = s->head_dim;
    CS_ASSERT(s->batch >= 0 && s->heads > 0 && lq >= 0 && lk > 0 && hd > 0);
    CS_ASSERT(s->q_stride >= s->heads * hd && s->kv_stride >= s->heads * hd &&
              s->out_stride >= s->heads * hd);
    if (s->batch == 0 || lq == 0) return;
    const int64_t kb = key_block(hd), hdp = round_up(hd, GEMM_MR), heads = s->batch * s->heads;
    const kv_layout lay = {.lk8 = round_up(lk, GEMM_MR),
                           .kunit = s->bf16 ? (hd + 1) / 2 : hd,
                           .vunit = s->bf16 ? hdp / 2 : hdp,
                           .kb = kb,
                           .hdp = hdp};
    const size_t mark = ctx_mark(c);
    float *kp = ctx_alloc(c, heads * lay.lk8 * lay.kunit);
    float *vp = ctx_alloc(c, heads * lay.lk8 * lay.vunit);
    if (!c->measuring) {
        kv_job kj = {.kp = kp, .vp = vp, .k = k, .v = v, .s = s, .lay = lay,
                     .kblocks = (lk + kb - 1) / kb};
        threadpool_for(c->pool, heads * kj.kblocks, 1, kv_items, &kj);
        flash_job j = {.out = out,
                       .q = q,
                       .kp = kp,
                       .vp = vp,
                       .s = s,
                       .lay = lay,
                       .qblocks = (lq + FA_QUERIES - 1) / FA_QUERIES,
                       .pair_tile = gemm_bf16_pair_tile_active(),
                       .softmax = ops_have_avx512() ? softmax_block_avx512
                                  : ops_have_avx2() ? softmax_block_avx2
                                                    : softmax_block_sse2};
        for (int wi = 0; wi < FA_WIDTHS; wi++) {
            const int64_t width = 16 * (wi + 1);
            j.kern[wi] = gemm_kernel_for_width(width);
            j.kern16[wi] = s->bf16 ? gemm_kernel_bf16_for_width(width) : NULL;
            j.split[wi] = s->bf16 ? gemm_kernel_bf16_split_for_width(width) : NULL;
        }
        threadpool_for(c->pool, heads * j.qblocks, 1, flash_items, &j);
        c->flops += 4.0 * (double)heads * (double)lq * (double)lk * (double)hd;
    }
    ctx_release(c, mark);
}
