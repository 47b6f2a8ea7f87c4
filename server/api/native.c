/*
 * The native dialect (POST /generate, POST /jobs): request.c parses; answers are
 * {"id", "images": [base64 PNG], "seeds": [exact 64-bit], "parameters": {...}} and errors
 * {"error": {"code", "message", "field"}}.
 */
#include "dialect.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "job_id.h"

char *api_print_json(cJSON *o, size_t *len) {
    char *text = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!text) return NULL;
    size_t n = strlen(text);
    char *body = realloc(text, n + 2); /* a final newline, for people reading curl output */
    if (!body) {
        free(text);
        return NULL;
    }
    body[n] = '\n';
    body[n + 1] = '\0';
    *len = n + 1;
    return body;
}

static cs_status parse(const api_parse_ctx *c, const char *body, size_t len, request_gen *out,
                       request_error *e) {
    return request_parse(body, len, c, out, e);
}

static char *render_result(const request_gen *g, const api_result *res, size_t *len) {
    char num[24], id[JOB_ID_TEXT_SIZE];
    cJSON *root = cJSON_CreateObject();
    cJSON *images = root ? cJSON_AddArrayToObject(root, "images") : NULL;
    cJSON *seeds = root ? cJSON_AddArrayToObject(root, "seeds") : NULL;
    bool ok = images && seeds && cJSON_AddStringToObject(root, "id", job_id_format(res->job_id, id));
    for (int i = 0; ok && i < res->n_images; i++) {
        char *b64 = base64_encode(res->png[i], res->png_len[i]);
        cJSON *img = b64 ? cJSON_CreateString(b64) : NULL;
        free(b64);
        snprintf(num, sizeof num, "%llu", (unsigned long long)res->seeds[i]);
        cJSON *seed = cJSON_CreateRaw(num); /* all 64 bits: a double would round them */
        ok = img && seed && cJSON_AddItemToArray(images, img) && cJSON_AddItemToArray(seeds, seed);
        if (!ok) {
            cJSON_Delete(img);
            cJSON_Delete(seed);
        }
    }
    char *params = ok ? request_params_json(&g->p) : NULL;
    ok = ok && params && cJSON_AddRawToObject(root, "parameters", params);
    free(params);
    if (!ok) {
        cJSON_Delete(root);
        return NULL;
    }
    return api_print_json(root, len);
}

static char *render_error(const request_error *e, int *status, size_t *len) {
    (void)status;
    cJSON *root = cJSON_CreateObject(), *err = cJSON_CreateObject();
    if (!root || !err || !cJSON_AddItemToObject(root, "error", err)) {
        cJSON_Delete(root);
        cJSON_Delete(err);
        return NULL;
    }
    cJSON_AddStringToObject(err, "code", e->code);
    cJSON_AddStringToObject(err, "message", e->message);
    if (e->field[0]) cJSON_AddStringToObject(err, "field", e->field);
    return api_print_json(root, len);
}

const api_dialect api_native = {"native", parse, render_result, render_error, NULL};
