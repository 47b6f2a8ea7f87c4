/*
 * events: service_event construction and listener calls for one job (see events.h).
 * Loop thread only, with listen_lock held.
 */
#include "events.h"

#include <uv.h>

static double ms_between(uint64_t from_ns, uint64_t to_ns) {
    return to_ns > from_ns ? (double)(to_ns - from_ns) / 1e6 : 0.0;
}

service_event events_make(const job_rec *r, service_event_type type) {
    const uint64_t now = uv_hrtime();
    service_event ev = {.type = type,
                        .job_id = r->id,
                        .step = r->step,
                        .steps = r->steps,
                        .num_images = r->params.num_images};
    ev.elapsed_ms = ms_between(r->admit_ns, now);
    if (r->step > 0 && r->start_ns) /* the rate so far, over the steps left */
        ev.eta_ms = ms_between(r->start_ns, now) / r->step * (r->steps - r->step);
    return ev;
}

void events_emit(job_rec *r, const service_event *ev) {
    /* A listener detaching itself or another one from inside a call only clears its
     * entry (service_unsubscribe on the loop thread), so indexes stay valid here. */
    for (int i = 0; i < r->n_ls; i++)
        if (r->ls[i].fn) r->ls[i].fn(ev, r->ls[i].user);
    job_rec_compact_listeners(r);
}

void events_send_final(job_rec *r, service_listener fn, void *user) {
    service_image images[CS_MAX_IMAGES_PER_JOB];
    service_event ev;
    if (r->state == SERVICE_JOB_DONE) {
        ev = events_make(r, SERVICE_EV_DONE);
        for (int i = 0; i < r->n_png; i++)
            images[i] = (service_image){r->png[i], r->png_len[i], r->seeds[i], r->infotext[i]};
        ev.num_images = r->n_png;
        ev.images = images;
        ev.eta_ms = 0;
    } else {
        ev = events_make(r, SERVICE_EV_ERROR);
        ev.error_code = r->error_code;
        ev.message = r->error;
    }
    if (fn)
        fn(&ev, user);
    else
        events_emit(r, &ev);
}
