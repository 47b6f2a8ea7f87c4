/* The kernel thread pool: argument checks, every index of a loop visited exactly once in
 * chunks of at least `grain` (guided: ending in chunks of one grain), thousands of
 * back-to-back loops (sleep/wake races), work really shared with the workers, and the
 * contract the kernels rely on: every pooled kernel of ops.h on odd shapes, and a whole
 * UNet forward (the golden pipeline's tiny architecture, random weights, batch 2, 32×32)
 * gives bit-identical results with no pool and with pools of 1, 2 and 3 threads. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "ops.h"
#include "threadpool.h"
#include "tiny_unet.h"
#include "unet.h"

static void test_args(void) {
    threadpool *p = (threadpool *)1;
    char msg[256] = "";
    CHECK_EQ_INT(threadpool_new(0, &p, msg, sizeof msg), CS_ERR_INVALID_ARG);
    CHECK(p == NULL);
    CHECK_STR_CONTAINS(msg, "threadpool");
    CHECK_EQ_INT(threadpool_new(65, &p, msg, sizeof msg), CS_ERR_INVALID_ARG);
    threadpool_free(NULL);
    CHECK_EQ_INT(threadpool_threads(NULL), 1);
    CHECK_EQ_INT(threadpool_new(3, &p, msg, sizeof msg), CS_OK);
    CHECK_EQ_INT(threadpool_threads(p), 3);
    threadpool_free(p);
}

/* Records each chunk: visits per index, chunk count and the smallest chunk. */
typedef struct cover {
    int *hits;
    int64_t chunks, smallest;
    pthread_mutex_t lock;
} cover;

static void cover_chunk(void *arg, int64_t begin, int64_t end) {
    cover *c = arg;
    for (int64_t i = begin; i < end; i++)
        __atomic_fetch_add(&c->hits[i], 1, __ATOMIC_RELAXED);
    pthread_mutex_lock(&c->lock);
    c->chunks++;
    if (end - begin < c->smallest) c->smallest = end - begin;
    pthread_mutex_unlock(&c->lock);
}

static void test_cover(void) {
    static const int64_t ns[] = {0, 1, 2, 3, 7, 64, 100, 1000, 12345};
    static const int64_t grains[] = {1, 3, 64, 5000};
    for (int threads = 1; threads <= 4; threads++) {
        threadpool *p;
        CHECK_EQ_INT(threadpool_new(threads, &p, NULL, 0), CS_OK);
        for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++) {
            for (size_t g = 0; g < sizeof grains / sizeof grains[0]; g++) {
                const int64_t n = ns[a], grain = grains[g];
                cover c = {.hits = calloc((size_t)n + 1, sizeof(int)), .smallest = n};
                pthread_mutex_init(&c.lock, NULL);
                threadpool_for(p, n, grain, cover_chunk, &c);
                int wrong = 0;
                for (int64_t i = 0; i < n; i++)
                    wrong += c.hits[i] != 1;
                CHECK_EQ_INT(wrong, 0);
                if (n > 0) {
                    // Guided: each claim takes at least 1/(2·threads) of what is left
                    // until it reaches the grain, so claims grow with log(n / grain).
                    const double most = 2.0 * threads * (log((double)n / grain + 1) + 1) + 1;
                    CHECK(c.chunks >= 1 && c.chunks <= most);
                    // Several chunks only when each can hold `grain` items.
                    if (c.chunks > 1) CHECK(c.smallest >= grain);
                    if (threads == 1 || n < 2 * grain) CHECK_EQ_INT(c.chunks, 1);
                    // ... and the loop ends in chunks of one grain, so threads finish
                    // together.
                    if (threads > 1 && n >= 4 * threads * grain) CHECK_EQ_INT(c.smallest, grain);
                } else {
                    CHECK_EQ_INT(c.chunks, 0);
                }
                pthread_mutex_destroy(&c.lock);
                free(c.hits);
            }
        }
        threadpool_free(p);
    }
}

