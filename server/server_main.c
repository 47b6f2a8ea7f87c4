/*
 * cfgserve: the HTTP inference server.
 *
 *   cfgserve --model DIR[,DIR...] --port 8080
 *
 * Start-up order matters: settings (so a bad flag fails before anything happens), then
 * cs_runtime_init (it may re-execute the process to pick fast BLAS kernels, so nothing
 * with side effects may come before it), the log, the HTTP port (bound early: /health
 * answers and /ready says 503 while the models load), the models, the service. main's
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
#include "mem_trimmer.h"
#include "memstats.h"
#include "options.h"
#include "served_load.h"
#include "service.h"

/* Responses of drained jobs still being written get this long after the loop ends. */
enum { HTTP_GRACE_MS = 10000 };

static void reopen_logs(void *user) {
    (void)user;
    log_reopen();
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

    /* Before any thread exists (libmicrohttpd's, the workers', OpenBLAS's): one malloc
     * arena, so that freed memory of every thread can be handed back (memstats.h). */
    const int arenas = memstats_single_arena();
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
    log_msg(CS_LOG_INFO, "malloc arenas: %s",
            arenas ? "one for all threads" : "as the environment set (or the C library's default)");

    /* Free heap memory back to the kernel once a second when over 1 MiB (mem_trimmer.h). */
    mem_trimmer *trimmer = mem_trimmer_start(1000, (uint64_t)1 << 20);
    if (!trimmer) log_msg(CS_LOG_WARN, "no memory-trimming thread: freed heap memory stays resident");
    http_server *http = NULL;
    served_set models = {0};
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

    if (served_load(&o, &models, msg, sizeof msg) != CS_OK) {
        log_msg(CS_LOG_ERROR, "%s", msg);
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
    if (service_new(models.view.models, models.view.n, &sp, &svc, msg, sizeof msg) != CS_OK) {
        log_msg(CS_LOG_ERROR, "cannot start the service: %s", msg);
        goto done;
    }
    http_attach(http, &models.view, svc);
    for (int i = 0; i < models.view.n; i++) {
        int w, h;
        cs_model_native_size(models.view.models[i], &w, &h);
        log_msg(CS_LOG_INFO, "model \"%s\" from %s (%dx%d, %s)%s",
                cs_model_name(models.view.models[i]), models.paths[i], w, h,
                cs_model_guidance_distilled(models.view.models[i]) ? "guidance-distilled" : "CFG",
                i == 0 ? ": the default" : "");
    }
    log_msg(CS_LOG_INFO, "ready: %d model(s), %d worker(s), up to %d image(s) per batch",
            models.view.n, o.workers, o.max_batch);

    service_run(svc); /* until SIGINT/SIGTERM and the drain */
    log_msg(CS_LOG_INFO, "drained; stopping");
    rc = 0;

done:
    http_stop(http, HTTP_GRACE_MS);
    service_free(svc);
    served_free(&models);
    mem_trimmer_stop(trimmer);
    log_msg(rc == 0 ? CS_LOG_INFO : CS_LOG_ERROR, "exiting with status %d", rc);
    cs_set_log(NULL, NULL);
    log_close();
    options_deinit(&o);
    return rc;
}
