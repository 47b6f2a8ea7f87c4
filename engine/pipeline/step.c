/* cs_step and cs_decode: one batched UNet step over many jobs and their batched VAE
 * decoding, in a worker's session (the design is in session.h). Above both job.c and
 * session.c: it reads jobs and fills the session's buffers, and neither calls back. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "img2img.h"
#include "job.h"
#include "png_encode.h"
#include "rng.h"
#include "session_internal.h"

/* Copies one job's rows into the batch at `row`; returns the rows used. */
static int64_t pack_job(cs_session *s, cs_job *j, int64_t row) {
    const cs_model *m = s->model;
    const guidance_rows g = job_rows(j);
    const int64_t img = j->image_numel;
    const int64_t in_numel = img / m->latent_channels * s->in_channels; /* per UNet row */
    const float t = (float)sched_timestep(j->sched, j->step);
    const prompt_embedding *embs[2] = {g.cond ? j->cond : NULL, g.uncond ? j->uncond : NULL};
    int64_t start = row;
    for (int half = 0; half < 2; half++) {
        if (!embs[half]) continue;
        for (int i = 0; i < j->n_images; i++, row++) {
            float *x = s->x + row * in_numel;
            memcpy(x, j->latents + i * img, (size_t)img * sizeof(float));
            sched_scale_model_input(j->sched, j->step, x, img);
            if (m->inpainting) img2img_extra_channels(j, i, x + img);
            s->row_emb[row] = embs[half];
            if (j->w_embed) /* each job its own scale, even inside one batch */
                memcpy(s->tcond + row * m->guidance_embed_dim, j->w_embed,
                       (size_t)m->guidance_embed_dim * sizeof(float));
            s->t[row] = t;
            s->lora_rows[row] = j->loras.unet; /* cond and uncond rows alike */
        }
    }
    return row - start;
}

/* Fails the job (alone) when its latents hold a NaN or an Inf: once there, they spread to
 * every later step and decode to a black or garbage image, so the client gets a clear
 * error instead. One pass over the latents (C·h·w per image), negligible beside the UNet. */
static void check_finite(cs_job *j) {
    const int64_t img = j->image_numel;
    for (int64_t i = 0; i < j->n_images; i++) {
        const float *x = j->latents + i * img;
        int bad = 0;
        for (int64_t k = 0; k < img; k++) bad |= !isfinite(x[k]);
        if (bad) {
            snprintf(j->error, sizeof j->error,
                     "numerical error at step %d of %d: the latents of image %lld hold NaN or "
                     "Inf values",
                     j->step, j->steps, (long long)i);
            return;
        }
    }
}

/* Combines a job's rows of the UNet output and advances its scheduler by one step. */
static void finish_job_step(cs_session *s, cs_job *j, int64_t row) {
    const guidance_rows g = job_rows(j);
    const int64_t img = j->image_numel, nimg = j->n_images;
    const float *first = s->out + row * img;
    const float *eps_c = g.cond ? first : NULL;
    const float *eps_u = g.uncond ? first + (g.cond ? nimg * img : 0) : NULL;
    guidance_combine(j->eps, eps_c ? eps_c : eps_u, eps_u ? eps_u : eps_c,
                     (float)j->params.guidance_scale, g, nimg * img);
    if (g.cond && g.uncond && j->params.guidance_rescale > 0)
        for (int64_t i = 0; i < nimg; i++)
            guidance_rescale(j->eps + i * img, eps_c + i * img, (float)j->params.guidance_rescale,
                             img);
    const float *noise = NULL;
    if (sched_step_needs_noise(j->sched, j->step)) {
        for (int64_t i = 0; i < nimg; i++)
            rng_normal_fill(cs_job_seed(j, (int)i), rng_stream_step(j->step), 0,
                            j->noise + i * img, img);
        noise = j->noise;
    }
    sched_step(j->sched, j->step, j->eps, j->latents, noise, j->x0); /* x0: an output only */
    j->has_x0 = true;
    img2img_after_step(j, j->step);
    j->step++;
    check_finite(j);
}

/* Runs the UNet on the rows whose conditioning is len tokens long (clearing their row_emb)
 * and puts their outputs at their rows of s->out; *done counts the rows run so far. */
