/*
 * The short routes: GET /health, /ready, /metrics, /v1/models, and the job routes
 * GET /jobs/{id}, DELETE /jobs/{id}, GET /jobs/{id}/image and GET /jobs/{id}/events
 * (which subscribes and then streams like a /generate stream).
 *
 * Threads: MHD's polling thread.
 */
#include "http_internal.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const STATE_NAMES[] = {"queued", "running", "done", "failed", "cancelled"};

static cJSON *status_obj(const char *status) {
    cJSON *o = cJSON_CreateObject();
    if (o) cJSON_AddStringToObject(o, "status", status);
    return o;
}

static enum MHD_Result route_ready(http_req *r, service *svc) {
    if (!svc) return http_respond_error(r, 503, "not_ready", NULL, "the model is not loaded yet");
    if (service_draining(svc))
        return http_respond_error(r, 503, "draining", NULL, "the server is shutting down");
    return http_respond_json(r, 200, status_obj("ready"));
}

static enum MHD_Result route_metrics(http_req *r, service *svc) {
    service_stats st;
    if (svc) service_stats_get(svc, &st);
    memstats mem;
    memstats_read(&mem);
    size_t len = 0;
    char *text = metrics_render(r->srv->metrics, svc ? &st : NULL, &mem,
                                svc && !service_draining(svc), &len);
    if (!text) return MHD_NO;
    return http_respond_buf(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
}

/* One entry of GET /v1/models: OpenAI's fields, then what a client needs to fill a form. */
static cJSON *model_entry(const cs_model *m, bool is_default) {
    int w, h;
    cs_model_native_size(m, &w, &h);
    cJSON *model = cJSON_CreateObject();
    if (!model) return NULL;
    cJSON_AddStringToObject(model, "id", cs_model_name(m));
    cJSON_AddStringToObject(model, "object", "model");
    cJSON_AddStringToObject(model, "owned_by", "cfgserve");
    cJSON_AddBoolToObject(model, "default", is_default);
    /* "distilled": one UNet pass per step, guidance scale as an input, no negative prompt */
    cJSON_AddStringToObject(model, "guidance", cs_model_guidance_distilled(m) ? "distilled" : "cfg");
    cJSON_AddNumberToObject(model, "width", w);
    cJSON_AddNumberToObject(model, "height", h);
    cJSON_AddNumberToObject(model, "size_multiple", cs_model_size_multiple(m));
    cJSON_AddNumberToObject(model, "max_steps", cs_max_steps());
    cJSON_AddNumberToObject(model, "max_images", CS_MAX_IMAGES_PER_JOB);
    cJSON *samplers = cJSON_AddArrayToObject(model, "samplers");
    for (const char *const *s = cs_sampler_names(); samplers && *s; s++)
        cJSON_AddItemToArray(samplers, cJSON_CreateString(*s));
    cJSON *loras = cJSON_AddArrayToObject(model, "loras"); /* names for "loras" */
    char **names = cs_lora_list(m, NULL);
    for (char **p = names; loras && p && *p; p++) cJSON_AddItemToArray(loras, cJSON_CreateString(*p));
    cs_lora_list_free(names);
    return model;
}

static enum MHD_Result route_models(http_req *r, const served_models *sv) {
    cJSON *root = cJSON_CreateObject(), *data = cJSON_AddArrayToObject(root, "data");
    if (!data) {
        cJSON_Delete(root);
        return MHD_NO;
    }
    cJSON_AddStringToObject(root, "object", "list");
    for (int i = 0; i < sv->n; i++) {
        cJSON *model = model_entry(sv->models[i], i == 0);
        if (!model || !cJSON_AddItemToArray(data, model)) {
            cJSON_Delete(model);
            cJSON_Delete(root);
            return MHD_NO;
        }
    }
    return http_respond_json(r, 200, root);
}

/* 410 with the reason when the job existed and its result was dropped (retention time,
 * count or byte bound), else 404. */
static enum MHD_Result job_not_found(http_req *r) {
    char id[JOB_ID_TEXT_SIZE];
    service *svc = atomic_load(&r->srv->svc);
    const char *why = svc ? service_job_gone(svc, r->path_job) : NULL;
    if (why)
        return http_respond_error(r, 410, "gone", NULL, "job %s has finished and %s",
                                  job_id_format(r->path_job, id), why);
    return http_respond_error(r, 404, "not_found", NULL,
                              "no job %s (unknown, or finished too long ago to remember)",
                              job_id_format(r->path_job, id));
}

static enum MHD_Result route_job(http_req *r, service *svc) {
    service_job_info info;
    if (service_job_info_get(svc, r->path_job, &info) != SERVICE_OK) return job_not_found(r);
    char id[JOB_ID_TEXT_SIZE], seed[24];
    job_id_format(r->path_job, id);
    if (!strcmp(r->method, "DELETE")) {
        if (info.state >= SERVICE_JOB_DONE)
            return http_respond_error(r, 409, "finished", NULL, "job %s is already %s", id,
                                      STATE_NAMES[info.state]);
        if (service_cancel(svc, r->path_job) != SERVICE_OK) return job_not_found(r);
        cJSON *o = cJSON_CreateObject();
        if (o) cJSON_AddStringToObject(o, "id", id);
        if (o) cJSON_AddBoolToObject(o, "cancelled", 1);
        return http_respond_json(r, 200, o);
    }
    cJSON *o = cJSON_CreateObject(), *seeds = cJSON_CreateArray();
    if (!o || !seeds || !cJSON_AddItemToObject(o, "id", cJSON_CreateString(id))) {
        cJSON_Delete(o);
        cJSON_Delete(seeds);
        return MHD_NO;
    }
    cJSON_AddStringToObject(o, "state", STATE_NAMES[info.state]);
    cJSON_AddNumberToObject(o, "step", info.step);
    cJSON_AddNumberToObject(o, "steps", info.steps);
    cJSON_AddNumberToObject(o, "num_images", info.num_images);
    for (int i = 0; i < info.num_images && i < CS_MAX_IMAGES_PER_JOB; i++) {
        snprintf(seed, sizeof seed, "%llu", (unsigned long long)info.seeds[i]);
        cJSON_AddItemToArray(seeds, cJSON_CreateRaw(seed));
    }
    cJSON_AddItemToObject(o, "seeds", seeds);
    if (info.error[0])
        cJSON_AddStringToObject(o, "error", info.error);
    else
        cJSON_AddNullToObject(o, "error");
    return http_respond_json(r, 200, o);
}

static enum MHD_Result route_image(http_req *r, service *svc) {
    service_job_info info;
    char id[JOB_ID_TEXT_SIZE];
    if (service_job_info_get(svc, r->path_job, &info) != SERVICE_OK) return job_not_found(r);
    const char *arg = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "index");
    long index = 0;
    if (arg) {
        char *end;
        index = strtol(arg, &end, 10);
        if (!*arg || *end || index < 0 || index >= info.num_images)
            return http_respond_error(r, 400, "invalid_parameter", "index",
                                      "index must be an integer in [0, %d]", info.num_images - 1);
    }
    if (info.state != SERVICE_JOB_DONE)
        return http_respond_error(r, 409, "not_finished", NULL, "job %s is %s%s%s",
                                  job_id_format(r->path_job, id), STATE_NAMES[info.state],
                                  info.error[0] ? ": " : "", info.error);
    uint8_t *png = NULL;
    size_t len = 0;
    if (service_job_image(svc, r->path_job, (int)index, &png, &len) != SERVICE_OK)
        return job_not_found(r); /* expired between the two calls */
    struct MHD_Response *resp = MHD_create_response_from_buffer_with_free_callback(len, png, free);
    if (!resp) {
        free(png);
        return MHD_NO;
    }
    char v[24];
    MHD_add_response_header(resp, "Content-Type", "image/png");
    snprintf(v, sizeof v, "%llu", (unsigned long long)info.seeds[index]);
    MHD_add_response_header(resp, "X-Seed", v);
    snprintf(v, sizeof v, "%llu", (unsigned long long)r->path_job);
    MHD_add_response_header(resp, "X-Job-Id", v);
    return http_respond(r, 200, resp);
}

