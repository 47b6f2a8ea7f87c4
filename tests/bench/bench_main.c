/*
 * cfgserve-bench: the machine's peaks and the model's rates, measured in one run so the
 * ratios mean something on a shared, noisy machine (issue 12 item 6).
 *
 *   cfgserve-bench [--model DIR] [--default-model DIR] [--sizes 256,512] [--threads T]
 *                  [--repeat N] [--no-batch] [--json FILE] [--quick] [--profile]
 *   cfgserve-bench [--model DIR] --write-model OUT [--dtype F16|BF16|F32]
 *
 * DIR is a diffusers-layout folder whose unet/, vae/ and text_encoder/ config.json give
 * the architectures (default: ../shared/configs/sd15); weights are random (speed does not
 * depend on their values). Sizes are image sizes (the latent is size / the VAE factor);
 * 512² takes minutes per UNet step here, so pick sizes with --sizes. --quick is the smoke
 * run ctest uses: the default model's architecture at its own size, small products.
 * Performance is reported, never asserted.
 */
#include <math.h>
#include <string.h>

#include <cblas.h>

#include "bench_peak.h"
#include "bench_write_model.h"
#include "ctx.h"
#include "ctx_profile.h"
#include "gemm.h"
#include "gemm_kernels.h"
#include "text_encoder.h"
#include "threadpool.h"
#include "unet.h"
#include "vae.h"

enum { MAX_SIZES = 4, CONTEXT_LEN = 77 };

typedef struct opts {
    const char *model, *default_model, *json;
    const char *write_model, *dtype; /* --write-model OUT --dtype D: write, time nothing */
    int64_t sizes[MAX_SIZES];
    int nsizes, threads, repeat;
    bool quick, batch, profile;
    gemm_bf16_mode bf16_mode; /* --bf16-kernel */
} opts;

/* Every JSON key; NaN = not measured (null). */
typedef struct results {
    double fma_peak, bf16_peak, openblas, own_gemm, own_gemm_bf16;
    double gemm_f16_ratio, gemm_bf16_ratio, conv_f16_ratio; /* 16-bit over fp32 weights */
    double unet512_s, unet512_gflops, unet512_bf16_s, unet256_s;
    double vae512_s, te_s, rss512, gain256, gain_default;
} results;

static double peak_rss_mib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kib = NAN;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) kib = atof(line + 6);
    if (f) fclose(f);
    return kib / 1024.0;
}

/* One model pass on a ctx, timed by best_time. */
typedef void (*pass_fn)(cs_ctx *c, const void *arg);

/* The ops' time over the timed runs of a pass (--profile), and the runs' own time. */
typedef struct bench_profile {
    ctx_profile ops;
    double seconds;
    int runs;
} bench_profile;

/* Best-of-repeat time of run(c, arg) after one untimed warm-up (the arena's pages then
 * touched, as in a running server), with the FLOPs the pass counted; prof (may be NULL)
 * gets the timed runs' profile. */
static double best_time(cs_ctx *c, int repeat, pass_fn run, const void *arg, double *flops,
                        bench_profile *prof) {
    double best = 1e30;
    if (prof) memset(prof, 0, sizeof *prof);
    for (int r = -1; r < repeat; r++) {
        c->flops = 0;
        ctx_release(c, 0);
        c->prof = prof && r >= 0 ? &prof->ops : NULL;
        const double t0 = bench_now_s();
        run(c, arg);
        const double dt = bench_now_s() - t0;
        if (r >= 0 && dt < best) best = dt;
        if (prof && r >= 0) prof->seconds += dt, prof->runs++;
        *flops = c->flops;
    }
    c->prof = NULL;
    return best;
}

/* The table of --profile: per op kind, calls and time per pass, share of the pass,
 * GFLOP/s and fraction of the fp32 peak for the kinds that count FLOPs. */