static void run_rows_of_length(cs_session *s, int64_t rows, int64_t len, int64_t lat_h,
                               int64_t lat_w, int64_t *done) {
    const cs_model *m = s->model;
    const int64_t lat = m->latent_channels * lat_h * lat_w;
    const int64_t in_row = lat / m->latent_channels * s->in_channels;
    const int64_t tdim = m->guidance_embed_dim, emb = len * m->context_dim;
    int64_t k = 0, all = 0;
    for (int64_t r = 0; r < rows; r++) all += s->row_emb[r] && s->row_emb[r]->len == len;
    const bool whole = all == rows; /* every row: run in place, no gathering */
    float *x = whole ? s->x : s->gx, *t = whole ? s->t : s->gt;
    float *tcond = whole ? s->tcond : s->gtcond, *out = whole ? s->out : s->gout;
    lora_row *lora_rows = whole ? s->lora_rows : s->glora;
    bool any_lora = false;
    for (int64_t r = 0; r < rows; r++) {
        if (!s->row_emb[r] || s->row_emb[r]->len != len) continue;
        memcpy(s->context + k * emb, s->row_emb[r]->data, (size_t)emb * sizeof(float));
        if (!whole) {
            memcpy(x + k * in_row, s->x + r * in_row, (size_t)in_row * sizeof(float));
            t[k] = s->t[r];
            if (tdim) memcpy(tcond + k * tdim, s->tcond + r * tdim, (size_t)tdim * sizeof(float));
            lora_rows[k] = s->lora_rows[r];
        }
        any_lora |= lora_rows[k].n > 0;
        k++;
    }
    unet_input in = {.sample = x, .batch = k, .height = lat_h, .width = lat_w,
                     .timesteps = t, .context = s->context, .context_len = len,
                     .timestep_cond = tcond};
    const lora_rowset lora = {.rows = k, .row = lora_rows};
    s->ctx.lora = any_lora ? &lora : NULL;
    ctx_release(&s->ctx, 0);
    unet_forward(&s->ctx, m->unet, &in, out); // (k, C, h, w)
    s->ctx.lora = NULL;
    k = 0;
    for (int64_t r = 0; r < rows; r++) {
        if (!s->row_emb[r] || s->row_emb[r]->len != len) continue;
        if (!whole) memcpy(s->out + r * lat, out + k * lat, (size_t)lat * sizeof(float));
        s->row_emb[r] = NULL;
        k++;
    }
    *done += k;
}

cs_status cs_step(cs_session *s, cs_job *const *jobs, int n, char *msg, size_t msg_size) {
    if (n < 1) return cs_errf(CS_ERR_INVALID_ARG, msg, msg_size, "cs_step: no jobs");
    int64_t rows = 0;
    for (int i = 0; i < n; i++) {
        const cs_job *j = jobs[i];
        if (j->model != s->model)
            return cs_errf(CS_ERR_INVALID_ARG, msg, msg_size, "cs_step: job %d is for another model", i);
        if (cs_job_done(j))
            return cs_errf(CS_ERR_INVALID_ARG, msg, msg_size, "cs_step: job %d is already done", i);
        if (j->error[0])
            return cs_errf(CS_ERR_INVALID_ARG, msg, msg_size, "cs_step: job %d failed: %s", i,
                           j->error);
        if (j->lat_h != jobs[0]->lat_h || j->lat_w != jobs[0]->lat_w)
            return cs_errf(CS_ERR_INVALID_ARG, msg, msg_size,
                           "cs_step: job %d is %lldx%lld but job 0 is %lldx%lld; jobs in one step "
                           "must share the image size",
                           i, (long long)j->width, (long long)j->height, (long long)jobs[0]->width,
                           (long long)jobs[0]->height);
        rows += cs_job_rows_next_step(j);
    }
    const int64_t lat_numel = jobs[0]->image_numel;
    if (rows > s->max_rows || lat_numel > s->max_lat_numel)
        return cs_errf(CS_ERR_INVALID_ARG, msg, msg_size,
                       "cs_step: %lld UNet rows of %lldx%lld exceed the session's plan (%lld rows)",
                       (long long)rows, (long long)jobs[0]->width, (long long)jobs[0]->height,
                       (long long)s->max_rows);
    int64_t row = 0;
    for (int i = 0; i < n; i++) row += pack_job(s, jobs[i], row);
    /* One UNet call per conditioning length (nearly always one); a row's result does not
     * depend on the call it is in. */
    int64_t done = 0;
    while (done < rows) {
        int64_t len = 0;
        for (int64_t r = 0; r < rows && !len; r++)
            if (s->row_emb[r]) len = s->row_emb[r]->len;
        run_rows_of_length(s, rows, len, jobs[0]->lat_h, jobs[0]->lat_w, &done);
    }
    row = 0;
    for (int i = 0; i < n; i++) {
        const int64_t used = cs_job_rows_next_step(jobs[i]);
        finish_job_step(s, jobs[i], row);
        row += used;
    }
    return CS_OK;
}