static void sum_chunk(void *arg, int64_t begin, int64_t end) {
    int64_t s = 0;
    for (int64_t i = begin; i < end; i++)
        s += i;
    __atomic_fetch_add((int64_t *)arg, s, __ATOMIC_RELAXED);
}

/* Loops of 1..max_n items, each checked; with pauses, some between loops are shorter
 * than the pool's poll (idle workers still polling) and some longer (gone to sleep). */
static int bad_loops(threadpool *p, int rounds, int64_t max_n, bool pauses) {
    int bad = 0;
    for (int r = 0; r < rounds; r++) {
        if (pauses) {
            const struct timespec pause = {0, (r % 4) * 40000 + (r % 7 == 0) * 1000000};
            nanosleep(&pause, NULL);
        }
        const int64_t n = 1 + r % max_n;
        int64_t sum = 0;
        threadpool_for(p, n, 1, sum_chunk, &sum);
        bad += sum != n * (n - 1) / 2;
    }
    return bad;
}

/* Back-to-back loops: a worker that wakes late must not run a stale loop or miss one;
 * and loops after pauses: none is lost to a missed wake-up, whether the workers polled
 * or slept. */
static void test_many_loops(void) {
    threadpool *p;
    CHECK_EQ_INT(threadpool_new(3, &p, NULL, 0), CS_OK);
    CHECK_EQ_INT(bad_loops(p, 20000, 97, false), 0);
    threadpool_free(p);
    CHECK_EQ_INT(threadpool_new(2, &p, NULL, 0), CS_OK);
    CHECK_EQ_INT(bad_loops(p, 400, 31, true), 0);
    threadpool_free(p);
}

typedef struct who {
    pthread_t caller;
    int others; /* chunks run by a worker */
} who;

static void who_chunk(void *arg, int64_t begin, int64_t end) {
    who *w = arg;
    const struct timespec ts = {0, 2000000}; // 2 ms: long enough for a worker to wake
    nanosleep(&ts, NULL);
    if (!pthread_equal(pthread_self(), w->caller))
        __atomic_fetch_add(&w->others, 1, __ATOMIC_RELAXED);
    (void)begin, (void)end;
}

/* The workers take part (on a loaded machine a worker may wake late: retry a few times). */
static void test_shared(void) {
    threadpool *p;
    CHECK_EQ_INT(threadpool_new(2, &p, NULL, 0), CS_OK);
    who w = {.caller = pthread_self()};
    for (int attempt = 0; attempt < 50 && w.others == 0; attempt++)
        threadpool_for(p, 8, 1, who_chunk, &w);
    CHECK(w.others > 0);
    threadpool_free(p);
}

/* ---- every pooled kernel: no pool, and pools of 2 and 3 threads, give the same bits ---- */

static uint64_t g_rng = 0x2545f4914f6cdd1dull;

static float *rand_buf(int64_t n) {
    float *p = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) {
        g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
        p[i] = (float)((double)(g_rng >> 40) / (double)(1ull << 22) - 2.0); // [-2, 2)
    }
    return p;
}

/* Inputs shared by the kernels below, sized for the largest. */
enum { KN = 100003 };
typedef struct kin {
    const float *x, *x2, *w, *b;
} kin;

