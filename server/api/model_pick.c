/* Which served model a request runs on (see model_pick.h). */
#include "model_pick.h"

#include <stdio.h>
#include <string.h>

int served_model_find(const served_models *sv, const char *name, bool title) {
    for (int i = 0; sv && i < sv->n; i++) {
        const char *own = cs_model_name(sv->models[i]);
        const size_t n = strlen(own);
        if (!strcmp(name, own)) return i;
        /* GET /sdapi/v1/sd-models lists "title"s; clients send one back as they got it. */
        if (title && !strncmp(name, own, n) && !strncmp(name + n, " [", 2) &&
            name[strlen(name) - 1] == ']')
            return i;
    }
    return -1;
}

void served_model_names(const served_models *sv, char *buf, size_t n) {
    size_t at = 0;
    if (n) buf[0] = '\0';
    for (int k = 0; sv && k < sv->n && at < n; k++)
        at += (size_t)snprintf(buf + at, n - at, "%s\"%s\"", k ? ", " : "",
                               cs_model_name(sv->models[k]));
}

api_parse_ctx request_ctx(const served_models *sv, int i, request_limits configured) {
    const cs_model *m = sv->models[i];
    int w, h;
    cs_model_native_size(m, &w, &h);
    return (api_parse_ctx){
        .model = m,
        .model_index = i,
        .defaults = cs_gen_default_params(m),
        .limits = {configured.max_width > 0 ? configured.max_width : w,
                   configured.max_height > 0 ? configured.max_height : h},
        .served = sv,
        .configured = configured,
    };
}

cs_status request_ctx_pick(const api_parse_ctx *c, const char *name, bool title,
                           const char *field, api_parse_ctx *out, request_error *e) {
    *out = *c;
    if (!name) return CS_OK;
    if (!c->served) { /* one model: its own name only */
        const char *own = c->model ? cs_model_name(c->model) : "";
        if (!strcmp(name, own)) return CS_OK;
        return request_fail(e, "not_found", field, "model \"%.60s\" is not served here (models: %s)",
                            name, own);
    }
    const int i = served_model_find(c->served, name, title);
    if (i >= 0) {
        *out = request_ctx(c->served, i, c->configured);
        return CS_OK;
    }
    char names[200];
    served_model_names(c->served, names, sizeof names);
    return request_fail(e, "not_found", field, "model \"%.60s\" is not served here (models: %s)",
                        name, names);
}