static void print_profile(const bench_profile *p, double peak, int threads) {
    if (!p->runs) return;
    const double per = 1.0 / p->runs, pass_s = p->seconds * per;
    const bool grouped = p->ops.grouped > 0;
    double ops_s = 0;
    printf("  where the time goes (per pass, mean of %d runs: %.2f ms%s)\n", p->runs, 1e3 * pass_s,
           grouped ? "; row groups side by side: op times are thread time" : "");
    printf("    %-12s %7s %11s %7s %9s %8s\n", "op kind", "calls", "time", "share", "GFLOP/s",
           "of peak");
    for (int k = 0; k < CS_OP_KINDS; k++) {
        if (!p->ops.calls[k]) continue;
        const double t = p->ops.seconds[k] * per, fl = p->ops.flops[k] * per;
        ops_s += t;
        printf("    %-12s %7lld %8.2f ms %6.1f%%", ctx_op_kind_name((cs_op_kind)k),
               (long long)(p->ops.calls[k] / p->runs), 1e3 * t, 100.0 * t / pass_s);
        // A row group's kernels run on one thread: their rate is of one thread's peak.
        if (fl > 0)
            printf(" %9.1f %8.2f", fl / t / 1e9, fl / t / 1e9 / (grouped ? peak / threads : peak));
        printf("\n");
    }
    if (!grouped)
        printf("    %-12s %7s %8.2f ms %6.1f%%\n", "between ops", "", 1e3 * (pass_s - ops_s),
               100.0 * (pass_s - ops_s) / pass_s);
}

typedef struct unet_pass {
    const unet_model *m;
    const unet_input *in;
    float *out;
} unet_pass;

static void run_unet(cs_ctx *c, const void *arg) {
    const unet_pass *p = arg;
    unet_forward(c, p->m, p->in, p->out);
}

typedef struct vae_pass {
    const vae_model *m;
    float *img;
    const float *lat;
    int64_t h, w;
} vae_pass;

static void run_vae(cs_ctx *c, const void *arg) {
    const vae_pass *p = arg;
    vae_decode(c, p->m, p->img, p->lat, 1, p->h, p->w);
}

typedef struct te_pass {
    const text_encoder *m;
    const int64_t *ids;
    int64_t batch, len;
    float *out;
} te_pass;

static void run_te(cs_ctx *c, const void *arg) {
    const te_pass *p = arg;
    text_encoder_forward(c, p->m, p->ids, p->batch, p->len, 0, p->out, NULL);
}