/* Runs kernel `k` into y (KN floats, pre-filled with 7s) on context c. */
static void run_kernel(int k, cs_ctx *c, const kin *in, float *y) {
    switch (k) {
    case 0:
        op_silu(c, y, in->x, KN);
        break;
    case 1:
        op_gelu(c, y, in->x, KN);
        break;
    case 2:
        op_quick_gelu(c, y, in->x, KN);
        break;
    case 3:
        op_scale(c, y, in->x, 0.3f, KN);
        break;
    case 4:
        op_clamp(c, y, in->x, -0.5f, 0.7f, KN);
        break;
    case 5:
        op_add(c, y, in->x, in->x2, KN);
        break;
    case 6: // in place, on a copy
        memcpy(y, in->x, 3 * 37 * 801 * sizeof(float));
        op_add_channel_bias(c, y, in->b, 3, 37, 801);
        break;
    case 7:
        memcpy(y, in->x, 3 * 37 * 801 * sizeof(float));
        op_scale_shift(c, y, in->b, 3, 37, 801);
        break;
    case 8:
        op_geglu(c, y, in->x, 149, 333);
        break;
    case 9:
        op_group_norm(c, y, in->x, in->w, in->b, 2, 64, 731, 16, 1e-5f);
        break;
    case 10:
        op_layer_norm(c, y, in->x, in->w, in->b, 999, 77, 1e-5f);
        break;
    case 11:
        op_nchw_to_nlc(c, y, in->x, 2, 333, 117);
        break;
    case 12:
        op_nlc_to_nchw(c, y, in->x, 2, 333, 117);
        break;
    case 13:
        op_upsample_nearest2x(c, y, in->x, 2, 37, 17, 19);
        break;
    case 14: { // stride 2, asymmetric padding: im2col with padding; bias fill
        op_conv2d_shape s = {2, 37, 19, 23, 5, 3, 2, 1, 0, 1, 1};
        op_conv2d(c, y, in->x, in->w, in->b, &s);
        break;
    }
    case 15:
        op_linear(c, y, in->x, in->w, in->b, 2, 700, 33, 65);
        break;
    case 16: { // causal self-attention, 2 heads of 8, rows chunked over the pool
        op_attn_shape s = {.batch = 2,
                           .heads = 2,
                           .q_len = 300,
                           .kv_len = 300,
                           .head_dim = 8,
                           .q_stride = 48,
                           .kv_stride = 48,
                           .out_stride = 16,
                           .scale = 0.35f,
                           .causal = true};
        op_attention(c, y, in->x, in->x + 16, in->x + 32, &s);
        break;
    }
    default:
        CS_ASSERT(0);
    }
}
enum { NKERNELS = 17 };

static void test_kernels(void) {
    float *x = rand_buf(KN), *x2 = rand_buf(KN), *w = rand_buf(KN), *b = rand_buf(KN);
    kin in = {x, x2, w, b};
    float *ref = malloc(KN * sizeof(float)), *y = malloc(KN * sizeof(float));
    for (int k = 0; k < NKERNELS; k++) {
        for (int threads = 0; threads <= 3; threads++) {
            if (threads == 1) continue;
            cs_ctx c;
            CHECK_EQ_INT(ctx_init(&c, 4 << 20), CS_OK); // scratch for conv and attention
            if (threads) CHECK_EQ_INT(ctx_start_pool(&c, threads, NULL, 0), CS_OK);
            float *out = threads ? y : ref;
            for (int i = 0; i < KN; i++)
                out[i] = 7.0f;
            run_kernel(k, &c, &in, out);
            ctx_deinit(&c);
            if (threads && memcmp(y, ref, KN * sizeof(float)) != 0) {
                fprintf(stderr, "kernel %d differs with %d pool threads\n", k, threads);
                check_failures++;
            }
        }
    }
    free(x), free(x2), free(w), free(b), free(ref), free(y);
}

enum { UB = 3, UL = 77 };

/* A batch-3 side × side forward of the tiny pipeline UNet with `threads` pool threads (0:
 * none), its arena planned for them. */
static void unet_run(const unet_model *m, const unet_input *in, int threads, float *out) {
    cs_ctx c;
    CHECK_EQ_INT(ctx_init(&c, unet_activation_bytes(m, UB, in->height, in->width, UL, threads)),
                 CS_OK);
    if (threads > 0) CHECK_EQ_INT(ctx_start_pool(&c, threads, NULL, 0), CS_OK);
    unet_forward(&c, m, in, out);
    ctx_deinit(&c);
}

/* The same bits with 0-3 pool threads: at 32 × 32 the threads share each kernel (no row
 * groups: 0), at 8 × 8 (a row's activations under a core's cache) they run the rows in
 * groups (ctx_rows.h): 2 + 1 rows on 2 threads, 1 + 1 + 1 on 3, and a single row on 2
 * threads as one group on one thread. */
