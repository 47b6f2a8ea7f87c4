/*
 * cfgserve-eval: measures classifier-free guidance on the default model.
 *
 *   cfgserve-eval [--model DIR] [--scales 0,1,2,3,5,7.5,10] [--seeds N] [--steps N]
 *                 [--sampler NAME] [--batch N] [--threads N] [--limit N] [--neg-seeds N]
 *                 [--neg-scale S] [--grid OUT.png] [--grid-seed N]
 *                 [--require colour=95,shape=90,...]
 *
 * For every guidance scale it generates the fixed prompt set (eval_prompts.c) with N
 * seeds each (the same seeds at every scale), classifies each image (classify.c, proven
 * on the data set's own images by test_classify) and prints one table row: accuracy per
 * attribute over the prompts that name it, entropy (bits) of each attribute's predicted
 * distribution over the prompts that leave it out, and the mean pixel distance between
 * the seeds of one prompt. Then the negative-prompt test: the share of each colour among
 * "a circle" images without and with that colour as negative prompt. Tables are Markdown.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval.h"
#include "png_encode.h"

enum { MAX_SCALES = 16 };

typedef struct eval_opts {
    const char *model;
    double scales[MAX_SCALES];
    int nscales;
    int seeds, limit, neg_seeds, threads;
    double neg_scale;
    double require[EV_NATTR]; /* minimum accuracy (fraction) at every scale; < 0: none */
    const char *grid;
    uint64_t grid_seed;
    ev_gen_config gen;
} eval_opts;

typedef struct scale_row {
    double scale;
    double acc[EV_NATTR]; /* < 0: no prompt names the attribute */
    double entropy[EV_NATTR];
    double pixel_div;
    double uncond_share; /* unconditional UNet rows run / steps (1: plain CFG) */
} scale_row;

static void usage(FILE *f) {
    fprintf(f,
            "usage: cfgserve-eval [options]\n"
            "  --model DIR       model folder (default: the bundled model)\n"
            "  --scales LIST     guidance scales (default 0,1,2,3,5,7.5,10)\n"
            "  --seeds N         seeds per prompt and scale (default 4)\n"
            "  --steps N         denoising steps (default 25)\n"
            "  --sampler NAME    sampler (default: the model's scheduler)\n"
            "  --batch N         images per batched UNet call (default 16)\n"
            "  --threads N       compute threads (default: OPENBLAS_NUM_THREADS, else every core)\n"
            "  --limit N         use only every k-th prompt so that at most N remain (default: all)\n"
            "  --neg-seeds N     images per arm of the negative-prompt test (default 64; 0 = skip)\n"
            "  --neg-scale S     guidance scale of the negative-prompt test (default 7.5)\n"
            "  --interval LO:HI  guidance only while sigma is in [LO, HI] (default: always);\n"
            "                    the table's \"uncond rows\" column is the share of steps that\n"
            "                    still run the unconditional pass\n"
            "  --grid OUT.png    also write a sample grid (prompts x scales)\n"
            "  --grid-seed N     seed of the grid images (default 7)\n"
            "  --require LIST    minimum accuracy in %% per attribute at every scale, e.g.\n"
            "                    colour=95,shape=90; exit status 1 when one is missed\n");
}

static int parse_int(const char *flag, const char *v, int lo, int hi, int *out) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || end == v || x < lo || x > hi) {
        fprintf(stderr, "cfgserve-eval: %s: '%s' is not an integer in %d..%d\n", flag, v, lo, hi);
        return -1;
    }
    *out = (int)x;
    return 0;
}

static int parse_double(const char *flag, const char *v, double lo, double hi, double *out,
                        char **rest) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || (!rest && *end) || !(x >= lo && x <= hi)) {
        fprintf(stderr, "cfgserve-eval: %s: '%s' is not a number in %g..%g\n", flag, v, lo, hi);
        return -1;
    }
    *out = x;
    if (rest) *rest = end;
    return 0;
}

static int parse_scales(const char *v, eval_opts *o) {
    o->nscales = 0;
    const char *at = v;
    while (*at) {
        if (o->nscales == MAX_SCALES) {
            fprintf(stderr, "cfgserve-eval: --scales: more than %d scales\n", MAX_SCALES);
            return -1;
        }
        char *end;
        if (parse_double("--scales", at, 0, 100, &o->scales[o->nscales++], &end)) return -1;
        if (*end == ',') end++;
        else if (*end) {
            fprintf(stderr, "cfgserve-eval: --scales: unexpected '%s' (want e.g. 0,1,7.5)\n", end);
            return -1;
        }
        at = end;
    }
    return o->nscales ? 0 : -1;
}

