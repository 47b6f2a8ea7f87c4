/* A1111 sampler and scheduler names (see a1111_names.h). */
#include "a1111_names.h"

#include <string.h>

static const a1111_sampler k_samplers[] = {
    {"DPM++ 2M", {"k_dpmpp_2m"}, "dpmpp_2m", false, true, true},
    {"DPM++ 2M SDE", {"k_dpmpp_2m_sde"}, "dpmpp_2m_sde", false, true, true},
    {"Euler a", {"k_euler_a", "k_euler_ancestral"}, "euler_a", false, false, true},
    {"Euler", {"k_euler"}, "euler", false, false, true},
    {"LMS", {"k_lms"}, "lms", false, false, true},
    {"DDIM", {"ddim"}, "ddim", false, false, true},
    {"PLMS", {"plms"}, "pndm", false, false, true},
    {"DDPM", {"ddpm"}, "ddpm", false, false, true},
    {"DPM++ 2M Karras", {"k_dpmpp_2m_ka"}, "dpmpp_2m", true, true, false},
    {"DPM++ 2M SDE Karras", {"k_dpmpp_2m_sde_ka"}, "dpmpp_2m_sde", true, true, false},
    {"LMS Karras", {"k_lms_ka"}, "lms", true, false, false},
    {"Euler Karras", {0}, "euler", true, false, false},
};
enum { N_SAMPLERS = sizeof k_samplers / sizeof k_samplers[0] };

static const struct {
    const char *name, *label;
} k_schedulers[] = {{"automatic", "Automatic"}, {"uniform", "Uniform"}, {"karras", "Karras"}};

const a1111_sampler *a1111_find_sampler(const char *name) {
    for (int i = 0; name && i < N_SAMPLERS; i++) {
        if (!strcmp(k_samplers[i].name, name)) return &k_samplers[i];
        for (int a = 0; a < 3 && k_samplers[i].aliases[a]; a++)
            if (!strcmp(k_samplers[i].aliases[a], name)) return &k_samplers[i];
    }
    return NULL;
}

const char *a1111_sampler_label(const char *engine) {
    for (int i = 0; engine && i < N_SAMPLERS; i++)
        if (k_samplers[i].listed && !strcmp(k_samplers[i].engine, engine)) return k_samplers[i].name;
    return engine;
}

bool a1111_scheduler_karras(const char *scheduler, const a1111_sampler *s, bool *karras) {
    int which = 0; /* automatic */
    if (scheduler && scheduler[0]) {
        which = -1;
        for (int i = 0; i < 3; i++)
            if (!strcmp(scheduler, k_schedulers[i].name) || !strcmp(scheduler, k_schedulers[i].label))
                which = i;
        if (which < 0) return false;
    }
    /* A name that says Karras wins over "Automatic", as in the web UI. */
    *karras = which == 2 || (which == 0 && (s->karras || s->auto_karras));
    return true;
}

cJSON *a1111_samplers_json(void) {
    cJSON *list = cJSON_CreateArray();
    for (int i = 0; list && i < N_SAMPLERS; i++) {
        if (!k_samplers[i].listed) continue;
        cJSON *o = cJSON_CreateObject(), *aliases = cJSON_AddArrayToObject(o, "aliases");
        cJSON *opts = cJSON_AddObjectToObject(o, "options");
        cJSON_AddStringToObject(o, "name", k_samplers[i].name);
        for (int a = 0; aliases && a < 3 && k_samplers[i].aliases[a]; a++)
            cJSON_AddItemToArray(aliases, cJSON_CreateString(k_samplers[i].aliases[a]));
        if (opts && k_samplers[i].auto_karras) cJSON_AddStringToObject(opts, "scheduler", "karras");
        cJSON_AddItemToArray(list, o);
    }
    return list;
}

cJSON *a1111_schedulers_json(void) {
    cJSON *list = cJSON_CreateArray();
    for (int i = 0; list && i < 3; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", k_schedulers[i].name);
        cJSON_AddStringToObject(o, "label", k_schedulers[i].label);
        cJSON_AddNullToObject(o, "aliases");
        if (i == 2)
            cJSON_AddNumberToObject(o, "default_rho", 7.0);
        else
            cJSON_AddNullToObject(o, "default_rho");
        cJSON_AddBoolToObject(o, "need_inner_model", false);
        cJSON_AddItemToArray(list, o);
    }
    return list;
}
