/*
 * The A1111 web UI's routes besides generation: GET /sdapi/v1/<info> (bodies from
 * a1111_info.c), GET progress and POST interrupt / skip for the caller's own jobs
 * (http_callers.c says who a caller is), POST options and the refresh routes.
 *
 * Threads: MHD's polling thread.
 */
#include "http_internal.h"

#include <cjson/cJSON.h>
#include <string.h>

#include "a1111_info.h"
#include "log.h"

enum { MAX_TRACKED = 8 };

static bool unfinished(service_job_state s) {
    return s == SERVICE_JOB_QUEUED || s == SERVICE_JOB_RUNNING;
}

static enum MHD_Result progress(http_req *r, service *svc) {
    uint64_t jobs[MAX_TRACKED];
    const int n = http_caller_jobs(r, jobs, MAX_TRACKED);
    a1111_progress p = {0};
    for (int i = 0; i < n; i++) {
        service_job_info info;
        if (service_job_info_get(svc, jobs[i], &info) != SERVICE_OK) continue;
        if (i == 0) p.interrupted = info.state == SERVICE_JOB_CANCELLED;
        if (!unfinished(info.state)) continue;
        p.job_count++;
        p.active = true; /* the oldest unfinished job runs first: the last one seen wins */
        p.step = info.step;
        p.steps = info.steps;
    }
    if (p.active) {
        service_stats st;
        service_stats_get(svc, &st);
        uint64_t batches = 0;
        for (int b = 0; b <= st.n_step_bounds; b++) batches += st.step_counts[b];
        const double per_step = batches ? st.step_sum / (double)batches : 0.0;
        p.eta_s = per_step * (double)(p.steps - p.step) + per_step * (double)st.queued;
    }
    return http_respond_json(r, 200, a1111_progress_json(&p));
}

/* interrupt and skip: the caller's unfinished jobs end now; their waiting requests then
 * answer as the web UI does after an interrupt (no error). */
static enum MHD_Result interrupt(http_req *r, service *svc) {
    uint64_t jobs[MAX_TRACKED];
    const int n = http_caller_jobs(r, jobs, MAX_TRACKED);
    int cancelled = 0;
    for (int i = 0; i < n; i++) {
        service_job_info info;
        if (service_job_info_get(svc, jobs[i], &info) == SERVICE_OK && unfinished(info.state) &&
            service_cancel(svc, jobs[i]) == SERVICE_OK)
            cancelled++;
    }
    log_msg(CS_LOG_INFO, "req %llu a1111 %s: %d job(s) of %s", (unsigned long long)r->id,
            r->subpath, cancelled, r->caller);
    return http_respond_json(r, 200, cJSON_CreateObject());
}

enum MHD_Result http_a1111_route(http_req *r) {
    service *svc = atomic_load(&r->srv->svc);
    const cs_model *m = atomic_load(&r->srv->model);
    if (!svc || !m)
        return http_respond_error(r, 503, "not_ready", NULL, "the model is not loaded yet");
    const bool post = !strcmp(r->method, "POST");
    if (r->route == ROUTE_A1111_CONTROL) {
        if (!strcmp(r->subpath, "interrupt") || !strcmp(r->subpath, "skip"))
            return interrupt(r, svc);
        return http_respond_json(r, 200, cJSON_CreateObject()); /* nothing to rescan */
    }
    if (!strcmp(r->subpath, "progress")) return progress(r, svc);
    if (post) {
        if (strcmp(r->subpath, "options") != 0)
            return http_respond_error(r, 405, "method_not_allowed", NULL,
                                      "/sdapi/v1/%s is read-only", r->subpath);
        cJSON *body = r->body ? cJSON_ParseWithLength(r->body, r->body_len) : NULL;
        char msg[256] = "";
        bool ok = a1111_set_options(body, m, msg, sizeof msg);
        cJSON_Delete(body);
        if (!ok) return http_respond_error(r, 400, "invalid_parameter", "options", "%s", msg);
        return http_respond_json(r, 200, cJSON_CreateNull());
    }
    cJSON *o = a1111_info_json(r->subpath, m);
    if (!o) return http_respond_error(r, 404, "not_found", NULL, "no such route: %s", r->path);
    return http_respond_json(r, 200, o);
}
