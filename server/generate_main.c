/*
 * cfgserve-generate: one-shot text-to-image from the command line, through the same
 * public API the server uses (session, job, batched step, decode, PNG).
 *
 *   cfgserve-generate --prompt "a red circle" --seed 7 -o out.png
 *
 * Progress goes to stderr: a bar with steps/s and ETA on a terminal, plain lines
 * otherwise. The same arguments and seed give byte-identical PNGs.
 */
#include <cfgserve/cfgserve.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "png_decode.h"

typedef struct cli {
    const char *model, *out, *lora_dir;
    const char *init_path, *mask_path; /* img2img / inpainting PNGs */
    cs_load_params load;
    cs_gen_params p;
    cs_lora_spec loras[CS_MAX_LORAS_PER_JOB];
    char lora_names[CS_MAX_LORAS_PER_JOB][256];
    int seed_given;
    int threads;
    int vae_tile;
} cli;

static void usage(FILE *f) {
    fprintf(f,
            "usage: cfgserve-generate [--model DIR] --prompt TEXT [options] -o OUT.png\n"
            "  --model PATH            diffusers model folder or SD 1.x/2.x checkpoint file\n"
            "                          (.safetensors / .ckpt; default: the bundled model)\n"
            "  --vae PATH              replacement VAE (LDM VAE file or diffusers vae folder)\n"
            "  --prediction-type T     single file: epsilon or v_prediction (default: inferred)\n"
            "  --model-type T          single file: sd1 or sd2 (default: inferred)\n"
            "  --weights-dtype D       file (F16/BF16 weights stay 16-bit, default) or fp32\n"
            "  --precision P           fp32 (default) or bf16 (bf16 weights and products in\n"
            "                          linear and conv layers, fp32 sums)\n"
            "  --prompt TEXT           what to draw (required)\n"
            "  --negative-prompt TEXT  what to steer away from (default: none)\n"
            "  --guidance-scale S      CFG scale, 0..100 (default 7.5; 1 = no guidance)\n"
            "  --steps N               denoising steps, 1..%d (default 50)\n"
            "  --seed N                64-bit seed (default: random; always printed)\n"
            "  --sampler NAME          ddim, pndm, euler, euler_a, dpmpp_2m, dpmpp_2m_sde, lms, ddpm\n"
            "                          (default: the model's scheduler)\n"
            "  --karras                Karras sigmas (samplers with sigmas)\n"
            "  --width W --height H    pixels (default: the model's native size)\n"
            "  --num-images N          images per prompt, 1..%d; image i uses seed+i\n"
            "  --init-image FILE.png   img2img from this image (its size unless --width/--height,\n"
            "                          which must then match it)\n"
            "  --mask FILE.png         inpaint: luminance >= 128 is repainted (needs --init-image)\n"
            "  --strength S            share of the schedule run from the image, (0, 1] (default 0.8)\n"
            "  --guidance-rescale F    CFG rescale phi, 0..1 (default 0)\n"
            "  --clip-skip N           use the text encoder N layers before the last\n"
            "  --lora-dir DIR          folder of LoRA .safetensors files\n"
            "  --lora NAME[:WEIGHT]    apply LoRA NAME from --lora-dir (repeatable; weight 1)\n"
            "  --vae-tile PX           decode in overlapping VAE tiles of PX pixels (diffusers'\n"
            "                          enable_tiling; a multiple of 32 for SD; default off)\n"
            "  --threads N             compute threads (default: OPENBLAS_NUM_THREADS, else every core)\n"
            "  -o, --output OUT.png    output file; image i>0 goes to OUT_i.png\n",
            cs_max_steps(), CS_MAX_IMAGES_PER_JOB);
}

