/*
 * Kind "single_file": a model given as ONE original-LDM checkpoint (case.json
 * "single_file": checkpoint, original_config, text_encoder_config_dir, tokenizer_dir, all
 * relative to the case) is loaded through cs_model_load_ex, its bound weights are compared
 * bit for bit with the diffusers folder of the case it is "same_as" (that case's
 * model_dir), and the call is replayed exactly like the "pipeline" kind.
 */
#include "golden.h"

#include <cjson/cJSON.h>
#include <string.h>

#include "config.h"
#include "model.h"

/* case.json single_file.<key> as a path relative to the case, or NULL when absent. */
static const char *field_path(const golden_case *gc, const char *key, char *buf, size_t n) {
    const cJSON *sf = cJSON_GetObjectItemCaseSensitive(gc->json, "single_file");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(sf, key);
    if (!cJSON_IsString(v)) return NULL;
    golden_path(buf, n, gc->dir, v->valuestring);
    return buf;
}

static void compare_block(golden_case *gc, const char *name, const weight_block *got,
                          const weight_block *want) {
    int64_t bad = 0, total = want->numel;
    char detail[128] = "";
    if (got->numel != want->numel) {
        snprintf(detail, sizeof detail, "%lld weights, the folder has %lld",
                 (long long)got->numel, (long long)want->numel);
        bad = total ? total : 1;
    } else {
        for (int64_t i = 0; i < total; i++)
            bad += memcmp(&got->data[i], &want->data[i], sizeof(float)) != 0;
        snprintf(detail, sizeof detail, "bit-identical to the diffusers folder");
    }
    golden_report_exact(gc, name, bad, total, detail);
}

/* The diffusers folder of the same_as case: its case.json model_dir. */
static cs_status reference_folder(const golden_case *gc, char *buf, size_t size, char *msg,
                                  size_t n) {
    const cJSON *same = cJSON_GetObjectItemCaseSensitive(gc->json, "same_as");
    if (!cJSON_IsString(same))
        return cs_errf(CS_ERR_FORMAT, msg, n, "%s: case.json has no same_as case", gc->dir);
    char dir[4096], path[4200];
    golden_path(dir, sizeof dir, gc->dir, same->valuestring);
    snprintf(path, sizeof path, "%s/case.json", dir);
    cfg_reader r;
    cs_status st = cfg_open(&r, path, msg, n);
    if (st == CS_OK) {
        const cJSON *md = cJSON_GetObjectItemCaseSensitive(r.root, "model_dir");
        if (cJSON_IsString(md)) golden_path(buf, size, dir, md->valuestring);
        else st = cs_errf(CS_ERR_FORMAT, msg, n, "%s: no model_dir", path);
    }
    cfg_close(&r);
    return st;
}

static cs_status run(golden_case *gc, char *msg, size_t n) {
    char ckpt[4096], orig[4096], te[4096], tok[4096], folder[4096];
    cs_load_params lp = {0};
    lp.path = field_path(gc, "checkpoint", ckpt, sizeof ckpt);
    lp.original_config = field_path(gc, "original_config", orig, sizeof orig);
    lp.text_encoder_config = field_path(gc, "text_encoder_config_dir", te, sizeof te);
    lp.tokenizer = field_path(gc, "tokenizer_dir", tok, sizeof tok);
    if (!lp.path)
        return cs_errf(CS_ERR_FORMAT, msg, n, "%s: case.json lacks single_file.checkpoint",
                       gc->dir);
    cs_model *m = NULL, *ref = NULL;
    cs_status st = cs_model_load_ex(&lp, &m, msg, n);
    if (st == CS_OK) st = reference_folder(gc, folder, sizeof folder, msg, n);
    if (st == CS_OK) st = cs_model_load(folder, &ref, msg, n);
    if (st == CS_OK) {
        compare_block(gc, "weights.text_encoder", text_encoder_weights(m->text_encoder),
                      text_encoder_weights(ref->text_encoder));
        compare_block(gc, "weights.unet", unet_weights(m->unet), unet_weights(ref->unet));
        compare_block(gc, "weights.vae", vae_weights(m->vae), vae_weights(ref->vae));
        cs_model_free(ref);
        st = golden_pipeline_run_model(gc, m, NULL, 0, msg, n);
    }
    cs_model_free(m);
    return st;
}

const golden_handler golden_single_file_handler = {"single_file", run};
