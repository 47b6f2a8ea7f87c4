/* Golden handler for kind "img2img": a StableDiffusionImg2ImgPipeline call replayed through
 * the public API (cs_gen_params.init_image / strength), one job per init image, all
 * stepped together. The reference's two stored draws (the VAE sample's encoder_noise and
 * the noise added to the init latents) replace the jobs' own through job_set_image_draws.
 * Compared: the init image's latent distribution and sample, the first timestep, the
 * noised start, the timesteps, the latents after every step and the image. */
#include "golden.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "job.h"
#include "session.h"

enum { MAX_IMAGES = 8 };

static float max_abs(const float *x, int64_t n) {
    float m = 0;
    for (int64_t i = 0; i < n; i++) m = fmaxf(m, fabsf(x[i]));
    return m;
}

/* A timestep tensor (I64 for DDIM-like schedulers, F32 for Euler/LMS) as floats. */
static cs_status load_steps(const st_file *f, const char *name, float **out, int64_t *count,
                            char *msg, size_t n) {
    const st_tensor *t = f ? st_find(f, name) : NULL;
    if (!t) return cs_errf(CS_ERR_FORMAT, msg, n, "no tensor '%s'", name);
    *count = t->numel;
    if (t->dtype != ST_I64) return golden_load_f32(f, name, out, NULL, NULL, msg, n);
    int64_t *v;
    cs_status st = golden_load_i64(f, name, &v, NULL, NULL, msg, n);
    if (st != CS_OK) return st;
    *out = cs_malloc((size_t)t->numel * sizeof **out);
    for (int64_t i = 0; *out && i < t->numel; i++) (*out)[i] = (float)v[i];
    free(v);
    return *out ? CS_OK : cs_errf(CS_ERR_NOMEM, msg, n, "out of memory");
}

/* The case's init_image (B, H, W, 3) floats = uint8 / 255, back to RGB8 (exactly). */
static cs_status to_rgb8(const float *f, int64_t count, uint8_t *rgb, char *msg, size_t n) {
    for (int64_t i = 0; i < count; i++) {
        const long v = lrintf(f[i] * 255.0f);
        if (v < 0 || v > 255 || (float)v / 255.0f != f[i])
            return cs_errf(CS_ERR_FORMAT, msg, n, "init_image value %g is not a uint8 / 255", f[i]);
        rgb[i] = (uint8_t)v;
    }
    return CS_OK;
}

/* Compares one per-job buffer of every job, concatenated in job order. */
static void compare_jobs(golden_case *gc, const char *name, cs_job *const *jobs, int nj,
                         size_t field_offset, const float *want, int64_t per_job, double tol) {
    float *got = cs_malloc((size_t)(nj * per_job) * sizeof *got);
    for (int i = 0; i < nj; i++) {
        const float *src = *(float *const *)((const char *)jobs[i] + field_offset);
        memcpy(got + i * per_job, src, (size_t)per_job * sizeof *got);
    }
    golden_compare(gc, name, got, nj * per_job, want, tol * fmax(1.0, max_abs(want, nj * per_job)));
    free(got);
}

