/*
 * cs_model_load / cs_model_load_ex: a diffusers folder (model.c) or one original-LDM
 * checkpoint file (.safetensors or .ckpt). A checkpoint is turned into renaming views
 * (ldm_keymap.h) and configs (ldm_config.h) and then loaded by the same component
 * constructors as a folder. Runs on one thread.
 */
#include "model.h"

#include <cjson/cJSON.h>
#include <string.h>
#include <sys/stat.h>

#include "ckpt.h"
#include "config.h"
#include "datadir.h"
#include "json_strict.h"
#include "ldm_config.h"

static bool is_dir(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* A .safetensors file, or a zip (.ckpt) read into an equivalent table. */
static cs_status open_weights(const char *path, st_file **out, int64_t *global_step, char *msg,
                              size_t n) {
    *global_step = -1;
    if (ckpt_is_zip(path)) return ckpt_open(path, out, global_step, msg, n);
    return st_open(path, out, msg, n);
}

static cs_status read_original_config(const char *path, cJSON **out, char *msg, size_t n) {
    char *text;
    size_t len;
    cs_status st = cs_read_file(path, 4u << 20, &text, &len, msg, n);
    if (st != CS_OK) return st;
    char why[128];
    *out = json_parse_strict(text, len, why, sizeof why);
    free(text);
    if (!*out)
        return cs_errf(CS_ERR_FORMAT, msg, n,
                       "%s: the original config must be JSON (convert the LDM .yaml): %s", path,
                       why);
    return CS_OK;
}

/* Builds the view of one component, then its config, then the component. */
static cs_status load_unet(cs_model *m, const st_file *f, const ldm_config *c, wb_store store,
                           char *msg, size_t n) {
    st_file *v;
    cs_status st = ldm_view(f, LDM_UNET, &c->layout, &v, msg, n);
    if (st != CS_OK) return st;
    char label[4200];
    snprintf(label, sizeof label, "%s (UNet config)", f->path);
    unet_config cfg;
    st = unet_config_load_src(label, c->unet_json, &cfg, msg, n);
    if (st == CS_OK) st = unet_new_bound(&cfg, v, store, &m->unet, msg, n);
    st_close(v);
    return st;
}

static cs_status load_vae(cs_model *m, const st_file *f, const ldm_config *c, wb_store store,
                          char *msg, size_t n) {
    st_file *v;
    cs_status st = ldm_view(f, LDM_VAE, &c->layout, &v, msg, n);
    if (st != CS_OK) return st;
    char label[4200];
    snprintf(label, sizeof label, "%s (VAE config)", f->path);
    vae_config cfg;
    st = vae_read_config_src(label, c->vae_json, &cfg, msg, n);
    if (st == CS_OK) st = vae_new_bound(&cfg, v, store, &m->vae, msg, n);
    st_close(v);
    return st;
}

static cs_status load_text(cs_model *m, const st_file *f, const ldm_config *c,
                           const char *config_dir, wb_store store, char *msg, size_t n) {
    ldm_layout lay = c->layout;
    te_config cfg;
    cs_status st = CS_OK;
    char path[4200];
    if (config_dir) {
        snprintf(path, sizeof path, "%s/config.json", config_dir);
        if ((st = text_encoder_read_config(path, &cfg, msg, n)) != CS_OK) return st;
        lay.text_layers = (int)cfg.num_layers; /* OpenCLIP layers past the config's unused */
    }
    st_file *v;
    if ((st = ldm_view(f, LDM_TEXT, &lay, &v, msg, n)) != CS_OK) return st;
    if (!config_dir) {
        char json[LDM_JSON_MAX];
        snprintf(path, sizeof path, "%s (text encoder config)", f->path);
        st = ldm_text_config_json(v, c->sd2, json, sizeof json, msg, n);
        if (st == CS_OK) st = text_encoder_read_config_src(path, json, &cfg, msg, n);
    }
    if (st == CS_OK) st = text_encoder_new_bound(&cfg, v, store, &m->text_encoder, msg, n);
    st_close(v);
    return st;
}

static cs_status load_tokenizer(cs_model *m, const char *dir, bool sd2, char *msg, size_t n) {
    if (dir) return tokenizer_load(dir, &m->tokenizer, msg, n);
    /* SD 2.x's tokenizer pads with "!" where SD 1.x pads with <|endoftext|>. */
    const char *rel = sd2 ? "clip-tokenizer-sd2" : "clip-tokenizer";
    char path[4200];
    if (!datadir_find(rel, path, sizeof path))
        return cs_errf(CS_ERR_IO, msg, n,
                       "the bundled CLIP tokenizer (%s) was not found: set CFGSERVE_DATA_DIR to "
                       "the folder holding it (config/ in the source tree) or pass a tokenizer",
                       rel);
    return tokenizer_load(path, &m->tokenizer, msg, n);
}

/* Replaces the model's VAE by a diffusers vae folder or an LDM VAE file. */
static cs_status replace_vae(cs_model *m, const char *path, wb_store store, char *msg, size_t n) {
    vae_model *vae = NULL;
    cs_status st;
    if (is_dir(path)) {
        st = vae_load(path, store, &vae, msg, n);
    } else {
        st_file *f;
        int64_t step;
        if ((st = open_weights(path, &f, &step, msg, n)) != CS_OK) return st;
        /* the file's own tensors say its shape; the scaling factor stays the model's */
        ldm_config c;
        st = ldm_vae_config(f, vae_scaling_factor(m->vae), &c, msg, n);
        if (st == CS_OK) {
            st_file *v;
            st = ldm_view(f, LDM_VAE, &c.layout, &v, msg, n);
            if (st == CS_OK) {
                vae_config cfg;
                char label[4200];
                snprintf(label, sizeof label, "%s (VAE config)", path);
                st = vae_read_config_src(label, c.vae_json, &cfg, msg, n);
                if (st == CS_OK) st = vae_new_bound(&cfg, v, store, &vae, msg, n);
                st_close(v);
            }
        }
        st_close(f);
    }
    if (st != CS_OK) return st;
    vae_free(m->vae);
    m->vae = vae;
    return CS_OK;
}

/* How lp asks GEMM weights to be kept; checked by cs_model_load_ex. precision "bf16"
 * decides alone (its products need bf16 panels whatever the file holds). */
static wb_store load_store(const cs_load_params *lp) {
    if (lp->precision && strcmp(lp->precision, "bf16") == 0) return WB_STORE_BF16;
    return lp->weights_dtype && strcmp(lp->weights_dtype, "fp32") == 0 ? WB_STORE_FP32
                                                                       : WB_STORE_FILE;
}

cs_status model_load_single(const cs_load_params *lp, cs_model **out, char *msg, size_t n) {
    *out = NULL;
    st_file *f = NULL;
    cJSON *original = NULL;
    int64_t step;
    cs_status st = open_weights(lp->path, &f, &step, msg, n);
    if (st != CS_OK) return st;
    if (lp->original_config && (st = read_original_config(lp->original_config, &original, msg, n)) != CS_OK)
        goto fail_file;
    ldm_config c;
    st = ldm_config_build(f, original, lp->model_type, lp->prediction_type, step, &c, msg, n);
    cJSON_Delete(original);
    if (st != CS_OK) goto fail_file;
    cs_model *m = model_alloc(lp->path);
    if (!m) {
        st = cs_errf(CS_ERR_NOMEM, msg, n, "out of memory");
        goto fail_file;
    }
    char label[4200];
    snprintf(label, sizeof label, "%s (scheduler config)", lp->path);
    if ((st = load_tokenizer(m, lp->tokenizer, c.sd2, msg, n)) != CS_OK ||
        (st = load_text(m, f, &c, lp->text_encoder_config, load_store(lp), msg, n)) != CS_OK ||
        (st = load_unet(m, f, &c, load_store(lp), msg, n)) != CS_OK ||
        (st = load_vae(m, f, &c, load_store(lp), msg, n)) != CS_OK ||
        (st = sched_config_load_src(label, c.sched_json, &m->scheduler, msg, n)) != CS_OK)
        goto fail_model;
    st_close(f);
    f = NULL;
    sched_config_apply_pipeline_fixups(m->scheduler);
    *out = m;
    return CS_OK;
fail_model:
    cs_model_free(m);
fail_file:
    st_close(f);
    return st;
}

cs_status cs_model_load_ex(const cs_load_params *lp, cs_model **out, char *msg, size_t n) {
    *out = NULL;
    if (!lp || !lp->path) return cs_errf(CS_ERR_INVALID_ARG, msg, n, "no model path given");
    if (lp->weights_dtype && strcmp(lp->weights_dtype, "file") != 0 &&
        strcmp(lp->weights_dtype, "fp32") != 0)
        return cs_errf(CS_ERR_INVALID_ARG, msg, n,
                       "weights_dtype '%.40s': expected \"file\" (keep F16 / BF16 weights 16-bit) "
                       "or \"fp32\"", lp->weights_dtype);
    if (lp->precision && strcmp(lp->precision, "fp32") != 0 && strcmp(lp->precision, "bf16") != 0)
        return cs_errf(CS_ERR_INVALID_ARG, msg, n,
                       "precision '%.40s': expected \"fp32\" or \"bf16\" (bf16 weights and "
                       "products in linear and conv layers)", lp->precision);
    struct stat sb;
    if (stat(lp->path, &sb) != 0)
        return cs_errf(CS_ERR_IO, msg, n, "%s: no such model folder or checkpoint file", lp->path);
    cs_model *m = NULL;
    cs_status st = S_ISDIR(sb.st_mode) ? model_load_folder(lp->path, load_store(lp), &m, msg, n)
                                       : model_load_single(lp, &m, msg, n);
    if (st == CS_OK && lp->vae) st = replace_vae(m, lp->vae, load_store(lp), msg, n);
    if (st == CS_OK && (!S_ISDIR(sb.st_mode) || lp->vae)) st = model_finish(m, msg, n);
    if (st != CS_OK) {
        cs_model_free(m);
        return st;
    }
    *out = m;
    return CS_OK;
}

cs_status cs_model_load(const char *path, cs_model **out, char *msg, size_t n) {
    cs_load_params lp = {.path = path};
    return cs_model_load_ex(&lp, out, msg, n);
}
