/* The A1111 web UI's read-only routes and progress (see a1111_info.h). */
#include "a1111_info.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "a1111_names.h"
#include "log.h"

static cJSON *options(const cs_model *m) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "sd_model_checkpoint", cs_model_name(m));
    cJSON_AddNumberToObject(o, "CLIP_stop_at_last_layers", 1);
    cJSON_AddStringToObject(o, "sd_vae", "Automatic");
    cJSON_AddStringToObject(o, "samples_format", "png");
    cJSON_AddNumberToObject(o, "eta_noise_seed_delta", 0);
    cJSON_AddStringToObject(o, "emphasis", "Original");
    cJSON_AddNumberToObject(o, "comma_padding_backtrack", 20);
    cJSON_AddBoolToObject(o, "enable_emphasis", true);
    cJSON_AddNumberToObject(o, "show_progress_every_n_steps", A1111_PREVIEW_EVERY);
    return o;
}

static cJSON *sd_models(const served_models *sv) {
    cJSON *list = cJSON_CreateArray();
    for (int i = 0; list && i < sv->n; i++) {
        const char *name = cs_model_name(sv->models[i]);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "title", name);
        cJSON_AddStringToObject(o, "model_name", name);
        cJSON_AddNullToObject(o, "hash");
        cJSON_AddNullToObject(o, "sha256");
        cJSON_AddStringToObject(o, "filename", name);
        cJSON_AddNullToObject(o, "config");
        cJSON_AddItemToArray(list, o);
    }
    return list;
}

static cJSON *loras(const cs_model *m) {
    cJSON *list = cJSON_CreateArray();
    char **names = cs_lora_list(m, NULL);
    for (char **p = names; p && *p; p++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", *p);
        cJSON_AddStringToObject(o, "alias", *p);
        cJSON_AddStringToObject(o, "path", *p);
        cJSON_AddItemToObject(o, "metadata", cJSON_CreateObject());
        cJSON_AddItemToArray(list, o);
    }
    cs_lora_list_free(names);
    return list;
}

static cJSON *upscalers(void) {
    cJSON *list = cJSON_CreateArray(), *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", "None");
    cJSON_AddNullToObject(o, "model_name");
    cJSON_AddNullToObject(o, "model_path");
    cJSON_AddNullToObject(o, "model_url");
    cJSON_AddNumberToObject(o, "scale", 4);
    cJSON_AddItemToArray(list, o);
    return list;
}

/* /proc/meminfo values in bytes. */
static double meminfo(const char *key) {
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    double v = 0;
    size_t n = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, key, n) && line[n] == ':') v = strtod(line + n + 1, NULL) * 1024.0;
    if (f) fclose(f);
    return v;
}

static cJSON *memory(void) {
    cJSON *o = cJSON_CreateObject(), *ram = cJSON_AddObjectToObject(o, "ram");
    cJSON *cuda = cJSON_AddObjectToObject(o, "cuda");
    const double total = meminfo("MemTotal"), avail = meminfo("MemAvailable");
    cJSON_AddNumberToObject(ram, "free", avail);
    cJSON_AddNumberToObject(ram, "used", total - avail);
    cJSON_AddNumberToObject(ram, "total", total);
    cJSON_AddStringToObject(cuda, "error", "no CUDA device: cfgserve runs on the CPU");
    return o;
}

cJSON *a1111_info_json(const char *sub, const served_models *sv, int current) {
    const cs_model *m = sv->models[current];
    if (!strcmp(sub, "options")) return options(m);
    if (!strcmp(sub, "sd-models")) return sd_models(sv);
    if (!strcmp(sub, "samplers")) return a1111_samplers_json();
    if (!strcmp(sub, "schedulers")) return a1111_schedulers_json();
    if (!strcmp(sub, "loras")) return loras(m);
    if (!strcmp(sub, "upscalers")) return upscalers();
    if (!strcmp(sub, "memory")) return memory();
    if (!strcmp(sub, "embeddings")) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "loaded", cJSON_CreateObject());
        cJSON_AddItemToObject(o, "skipped", cJSON_CreateObject());
        return o;
    }
    if (!strcmp(sub, "scripts")) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "txt2img", cJSON_CreateArray());
        cJSON_AddItemToObject(o, "img2img", cJSON_CreateArray());
        return o;
    }
    if (!strcmp(sub, "cmd-flags")) return cJSON_CreateObject();
    if (!strcmp(sub, "latent-upscale-modes") || !strcmp(sub, "sd-vae") ||
        !strcmp(sub, "prompt-styles") || !strcmp(sub, "hypernetworks") ||
        !strcmp(sub, "face-restorers"))
        return cJSON_CreateArray();
    return NULL;
}

cJSON *a1111_progress_json(const a1111_progress *p) {
    cJSON *o = cJSON_CreateObject(), *st = cJSON_CreateObject();
    const double progress = p->active && p->steps > 0 ? (double)p->step / p->steps : 0.0;
    char ts[32] = "0";
    if (p->active) {
        time_t t = time(NULL);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(ts, sizeof ts, "%Y%m%d%H%M%S", &tm);
    }
    cJSON_AddNumberToObject(o, "progress", progress);
    cJSON_AddNumberToObject(o, "eta_relative", p->active ? p->eta_s : 0.0);
    cJSON_AddBoolToObject(st, "skipped", p->skipped);
    cJSON_AddBoolToObject(st, "interrupted", p->interrupted);
    cJSON_AddBoolToObject(st, "stopping_generation", false);
    cJSON_AddStringToObject(st, "job", p->active ? "txt2img" : "");
    cJSON_AddNumberToObject(st, "job_count", p->job_count);
    cJSON_AddStringToObject(st, "job_timestamp", ts);
    cJSON_AddNumberToObject(st, "job_no", 0);
    cJSON_AddNumberToObject(st, "sampling_step", p->active ? p->step : 0);
    cJSON_AddNumberToObject(st, "sampling_steps", p->active ? p->steps : 0);
    cJSON_AddItemToObject(o, "state", st);
    if (p->current_image)
        cJSON_AddStringToObject(o, "current_image", p->current_image);
    else
        cJSON_AddNullToObject(o, "current_image");
    cJSON_AddNullToObject(o, "textinfo");
    cJSON_AddNullToObject(o, "current_task");
    return o;
}

bool a1111_set_options(const cJSON *body, const served_models *sv, int *current, char *msg,
                       size_t n) {
    if (!cJSON_IsObject(body)) {
        snprintf(msg, n, "the body must be a JSON object of settings");
        return false;
    }
    int pick = *current;
    for (const cJSON *o = body->child; o; o = o->next) {
        if (!strcmp(o->string, "sd_model_checkpoint")) {
            pick = cJSON_IsString(o) ? served_model_find(sv, o->valuestring, true) : -1;
            if (pick < 0) {
                char names[200];
                served_model_names(sv, names, sizeof names);
                snprintf(msg, n, "sd_model_checkpoint: not a served model (models: %s)", names);
                return false;
            }
        } else {
            log_msg(CS_LOG_INFO, "a1111: setting %s ignored (send it per request in "
                                 "override_settings)", o->string);
        }
    }
    *current = pick; /* only once every setting is known to be good */
    return true;
}
