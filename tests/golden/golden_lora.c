/* Golden handler for kind "lora": the pipeline_tiny model with a kohya LoRA
 * (case.json lora.file, in the case folder) at lora.scale, then the usual pipeline call.
 * Replayed twice, and both must pass: with the LoRA requested per job (the per-row side
 * path in the batched step) and with the LoRA fused into the weights at load. */
#include "golden.h"

#include <cjson/cJSON.h>
#include <string.h>

#include "cfgserve/cfgserve.h"

/* Loads the model of the case with the case folder as its LoRA folder. */
static cs_status load_model(golden_case *gc, cs_model **m, char *msg, size_t n) {
    const cJSON *mdir = cJSON_GetObjectItemCaseSensitive(gc->json, "model_dir");
    if (!cJSON_IsString(mdir))
        return cs_errf(CS_ERR_FORMAT, msg, n, "%s: case.json lacks model_dir", gc->dir);
    char path[4096];
    golden_path(path, sizeof path, gc->dir, mdir->valuestring);
    cs_status st = cs_model_load(path, m, msg, n);
    if (st == CS_OK) st = cs_model_set_lora_dir(*m, gc->dir, msg, n);
    return st;
}

static cs_status run_mode(golden_case *gc, const cs_lora_spec *spec, bool fused, char *msg,
                          size_t n) {
    const char *label = gc->label;
    char tagged[512];
    snprintf(tagged, sizeof tagged, "%s[%s]", label, fused ? "fused" : "side-path");
    gc->label = tagged;
    cs_model *m = NULL;
    cs_status st = load_model(gc, &m, msg, n);
    if (st == CS_OK && fused) st = cs_model_fuse_lora(m, spec->name, spec->weight, msg, n);
    if (st == CS_OK) st = golden_pipeline_run_model(gc, m, fused ? NULL : spec, fused ? 0 : 1, msg, n);
    cs_model_free(m);
    gc->label = label;
    return st;
}

static cs_status run(golden_case *gc, char *msg, size_t n) {
    const cJSON *lora = cJSON_GetObjectItemCaseSensitive(gc->json, "lora");
    const cJSON *file = cJSON_GetObjectItemCaseSensitive(lora, "file");
    const cJSON *scale = cJSON_GetObjectItemCaseSensitive(lora, "scale");
    const cJSON *format = cJSON_GetObjectItemCaseSensitive(lora, "format");
    if (!cJSON_IsString(file) || !cJSON_IsNumber(scale))
        return cs_errf(CS_ERR_FORMAT, msg, n, "%s: case.json lacks lora.file or lora.scale", gc->dir);
    if (cJSON_IsString(format) && strcmp(format->valuestring, "kohya") != 0)
        return cs_errf(CS_ERR_UNSUPPORTED, msg, n, "%s: LoRA format \"%s\" is not kohya", gc->dir,
                       format->valuestring);
    const cs_lora_spec spec = {.name = file->valuestring, .weight = scale->valuedouble};
    cs_status st = run_mode(gc, &spec, false, msg, n);
    if (st == CS_OK) st = run_mode(gc, &spec, true, msg, n);
    return st;
}

const golden_handler golden_lora_handler = {"lora", run};