static cs_status run(golden_case *gc, char *msg, size_t n) {
    const cJSON *call = cJSON_GetObjectItemCaseSensitive(gc->json, "call");
    const cJSON *mdir = cJSON_GetObjectItemCaseSensitive(gc->json, "model_dir");
    if (!cJSON_IsObject(call) || !cJSON_IsString(mdir))
        return cs_errf(CS_ERR_FORMAT, msg, n, "%s: case.json lacks call or model_dir", gc->dir);
    const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(call, "prompt");
    const cJSON *neg = cJSON_GetObjectItemCaseSensitive(call, "negative_prompt");
    const cJSON *gs = cJSON_GetObjectItemCaseSensitive(call, "guidance_scale");
    const cJSON *steps = cJSON_GetObjectItemCaseSensitive(call, "num_inference_steps");
    const cJSON *strength = cJSON_GetObjectItemCaseSensitive(call, "strength");
    if (!cJSON_IsString(prompt) || (neg && !cJSON_IsString(neg)) || !cJSON_IsNumber(gs) ||
        !cJSON_IsNumber(steps) || !cJSON_IsNumber(strength))
        return cs_errf(CS_ERR_UNSUPPORTED, msg, n,
                       "%s: call has arguments this replay does not handle", gc->dir);
    char path[4096];
    golden_path(path, sizeof path, gc->dir, mdir->valuestring);
    cs_model *m = NULL;
    cs_session *s = NULL;
    cs_job *jobs[MAX_IMAGES] = {0};
    int nj = 0;
    float *init = NULL, *enc_noise = NULL, *noise = NULL, *mean = NULL, *stdv = NULL;
    float *init_lat = NULL, *noised = NULL, *lat_t = NULL, *ts = NULL, *step_lat = NULL;
    float *image = NULL;
    uint8_t *rgb = NULL;
    int64_t idim[4], ldim[4], sdim[5], n_lat_t, n_ts;
    cs_status st = cs_model_load(path, &m, msg, n);
    if (st == CS_OK) st = golden_swap_scheduler(gc, m, msg, n);
    if (st == CS_OK) st = golden_load_f32(gc->inputs, "init_image", &init, idim, NULL, msg, n);
    if (st == CS_OK) st = golden_load_f32(gc->inputs, "encoder_noise", &enc_noise, ldim, NULL, msg, n);
    if (st == CS_OK) st = golden_load_f32(gc->inputs, "noise", &noise, NULL, NULL, msg, n);
    if (st == CS_OK) st = golden_load_f32(gc->outputs, "init_latent_mean", &mean, NULL, NULL, msg, n);
    if (st == CS_OK) st = golden_load_f32(gc->outputs, "init_latent_std", &stdv, NULL, NULL, msg, n);
    if (st == CS_OK) st = golden_load_f32(gc->outputs, "init_latents", &init_lat, NULL, NULL, msg, n);
    if (st == CS_OK) st = golden_load_f32(gc->outputs, "noised_latents", &noised, NULL, NULL, msg, n);
    if (st == CS_OK) st = load_steps(gc->outputs, "latent_timestep", &lat_t, &n_lat_t, msg, n);
    if (st == CS_OK) st = load_steps(gc->outputs, "timesteps", &ts, &n_ts, msg, n);
    if (st == CS_OK) st = golden_load_f32(gc->outputs, "step_latents", &step_lat, sdim, NULL, msg, n);
    if (st == CS_OK) st = golden_load_f32(gc->outputs, "image", &image, NULL, NULL, msg, n);
    if (st != CS_OK) goto done;
    nj = (int)idim[0];
    if (nj < 1 || nj > MAX_IMAGES || idim[3] != 3 || ldim[0] != nj) {
        st = cs_errf(CS_ERR_UNSUPPORTED, msg, n, "%s: init_image must be (B <= %d, H, W, 3)",
                     gc->dir, MAX_IMAGES);
        nj = 0;
        goto done;
    }
    const int height = (int)idim[1], width = (int)idim[2];
    const int64_t pix = (int64_t)height * width * 3, img = ldim[1] * ldim[2] * ldim[3];
    rgb = cs_malloc((size_t)(nj * pix));
    if (!rgb || (st = to_rgb8(init, nj * pix, rgb, msg, n)) != CS_OK) goto done;
    cs_session_params sp = {.max_images = nj, .max_width = width, .max_height = height};
    if ((st = cs_session_new(m, &sp, &s, msg, n)) != CS_OK) goto done;
    for (int i = 0; i < nj; i++) {
        cs_gen_params p = cs_gen_default_params(m);
        p.prompt = prompt->valuestring;
        p.negative_prompt = neg ? neg->valuestring : "";
        p.guidance_scale = gs->valuedouble;
        p.steps = steps->valueint;
        p.width = width;
        p.height = height;
        p.init_image = rgb + i * pix;
        p.strength = strength->valuedouble;
        if ((st = cs_job_new(s, &p, &jobs[i], msg, n)) != CS_OK) goto done;
        job_set_image_draws(jobs[i], enc_noise + i * img, noise + i * img);
    }
    compare_jobs(gc, "init_latent_mean", jobs, nj, offsetof(cs_job, enc_mean), mean, img, 1e-4);
    compare_jobs(gc, "init_latent_std", jobs, nj, offsetof(cs_job, enc_std), stdv, img, 1e-4);
    compare_jobs(gc, "init_latents", jobs, nj, offsetof(cs_job, init_latents), init_lat, img, 1e-4);
    compare_jobs(gc, "noised_latents", jobs, nj, offsetof(cs_job, latents), noised, img, 1e-4);
    float got_t[MAX_IMAGES];
    for (int i = 0; i < nj && i < n_lat_t; i++)
        got_t[i] = (float)sched_timestep(jobs[i]->sched, jobs[i]->first_step);
    golden_compare(gc, "latent_timestep", got_t, n_lat_t < nj ? n_lat_t : nj, lat_t, 0.0);
    if (n_ts != cs_job_steps(jobs[0]) || sdim[0] != n_ts) {
        st = cs_errf(CS_ERR_FORMAT, msg, n, "%s: %lld recorded steps but the job runs %d", gc->dir,
                     (long long)n_ts, cs_job_steps(jobs[0]));
        goto done;
    }
    float *got = cs_malloc((size_t)(n_ts > nj * img ? n_ts : nj * img) * sizeof *got);
    for (int64_t k = 0; k < n_ts; k++) got[k] = (float)sched_timestep(jobs[0]->sched, jobs[0]->first_step + (int)k);
    golden_compare(gc, "timesteps", got, n_ts, ts, 0.0);
    for (int64_t k = 0; k < n_ts; k++) {
        if ((st = cs_step(s, jobs, nj, msg, n)) != CS_OK) break;
        for (int i = 0; i < nj; i++) memcpy(got + i * img, jobs[i]->latents, (size_t)img * sizeof *got);
        const float *want = step_lat + k * nj * img;
        char name[64];
        snprintf(name, sizeof name, "step_latents[%lld]", (long long)k);
        golden_compare(gc, name, got, nj * img, want, 1e-3 * fmax(1.0, max_abs(want, nj * img)));
    }
    free(got);
    if (st != CS_OK) goto done;
    if ((st = cs_decode(s, jobs, nj, msg, n)) != CS_OK) goto done;
    compare_jobs(gc, "image", jobs, nj, offsetof(cs_job, image), image, pix, 1e-3);
done:
    for (int i = 0; i < nj; i++) cs_job_free(jobs[i]);
    cs_session_free(s);
    cs_model_free(m);
    free(init);
    free(enc_noise);
    free(noise);
    free(mean);
    free(stdv);
    free(init_lat);
    free(noised);
    free(lat_t);
    free(ts);
    free(step_lat);
    free(image);
    free(rgb);
    return st;
}

const golden_handler golden_img2img_handler = {"img2img", run};
