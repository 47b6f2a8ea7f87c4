/*
 * POST /generate and POST /jobs: parse and validate the body, submit the job, and for
 * /generate wait for it without holding a thread: the connection is suspended until the
 * listener (http_stream.c) has the result and resumes it, and the handler, called again,
 * answers with the PNG (default), JSON (Accept: application/json) or, when streaming,
 * hands the connection to the Server-Sent Events reader at once.
 *
 * Threads: MHD's polling thread.
 */
#define _GNU_SOURCE /* strcasestr */
#include "http_internal.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "a1111_info.h"
#include "base64.h"
#include "log.h"

/* Largest X-Parameters header; longer prompts are still in the PNG's own text chunk. */
enum { MAX_PARAMS_HEADER = 8192 };
/* Default steps between the previews of a native stream or POST /jobs. */
enum { NATIVE_PREVIEW_EVERY = 5 };

static req_mode choose_mode(http_req *r) {
    if (r->gen.stream) return MODE_SSE;
    const char *accept = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Accept");
    if (accept && strcasestr(accept, "text/event-stream")) return MODE_SSE;
    if (accept && strcasestr(accept, "application/json")) return MODE_JSON;
    return MODE_PNG;
}

static enum MHD_Result refuse(http_req *r, service_status st, const char *field, const char *msg) {
    switch (st) {
    case SERVICE_INVALID:
        return http_respond_error(r, 400, "invalid_parameter", field, "%s", msg);
    case SERVICE_FULL:
        return http_respond_error(r, 429, "queue_full", NULL, "the queue is full; retry after %d s",
                                  r->srv->cfg.retry_after_s);
    case SERVICE_DRAINING:
        return http_respond_error(r, 503, "draining", NULL,
                                  "the server is shutting down and takes no new jobs");
    default:
        return http_respond_error(r, 500, "internal", NULL, "submission failed: %s",
                                  msg[0] ? msg : "unknown error");
    }
}

static enum MHD_Result respond_png(http_req *r) {
    struct MHD_Response *resp =
        MHD_create_response_from_buffer_with_free_callback(r->png_len[0], r->png[0], free);
    if (!resp) return MHD_NO;
    r->png[0] = NULL; /* the response frees it */
    char v[96];
    MHD_add_response_header(resp, "Content-Type", "image/png");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    MHD_add_response_header(resp, "X-Job-Id", job_id_format(r->job_id, v));
    snprintf(v, sizeof v, "%llu", (unsigned long long)r->seeds[0]);
    MHD_add_response_header(resp, "X-Seed", v);
    snprintf(v, sizeof v, "inline; filename=\"cfgserve-%llu.png\"",
             (unsigned long long)r->seeds[0]);
    MHD_add_response_header(resp, "Content-Disposition", v);
    if (r->params_json && strlen(r->params_json) <= MAX_PARAMS_HEADER)
        MHD_add_response_header(resp, "X-Parameters", r->params_json);
    return http_respond(r, 200, resp);
}

/* The answer of a /generate request whose job has finished. */
static enum MHD_Result respond_result(http_req *r) {
    char jid[JOB_ID_TEXT_SIZE];
    /* An A1111 caller's interrupt ends its job early: the web UI then answers with what
     * it has (here: no images), not with an error. */
    if (r->failed && (r->dialect == &api_a1111_txt2img || r->dialect == &api_a1111_img2img) &&
        !strcmp(r->err_code, "cancelled"))
        r->failed = false, r->n_images = 0;
    else if (r->n_images < 1 && !r->failed)
        return http_respond_error(r, 500, "internal", NULL, "job %s finished without images",
                                  job_id_format(r->job_id, jid));
    if (r->failed) {
        int status = !strcmp(r->err_code, "timeout")     ? 504
                     : !strcmp(r->err_code, "cancelled") ? 409
                                                         : 500;
        return http_respond_error(r, status, r->err_code, NULL, "job %s: %s",
                                  job_id_format(r->job_id, jid), r->err_msg);
    }
    if (r->mode == MODE_PNG) return respond_png(r);
    size_t len = 0;
    char *text = http_result_json(r, &len);
    if (!text) return MHD_NO;
    return http_respond_buf(r, 200, "application/json", text, len);
}

/* Steps between previews: A1111 jobs always have them (GET progress shows them), native
 * ones when asked ("preview_every"; by default when the client will see them: a stream
 * or POST /jobs, whose events stream carries them), OpenAI ones never. */
static int preview_every_of(const http_req *r) {
    if (r->dialect == &api_a1111_txt2img || r->dialect == &api_a1111_img2img)
        return A1111_PREVIEW_EVERY;
    if (r->dialect != &api_native) return 0;
    if (r->gen.preview_every >= 0) return r->gen.preview_every;
    return r->mode == MODE_SSE || r->mode == MODE_NONE ? NATIVE_PREVIEW_EVERY : 0;
}

/* Called again after a resume: answer, close, or wait on. */
static enum MHD_Result on_resumed(http_req *r) {
    pthread_mutex_lock(&r->mu);
    bool final = r->final, wait = !final && http_suspend_locked(r);
    pthread_mutex_unlock(&r->mu);
    if (final) return respond_result(r);
    return wait ? MHD_YES : MHD_NO; /* MHD_NO closes; completion cancels the job */
}