/* Parses a whole-string number in [lo, hi]; names the flag on failure. */
static int parse_num(const char *flag, const char *s, double lo, double hi, int integer,
                     double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi ||
        (integer && v != floor(v))) {
        fprintf(stderr, "cfgserve-generate: %s expects %s in [%g, %g], got \"%s\"\n", flag,
                integer ? "an integer" : "a number", lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv, cli *c) {
    double v;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        }
        if (!strcmp(a, "--karras")) {
            c->p.karras = 1;
            continue;
        }
        static const char *const k_valued[] = {
            "--model", "--vae", "--prediction-type", "--model-type", "--weights-dtype", "--precision", "--prompt", "--negative-prompt", "--sampler", "-o", "--output",
            "--guidance-scale", "--steps", "--seed", "--width", "--height", "--num-images",
            "--guidance-rescale", "--clip-skip", "--threads", "--lora-dir", "--lora",
            "--init-image", "--mask", "--strength", "--vae-tile", NULL};
        int known = 0;
        for (int k = 0; k_valued[k]; k++) known |= !strcmp(a, k_valued[k]);
        if (!known) {
            fprintf(stderr, "cfgserve-generate: unknown argument \"%s\" (see --help)\n", a);
            return -1;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "cfgserve-generate: %s needs a value (see --help)\n", a);
            return -1;
        }
        const char *val = argv[++i];
        if (!strcmp(a, "--model")) c->model = val;
        else if (!strcmp(a, "--lora-dir")) c->lora_dir = val;
        else if (!strcmp(a, "--lora")) {
            char why[256];
            const int k = c->p.num_loras;
            if (k == CS_MAX_LORAS_PER_JOB ||
                cs_lora_spec_parse(val, c->lora_names[k], sizeof c->lora_names[k],
                                   &c->loras[k].weight, why, sizeof why) != CS_OK) {
                fprintf(stderr, "cfgserve-generate: --lora: %s\n",
                        k == CS_MAX_LORAS_PER_JOB ? "too many LoRAs" : why);
                return -1;
            }
            c->loras[k].name = c->lora_names[k];
            c->p.loras = c->loras;
            c->p.num_loras = k + 1;
        }
        else if (!strcmp(a, "--vae")) c->load.vae = val;
        else if (!strcmp(a, "--prediction-type")) c->load.prediction_type = val;
        else if (!strcmp(a, "--model-type")) c->load.model_type = val;
        else if (!strcmp(a, "--weights-dtype")) c->load.weights_dtype = val;
        else if (!strcmp(a, "--precision")) c->load.precision = val;
        else if (!strcmp(a, "--prompt")) c->p.prompt = val;
        else if (!strcmp(a, "--negative-prompt")) c->p.negative_prompt = val;
        else if (!strcmp(a, "--sampler")) c->p.sampler = val;
        else if (!strcmp(a, "-o") || !strcmp(a, "--output")) c->out = val;
        else if (!strcmp(a, "--guidance-scale")) {
            if (parse_num(a, val, 0, 100, 0, &v)) return -1;
            c->p.guidance_scale = v;
        } else if (!strcmp(a, "--steps")) {
            if (parse_num(a, val, 1, cs_max_steps(), 1, &v)) return -1;
            c->p.steps = (int)v;
        } else if (!strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(val, &end, 10);
            if (errno || end == val || *end || val[0] == '-') {
                fprintf(stderr, "cfgserve-generate: --seed expects an integer in [0, 2^64-1], "
                                "got \"%s\"\n", val);
                return -1;
            }
            c->p.seed = s;
            c->seed_given = 1;
        } else if (!strcmp(a, "--width")) {
            if (parse_num(a, val, 8, 4096, 1, &v)) return -1;
            c->p.width = (int)v;
        } else if (!strcmp(a, "--height")) {
            if (parse_num(a, val, 8, 4096, 1, &v)) return -1;
            c->p.height = (int)v;
        } else if (!strcmp(a, "--num-images")) {
            if (parse_num(a, val, 1, CS_MAX_IMAGES_PER_JOB, 1, &v)) return -1;
            c->p.num_images = (int)v;
        } else if (!strcmp(a, "--guidance-rescale")) {
            if (parse_num(a, val, 0, 1, 0, &v)) return -1;
            c->p.guidance_rescale = v;
        } else if (!strcmp(a, "--clip-skip")) {
            if (parse_num(a, val, 0, 64, 1, &v)) return -1;
            c->p.clip_skip = (int)v;
        } else if (!strcmp(a, "--init-image")) {
            c->init_path = val;
        } else if (!strcmp(a, "--mask")) {
            c->mask_path = val;
        } else if (!strcmp(a, "--strength")) {
            if (parse_num(a, val, 0, 1, 0, &v)) return -1;
            c->p.strength = v;
        } else if (!strcmp(a, "--vae-tile")) {
            if (parse_num(a, val, 0, 4096, 1, &v)) return -1;
            c->vae_tile = (int)v;
        } else if (!strcmp(a, "--threads")) {
            if (parse_num(a, val, 1, 256, 1, &v)) return -1;
            c->threads = (int)v;
        } else {
            fprintf(stderr, "cfgserve-generate: unknown argument \"%s\" (see --help)\n", a);
            return -1;
        }
    }
    if (!c->p.prompt || !c->out) {
        fprintf(stderr, "cfgserve-generate: --prompt and -o are required (see --help)\n");
        return -1;
    }
    return 0;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void progress(int step, int steps, double elapsed, int tty) {
    double rate = step / (elapsed > 0 ? elapsed : 1e-9), eta = (steps - step) / (rate > 0 ? rate : 1);
    if (tty) {
        char bar[31];
        int fill = (int)(30.0 * step / steps);
        for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
        bar[30] = '\0';
        fprintf(stderr, "\r[%s] %d/%d  %.2f steps/s  ETA %.1fs ", bar, step, steps, rate, eta);
        if (step == steps) fputc('\n', stderr);
    } else {
        fprintf(stderr, "step %d/%d %.2f steps/s eta %.1fs\n", step, steps, rate, eta);
    }
}