static enum MHD_Result route_events(http_req *r, service *svc) {
    r->mode = MODE_SSE;
    r->job_id = r->path_job;
    registry_add(r);
    service_status st =
        service_subscribe(svc, r->path_job, http_listener, (void *)(uintptr_t)r->id);
    if (st != SERVICE_OK) {
        registry_remove(r);
        if (st == SERVICE_DRAINING)
            return http_respond_error(r, 503, "draining", NULL, "the server is shutting down");
        return job_not_found(r);
    }
    r->subscribed = true;
    return http_start_stream(r);
}

enum MHD_Result http_route_simple(http_req *r) {
    service *svc = atomic_load(&r->srv->svc);
    const served_models *sv = http_served(r->srv);
    switch (r->route) {
    case ROUTE_HEALTH:
        return http_respond_json(r, 200, status_obj("ok"));
    case ROUTE_READY:
        return route_ready(r, svc);
    case ROUTE_METRICS:
        return route_metrics(r, svc);
    default:
        break;
    }
    if (!svc || !sv)
        return http_respond_error(r, 503, "not_ready", NULL, "the model is not loaded yet");
    switch (r->route) {
    case ROUTE_MODELS:
        return route_models(r, sv);
    case ROUTE_JOB:
        return route_job(r, svc);
    case ROUTE_JOB_IMAGE:
        return route_image(r, svc);
    case ROUTE_JOB_EVENTS:
        if (r->subscribed) return MHD_YES; /* the stream is already queued */
        return route_events(r, svc);
    default:
        return http_respond_error(r, 404, "not_found", NULL, "no such route: %s", r->path);
    }
}
