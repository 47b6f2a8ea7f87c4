/*
 * Multi-head attention of ops.h: per (batch, head) and chunk of query rows, scores =
 * scale · q kᵀ (OpenBLAS sgemm), a softmax per row, out = scores · v (sgemm).
 *
 * The softmax rows are spread over the ctx's thread pool (OpenBLAS threads the products
 * itself). Its exp is our own vector code (ops_simd.h): AVX2 + FMA where the CPU has
 * them (8 lanes), SSE2 otherwise (4 lanes). Every row goes through the same code, with
 * row tails padded into a full vector, so a value depends only on its row, never on its
 * position, chunk, thread count or batch companions. Max and sum are exact-order
 * reductions per row (sum in double), one pass each, and the normalising pass multiplies
 * by 1/sum.
 *
 * Scratch (the scores of one chunk of query rows) comes from the ctx arena and is
 * released before returning; while c->measuring it is reserved and released without
 * touching data. The chunk bound keeps it at 16 MB however long the sequences are.
 *
 * Thread safety: only the given buffers and ctx are touched; a ctx has one caller thread.
 */
#include "ops.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <string.h>

#include "ops_simd.h"
#include "threadpool.h"

/* Most floats of scores one chunk of query rows may use (16 MB). */
enum { ATTN_CHUNK_FLOATS = 4 << 20 };
/* Least scores per pool chunk of softmax rows (a few microseconds of exp). */
enum { ATTN_SOFTMAX_GRAIN = 8192 };

/* cblas takes int dimensions in the Debian (LP64) build. */
static int blas_dim(int64_t v) {
    CS_ASSERT(v >= 0 && v <= INT_MAX);
    return (int)v;
}

/* ---- softmax rows ---- */

/* In place softmax of the first n (>= 1) entries of p(len); entries [n, len) become 0
 * (the causally masked keys). Max-subtracted so exp never overflows; sum in double.
 * The last n % 4 entries go through a padded vector (-inf pads: exp gives 0). */
static void softmax_row_sse2(float *p, int64_t n, int64_t len) {
    const int64_t body = n & ~(int64_t)3, rem = n - body;
    float tail[4];
    for (int l = 0; l < 4; l++)
        tail[l] = l < rem ? p[body + l] : -INFINITY;
    __m128 vmx = _mm_loadu_ps(tail);
    for (int64_t j = 0; j < body; j += 4)
        vmx = _mm_max_ps(vmx, _mm_loadu_ps(p + j));
    float lanes[4];
    _mm_storeu_ps(lanes, vmx);
    float mx = lanes[0];
    for (int l = 1; l < 4; l++)
        mx = lanes[l] > mx ? lanes[l] : mx;

    vmx = _mm_set1_ps(mx);
    __m128d s0 = _mm_setzero_pd(), s1 = _mm_setzero_pd();
    for (int64_t j = 0; j < body + (rem ? 4 : 0); j += 4) {
        float *at = j < body ? p + j : tail; // (4) entries j..j+3
        const __m128 e = ops_exp_nonpos4(_mm_sub_ps(_mm_loadu_ps(at), vmx));
        _mm_storeu_ps(at, e);
        s0 = _mm_add_pd(s0, _mm_cvtps_pd(e));
        s1 = _mm_add_pd(s1, _mm_cvtps_pd(_mm_movehl_ps(e, e)));
    }
    double part[2];
    _mm_storeu_pd(part, _mm_add_pd(s0, s1));
    const float inv = (float)(1.0 / (part[0] + part[1]));
    for (int64_t j = 0; j < body; j++)
        p[j] *= inv;
    for (int64_t l = 0; l < rem; l++)
        p[body + l] = tail[l] * inv;
    for (int64_t j = n; j < len; j++)
        p[j] = 0.0f;
}