static uint64_t random_seed(void) {
    uint64_t s = 0;
    FILE *f = fopen("/dev/urandom", "rb");
    if (f) {
        if (fread(&s, sizeof s, 1, f) != 1) s = 0;
        fclose(f);
    }
    return s ? s : (uint64_t)time(NULL);
}

static int write_file(const char *path, const uint8_t *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "cfgserve-generate: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

static uint8_t *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    long size = -1;
    if (f && fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)size + 1)) && fread(buf, 1, (size_t)size, f) == (size_t)size) {
        fclose(f);
        *len = (size_t)size;
        return buf;
    }
    fprintf(stderr, "cfgserve-generate: cannot read %s: %s\n", path, strerror(errno));
    free(buf);
    if (f) fclose(f);
    return NULL;
}

/* Decodes one PNG argument to RGB8; 0 on success. */
static int load_png(const char *flag, const char *path, uint8_t **rgb, int *w, int *h) {
    size_t len;
    uint8_t *data = read_file(path, &len);
    if (!data) return -1;
    char msg[256];
    cs_status st = png_decode_rgb8(data, len, 4096, 4096, flag, rgb, w, h, msg, sizeof msg);
    free(data);
    if (st != CS_OK) fprintf(stderr, "cfgserve-generate: %s (%s)\n", msg, path);
    return st == CS_OK ? 0 : -1;
}

/* --init-image / --mask into the parameters (the image's size unless given; a mask of
 * another size, or a given size that differs, is an error as in the server). */
static int load_images(cli *c, uint8_t **init_rgb, uint8_t **mask_gray) {
    if (!c->init_path) {
        if (c->mask_path) fprintf(stderr, "cfgserve-generate: --mask needs --init-image\n");
        return c->mask_path ? -1 : 0;
    }
    int w, h, mw, mh;
    if (load_png("--init-image", c->init_path, init_rgb, &w, &h)) return -1;
    if ((c->p.width && c->p.width != w) || (c->p.height && c->p.height != h)) {
        fprintf(stderr, "cfgserve-generate: --init-image is %dx%d but --width/--height ask %dx%d "
                        "(images are not resized)\n", w, h, c->p.width ? c->p.width : w,
                c->p.height ? c->p.height : h);
        return -1;
    }
    c->p.width = w;
    c->p.height = h;
    c->p.init_image = *init_rgb;
    if (!c->mask_path) return 0;
    uint8_t *rgb = NULL;
    if (load_png("--mask", c->mask_path, &rgb, &mw, &mh)) return -1;
    if (mw != w || mh != h) {
        fprintf(stderr, "cfgserve-generate: --mask is %dx%d but --init-image is %dx%d\n", mw, mh,
                w, h);
        free(rgb);
        return -1;
    }
    *mask_gray = malloc((size_t)w * (size_t)h);
    if (*mask_gray) png_rgb8_to_luma(rgb, (int64_t)w * h, *mask_gray);
    free(rgb);
    c->p.mask = *mask_gray;
    return *mask_gray ? 0 : -1;
}