/* "colour=95,shape=90" -> o->require (fractions). */
static int parse_require(const char *v, eval_opts *o) {
    const char *at = v;
    while (*at) {
        const char *eq = strchr(at, '=');
        int attr = -1;
        for (int a = 0; eq && a < EV_NATTR; a++)
            if (strlen(ev_attr_name(a)) == (size_t)(eq - at) &&
                !strncmp(at, ev_attr_name(a), (size_t)(eq - at)))
                attr = a;
        if (attr < 0) {
            fprintf(stderr, "cfgserve-eval: --require: '%s' does not start with an attribute "
                            "(shape, colour, size, position, background) and '='\n", at);
            return -1;
        }
        char *end;
        if (parse_double("--require", eq + 1, 0, 100, &o->require[attr], &end)) return -1;
        o->require[attr] /= 100.0;
        if (*end == ',') end++;
        else if (*end) {
            fprintf(stderr, "cfgserve-eval: --require: unexpected '%s'\n", end);
            return -1;
        }
        at = end;
    }
    return 0;
}

/* Reports every (scale, attribute) below its --require minimum; returns how many. */
static int missed_requirements(const eval_opts *o, const scale_row *rows) {
    int missed = 0;
    for (int i = 0; i < o->nscales; i++)
        for (int a = 0; a < EV_NATTR; a++)
            if (o->require[a] >= 0 && rows[i].acc[a] >= 0 && rows[i].acc[a] < o->require[a]) {
                fprintf(stderr, "cfgserve-eval: s = %g: %s accuracy %.1f %% is below the "
                                "required %.1f %%\n", rows[i].scale, ev_attr_name(a),
                        100 * rows[i].acc[a], 100 * o->require[a]);
                missed++;
            }
    return missed;
}

static int parse_args(int argc, char **argv, eval_opts *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "cfgserve-eval: %s: missing value (or unknown flag)\n", a);
            return -1;
        }
        const char *v = argv[++i];
        int bad = 0, seed;
        if (!strcmp(a, "--model")) o->model = v;
        else if (!strcmp(a, "--scales")) bad = parse_scales(v, o);
        else if (!strcmp(a, "--seeds")) bad = parse_int(a, v, 1, 64, &o->seeds);
        else if (!strcmp(a, "--steps")) bad = parse_int(a, v, 1, cs_max_steps(), &o->gen.steps);
        else if (!strcmp(a, "--sampler")) o->gen.sampler = v;
        else if (!strcmp(a, "--batch")) bad = parse_int(a, v, 1, 256, &o->gen.batch);
        else if (!strcmp(a, "--threads")) bad = parse_int(a, v, 1, 256, &o->threads);
        else if (!strcmp(a, "--limit")) bad = parse_int(a, v, 1, 1 << 20, &o->limit);
        else if (!strcmp(a, "--neg-seeds")) bad = parse_int(a, v, 0, 4096, &o->neg_seeds);
        else if (!strcmp(a, "--neg-scale")) bad = parse_double(a, v, 0, 100, &o->neg_scale, NULL);
        else if (!strcmp(a, "--grid")) o->grid = v;
        else if (!strcmp(a, "--interval")) {
            char *end;
            bad = parse_double(a, v, 0, 1e4, &o->gen.guidance_lo, &end) ||
                  *end != ':' || parse_double(a, end + 1, 0, 1e4, &o->gen.guidance_hi, NULL) ||
                  o->gen.guidance_hi <= o->gen.guidance_lo;
            if (bad) fprintf(stderr, "cfgserve-eval: --interval wants LO:HI with LO < HI\n");
        }
        else if (!strcmp(a, "--require")) bad = parse_require(v, o);
        else if (!strcmp(a, "--grid-seed")) {
            bad = parse_int(a, v, 0, 1 << 30, &seed);
            o->grid_seed = (uint64_t)seed;
        } else {
            fprintf(stderr, "cfgserve-eval: unknown flag '%s'\n", a);
            usage(stderr);
            return -1;
        }
        if (bad) return -1;
    }
    return 0;
}

/* Keeps every k-th prompt so that at most `limit` remain, across all prompt forms. */
static int thin_prompts(ev_prompt *set, int n, int limit) {
    if (limit <= 0 || limit >= n) return n;
    int k = (n + limit - 1) / limit, kept = 0;
    for (int i = 0; i < n; i += k) set[kept++] = set[i];
    return kept;
}

