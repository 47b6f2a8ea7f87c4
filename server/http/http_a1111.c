/*
 * The A1111 web UI's routes besides generation: GET /sdapi/v1/<info> (bodies from
 * a1111_info.c), GET progress and POST interrupt / skip for the caller's own jobs
 * (http_callers.c says who a caller is), POST options and the refresh routes.
 *
 * Threads: MHD's polling thread.
 */
#include "http_internal.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "a1111_info.h"
#include "base64.h"
#include "log.h"

enum { MAX_TRACKED = 8 };

static bool unfinished(service_job_state s) {
    return s == SERVICE_JOB_QUEUED || s == SERVICE_JOB_RUNNING;
}

static enum MHD_Result progress(http_req *r, service *svc) {
    uint64_t jobs[MAX_TRACKED], current = 0;
    const int n = http_caller_jobs(r, jobs, MAX_TRACKED);
    a1111_progress p = {0};
    for (int i = 0; i < n; i++) {
        service_job_info info;
        if (service_job_info_get(svc, jobs[i], &info) != SERVICE_OK) continue;
        if (i == 0) {
            p.interrupted = info.state == SERVICE_JOB_CANCELLED || info.finished_early;
            p.skipped = p.interrupted && http_caller_skipped(r);
            p.interrupted &= !p.skipped;
        }
        if (!unfinished(info.state)) continue;
        p.job_count++;
        p.active = true; /* the oldest unfinished job runs first: the last one seen wins */
        p.step = info.step;
        p.steps = info.steps;
        current = jobs[i];
    }
    if (p.active) {
        service_stats st;
        service_stats_get(svc, &st);
        uint64_t batches = 0;
        for (int b = 0; b <= st.n_step_bounds; b++) batches += st.step_counts[b];
        const double per_step = batches ? st.step_sum / (double)batches : 0.0;
        p.eta_s = per_step * (double)(p.steps - p.step) + per_step * (double)st.queued;
    }
    const char *skip = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND,
                                                   "skip_current_image");
    char *image = NULL;
    if (current && !(skip && !strcasecmp(skip, "true"))) {
        uint8_t *png = NULL;
        size_t len = 0;
        int step = 0;
        if (service_job_preview(svc, current, &png, &len, &step) == SERVICE_OK)
            image = base64_encode(png, len);
        free(png);
    }
    p.current_image = image;
    enum MHD_Result ret = http_respond_json(r, 200, a1111_progress_json(&p));
    free(image);
    return ret;
}

/* interrupt and skip: the caller's running jobs end at the next step boundary with the
 * images their clean-image estimates decode to, and their waiting requests answer with
 * those, as the web UI's do. Queued jobs are left to run (the web UI's interrupt stops
 * only the generation in progress). A job holds all of a request's images (batch_size x
 * n_iter), so skip cannot move on to a request's next image: it stops the whole job, as
 * interrupt does, and only progress's state.skipped tells them apart. */
static enum MHD_Result interrupt(http_req *r, service *svc) {
    uint64_t jobs[MAX_TRACKED];
    const int n = http_caller_jobs(r, jobs, MAX_TRACKED);
    int stopped = 0;
    for (int i = 0; i < n; i++) {
        service_job_info info;
        if (service_job_info_get(svc, jobs[i], &info) == SERVICE_OK &&
            info.state == SERVICE_JOB_RUNNING && service_finish_early(svc, jobs[i]) == SERVICE_OK)
            stopped++;
    }
    http_caller_set_skipped(r, !strcmp(r->subpath, "skip"));
    log_msg(CS_LOG_INFO, "req %llu a1111 %s: %d running job(s) of %s finish early",
            (unsigned long long)r->id, r->subpath, stopped, r->caller);
    return http_respond_json(r, 200, cJSON_CreateObject());
}

enum MHD_Result http_a1111_route(http_req *r) {
    service *svc = atomic_load(&r->srv->svc);
    const served_models *sv = http_served(r->srv);
    if (!svc || !sv)
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
        int current = atomic_load(&r->srv->a1111_model);
        bool ok = a1111_set_options(body, sv, &current, msg, sizeof msg);
        if (ok) atomic_store(&r->srv->a1111_model, current); /* the web UI's setting is global */
        cJSON_Delete(body);
        if (!ok) return http_respond_error(r, 400, "invalid_parameter", "options", "%s", msg);
        return http_respond_json(r, 200, cJSON_CreateNull());
    }
    cJSON *o = a1111_info_json(r->subpath, sv, atomic_load(&r->srv->a1111_model));
    if (!o) return http_respond_error(r, 404, "not_found", NULL, "no such route: %s", r->path);
    return http_respond_json(r, 200, o);
}