int main(int argc, char **argv) {
    cs_runtime_init(argc, argv);
    cli c = {.model = CS_DEFAULT_MODEL_DIR};
    /* Defaults that do not need the model; the rest come after loading it. */
    c.p.guidance_scale = NAN;
    c.p.steps = 0;
    c.p.num_images = 1;
    c.p.strength = NAN;
    if (parse_args(argc, argv, &c)) return 2;
    cs_set_threads(c.threads);
    char msg[2048];
    cs_model *m;
    c.load.path = c.model;
    if (cs_model_load_ex(&c.load, &m, msg, sizeof msg) != CS_OK) {
        fprintf(stderr, "cfgserve-generate: cannot load model: %s\n", msg);
        return 1;
    }
    if (c.lora_dir && cs_model_set_lora_dir(m, c.lora_dir, msg, sizeof msg) != CS_OK) {
        fprintf(stderr, "cfgserve-generate: %s\n", msg);
        cs_model_free(m);
        return 2;
    }
    cs_gen_params d = cs_gen_default_params(m);
    if (isnan(c.p.guidance_scale)) c.p.guidance_scale = d.guidance_scale;
    if (!c.p.steps) c.p.steps = d.steps;
    if (isnan(c.p.strength)) c.p.strength = d.strength;
    uint8_t *init_rgb = NULL, *mask_gray = NULL;
    if (load_images(&c, &init_rgb, &mask_gray)) {
        free(init_rgb);
        cs_model_free(m);
        return 2;
    }
    if (!c.p.width) c.p.width = d.width;
    if (!c.p.height) c.p.height = d.height;
    if (!c.seed_given) c.p.seed = random_seed();
    int rc = 1;
    const char *field = NULL;
    cs_session *s = NULL;
    cs_job *j = NULL;
    if (cs_params_validate(m, &c.p, &field, msg, sizeof msg) != CS_OK) {
        fprintf(stderr, "cfgserve-generate: invalid %s: %s\n", field ? field : "argument", msg);
        rc = 2;
        goto done;
    }
    cs_session_params sp = cs_session_default_params(m);
    sp.max_images = c.p.num_images;
    sp.max_width = c.p.width;
    sp.max_height = c.p.height;
    sp.vae_tile = c.vae_tile;
    if (cs_session_new(m, &sp, &s, msg, sizeof msg) != CS_OK ||
        cs_job_new(s, &c.p, &j, msg, sizeof msg) != CS_OK) {
        fprintf(stderr, "cfgserve-generate: %s\n", msg);
        goto done;
    }
    fprintf(stderr, "seed %llu, %d steps, %dx%d, guidance %g\n", (unsigned long long)c.p.seed,
            cs_job_steps(j), c.p.width, c.p.height, c.p.guidance_scale);
    const int tty = isatty(STDERR_FILENO);
    const double t0 = now_s();
    while (!cs_job_done(j)) {
        if (cs_step(s, &j, 1, msg, sizeof msg) != CS_OK) {
            fprintf(stderr, "cfgserve-generate: %s\n", msg);
            goto done;
        }
        progress(cs_job_step(j), cs_job_steps(j), now_s() - t0, tty);
    }
    if (cs_decode(s, &j, 1, msg, sizeof msg) != CS_OK) {
        fprintf(stderr, "cfgserve-generate: %s\n", msg);
        goto done;
    }
    rc = 0;
    for (int i = 0; i < cs_job_num_images(j) && rc == 0; i++) {
        char path[4096];
        const char *dot = strrchr(c.out, '.');
        if (i == 0) snprintf(path, sizeof path, "%s", c.out);
        else if (dot && strcmp(dot, ".png") == 0)
            snprintf(path, sizeof path, "%.*s_%d.png", (int)(dot - c.out), c.out, i);
        else snprintf(path, sizeof path, "%s_%d", c.out, i);
        uint8_t *png;
        size_t len;
        if (cs_job_png(j, i, &png, &len, msg, sizeof msg) != CS_OK) {
            fprintf(stderr, "cfgserve-generate: %s\n", msg);
            rc = 1;
            break;
        }
        rc = write_file(path, png, len) ? 1 : 0;
        free(png);
        if (rc == 0)
            fprintf(stderr, "wrote %s (seed %llu)\n", path, (unsigned long long)cs_job_seed(j, i));
    }
done:
    free(init_rgb);
    free(mask_gray);
    cs_job_free(j);
    cs_session_free(s);
    cs_model_free(m);
    return rc;
}