static void score(const ev_prompt *set, int nprompts, int seeds, const ev_item *items,
                  size_t image_bytes, scale_row *r) {
    for (int a = 0; a < EV_NATTR; a++) {
        int named = 0, right = 0, counts[16] = {0}, open = 0;
        for (int p = 0; p < nprompts; p++)
            for (int k = 0; k < seeds; k++) {
                int got = items[p * seeds + k].got.v[a];
                if (set[p].want[a] == EV_UNSPECIFIED) {
                    counts[got]++;
                    open++;
                } else {
                    named++;
                    right += got == set[p].want[a];
                }
            }
        r->acc[a] = named ? (double)right / named : -1.0;
        r->entropy[a] = open ? ev_entropy_bits(counts, ev_value_count(a)) : -1.0;
    }
    int64_t steps = 0, uncond = 0;
    for (int i = 0; i < nprompts * seeds; i++)
        steps += items[i].steps_run, uncond += items[i].uncond_steps;
    r->uncond_share = steps ? (double)uncond / (double)steps : -1.0;
    double sum = 0;
    int pairs = 0;
    for (int p = 0; p < nprompts; p++)
        for (int i = 0; i < seeds; i++)
            for (int j = i + 1; j < seeds; j++, pairs++)
                sum += ev_pixel_distance(items[p * seeds + i].rgb, items[p * seeds + j].rgb,
                                         image_bytes);
    r->pixel_div = pairs ? sum / pairs : -1.0;
}

static void print_cell(double v, double mul, int decimals) {
    if (v < 0) printf(" - |");
    else printf(" %.*f |", decimals, v * mul);
}

static void print_table(const scale_row *rows, int n) {
    printf("\n| s |");
    for (int a = 0; a < EV_NATTR; a++) printf(" %s %% |", ev_attr_name(a));
    for (int a = 0; a < EV_NATTR; a++)
        if (rows[0].entropy[a] >= 0)
            printf(" H(%s) of %.2f |", ev_attr_name(a), log2((double)ev_value_count(a)));
    printf(" pixel diversity | uncond rows %% |\n|---|");
    for (int a = 0; a < EV_NATTR; a++) printf("---|");
    for (int a = 0; a < EV_NATTR; a++)
        if (rows[0].entropy[a] >= 0) printf("---|");
    printf("---|---|\n");
    for (int i = 0; i < n; i++) {
        printf("| %g |", rows[i].scale);
        for (int a = 0; a < EV_NATTR; a++) print_cell(rows[i].acc[a], 100.0, 1);
        for (int a = 0; a < EV_NATTR; a++)
            if (rows[0].entropy[a] >= 0) print_cell(rows[i].entropy[a], 1.0, 2);
        print_cell(rows[i].pixel_div, 1.0, 3);
        print_cell(rows[i].uncond_share, 100.0, 1);
        printf("\n");
    }
    fflush(stdout);
}

static cs_status scale_sweep(cs_session *s, const cs_model *m, const eval_opts *o,
                             const ev_prompt *set, int nprompts, scale_row *rows, char *msg,
                             size_t msg_size) {
    int w, h;
    cs_model_native_size(m, &w, &h);
    const int n = nprompts * o->seeds;
    for (int si = 0; si < o->nscales; si++) {
        ev_item *items = calloc((size_t)n, sizeof *items);
        if (!items) return cs_errf(CS_ERR_NOMEM, msg, msg_size, "out of memory (%d items)", n);
        for (int p = 0; p < nprompts; p++)
            for (int k = 0; k < o->seeds; k++) {
                ev_item *it = &items[p * o->seeds + k];
                it->prompt = set[p].text;
                it->scale = o->scales[si];
                it->seed = 1000 + (uint64_t)k;
            }
        char label[32];
        snprintf(label, sizeof label, "s=%g", o->scales[si]);
        ev_gen_config g = o->gen;
        g.keep_rgb = 1;
        cs_status st = ev_generate(s, m, &g, items, n, label, msg, msg_size);
        if (st == CS_OK) {
            rows[si].scale = o->scales[si];
            score(set, nprompts, o->seeds, items, (size_t)w * h * 3, &rows[si]);
        }
        ev_items_free(items, n);
        if (st != CS_OK) return st;
    }
    return CS_OK;
}

/* Share of each colour among "a circle" images, without and with that colour as the
 * negative prompt (same seeds in every arm). */