/* Best-of-repeat time of one UNet forward at (batch, h, w), with its counted FLOPs. */
static double unet_time(const unet_model *m, int64_t batch, int64_t h, int64_t w,
                        const opts *o, double *flops, bench_profile *prof) {
    const unet_config *cfg = unet_get_config(m);
    const int64_t n_in = batch * cfg->in_channels * h * w, nctx = batch * CONTEXT_LEN * cfg->cross_dim;
    float *x = cs_malloc((size_t)n_in * sizeof *x), *out = cs_malloc((size_t)n_in * sizeof *out);
    float *t = cs_malloc((size_t)batch * sizeof *t), *ctxt = cs_malloc((size_t)nctx * sizeof *ctxt);
    cs_ctx c;
    char msg[256];
    double best = NAN;
    if (x && out && t && ctxt &&
        ctx_init(&c, unet_activation_bytes(m, batch, h, w, CONTEXT_LEN, ctx_pool_threads(o->threads))) == CS_OK) {
        if (ctx_start_pool(&c, o->threads, msg, sizeof msg) == CS_OK) {
            for (int64_t i = 0; i < n_in; i++) x[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
            for (int64_t i = 0; i < nctx; i++) ctxt[i] = (float)((i * 13) % 29) / 14.0f - 1.0f;
            for (int64_t b = 0; b < batch; b++) t[b] = 500.0f;
            unet_input in = {.sample = x, .batch = batch, .height = h, .width = w,
                             .timesteps = t, .context = ctxt, .context_len = CONTEXT_LEN};
            const unet_pass p = {.m = m, .in = &in, .out = out};
            best = best_time(&c, o->repeat, run_unet, &p, flops, prof);
        }
        ctx_deinit(&c);
    }
    free(x), free(out), free(t), free(ctxt);
    return best;
}

static double vae_time(const vae_model *m, int64_t h, int64_t w, const opts *o, double *flops,
                       bench_profile *prof) {
    const int64_t f = vae_scale_factor(m), lc = vae_latent_channels(m);
    float *lat = cs_malloc((size_t)(lc * h * w) * sizeof *lat);
    float *img = cs_malloc((size_t)(3 * h * f * w * f) * sizeof *img);
    cs_ctx c;
    char msg[256];
    double best = NAN;
    if (lat && img && ctx_init(&c, vae_decode_activation_bytes(m, 1, h, w)) == CS_OK) {
        if (ctx_start_pool(&c, o->threads, msg, sizeof msg) == CS_OK) {
            for (int64_t i = 0; i < lc * h * w; i++) lat[i] = (float)((i * 7) % 23) / 11.0f - 1.0f;
            const vae_pass p = {.m = m, .img = img, .lat = lat, .h = h, .w = w};
            best = best_time(&c, o->repeat, run_vae, &p, flops, prof);
        }
        ctx_deinit(&c);
    }
    free(lat), free(img);
    return best;
}

static double te_time(const text_encoder *m, const opts *o, double *flops) {
    const int64_t batch = 2, len = text_encoder_max_length(m), d = text_encoder_hidden_size(m);
    int64_t *ids = cs_malloc((size_t)(batch * len) * sizeof *ids);
    float *out = cs_malloc((size_t)(batch * len * d) * sizeof *out);
    cs_ctx c;
    char msg[256];
    double best = NAN;
    const int64_t vocab = text_encoder_config(m)->vocab_size;
    if (ids && out && ctx_init(&c, text_encoder_activation_bytes(m, batch, len)) == CS_OK) {
        if (ctx_start_pool(&c, o->threads, msg, sizeof msg) == CS_OK) {
            for (int64_t i = 0; i < batch * len; i++) ids[i] = (i * 7919) % vocab;
            const te_pass p = {.m = m, .ids = ids, .batch = batch, .len = len, .out = out};
            best = best_time(&c, o->repeat, run_te, &p, flops, NULL);
        }
        ctx_deinit(&c);
    }
    free(ids), free(out);
    return best;
}

/* The three models of a diffusers-layout config folder, random weights. */
typedef struct models {
    unet_model *unet, *unet_bf16; /* the same weights; unet_bf16 with bf16 products */
    vae_model *vae;
    text_encoder *te;
} models;

static bool models_load(const char *dir, models *m, bool need_all) {
    char path[4096], msg[2048];
    memset(m, 0, sizeof *m);
    unet_config uc;
    vae_config vc;
    te_config tc;
    snprintf(path, sizeof path, "%s/unet/config.json", dir);
    if (unet_config_load(path, &uc, msg, sizeof msg) != CS_OK ||
        unet_new_random(&uc, 1234, &m->unet, msg, sizeof msg) != CS_OK)
        goto fail;
    if (need_all &&
        unet_new_random_store(&uc, 1234, WB_STORE_BF16, &m->unet_bf16, msg, sizeof msg) != CS_OK)
        goto fail;
    snprintf(path, sizeof path, "%s/vae/config.json", dir);
    if (vae_read_config(path, &vc, msg, sizeof msg) != CS_OK ||
        (need_all ? vae_new_random(&vc, 99, &m->vae, msg, sizeof msg)
                  : vae_new_unloaded(&vc, &m->vae, msg, sizeof msg)) != CS_OK)
        goto fail;
    if (!need_all) return true;
    snprintf(path, sizeof path, "%s/text_encoder/config.json", dir);
    if (text_encoder_read_config(path, &tc, msg, sizeof msg) != CS_OK ||
        text_encoder_new_random(&tc, 7, &m->te, msg, sizeof msg) != CS_OK)
        goto fail;
    return true;
fail:
    fprintf(stderr, "cfgserve-bench: %s\n", msg);
    return false;
}

static void models_free(models *m) {
    unet_free(m->unet);
    unet_free(m->unet_bf16);
    vae_free(m->vae);
    text_encoder_free(m->te);
}

static void print_rate(const char *what, double s, double flops, double peak) {
    if (isnan(s)) {
        printf("%-34s not measured\n", what);
        return;
    }
    const double g = flops / s / 1e9;
    printf("%-34s %9.3f s  %8.1f GFLOP/s  %.2f of fp32 peak\n", what, s, g, peak > 0 ? g / peak : 0);
}

/* Per-row throughput of 8 CFG requests in one step (16 rows) over one request (2 rows). */
/* Best of --repeat runs each; a step of milliseconds (the default model's) gets runs
 * enough to fill about 0.3 s at one request (at most 100), so one preempted run on a
 * shared machine does not decide the ratio. */
static double batch_gain(const models *m, int64_t h, const opts *o, const char *label) {
    double fl1 = 0, fl8 = 0;
    opts r = *o;
    double t1 = unet_time(m->unet, 2, h, h, &r, &fl1, NULL);
    if (t1 > 0 && t1 < 0.1) {
        const double want = 0.3 / t1;
        r.repeat = want > 100 ? 100 : want > o->repeat ? (int)want : o->repeat;
        t1 = unet_time(m->unet, 2, h, h, &r, &fl1, NULL);
    }
    const double t8 = unet_time(m->unet, 16, h, h, &r, &fl8, NULL);
    const double gain = t1 * 8.0 / t8;
    printf("batching gain, %s, latent %lld^2: 1 request %.4g s, 8 requests %.4g s: %.2fx\n",
           label, (long long)h, t1, t8, gain);
    return gain;
}

static void json_num(FILE *f, const char *key, double v, bool last) {
    if (isnan(v) || isinf(v)) fprintf(f, "  \"%s\": null%s\n", key, last ? "" : ",");
    else fprintf(f, "  \"%s\": %.6g%s\n", key, v, last ? "" : ",");
}

static int write_json(const char *path, const results *r) {
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "cfgserve-bench: cannot write %s\n", path);
        return 1;
    }
    fprintf(f, "{\n");
    json_num(f, "fma_peak_gflops", r->fma_peak, false);
    json_num(f, "bf16_peak_gflops", r->bf16_peak, false);
    json_num(f, "openblas_sgemm_gflops", r->openblas, false);
    json_num(f, "own_gemm_gflops", r->own_gemm, false);
    json_num(f, "own_gemm_bf16_gflops", r->own_gemm_bf16, false);
    json_num(f, "gemm_f16_weights_cpu_ratio", r->gemm_f16_ratio, false);
    json_num(f, "gemm_bf16_weights_cpu_ratio", r->gemm_bf16_ratio, false);
    json_num(f, "conv_f16_weights_cpu_ratio", r->conv_f16_ratio, false);
    json_num(f, "unet_cfg_step_512_s", r->unet512_s, false);
    json_num(f, "unet_cfg_step_512_gflops", r->unet512_gflops, false);
    json_num(f, "unet_cfg_step_512_bf16_s", r->unet512_bf16_s, false);
    json_num(f, "unet_cfg_step_256_s", r->unet256_s, false);
    json_num(f, "vae_decode_512_s", r->vae512_s, false);
    json_num(f, "text_encoder_s", r->te_s, false);
    json_num(f, "peak_rss_mib_512", r->rss512, false);
    json_num(f, "batch8_gain_256", r->gain256, false);
    json_num(f, "batch8_gain_default_model", r->gain_default, true);
    fprintf(f, "}\n");
    return fclose(f) == 0 ? 0 : 1;
}

