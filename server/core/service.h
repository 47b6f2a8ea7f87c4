/*
 * The generation service: admission queue, the loop thread that owns every job, the
 * step-level batcher and the worker pool. The HTTP layer talks to it only through this
 * header; it never touches job state.
 *
 * DESIGN. One libuv loop runs on the thread that calls service_run (main's thread). It
 * owns the job table: jobs arrive from HTTP threads through a mutex-guarded inbox and
 * uv_async_send; the loop admits them (bounded queue: full => SERVICE_FULL at submit
 * time), and whenever a worker is idle it builds the next batch: running jobs of one
 * latent size, up to max_batch_images images, each job advancing one step per batch
 * (new jobs join at the next batch; finished ones leave and are decoded). Workers are
 * plain threads, each with its own cs_session (never uv_queue_work: libuv's pool is
 * global and small); a worker runs cs_step (or cs_decode + PNG encoding) on the batch it
 * was handed and posts the result back to the loop through another async handle. The
 * loop then emits events to each job's listener, checks cancellations (a cancelled job
 * leaves the batch at the next step boundary and is freed) and timeouts (uv_timer), and
 * schedules the next batch. SIGINT/SIGTERM start a drain: submit returns
 * SERVICE_DRAINING, running and queued jobs finish, then service_run returns. SIGHUP
 * calls the reopen-logs callback.
 *
 * Threads: service_submit / service_cancel / service_job_info / service_stats /
 * service_begin_drain are thread-safe (any thread). Listener callbacks run on the loop
 * thread and must not block (copy the event, wake the HTTP connection, return).
 */
#ifndef CS_SERVICE_H
#define CS_SERVICE_H

#include <cfgserve/cfgserve.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct service service;

/* Models one service serves side by side: each worker holds a session per model, and a
 * batch only ever holds jobs of one model (and one image size). */
enum { SERVICE_MAX_MODELS = 8 };

typedef struct service_params {
    int workers;            /* worker threads, each with its own session (>= 1) */
    int max_batch_images;   /* images per UNet batch (CFG rows are up to twice this) */
    int queue_size;         /* jobs waiting to start; more => SERVICE_FULL */
    int job_timeout_ms;     /* from admission to done; 0 = none */
    int max_width, max_height; /* largest image a session plans for; <= 0: each model's
                                  native size */
    int vae_tile;              /* cs_session_params.vae_tile */
    int max_finished;       /* finished jobs kept for GET /jobs/{id} (oldest evicted) */
    size_t max_finished_bytes; /* their records' bytes at most (oldest evicted); 0 = no limit */
    int finished_ttl_ms;    /* how long a finished job's result is kept; 0 = no limit */
    int instance_id;        /* 0..65535, leads every job id (job_id.h) */
    void (*on_reopen_logs)(void *user); /* SIGHUP; may be NULL */
    void *user;
} service_params;

typedef enum service_status {
    SERVICE_OK = 0,
    SERVICE_INVALID,   /* parameters rejected by cs_params_validate or too large: 400 */
    SERVICE_FULL,      /* queue full: 429 with Retry-After */
    SERVICE_DRAINING,  /* shutting down: 503 */
    SERVICE_NOT_FOUND, /* unknown job id: 404 */
    SERVICE_ERROR      /* internal failure: 500 */
} service_status;

typedef enum service_event_type {
    SERVICE_EV_QUEUED,    /* position in the queue */
    SERVICE_EV_STARTED,
    SERVICE_EV_PROGRESS,  /* step / steps, elapsed, eta */
    SERVICE_EV_PREVIEW,   /* step / steps and a PNG preview of image 0's x0 estimate */
    SERVICE_EV_DONE,      /* images (PNG) and seeds */
    SERVICE_EV_ERROR,     /* message; also timeouts ("timeout") and cancellation ("cancelled") */
} service_event_type;

typedef struct service_image {
    const uint8_t *png; /* borrowed: valid only during the callback (copy it) */
    size_t png_len;
    uint64_t seed;
    const char *infotext; /* borrowed too: the PNG's A1111 "parameters" text */
} service_image;

typedef struct service_event {
    service_event_type type;
    uint64_t job_id;
    int position;             /* QUEUED: jobs ahead of this one */
    int step, steps;          /* PROGRESS */
    double elapsed_ms, eta_ms;
    const uint8_t *preview_png; /* PREVIEW: borrowed, valid only during the callback */
    size_t preview_len;
    int num_images;           /* DONE */
    const service_image *images;
    const char *error_code;   /* ERROR: "timeout", "cancelled", "internal", ... */
    const char *message;      /* ERROR: human-readable */
} service_event;

/* Receives every event of one job, in order, on the loop thread; the last one is DONE or
 * ERROR, after which it is never called again for that job. */
typedef void (*service_listener)(const service_event *ev, void *user);

/* Starts the workers (each plans a session per model now, so a model too large for memory
 * fails here) and prepares the loop. models[0 .. n_models) stay owned by the caller and
 * must outlive the service; jobs name one by its index (service_submit). */
cs_status service_new(const cs_model *const *models, int n_models, const service_params *p,
                      service **out, char *msg, size_t msg_size);

/* Runs the loop on the calling thread until a drain completes. Handles SIGINT, SIGTERM
 * (drain) and SIGHUP. */
void service_run(service *s);
/* Starts a drain from any thread (as SIGTERM does). */
void service_begin_drain(service *s);
bool service_draining(const service *s);
/* Joins the workers and frees everything; call after service_run returns. */
void service_free(service *s);