/* Decodes up to max_images images of equal size: (k, C, h, w) latents -> rgb of each. */
static cs_status decode_group(cs_session *s, cs_job *const *jobs, int n, char *msg, size_t msg_size) {
    const cs_model *m = s->model;
    const int64_t img = jobs[0]->image_numel, h = jobs[0]->lat_h, w = jobs[0]->lat_w;
    const float scale = vae_scaling_factor(m->vae);
    int64_t k = 0; /* images packed so far */
    for (int i = 0; i < n; i++) {
        const int64_t count = jobs[i]->n_images * img;
        for (int64_t q = 0; q < count; q++)
            s->latent_in[k * img + q] = jobs[i]->latents[q] / scale; /* as diffusers divides */
        k += jobs[i]->n_images;
    }
    const int64_t H = h * m->vae_factor, W = w * m->vae_factor;
    /* (k, 3, H, W), as many images a pass as the session's arena holds: it is planned for
     * the UNet's rows and often holds several small images, whose convolutions then share
     * each weight read. An image's pixels never depend on the others in its pass. */
    int64_t per = 1;
    if (!vae_tiling_applies(s->vae_tile, h, w))
        for (per = k; per > 1 && vae_decode_activation_bytes(m->vae, per, h, w) > s->ctx.cap;)
            per--;
    for (int64_t q = 0; q < k; q += per) {
        const int64_t b = k - q < per ? k - q : per;
        ctx_release(&s->ctx, 0);
        if (b == 1)
            vae_decode_tiled(&s->ctx, m->vae, s->decoded + q * 3 * H * W, s->latent_in + q * img,
                             h, w, s->vae_tile);
        else
            vae_decode(&s->ctx, m->vae, s->decoded + q * 3 * H * W, s->latent_in + q * img, b, h,
                       w);
    }
    int64_t at = 0;
    for (int i = 0; i < n; i++) {
        cs_job *j = jobs[i];
        const int64_t pixels = j->n_images * H * W * 3;
        if (!j->image) j->image = cs_malloc((size_t)pixels * sizeof(float));
        if (!j->rgb) j->rgb = cs_malloc((size_t)pixels);
        if (!j->image || !j->rgb) return cs_errf(CS_ERR_NOMEM, msg, msg_size, "out of memory decoding");
        for (int q = 0; q < j->n_images; q++, at++)
            image_to_unit_hwc(s->decoded + at * 3 * H * W, H, W, j->image + q * H * W * 3);
        unit_to_rgb8(j->image, pixels, j->rgb);
    }
    return CS_OK;
}

cs_status cs_decode(cs_session *s, cs_job *const *jobs, int n, char *msg, size_t msg_size) {
    for (int i = 0; i < n; i++) {
        if (!cs_job_done(jobs[i]))
            return cs_errf(CS_ERR_INVALID_ARG, msg, msg_size, "cs_decode: job %d is not done", i);
        if (jobs[i]->lat_h != jobs[0]->lat_h || jobs[i]->lat_w != jobs[0]->lat_w)
            return cs_errf(CS_ERR_INVALID_ARG, msg, msg_size,
                           "cs_decode: jobs in one call must share the image size");
    }
    /* Greedy groups of at most max_images images, in order. */
    for (int i = 0; i < n;) {
        int take = 0, images = 0;
        while (i + take < n && images + jobs[i + take]->n_images <= s->params.max_images)
            images += jobs[i + take++]->n_images;
        CS_ASSERT(take > 0); /* a job never holds more images than the session allows */
        cs_status st = decode_group(s, jobs + i, take, msg, msg_size);
        if (st != CS_OK) return st;
        i += take;
    }
    return CS_OK;
}