static cs_status negative_test(cs_session *s, const cs_model *m, const eval_opts *o, char *msg,
                               size_t msg_size) {
    const int colours = ev_value_count(EV_COLOUR), n = o->neg_seeds * (1 + colours);
    ev_item *items = calloc((size_t)n, sizeof *items);
    if (!items) return cs_errf(CS_ERR_NOMEM, msg, msg_size, "out of memory (%d items)", n);
    for (int arm = 0; arm <= colours; arm++)
        for (int k = 0; k < o->neg_seeds; k++) {
            ev_item *it = &items[arm * o->neg_seeds + k];
            it->prompt = "a circle";
            it->negative = arm ? ev_value_name(EV_COLOUR, arm - 1) : NULL;
            it->scale = o->neg_scale;
            it->seed = 5000 + (uint64_t)k;
        }
    ev_gen_config g = o->gen;
    g.keep_rgb = 0;
    cs_status st = ev_generate(s, m, &g, items, n, "negative prompts", msg, msg_size);
    if (st == CS_OK) {
        printf("\nNegative prompt test: \"a circle\", s = %g, %d seeds per arm\n\n"
               "| colour | share without negative | share with negative \"colour\" | cut |\n"
               "|---|---|---|---|\n", o->neg_scale, o->neg_seeds);
        double sum_without = 0, sum_with = 0;
        for (int c = 0; c < colours; c++) {
            int without = 0, with = 0;
            for (int k = 0; k < o->neg_seeds; k++) {
                without += items[k].got.v[EV_COLOUR] == c;
                with += items[(1 + c) * o->neg_seeds + k].got.v[EV_COLOUR] == c;
            }
            double a = (double)without / o->neg_seeds, b = (double)with / o->neg_seeds;
            sum_without += a;
            sum_with += b;
            printf("| %s | %.1f %% | %.1f %% | ", ev_value_name(EV_COLOUR, c), 100 * a, 100 * b);
            if (b > 0) printf("%.1fx |\n", a / b);
            else printf("%s |\n", a > 0 ? "to 0" : "-");
        }
        printf("| all (mean) | %.1f %% | %.1f %% | ", 100 * sum_without / colours,
               100 * sum_with / colours);
        if (sum_with > 0) printf("%.1fx |\n", sum_without / sum_with);
        else printf("to 0 |\n");
        fflush(stdout);
    }
    ev_items_free(items, n);
    return st;
}

static const char *const grid_prompts[] = {
    "a red circle",
    "a large blue square",
    "a yellow star on the right",
    "a green triangle on the top",
    "a small purple circle on the left",
    "a white square on a navy background",
    "a orange star on the bottom",
    "a triangle",
};

/* One image per (prompt, scale), same seed everywhere: rows = prompts, columns = scales. */
static cs_status write_grid(cs_session *s, const cs_model *m, const eval_opts *o, char *msg,
                            size_t msg_size) {
    const int rows = (int)(sizeof grid_prompts / sizeof *grid_prompts), cols = o->nscales,
              n = rows * cols, gap = 2;
    int w, h;
    cs_model_native_size(m, &w, &h);
    ev_item *items = calloc((size_t)n, sizeof *items);
    if (!items) return cs_errf(CS_ERR_NOMEM, msg, msg_size, "out of memory");
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            items[r * cols + c].prompt = grid_prompts[r];
            items[r * cols + c].scale = o->scales[c];
            items[r * cols + c].seed = o->grid_seed;
        }
    ev_gen_config g = o->gen;
    g.keep_rgb = 1;
    cs_status st = ev_generate(s, m, &g, items, n, "grid", msg, msg_size);
    const int gw = cols * w + (cols + 1) * gap, gh = rows * h + (rows + 1) * gap;
    uint8_t *canvas = st == CS_OK ? malloc((size_t)gw * gh * 3) : NULL;
    if (st == CS_OK && !canvas) st = cs_errf(CS_ERR_NOMEM, msg, msg_size, "out of memory");
    if (st == CS_OK) {
        memset(canvas, 255, (size_t)gw * gh * 3);
        for (int i = 0; i < n; i++) {
            int x0 = gap + (i % cols) * (w + gap), y0 = gap + (i / cols) * (h + gap);
            for (int y = 0; y < h; y++)
                memcpy(canvas + ((size_t)(y0 + y) * gw + x0) * 3,
                       items[i].rgb + (size_t)y * w * 3, (size_t)w * 3);
        }
        char about[1024];
        int at = snprintf(about, sizeof about, "rows (prompts):");
        for (int r = 0; r < rows; r++)
            at += snprintf(about + at, sizeof about - at, "%s %s", r ? ";" : "", grid_prompts[r]);
        at += snprintf(about + at, sizeof about - at, ". columns (guidance scale):");
        for (int c = 0; c < cols; c++)
            at += snprintf(about + at, sizeof about - at, " %g", o->scales[c]);
        snprintf(about + at, sizeof about - at, ". seed %llu, %d steps.",
                 (unsigned long long)o->grid_seed, o->gen.steps);
        png_text_entry text = {"Description", about};
        uint8_t *png = NULL;
        size_t len = 0;
        st = png_encode_rgb8(canvas, gw, gh, &text, 1, &png, &len, msg, msg_size);
        if (st == CS_OK) {
            FILE *f = fopen(o->grid, "wb");
            if (!f || fwrite(png, 1, len, f) != len)
                st = cs_errf(CS_ERR_IO, msg, msg_size, "%s: cannot write: %s", o->grid,
                             strerror(errno));
            if (f && fclose(f) != 0 && st == CS_OK)
                st = cs_errf(CS_ERR_IO, msg, msg_size, "%s: cannot write", o->grid);
            if (st == CS_OK) fprintf(stderr, "wrote %s (%s)\n", o->grid, about);
        }
        free(png);
    }
    free(canvas);
    ev_items_free(items, n);
    return st;
}

