/*
 * The A1111 dialect's answers: {images, parameters, info} for a finished job (info is the
 * JSON text of the web UI's Processed.js()) and its error shapes (FastAPI's 422 detail
 * list for bad fields, the web UI's {"error", "detail", "body", "errors"} otherwise).
 */
#include "a1111.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base64.h"

/* "20261204164119": the web UI's job_timestamp. */
static void timestamp(char *buf, size_t n) {
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y%m%d%H%M%S", &tm);
}

static cJSON *repeat_string(const char *s, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateString(s));
    return a;
}

/* The "info" JSON text (processing.Processed.js() in the web UI). */
static char *info_text(const request_gen *g, const a1111_data *d, const api_result *res) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    const cs_gen_params *p = &g->p;
    const int n = res->n_images;
    cJSON *seeds = cJSON_CreateArray(), *infos = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        cJSON_AddItemToArray(seeds, cJSON_CreateNumber((double)res->seeds[i]));
        cJSON_AddItemToArray(infos, cJSON_CreateString(res->infotext[i] ? res->infotext[i] : ""));
    }
    cJSON_AddStringToObject(o, "prompt", p->prompt);
    cJSON_AddItemToObject(o, "all_prompts", repeat_string(p->prompt, n));
    cJSON_AddStringToObject(o, "negative_prompt", p->negative_prompt);
    cJSON_AddItemToObject(o, "all_negative_prompts", repeat_string(p->negative_prompt, n));
    cJSON_AddNumberToObject(o, "seed", n ? (double)res->seeds[0] : (double)p->seed);
    cJSON_AddItemToObject(o, "all_seeds", seeds);
    cJSON_AddNumberToObject(o, "subseed", n ? (double)res->seeds[0] : (double)p->seed);
    cJSON_AddItemToObject(o, "all_subseeds", cJSON_Duplicate(seeds, 1));
    cJSON_AddNumberToObject(o, "subseed_strength", 0);
    cJSON_AddNumberToObject(o, "width", p->width);
    cJSON_AddNumberToObject(o, "height", p->height);
    cJSON_AddStringToObject(o, "sampler_name", d->sampler_label);
    cJSON_AddNumberToObject(o, "cfg_scale", p->guidance_scale);
    cJSON_AddNumberToObject(o, "steps", p->steps);
    cJSON_AddNumberToObject(o, "batch_size", d->batch_size);
    cJSON_AddFalseToObject(o, "restore_faces");
    cJSON_AddNullToObject(o, "face_restoration_model");
    cJSON_AddStringToObject(o, "sd_model_name", res->model_name ? res->model_name : "");
    cJSON_AddNullToObject(o, "sd_model_hash");
    cJSON_AddNullToObject(o, "sd_vae_name");
    cJSON_AddNullToObject(o, "sd_vae_hash");
    cJSON_AddNumberToObject(o, "seed_resize_from_w", -1);
    cJSON_AddNumberToObject(o, "seed_resize_from_h", -1);
    if (d->img2img)
        cJSON_AddNumberToObject(o, "denoising_strength", d->denoising_strength);
    else
        cJSON_AddNullToObject(o, "denoising_strength");
    cJSON *extra = cJSON_AddObjectToObject(o, "extra_generation_params");
    if (extra) cJSON_AddStringToObject(extra, "Schedule type", d->scheduler_label);
    cJSON_AddNumberToObject(o, "index_of_first_image", 0);
    cJSON_AddItemToObject(o, "infotexts", infos);
    cJSON_AddItemToObject(o, "styles", cJSON_CreateArray());
    char ts[32];
    timestamp(ts, sizeof ts);
    cJSON_AddStringToObject(o, "job_timestamp", ts);
    cJSON_AddNumberToObject(o, "clip_skip", p->clip_skip + 1);
    cJSON_AddBoolToObject(o, "is_using_inpainting_conditioning", false);
    cJSON_AddStringToObject(o, "version", "cfgserve");
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

char *a1111_render_result(const request_gen *g, const api_result *res, size_t *len) {
    const a1111_data *d = g->dialect_data;
    cJSON *root = cJSON_CreateObject();
    cJSON *images = root ? cJSON_AddArrayToObject(root, "images") : NULL;
    bool ok = images != NULL;
    for (int i = 0; ok && d->send_images && i < res->n_images; i++) {
        char *b64 = base64_encode(res->png[i], res->png_len[i]);
        cJSON *s = b64 ? cJSON_CreateString(b64) : NULL;
        free(b64);
        ok = s && cJSON_AddItemToArray(images, s);
        if (!ok) cJSON_Delete(s);
    }
    cJSON *echo = ok ? cJSON_Duplicate(d->echo, 1) : NULL;
    if (echo) {
        /* The seed actually used, as the web UI reports it after processing. */
        cJSON_ReplaceItemInObjectCaseSensitive(echo, "seed",
                                               cJSON_CreateNumber(res->n_images
                                                                      ? (double)res->seeds[0]
                                                                      : (double)g->p.seed));
    }
    char *info = ok ? info_text(g, d, res) : NULL;
    ok = ok && echo && info && cJSON_AddItemToObject(root, "parameters", echo) &&
         cJSON_AddStringToObject(root, "info", info);
    if (!ok && echo && !cJSON_GetObjectItemCaseSensitive(root, "parameters")) cJSON_Delete(echo);
    free(info);
    if (!ok) {
        cJSON_Delete(root);
        return NULL;
    }
    return api_print_json(root, len);
}

char *a1111_render_error(const request_error *e, int *status, size_t *len) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    if (*status == 400) { /* FastAPI's request validation error */
        *status = 422;
        cJSON *detail = cJSON_AddArrayToObject(root, "detail"), *item = cJSON_CreateObject();
        cJSON *loc = item ? cJSON_AddArrayToObject(item, "loc") : NULL;
        if (loc) {
            cJSON_AddItemToArray(loc, cJSON_CreateString("body"));
            if (e->field[0]) cJSON_AddItemToArray(loc, cJSON_CreateString(e->field));
        }
        if (item) {
            cJSON_AddStringToObject(item, "msg", e->message);
            cJSON_AddStringToObject(item, "type", !strcmp(e->code, "invalid_json")
                                                      ? "value_error.jsondecode"
                                                      : "value_error");
        }
        if (detail && item) cJSON_AddItemToArray(detail, item);
        else cJSON_Delete(item);
    } else { /* the web UI's handler for HTTPException and everything else */
        cJSON_AddStringToObject(root, "error", *status >= 500 ? "RuntimeError" : "HTTPException");
        cJSON_AddStringToObject(root, "detail", e->message);
        cJSON_AddStringToObject(root, "body", "");
        cJSON_AddStringToObject(root, "errors", e->message);
    }
    return api_print_json(root, len);
}