static void unet_invariance_at(const unet_model *m, const unet_config *cfg, int64_t side,
                               int groups_on_2) {
    const int64_t n_in = UB * cfg->in_channels * side * side, n_ctx = UB * UL * cfg->cross_dim;
    const size_t n = (size_t)(UB * cfg->out_channels * side * side);
    float *sample = malloc((size_t)n_in * sizeof(float));
    float *context = malloc((size_t)n_ctx * sizeof(float));
    float *ref = malloc(n * sizeof(float)), *out = malloc(n * sizeof(float));
    float t[UB] = {999.0f, 1.5f, 500.0f};
    uint64_t s = 7;
    for (int64_t i = 0; i < n_ctx; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        context[i] = (float)((s >> 40) & 0xFFFF) / 32768.0f - 1.0f;
    }
    for (int64_t i = 0; i < n_in; i++)
        sample[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
    unet_input in = {.sample = sample,
                     .batch = UB,
                     .height = side,
                     .width = side,
                     .timesteps = t,
                     .context = context,
                     .context_len = UL};
    unet_run(m, &in, 0, ref);
    CHECK_EQ_INT(unet_row_groups(m, UB, side, side, UL, 1), 0);
    CHECK_EQ_INT(unet_row_groups(m, UB, side, side, UL, 2), groups_on_2);
    CHECK_EQ_INT(unet_row_groups(m, 1, side, side, UL, 2), groups_on_2 ? 1 : 0);
    for (int threads = 1; threads <= 3; threads++) {
        memset(out, 0, n * sizeof(float));
        unet_run(m, &in, threads, out);
        CHECK(memcmp(out, ref, n * sizeof(float)) == 0);
    }
    /* The first row alone on 2 threads (at 8 × 8: one group, serial) gives its batch bits. */
    unet_input one = in;
    one.batch = 1;
    memset(out, 0, n * sizeof(float));
    unet_run(m, &one, 2, out);
    CHECK(memcmp(out, ref, n / UB * sizeof(float)) == 0);
    free(sample), free(context), free(ref), free(out);
}

static void test_unet_invariance(void) {
    unet_config cfg;
    unet_model *m = tiny_unet_new(5, &cfg);
    CHECK(m != NULL);
    if (!m) return;
    unet_invariance_at(m, &cfg, 32, 0);
    unet_invariance_at(m, &cfg, 8, 2);
    CHECK_EQ_INT(unet_row_groups(m, UB, 8, 8, UL, 3), 3);
    unet_free(m);
}

typedef struct span_sum {
    int64_t items, index_sum, bad; /* atomically updated */
} span_sum;

static void span_chunk(void *arg, int64_t begin, int64_t end) {
    span_sum *s = arg;
    const int64_t n = end - begin;
    __atomic_fetch_add(&s->items, n, __ATOMIC_RELAXED);
    __atomic_fetch_add(&s->index_sum, (begin + end - 1) * n / 2, __ATOMIC_RELAXED);
    if (begin < 0 || n <= 0) __atomic_fetch_add(&s->bad, 1, __ATOMIC_RELAXED);
}

/* A loop longer than one claim word holds (2^31 - 1 items) runs in segments: every item
 * once, at its own index (the chunks only count, so it stays fast). */
static void test_long_loop(void) {
    threadpool *p;
    CHECK_EQ_INT(threadpool_new(2, &p, NULL, 0), CS_OK);
    const int64_t n = (int64_t)INT32_MAX + 1000;
    span_sum s = {0, 0, 0};
    threadpool_for(p, n, 1, span_chunk, &s);
    CHECK(s.items == n);
    CHECK(s.index_sum == (n % 2 ? (n - 1) / 2 * n : n / 2 * (n - 1))); /* 0 + ... + n - 1 */
    CHECK_EQ_INT((int)s.bad, 0);
    threadpool_free(p);
}

int main(void) {
    test_args();
    test_cover();
    test_long_loop();
    test_many_loops();
    test_shared();
    test_kernels();
    test_unet_invariance();
    CHECK_DONE();
}
