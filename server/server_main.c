/*
 * cfgserve: the HTTP inference server.
 *
 *   cfgserve --model DIR --port 8080
 *
 * Start-up order matters: settings (so a bad flag fails before anything happens), then
 * cs_runtime_init (it may re-execute the process to pick fast BLAS kernels, so nothing
 * with side effects may come before it), the log, the HTTP port (bound early: /health
 * answers and /ready says 503 while the model loads), the model, the service. main's
 * thread then runs the service loop until a SIGINT/SIGTERM drain has finished the jobs in
 * flight; HTTP stops after the last results are delivered, everything is freed, and the
 * process exits 0.
 */
#include <cfgserve/cfgserve.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http.h"
#include "log.h"
#include "options.h"
#include "service.h"

#ifndef CS_DEFAULT_MODEL_DIR
#define CS_DEFAULT_MODEL_DIR "models/default"
#endif

/* Responses of drained jobs still being written get this long after the loop ends. */
enum { HTTP_GRACE_MS = 10000 };

static void reopen_logs(void *user) {
    (void)user;
    log_reopen();
}

/* --lora-dir and --fuse-lora, before the model is shared with the workers. */
static cs_status setup_loras(const server_options *o, cs_model *m, char *msg, size_t n) {
    if (o->lora_dir[0]) {
        cs_status st = cs_model_set_lora_dir(m, o->lora_dir, msg, n);
        if (st != CS_OK) return st;
    }
    if (!o->fuse_lora[0]) return CS_OK;
    char name[256];
    double weight;
    cs_status st = cs_lora_spec_parse(o->fuse_lora, name, sizeof name, &weight, msg, n);
    if (st == CS_OK) st = cs_model_fuse_lora(m, name, weight, msg, n);
    if (st == CS_OK) log_msg(CS_LOG_INFO, "LoRA %s fused at weight %g", name, weight);
    return st;
}

/* The model folder, with a helpful message when the bundled default is missing. */
static int model_dir(const server_options *o, const char **dir) {
    *dir = o->model[0] ? o->model : CS_DEFAULT_MODEL_DIR;
    if (o->model[0]) return 0;
    char probe[4096];
    snprintf(probe, sizeof probe, "%s/model_index.json", *dir);
    if (access(probe, R_OK) == 0) return 0;
    log_msg(CS_LOG_ERROR,
            "the default model (%s) has not been built yet: build it with the scripts in "
            "training/, or pass --model DIR (a diffusers folder such as a Stable Diffusion "
            "1.x/2.x save_pretrained output)",
            *dir);
    return -1;
}

int main(int argc, char **argv) {
    server_options o;
    options_action action;
    char msg[1024];
    if (options_parse(argc, argv, &o, &action, msg, sizeof msg) != CS_OK) {
        fprintf(stderr, "cfgserve: %s\n", msg);
        return 2;
    }
    if (action != OPTIONS_RUN) {
        if (action == OPTIONS_HELP) {
            options_help(stdout);
        } else {
            char *json =
                options_to_json(&o, action == OPTIONS_PRINT_ANNOTATED ? OPTIONS_JSON_ANNOTATE : 0);
            if (json) puts(json);
            free(json);
        }
        options_deinit(&o);
        return 0;
    }

    cs_runtime_init(argc, argv);
    int rc = 1;
    if (log_open(o.log_file, (cs_log_level)log_level_parse(o.log_level), msg, sizeof msg) !=
        CS_OK) {
        fprintf(stderr, "cfgserve: %s\n", msg);
        options_deinit(&o);
        return 1;
    }
    cs_set_log(log_engine, NULL);
    cs_set_threads(o.threads);
    char summary[4096];
    options_summary(&o, summary, sizeof summary);
    log_msg(CS_LOG_INFO, "cfgserve starting (pid %d, BLAS kernels %s, %d compute thread(s))",
            (int)getpid(), cs_blas_kernel_name(), cs_threads());
    log_msg(CS_LOG_INFO, "settings: %s", summary);

    http_server *http = NULL;
    cs_model *model = NULL;
    service *svc = NULL;
    const http_config hc = {.host = o.host,
                            .port = o.port,
                            .max_body = o.max_body,
                            .api_key = o.api_key,
                            .cors_origin = o.cors_origin,
                            .sse_keepalive_s = o.sse_keepalive,
                            .idle_timeout_s = o.idle_timeout,
                            .max_connections = o.max_connections,
                            .retry_after_s = o.retry_after,
                            .max_width = o.max_width,
                            .max_height = o.max_height,
                            .allowed_hosts = o.allowed_hosts,
                            .metrics_auth = !strcmp(o.metrics_auth, "on"),
                            .log_prompts = !strcmp(o.log_prompts, "on"),
                            .header_timeout_s = o.header_timeout};
    if (http_start(&hc, &http, msg, sizeof msg) != CS_OK) {
        log_msg(CS_LOG_ERROR, "%s", msg);
        goto done;
    }

    const char *dir;
    if (model_dir(&o, &dir) != 0) goto done;
    cs_load_params lp = {.path = dir,
                         .vae = o.vae[0] ? o.vae : NULL,
                         .prediction_type = o.prediction_type[0] ? o.prediction_type : NULL,
                         .model_type = o.model_type[0] ? o.model_type : NULL,
                         .weights_dtype = o.weights_dtype,
                         .precision = o.precision};
    if (cs_model_load_ex(&lp, &model, msg, sizeof msg) != CS_OK) {
        log_msg(CS_LOG_ERROR, "cannot load the model: %s", msg);
        goto done;
    }
    if (setup_loras(&o, model, msg, sizeof msg) != CS_OK) {
        log_msg(CS_LOG_ERROR, "LoRA: %s", msg);
        goto done;
    }
    const service_params sp = {.workers = o.workers,
                               .max_batch_images = o.max_batch,
                               .queue_size = o.queue_size,
                               .job_timeout_ms = o.job_timeout * 1000,
                               .max_width = o.max_width,
                               .max_height = o.max_height,
                               .vae_tile = o.vae_tile,
                               .max_finished = o.max_finished,
                               .max_finished_bytes = (size_t)o.max_finished_mb << 20,
                               .finished_ttl_ms = o.finished_ttl * 1000,
                               .instance_id = o.instance_id,
                               .on_reopen_logs = reopen_logs,
                               .user = NULL};
    if (service_new(model, &sp, &svc, msg, sizeof msg) != CS_OK) {
        log_msg(CS_LOG_ERROR, "cannot start the service: %s", msg);
        goto done;
    }
    int w, h;
    cs_model_native_size(model, &w, &h);
    http_attach(http, model, svc);
    log_msg(CS_LOG_INFO,
            "ready: model \"%s\" from %s (%dx%d), %d worker(s), up to %d image(s) "
            "per batch",
            cs_model_name(model), dir, w, h, o.workers, o.max_batch);

    service_run(svc); /* until SIGINT/SIGTERM and the drain */
    log_msg(CS_LOG_INFO, "drained; stopping");
    rc = 0;

done:
    http_stop(http, HTTP_GRACE_MS);
    service_free(svc);
    cs_model_free(model);
    log_msg(rc == 0 ? CS_LOG_INFO : CS_LOG_ERROR, "exiting with status %d", rc);
    cs_set_log(NULL, NULL);
    log_close();
    options_deinit(&o);
    return rc;
}