int main(int argc, char **argv) {
    cs_runtime_init(argc, argv);
    eval_opts o = {.model = CS_DEFAULT_MODEL_DIR,
                   .scales = {0, 1, 2, 3, 5, 7.5, 10},
                   .nscales = 7,
                   .seeds = 4,
                   .neg_seeds = 64,
                   .neg_scale = 7.5,
                   .grid_seed = 7,
                   .require = {-1, -1, -1, -1, -1},
                   .gen = {.steps = 25, .batch = 16}};
    if (parse_args(argc, argv, &o)) return 2;
    cs_set_threads(o.threads);

    char msg[1024];
    cs_model *m = NULL;
    cs_session *s = NULL;
    ev_prompt *set = NULL;
    scale_row *rows = NULL;
    int rc = 1;
    if (cs_model_load(o.model, &m, msg, sizeof msg) != CS_OK) {
        fprintf(stderr, "cfgserve-eval: %s\n", msg);
        goto out;
    }
    cs_session_params sp = cs_session_default_params(m);
    sp.max_images = o.gen.batch;
    if (cs_session_new(m, &sp, &s, msg, sizeof msg) != CS_OK) {
        fprintf(stderr, "cfgserve-eval: %s\n", msg);
        goto out;
    }
    int nprompts = ev_prompt_set(&set);
    rows = calloc((size_t)o.nscales, sizeof *rows);
    if (!nprompts || !rows) {
        fprintf(stderr, "cfgserve-eval: out of memory\n");
        goto out;
    }
    nprompts = thin_prompts(set, nprompts, o.limit);
    printf("cfgserve-eval: model %s, %d prompts x %d seeds per scale, %d steps, sampler %s, "
           "BLAS kernels %s, %d thread(s)\n",
           cs_model_name(m), nprompts, o.seeds, o.gen.steps,
           o.gen.sampler ? o.gen.sampler : "(model's)", cs_blas_kernel_name(), cs_threads());
    if (o.gen.guidance_hi > 0)
        printf("Guidance interval: sigma in [%g, %g] (outside it the conditional pass alone)\n",
               o.gen.guidance_lo, o.gen.guidance_hi);
    printf("Accuracy over the prompts that name an attribute; H = entropy (bits) of the "
           "predicted attribute over the prompts that leave it out (of = its maximum); pixel "
           "diversity = mean |difference| between seeds of one prompt.\n");
    fflush(stdout);
    if (scale_sweep(s, m, &o, set, nprompts, rows, msg, sizeof msg) != CS_OK) {
        fprintf(stderr, "cfgserve-eval: %s\n", msg);
        goto out;
    }
    print_table(rows, o.nscales);
    if (o.neg_seeds > 0 && negative_test(s, m, &o, msg, sizeof msg) != CS_OK) {
        fprintf(stderr, "cfgserve-eval: %s\n", msg);
        goto out;
    }
    if (o.grid && write_grid(s, m, &o, msg, sizeof msg) != CS_OK) {
        fprintf(stderr, "cfgserve-eval: %s\n", msg);
        goto out;
    }
    rc = missed_requirements(&o, rows) ? 1 : 0;
out:
    free(rows);
    free(set);
    cs_session_free(s);
    cs_model_free(m);
    return rc;
}