static const char usage[] =
    "usage: %s [--model DIR] [--default-model DIR] [--sizes 256,512] [--threads T]\n"
    "          [--repeat N] [--no-batch] [--json FILE] [--quick] [--bf16-kernel K]\n"
    "          [--profile]\n"
    "       %s [--model DIR] --write-model OUT [--dtype F16|BF16|F32]\n"
    "Prints, in one run: the fp32 FMA peak (register-only loop on all threads) and the bf16\n"
    "peak where the CPU has AVX512_BF16; OpenBLAS sgemm 2048^3 (the environment's kernel\n"
    "pick) and our GEMM; the UNet CFG step (batch 2), VAE decode and text encoder of DIR's\n"
    "architecture with random weights (default: ../shared/configs/sd15) at each image size\n"
    "(best of N runs after one untimed warm-up, as in a running server whose arena is\n"
    "touched: time, GFLOP/s, fraction of the peak; the UNet step also with --precision bf16,\n"
    "its fraction taken of the fp32 peak); peak RSS (VmHWM); the batching gain (per-row\n"
    "throughput of 8 CFG requests in one step over 1) at the first size and on the default\n"
    "model (models/default). --json FILE writes the same as JSON (null: not measured).\n"
    "--quick: a smoke run (default model's architecture, small products). T: pool threads\n"
    "(0: as many as OpenBLAS uses). The GEMM with F16 / BF16 weights is timed against fp32\n"
    "weights (CPU time, one thread). --write-model OUT writes DIR's model with random weights\n"
    "(the ones timed here) in dtype D (default F16) as a diffusers folder, and exits.\n"
    "--bf16-kernel native|split|auto: the bf16 products on vdpbf16ps (or the portable\n"
    "kernel), on fp32 FMAs (AVX-512F), or as the server picks them (default).\n"
    "--profile: after each UNet step and VAE decode, where its timed runs spent their time\n"
    "by op kind (calls, time and share per pass; GFLOP/s and fraction of the fp32 peak of\n"
    "the products), and the time between ops.\n";