/* Validates p against model `model` (an index of service_new's list; strings are copied)
 * and queues a job. listener may be NULL (results are
 * then only kept for GET /jobs/{id}). preview_every k > 0: after every k-th step but the
 * last a worker makes a PNG preview of image 0's clean-image estimate (cs_job_preview_png):
 * listeners get it as a PREVIEW event and service_job_preview returns the latest; 0 = none.
 * On SERVICE_INVALID, *field names the parameter and msg says why. Job ids are never 0 and
 * carry params.instance_id (job_id.h). */
service_status service_submit(service *s, int model, const cs_gen_params *p, int preview_every,
                              service_listener listener, void *user, uint64_t *job_id,
                              const char **field, char *msg, size_t msg_size);

/* Cancels a queued or running job (it leaves the batch at the next step boundary and its
 * listener gets ERROR "cancelled"); also detaches the listener, so call it when a client
 * disconnects. Precisely: a queued job ends at once, a running one when its current
 * batch returns; every listener still attached then gets ERROR "cancelled" on the loop
 * thread as its final event and is detached. A listener that must not be called any
 * more once this returns (its connection is being freed) calls service_unsubscribe too.
 * A finished job: SERVICE_OK, nothing changes. */
service_status service_cancel(service *s, uint64_t job_id);

/* Ends a running job early: at the next step boundary its latents become its current
 * clean-image estimate (cs_job_finish_early) and it is decoded and finishes DONE with those
 * images (the A1111 interrupt). A job still being created ends right after. A queued or
 * finished job is not changed (SERVICE_OK). */
service_status service_finish_early(service *s, uint64_t job_id);

typedef enum service_job_state {
    SERVICE_JOB_QUEUED, SERVICE_JOB_RUNNING, SERVICE_JOB_DONE, SERVICE_JOB_FAILED,
    SERVICE_JOB_CANCELLED
} service_job_state;

typedef struct service_job_info {
    service_job_state state;
    int model; /* index in service_new's list */
    int step, steps, num_images;
    bool finished_early; /* service_finish_early cut it short */
    int preview_step;    /* step of the latest preview, 0 = none yet */
    uint64_t seeds[CS_MAX_IMAGES_PER_JOB];
    char error[256];
} service_job_info;

service_status service_job_info_get(service *s, uint64_t job_id, service_job_info *out);
/* A copy of image i's PNG of a finished job (*png malloc'd, caller frees).
 * SERVICE_NOT_FOUND when the job is unknown, not DONE, or has no image i. */
service_status service_job_image(service *s, uint64_t job_id, int image, uint8_t **png,
                                 size_t *len);
/* A copy of the latest preview PNG of a queued or running job (*png malloc'd, caller frees;
 * *step its step). SERVICE_NOT_FOUND when the job is unknown, finished or has none yet. */
service_status service_job_preview(service *s, uint64_t job_id, uint8_t **png, size_t *len,
                                   int *step);
/* Why a job's result is no longer kept ("its result was evicted: ..."), for a 410; NULL
 * when the id is unknown (never issued, or dropped too long ago to remember). */
const char *service_job_gone(service *s, uint64_t job_id);
/* Subscribes to a job's events (GET /jobs/{id}/events): the listener first receives the
 * job's current state (QUEUED/STARTED/PROGRESS, or the final DONE/ERROR at once).
 * SERVICE_DRAINING once service_run has returned (no loop is left to call it). */
service_status service_subscribe(service *s, uint64_t job_id, service_listener listener,
                                 void *user);
/* Detaches a listener without cancelling the job (an events stream closing). When it
 * returns, the listener is not running and is never called again for this job (a
 * subscription still on its way to the loop is dropped too). It waits for a listener
 * call in progress on the loop thread, so do not call it while holding a lock your
 * listener takes; calling it from inside a listener is fine. */
void service_unsubscribe(service *s, uint64_t job_id, void *user);

enum { SERVICE_HIST_BUCKETS = 12, SERVICE_DROP_REASONS = 5 /* job_gone_reason 1..4 */ };

typedef struct service_stats {
    int queued, running;             /* jobs now */
    uint64_t submitted, completed, failed, cancelled, timed_out, rejected_full,
        rejected_draining, rejected_invalid;
    uint64_t images_generated;
    int n_models;
    const char *model_names[SERVICE_MAX_MODELS]; /* cs_model_name of each (the models') */
    uint64_t images_by_model[SERVICE_MAX_MODELS]; /* images_generated, per model index */
    uint64_t steps_run;              /* UNet batches */
    int retained;                    /* finished jobs kept now */
    uint64_t retained_bytes;         /* their records' heap bytes (PNGs, texts, record) */
    uint64_t dropped[SERVICE_DROP_REASONS]; /* finished jobs dropped, by job_gone_reason */
    /* histograms: counts per bucket (cumulative form is made by the renderer) */
    double batch_bounds[SERVICE_HIST_BUCKETS]; /* batch size in images, upper bounds */
    uint64_t batch_counts[SERVICE_HIST_BUCKETS + 1]; /* last = +Inf */
    double batch_sum;
    double step_bounds[SERVICE_HIST_BUCKETS];  /* seconds */
    uint64_t step_counts[SERVICE_HIST_BUCKETS + 1];
    double step_sum;
    int n_batch_bounds, n_step_bounds;
} service_stats;

void service_stats_get(service *s, service_stats *out);

#endif