enum MHD_Result http_generate(http_req *r) {
    if (r->has_job) return on_resumed(r);
    http_server *s = r->srv;
    service *svc = atomic_load(&s->svc);
    const served_models *sv = http_served(s);
    if (!svc || !sv)
        return http_respond_error(r, 503, "not_ready", NULL, "the model is not loaded yet");

    /* The model a request runs on unless it names one: the first served, or for the web
     * UI's routes its sd_model_checkpoint setting. */
    const bool a1111 = r->dialect == &api_a1111_txt2img || r->dialect == &api_a1111_img2img;
    const request_limits configured = {s->cfg.max_width, s->cfg.max_height};
    const api_parse_ctx ctx =
        request_ctx(sv, a1111 ? atomic_load(&s->a1111_model) : 0, configured);
    request_error e;
    cs_status parsed;
    if (r->dialect->parse_form) { /* a multipart body: the transport splits it */
        api_form form = {0};
        char why[200];
        if (!http_form_parse(r, &form, why, sizeof why)) {
            http_form_free(&form);
            return http_respond_error(r, 400, "invalid_request", NULL, "%s", why);
        }
        parsed = r->dialect->parse_form(&ctx, &form, &r->gen, &e);
        http_form_free(&form);
    } else {
        parsed = r->dialect->parse(&ctx, r->body ? r->body : "", r->body_len, &r->gen, &e);
    }
    if (parsed != CS_OK)
        return http_respond_error(r,
                                  !strcmp(e.code, "internal")    ? 500
                                  : !strcmp(e.code, "not_found") ? 404
                                                                 : 400,
                                  e.code, e.field, "%s", e.message);
    r->has_gen = true;
    free(r->body);
    r->body = NULL;

    if (r->dialect != &api_native) {
        r->mode = MODE_JSON; /* the other dialects answer with one JSON document */
    } else if (r->route == ROUTE_JOBS) {
        if (r->gen.stream)
            return http_respond_error(r, 400, "invalid_parameter", "stream",
                                      "POST /jobs does not stream; follow GET /jobs/{id}/events");
        r->mode = MODE_NONE;
    } else {
        r->mode = choose_mode(r);
        if (r->mode == MODE_PNG && r->gen.p.num_images > 1)
            return http_respond_error(r, 400, "invalid_parameter", "num_images",
                                      "a PNG response holds one image: send \"Accept: "
                                      "application/json\" or stream for num_images > 1");
    }
    r->params_json = request_params_json(&r->gen.p);
    if (!r->params_json) return http_respond_error(r, 500, "internal", NULL, "out of memory");

    /* Registered before submitting: the first events may come before submit returns. */
    bool listen = r->mode != MODE_NONE;
    if (listen) registry_add(r);
    uint64_t job = 0;
    const char *field = NULL;
    char msg[320] = "";
    service_status st =
        service_submit(svc, r->gen.model, &r->gen.p, preview_every_of(r), listen ? http_listener : NULL,
                       listen ? (void *)(uintptr_t)r->id : NULL, &job, &field, msg, sizeof msg);
    if (st != SERVICE_OK) {
        if (listen) registry_remove(r);
        return refuse(r, st, field, msg);
    }
    pthread_mutex_lock(&r->mu);
    r->job_id = job;
    r->has_job = true;
    if (r->dialect != &api_native) http_caller_track(r); /* for its progress and interrupt */
    pthread_mutex_unlock(&r->mu);
    static const char *const mode_names[] = {"job", "png", "json", "stream"};
    char jid[JOB_ID_TEXT_SIZE];
    char prompts[700] = "";
    if (r->srv->cfg.log_prompts) { /* --log-prompts on: the operator asked for them */
        char pos[300], neg[300];
        snprintf(prompts, sizeof prompts, ", prompt \"%s\", negative \"%s\"",
                 log_quote(r->gen.p.prompt, pos, sizeof pos),
                 log_quote(r->gen.p.negative_prompt, neg, sizeof neg));
    }
    log_msg(CS_LOG_INFO,
            "req %llu job %s queued (%s): %dx%d, %d steps, sampler %s, guidance %g, "
            "seed %llu%s, %d image(s)%s",
            (unsigned long long)r->id, job_id_format(job, jid), mode_names[r->mode], r->gen.p.width,
            r->gen.p.height, r->gen.p.steps, r->gen.p.sampler ? r->gen.p.sampler : "default",
            r->gen.p.guidance_scale, (unsigned long long)r->gen.p.seed,
            r->gen.seed_random ? " (random)" : "", r->gen.p.num_images, prompts);

    if (r->mode == MODE_NONE) {
        char id[JOB_ID_TEXT_SIZE];
        job_id_format(job, id);
        cJSON *o = cJSON_CreateObject();
        if (o) cJSON_AddStringToObject(o, "id", id);
        if (o) cJSON_AddRawToObject(o, "parameters", r->params_json);
        return http_respond_json(r, 202, o);
    }
    if (r->mode == MODE_SSE) return http_start_stream(r);
    return on_resumed(r); /* suspends until the result is in (or answers if it already is) */
}