static int parse(int argc, char **argv, opts *o) {
    *o = (opts){.model = CS_SOURCE_DIR "/../shared/configs/sd15",
                .default_model = CS_SOURCE_DIR "/models/default", .sizes = {256, 512},
                .nsizes = 2, .repeat = 1, .batch = true, .dtype = "F16"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf(usage, argv[0], argv[0]);
            exit(0);
        } else if (!strcmp(a, "--quick")) {
            o->quick = true;
        } else if (!strcmp(a, "--no-batch")) {
            o->batch = false;
        } else if (!strcmp(a, "--profile")) {
            o->profile = true;
        } else if (!v) {
            goto bad;
        } else if (!strcmp(a, "--model")) {
            o->model = v, i++;
        } else if (!strcmp(a, "--default-model")) {
            o->default_model = v, i++;
        } else if (!strcmp(a, "--write-model")) {
            o->write_model = v, i++;
        } else if (!strcmp(a, "--dtype")) {
            o->dtype = v, i++;
        } else if (!strcmp(a, "--json")) {
            o->json = v, i++;
        } else if (!strcmp(a, "--threads")) {
            o->threads = atoi(v), i++;
        } else if (!strcmp(a, "--bf16-kernel")) {
            if (!strcmp(v, "native")) o->bf16_mode = GEMM_BF16_NATIVE;
            else if (!strcmp(v, "split")) o->bf16_mode = GEMM_BF16_SPLIT;
            else if (strcmp(v, "auto")) goto bad;
            i++;
        } else if (!strcmp(a, "--repeat")) {
            o->repeat = atoi(v), i++;
        } else if (!strcmp(a, "--sizes")) {
            o->nsizes = 0;
            for (const char *s = v; *s && o->nsizes < MAX_SIZES;) {
                char *end;
                long long n = strtoll(s, &end, 10);
                if (end == s || n < 8 || n > 2048) goto bad;
                o->sizes[o->nsizes++] = n;
                s = *end == ',' ? end + 1 : end;
                if (*end && *end != ',') goto bad;
            }
            i++;
        } else {
            goto bad;
        }
    }
    if (o->repeat < 1 || o->repeat > 100 || o->threads < 0 || o->threads > 64 || o->nsizes < 1)
        goto bad;
    return 0;
bad:
    fprintf(stderr, usage, argv[0], argv[0]);
    return 2;
}