/* softmax_row_sse2 with 8 lanes and FMA: the same contract. */
OPS_TARGET_AVX2 static void softmax_row_avx2(float *p, int64_t n, int64_t len) {
    const int64_t body = n & ~(int64_t)7, rem = n - body;
    float tail[8];
    for (int l = 0; l < 8; l++)
        tail[l] = l < rem ? p[body + l] : -INFINITY;
    __m256 vmx = _mm256_loadu_ps(tail);
    for (int64_t j = 0; j < body; j += 8)
        vmx = _mm256_max_ps(vmx, _mm256_loadu_ps(p + j));
    float lanes[8];
    _mm256_storeu_ps(lanes, vmx);
    float mx = lanes[0];
    for (int l = 1; l < 8; l++)
        mx = lanes[l] > mx ? lanes[l] : mx;

    vmx = _mm256_set1_ps(mx);
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    for (int64_t j = 0; j < body + (rem ? 8 : 0); j += 8) {
        float *at = j < body ? p + j : tail; // (8) entries j..j+7
        const __m256 e = ops_exp_nonpos8(_mm256_sub_ps(_mm256_loadu_ps(at), vmx));
        _mm256_storeu_ps(at, e);
        s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    double part[4];
    _mm256_storeu_pd(part, _mm256_add_pd(s0, s1));
    const float inv = (float)(1.0 / ((part[0] + part[1]) + (part[2] + part[3])));
    const __m256 vinv = _mm256_set1_ps(inv);
    for (int64_t j = 0; j < body; j += 8)
        _mm256_storeu_ps(p + j, _mm256_mul_ps(_mm256_loadu_ps(p + j), vinv));
    for (int64_t l = 0; l < rem; l++)
        p[body + l] = tail[l] * inv;
    for (int64_t j = n; j < len; j++)
        p[j] = 0.0f;
}

typedef void (*softmax_row_fn)(float *p, int64_t n, int64_t len);

/* The softmax row kernel for this CPU. */
static softmax_row_fn softmax_row_pick(void) {
    return ops_have_avx2() ? softmax_row_avx2 : softmax_row_sse2;
}

/* Rows of one chunk of scores(rows, Lk); row r is query i0 + r. */
typedef struct softmax_job {
    float *scores;
    int64_t lk, i0;
    bool causal;
    softmax_row_fn row_fn;
} softmax_job;

static void softmax_chunk(void *p, int64_t r0, int64_t r1) {
    const softmax_job *j = p;
    for (int64_t r = r0; r < r1; r++) {
        int64_t visible = j->lk;
        if (j->causal && j->i0 + r + 1 < j->lk) visible = j->i0 + r + 1;
        j->row_fn(j->scores + r * j->lk, visible, j->lk);
    }
}

void op_attention(cs_ctx *c, float *out, const float *q, const float *k, const float *v,
                  const op_attn_shape *s) {
    const int64_t lq = s->q_len, lk = s->kv_len, hd = s->head_dim;
    CS_ASSERT(s->batch >= 0 && s->heads > 0 && lq >= 0 && lk > 0 && hd > 0);
    CS_ASSERT(s->q_stride >= s->heads * hd && s->kv_stride >= s->heads * hd &&
              s->out_stride >= s->heads * hd);
    int64_t chunk = ATTN_CHUNK_FLOATS / lk;
    if (chunk < 1) chunk = 1;
    if (chunk > lq) chunk = lq;
    size_t mark = ctx_mark(c);
    float *scores = ctx_alloc(c, chunk * lk); // (chunk, Lk)
    if (c->measuring || s->batch == 0 || lq == 0) {
        ctx_release(c, mark);
        return;
    }

    softmax_job sj = {
        .scores = scores, .lk = lk, .causal = s->causal, .row_fn = softmax_row_pick()};
    const int64_t grain = lk >= ATTN_SOFTMAX_GRAIN ? 1 : ATTN_SOFTMAX_GRAIN / lk;
    for (int64_t bi = 0; bi < s->batch; bi++) {
        for (int64_t h = 0; h < s->heads; h++) {
            const float *kb = k + bi * lk * s->kv_stride + h * hd; // (Lk, hd), row stride kv
            const float *vb = v + bi * lk * s->kv_stride + h * hd; // (Lk, hd)
            for (int64_t i0 = 0; i0 < lq; i0 += chunk) {
                int64_t rows = i0 + chunk < lq ? chunk : lq - i0;
                const float *qb = q + (bi * lq + i0) * s->q_stride + h * hd; // (rows, hd)
                float *ob = out + (bi * lq + i0) * s->out_stride + h * hd;   // (rows, hd)
                // scores(rows, Lk) = scale · qb · kbᵀ
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, blas_dim(rows), blas_dim(lk),
                            blas_dim(hd), s->scale, qb, blas_dim(s->q_stride), kb,
                            blas_dim(s->kv_stride), 0.0f, scores, blas_dim(lk));
                sj.i0 = i0;
                threadpool_for(c->pool, rows, grain, softmax_chunk, &sj);
                // ob(rows, hd) = scores(rows, Lk) · vb(Lk, hd)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, blas_dim(rows), blas_dim(hd),
                            blas_dim(lk), 1.0f, scores, blas_dim(lk), vb, blas_dim(s->kv_stride),
                            0.0f, ob, blas_dim(s->out_stride));
            }
        }
    }
    ctx_release(c, mark);
    c->flops += 4.0 * (double)s->batch * (double)s->heads * (double)lq * (double)lk * (double)hd;
}
