/*
 * cfgserve-bench: UNet forward throughput against the machine's own sgemm, measured in
 * one run so the ratio means something on a shared, noisy machine.
 *
 *   cfgserve-bench [--unet DIR] [--repeat N] [--shapes 64x64x2,32x32x2] [--threads T]
 *
 * T is the size of the kernel thread pool (default 0: as many as OpenBLAS uses; 1: the
 * non-GEMM kernels run in the calling thread only).
 * DIR holds a UNet config.json (default: ../shared/configs/sd15/unet); the weights are
 * random (speed does not depend on their values). For each shape it prints the forward
 * time, the FLOPs the kernels counted, the FLOP rate, the sgemm FLOP rate measured in
 * the same process, their ratio, and the peak activation memory of the pass.
 */
#include <cblas.h>
#include <string.h>
#include <time.h>

#include "ctx.h"
#include "threadpool.h"
#include "unet.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Best-of-3 rate of an n×n×n sgemm, GFLOP/s. */
static double sgemm_gflops(int n) {
    float *a = cs_malloc((size_t)n * n * sizeof *a), *b = cs_malloc((size_t)n * n * sizeof *b),
          *c = cs_malloc((size_t)n * n * sizeof *c);
    CS_ASSERT(a && b && c);
    for (int64_t i = 0; i < (int64_t)n * n; i++) {
        a[i] = (float)((i * 7) % 13) / 13.0f;
        b[i] = (float)((i * 5) % 11) / 11.0f;
    }
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        double t0 = now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double dt = now_s() - t0;
        if (dt < best) best = dt;
    }
    free(a);
    free(b);
    free(c);
    return 2.0 * n * (double)n * n / best / 1e9;
}

typedef struct shape {
    int64_t h, w, batch;
} shape;

static int parse_shapes(const char *s, shape *out, int max) {
    int n = 0;
    while (*s && n < max) {
        long long h, w, b;
        int used;
        if (sscanf(s, "%lldx%lldx%lld%n", &h, &w, &b, &used) != 3 || h < 1 || w < 1 || b < 1 ||
            h > 512 || w > 512 || b > 64)
            return -1;
        out[n++] = (shape){h, w, b};
        s += used;
        if (*s == ',') s++;
    }
    return *s ? -1 : n;
}

int main(int argc, char **argv) {
    cs_runtime_init(argc, argv);
    const char *dir = CS_SOURCE_DIR "/../shared/configs/sd15/unet";
    const char *shapes_arg = "64x64x2,32x32x2";
    int repeat = 1, threads = 0;
    static const char usage[] =
        "usage: %s [--unet DIR] [--repeat N] [--shapes HxWxB,...] [--threads T]\n"
        "Times one CFG UNet step of a random-weight UNet (default: SD 1.5's config) at each\n"
        "latent shape HxW with batch B, and reports its FLOP rate as a fraction of sgemm's,\n"
        "measured in the same run.\n";
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf(usage, argv[0]);
            return 0;
        }
    if (argc % 2 == 0) {
        fprintf(stderr, usage, argv[0]);
        return 2;
    }
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--unet")) dir = argv[i + 1];
        else if (!strcmp(argv[i], "--repeat")) repeat = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--shapes")) shapes_arg = argv[i + 1];
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else {
            fprintf(stderr, usage, argv[0]);
            return 2;
        }
    }
    shape shapes[8];
    int nshapes = parse_shapes(shapes_arg, shapes, 8);
    if (nshapes < 1 || repeat < 1 || repeat > 100 || threads < 0 || threads > 64) {
        fprintf(stderr, "cfgserve-bench: bad --shapes (HxWxB,...), --repeat (1..100) or "
                        "--threads (0..64)\n");
        return 2;
    }
    char msg[2048], path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    unet_config cfg;
    unet_model *m;
    if (unet_config_load(path, &cfg, msg, sizeof msg) != CS_OK ||
        unet_new_random(&cfg, 1234, &m, msg, sizeof msg) != CS_OK) {
        fprintf(stderr, "cfgserve-bench: %s\n", msg);
        return 1;
    }
    printf("unet %s: %.1f M parameters, OpenBLAS kernels %s, %d thread(s)\n", dir,
           unet_param_count(m) / 1e6, cs_blas_kernel_name(), openblas_get_num_threads());
    const double sgemm = sgemm_gflops(2048);
    printf("sgemm 2048^3: %.1f GFLOP/s\n", sgemm);
    int rc = 0;
    for (int k = 0; k < nshapes; k++) {
        const shape sh = shapes[k];
        const int64_t L = 77, cin = cfg.in_channels, n_in = sh.batch * cin * sh.h * sh.w;
        size_t bytes = unet_activation_bytes(m, sh.batch, sh.h, sh.w, L);
        cs_ctx c;
        float *x = cs_malloc((size_t)n_in * sizeof *x), *out = cs_malloc((size_t)n_in * sizeof *out);
        float *t = cs_malloc((size_t)sh.batch * sizeof *t);
        float *ctxt = cs_malloc((size_t)(sh.batch * L * cfg.cross_dim) * sizeof *ctxt);
        if (ctx_init(&c, bytes) != CS_OK ||
            ctx_start_pool(&c, threads, msg, sizeof msg) != CS_OK || !x || !out || !t || !ctxt) {
            fprintf(stderr, "cfgserve-bench: out of memory for %lldx%lld batch %lld\n",
                    (long long)sh.h, (long long)sh.w, (long long)sh.batch);
            rc = 1;
        } else {
            for (int64_t i = 0; i < n_in; i++) x[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
            for (int64_t i = 0; i < sh.batch * L * cfg.cross_dim; i++)
                ctxt[i] = (float)((i * 13) % 29) / 14.0f - 1.0f;
            for (int64_t b = 0; b < sh.batch; b++) t[b] = 500.0f;
            unet_input in = {.sample = x, .batch = sh.batch, .height = sh.h, .width = sh.w,
                             .timesteps = t, .context = ctxt, .context_len = L};
            double best = 1e30, flops = 0;
            for (int r = 0; r < repeat; r++) {
                c.flops = 0;
                ctx_release(&c, 0);
                double t0 = now_s();
                unet_forward(&c, m, &in, out);
                double dt = now_s() - t0;
                if (dt < best) best = dt;
                flops = c.flops;
            }
            const double rate = flops / best / 1e9;
            printf("unet %lldx%lld batch %lld: %.0f ms  %.3f TFLOP  %.1f GFLOP/s  sgemm %.1f "
                   "GFLOP/s  ratio %.2f  peak activations %.1f MiB  pool %d thread(s)\n",
                   (long long)sh.h, (long long)sh.w, (long long)sh.batch, best * 1e3, flops / 1e12,
                   rate, sgemm, rate / sgemm, c.peak / 1048576.0, threadpool_threads(c.pool));
        }
        ctx_deinit(&c);
        free(x);
        free(out);
        free(t);
        free(ctxt);
    }
    unet_free(m);
    return rc;
}