int main(int argc, char **argv) {
    cs_runtime_init(argc, argv);
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress of a run that takes minutes */
    opts o;
    if (parse(argc, argv, &o) != 0) return 2;
    if (o.write_model) return bench_write_model(o.model, o.write_model, o.dtype);
    if (!gemm_set_bf16_mode(o.bf16_mode)) {
        fprintf(stderr, "cfgserve-bench: --bf16-kernel split needs AVX-512F\n");
        return 2;
    }
    results r;
    r = (results){NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN,
                  NAN, NAN, NAN, NAN, NAN, NAN, NAN, NAN};
    const int threads = o.threads > 0 ? o.threads : openblas_get_num_threads();
    const double peak_s = o.quick ? 0.02 : 0.5;
    const int gemm_n = o.quick ? 256 : 2048;
    const char *fma_isa = "none";
    printf("threads %d, OpenBLAS kernels %s, our GEMM kernels %s\n", threads,
           cs_blas_kernel_name(), gemm_isa_name(gemm_active_isa()));
    r.fma_peak = bench_fma_peak(threads, peak_s, &fma_isa);
    printf("fp32 FMA peak (%s, %d threads)       %8.1f GFLOP/s\n", fma_isa, threads, r.fma_peak);
    const double bf16 = bench_bf16_peak(threads, peak_s);
    if (bf16 > 0) r.bf16_peak = bf16;
    printf("bf16 peak (vdpbf16ps)                 %s%.1f GFLOP/s\n", bf16 > 0 ? "" : "n/a ",
           bf16);
    r.openblas = bench_openblas_sgemm(gemm_n);
    r.own_gemm = bench_own_gemm(gemm_n, threads, false);
    r.own_gemm_bf16 = bench_own_gemm(gemm_n, threads, true);
    printf("OpenBLAS sgemm %d^3                  %8.1f GFLOP/s  %.2f of peak\n", gemm_n,
           r.openblas, r.openblas / r.fma_peak);
    printf("our GEMM %d^3                        %8.1f GFLOP/s  %.2f of peak\n", gemm_n,
           r.own_gemm, r.own_gemm / r.fma_peak);
    printf("our GEMM %d^3, bf16 products (%s) %8.1f GFLOP/s  %.2f of bf16 peak\n", gemm_n,
           gemm_bf16_kernel_name(), r.own_gemm_bf16, r.own_gemm_bf16 / r.bf16_peak);
    const int n16 = o.quick ? 128 : 1024;
    r.gemm_f16_ratio = bench_gemm_16bit_ratio(n16, GEMM_F16, false);
    r.gemm_bf16_ratio = bench_gemm_16bit_ratio(n16, GEMM_BF16, false);
    r.conv_f16_ratio = bench_gemm_16bit_ratio(n16, GEMM_F16, true);
    printf("our GEMM %d^3, 1 thread, CPU time over fp32 weights: F16 %.3f, BF16 %.3f "
           "(linear), F16 %.3f (conv, weights as A)\n",
           n16, r.gemm_f16_ratio, r.gemm_bf16_ratio, r.conv_f16_ratio);

    const char *dir = o.quick ? o.default_model : o.model;
    models m;
    if (!models_load(dir, &m, true)) return 1;
    printf("model %s: UNet %.1f M parameters (random weights)\n", dir,
           unet_param_count(m.unet) / 1e6);
    const int64_t f = vae_scale_factor(m.vae);
    if (o.quick) {
        o.nsizes = 1;
        o.sizes[0] = 8 * f;
    }
    double fl = 0, s;
    bench_profile prof_storage, *prof = o.profile ? &prof_storage : NULL;
    s = te_time(m.te, &o, &fl);
    print_rate("text encoder (2 x 77 tokens)", s, fl, r.fma_peak);
    if (!o.quick) r.te_s = s;
    for (int i = 0; i < o.nsizes; i++) {
        const int64_t size = o.sizes[i], h = size / f;
        char what[96];
        snprintf(what, sizeof what, "UNet CFG step %lld^2 (fp32)", (long long)size);
        s = unet_time(m.unet, 2, h, h, &o, &fl, prof);
        print_rate(what, s, fl, r.fma_peak);
        if (prof) print_profile(prof, r.fma_peak, threads);
        if (!o.quick && size == 512) {
            r.unet512_s = s;
            r.unet512_gflops = fl / s / 1e9;
        }
        if (!o.quick && size == 256) r.unet256_s = s;
        const double s32 = s;
        snprintf(what, sizeof what, "UNet CFG step %lld^2 (bf16)", (long long)size);
        s = unet_time(m.unet_bf16, 2, h, h, &o, &fl, prof);
        print_rate(what, s, fl, r.fma_peak);
        if (prof) print_profile(prof, r.fma_peak, threads);
        printf("%-34s %9.2fx (kernel %s)\n", "  bf16 speed-up over fp32", s32 / s,
               gemm_bf16_kernel_name());
        if (!o.quick && size == 512) r.unet512_bf16_s = s;
        snprintf(what, sizeof what, "VAE decode %lld^2", (long long)size);
        s = vae_time(m.vae, h, h, &o, &fl, prof);
        print_rate(what, s, fl, r.fma_peak);
        if (prof) print_profile(prof, r.fma_peak, threads);
        if (!o.quick && size == 512) {
            r.vae512_s = s;
            r.rss512 = peak_rss_mib();
        }
    }
    printf("peak RSS (VmHWM)                      %8.1f MiB\n", peak_rss_mib());
    if (o.batch && !o.quick) {
        const double g = batch_gain(&m, o.sizes[0] / f, &o, "model");
        if (o.sizes[0] == 256) r.gain256 = g;
    }
    models_free(&m);
    if (o.batch) {
        models d;
        if (!models_load(o.default_model, &d, false)) return 1;
        const int64_t h = unet_get_config(d.unet)->sample_size[0];
        const double g = batch_gain(&d, h > 0 ? h : 8, &o, "default model");
        if (!o.quick) r.gain_default = g;
        models_free(&d);
    }
    return o.json ? write_json(o.json, &r) : 0;
}
