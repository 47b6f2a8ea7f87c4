/*
 * cfgserve-bench --write-model OUT --dtype F16|BF16|F32: a full-size diffusers folder of
 * random weights (the ones the bench times: same seeds) in a chosen dtype, built from
 * the config folder --model names, so memory and speed of 16-bit checkpoints can be
 * measured on a model of real size without downloading one.
 */
#include "bench_write_model.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "datadir.h"
#include "text_encoder.h"
#include "unet.h"
#include "vae.h"

static bool make_dir(const char *path) {
    if (mkdir(path, 0777) == 0 || errno == EEXIST) return true;
    fprintf(stderr, "cfgserve-bench: cannot create %s: %s\n", path, strerror(errno));
    return false;
}

/* Copies file `from` to `to`; false (with a message) when either fails. */
static bool copy_file(const char *from, const char *to) {
    FILE *in = fopen(from, "rb"), *out = in ? fopen(to, "wb") : NULL;
    bool ok = in && out;
    char buf[1 << 16];
    size_t got;
    while (ok && (got = fread(buf, 1, sizeof buf, in)) > 0) ok = fwrite(buf, 1, got, out) == got;
    if (in && ferror(in)) ok = false;
    if (in) fclose(in);
    if (out && fclose(out) != 0) ok = false;
    if (!ok) fprintf(stderr, "cfgserve-bench: cannot copy %s to %s\n", from, to);
    return ok;
}

static bool exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* The config files of the folder, and the tokenizer's vocabulary: from the folder when it
 * has one, else the bundled CLIP tokenizer. */
static bool copy_configs(const char *src, const char *out) {
    static const char *const files[] = {
        "model_index.json",          "scheduler/scheduler_config.json",
        "unet/config.json",          "vae/config.json",
        "text_encoder/config.json",  "tokenizer/tokenizer_config.json",
        "tokenizer/special_tokens_map.json", "tokenizer/vocab.json",
        "tokenizer/merges.txt",      NULL};
    static const char *const dirs[] = {"scheduler", "unet", "vae", "text_encoder", "tokenizer",
                                       NULL};
    char from[4200], to[4200], bundled[4096];
    if (!make_dir(out)) return false;
    for (int i = 0; dirs[i]; i++) {
        snprintf(to, sizeof to, "%s/%s", out, dirs[i]);
        if (!make_dir(to)) return false;
    }
    const bool have_bundled = datadir_find("clip-tokenizer", bundled, sizeof bundled);
    for (int i = 0; files[i]; i++) {
        snprintf(from, sizeof from, "%s/%s", src, files[i]);
        snprintf(to, sizeof to, "%s/%s", out, files[i]);
        if (!exists(from) && have_bundled && !strncmp(files[i], "tokenizer/", 10))
            snprintf(from, sizeof from, "%s/%s", bundled, files[i] + 10);
        if (!copy_file(from, to)) return false;
    }
    return true;
}

int bench_write_model(const char *config_dir, const char *out, const char *dtype_name) {
    st_dtype dtype;
    if (!strcmp(dtype_name, "F16")) dtype = ST_F16;
    else if (!strcmp(dtype_name, "BF16")) dtype = ST_BF16;
    else if (!strcmp(dtype_name, "F32")) dtype = ST_F32;
    else {
        fprintf(stderr, "cfgserve-bench: --dtype %s: expected F16, BF16 or F32\n", dtype_name);
        return 2;
    }
    if (!copy_configs(config_dir, out)) return 1;
    char path[4200], msg[2048];
    unet_config uc;
    vae_config vc;
    te_config tc;
    cs_status st;
    snprintf(path, sizeof path, "%s/unet/config.json", out);
    st = unet_config_load(path, &uc, msg, sizeof msg);
    snprintf(path, sizeof path, "%s/unet/diffusion_pytorch_model.safetensors", out);
    if (st == CS_OK) st = unet_write_random(&uc, 1234, dtype, path, msg, sizeof msg);
    snprintf(path, sizeof path, "%s/vae/config.json", out);
    if (st == CS_OK) st = vae_read_config(path, &vc, msg, sizeof msg);
    snprintf(path, sizeof path, "%s/vae/diffusion_pytorch_model.safetensors", out);
    if (st == CS_OK) st = vae_write_random(&vc, 99, dtype, path, msg, sizeof msg);
    snprintf(path, sizeof path, "%s/text_encoder/config.json", out);
    if (st == CS_OK) st = text_encoder_read_config(path, &tc, msg, sizeof msg);
    snprintf(path, sizeof path, "%s/text_encoder/model.safetensors", out);
    if (st == CS_OK) st = text_encoder_write_random(&tc, 7, dtype, path, msg, sizeof msg);
    if (st != CS_OK) {
        fprintf(stderr, "cfgserve-bench: %s\n", msg);
        return 1;
    }
    printf("wrote %s: random weights in %s (configs from %s)\n", out, dtype_name, config_dir);
    return 0;
}
