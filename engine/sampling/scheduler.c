/*
 * sched_state: one job's schedule and sampler history (see scheduler.h), dispatching
 * to the sampler files through sampler_ops, plus the helpers several samplers share
 * (float timestep spacing, sigma interpolation, sigma input scaling).
 *
 * A state is used by one thread at a time; nothing here allocates after
 * sched_state_new.
 */
#include "sampler.h"

#include <string.h>

static const sampler_ops *const k_ops[SCHED_KIND_COUNT] = {
    [SCHED_DDIM] = &sampler_ddim_ops,   [SCHED_PNDM] = &sampler_pndm_ops,
    [SCHED_EULER] = &sampler_euler_ops, [SCHED_EULER_A] = &sampler_euler_a_ops,
    [SCHED_DPMPP] = &sampler_dpmpp_ops, [SCHED_DDPM] = &sampler_ddpm_ops,
    [SCHED_LMS] = &sampler_lms_ops,
};

cs_status sched_alloc_steps(sched_state *s, int n_steps, bool with_sigmas, char *msg, size_t n) {
    CS_ASSERT(!s->timesteps && n_steps >= 1);
    s->n = n_steps;
    s->timesteps = cs_calloc((size_t)n_steps, sizeof *s->timesteps);
    if (with_sigmas) s->sigmas = cs_calloc((size_t)n_steps + 1, sizeof *s->sigmas);
    if (!s->timesteps || (with_sigmas && !s->sigmas))
        return cs_errf(CS_ERR_NOMEM, msg, n, "out of memory for %d timesteps", n_steps);
    return CS_OK;
}

cs_status sched_alloc_bufs(sched_state *s, int count, char *msg, size_t n) {
    CS_ASSERT(s->nbuf == 0 && count <= SCHED_MAX_BUFS);
    size_t bytes;
    if (!cs_mul_size((size_t)s->numel, sizeof(float), &bytes))
        return cs_errf(CS_ERR_INVALID_ARG, msg, n, "sample size %lld overflows",
                       (long long)s->numel);
    for (; s->nbuf < count; s->nbuf++) {
        s->buf[s->nbuf] = cs_calloc(1, bytes);
        if (!s->buf[s->nbuf])
            return cs_errf(CS_ERR_NOMEM, msg, n, "out of memory for sampler history (%zu bytes)",
                           bytes * (size_t)count);
    }
    return CS_OK;
}

cs_status sched_alloc_coef(sched_state *s, int64_t count, char *msg, size_t n) {
    CS_ASSERT(!s->coef && count >= 1);
    s->coef = cs_calloc((size_t)count, sizeof *s->coef);
    if (!s->coef) return cs_errf(CS_ERR_NOMEM, msg, n, "out of memory for sampler coefficients");
    return CS_OK;
}

cs_status sched_check_index_timesteps(const sched_state *s, char *msg, size_t n) {
    const int64_t T = s->p.num_train_timesteps;
    for (int i = 0; i < s->n; i++) {
        const double t = s->timesteps[i];
        if (!(t >= 0 && t < (double)T && t == floor(t)))
            return cs_errf(
                CS_ERR_UNSUPPORTED, msg, n,
                "%d steps with timestep_spacing %s and steps_offset %lld give "
                "timestep %g outside [0, %lld] (diffusers fails here too)",
                s->num_inference_steps,
                (const char *[]){"linspace", "leading", "trailing"}[s->p.timestep_spacing],
                (long long)s->p.steps_offset, t, (long long)T - 1);
    }
    return CS_OK;
}

void sched_int_timesteps(const sched_params *p, int N, double *out, int cap, int *len) {
    const int64_t T = p->num_train_timesteps;
    if (p->timestep_spacing == SPACING_LINSPACE) {
        /* np.linspace(0, T - 1, N).round()[::-1].astype(np.int64) */
        np_linspace(0, (double)(T - 1), N, out);
        for (int i = 0; i < N / 2; i++) {
            double t = out[i];
            out[i] = out[N - 1 - i];
            out[N - 1 - i] = t;
        }
        for (int i = 0; i < N; i++)
            out[i] = np_round(out[i]);
        *len = N;
    } else if (p->timestep_spacing == SPACING_LEADING) {
        /* (np.arange(0, N) * (T // N)).round()[::-1] + steps_offset */
        const int64_t ratio = T / N;
        for (int i = 0; i < N; i++)
            out[i] = (double)((int64_t)(N - 1 - i) * ratio + p->steps_offset);
        *len = N;
    } else {
        /* np.round(np.arange(T, 0, -T / N)).astype(np.int64) - 1 */
        const double ratio = (double)T / N;
        int64_t L = np_arange_len((double)T, 0, -ratio);
        CS_ASSERT(L <= cap);
        np_arange((double)T, -ratio, L, out);
        for (int64_t i = 0; i < L; i++)
            out[i] = np_round(out[i]) - 1;
        *len = (int)L;
    }
}

void sched_float_timesteps(const sched_params *p, int N, double *out, int cap, int *len) {
    const int64_t T = p->num_train_timesteps;
    if (p->timestep_spacing == SPACING_LINSPACE) {
        /* np.linspace(0, T - 1, N, dtype=np.float32)[::-1] */
        np_linspace(0, (double)(T - 1), N, out);
        for (int i = 0; i < N / 2; i++) {
            double t = out[i];
            out[i] = out[N - 1 - i];
            out[N - 1 - i] = t;
        }
        for (int i = 0; i < N; i++)
            out[i] = (float)out[i];
        *len = N;
    } else if (p->timestep_spacing == SPACING_LEADING) {
        /* (np.arange(0, N) * (T // N)).round()[::-1].astype(np.float32) + steps_offset */
        const int64_t ratio = T / N;
        for (int i = 0; i < N; i++)
            out[i] = (float)((float)((int64_t)(N - 1 - i) * ratio) + (float)p->steps_offset);
        *len = N;
    } else {
        /* np.arange(T, 0, -T / N).round().astype(np.float32) - 1 */
        const double ratio = (double)T / N;
        int64_t L = np_arange_len((double)T, 0, -ratio);
        CS_ASSERT(L <= cap);
        np_arange((double)T, -ratio, L, out);
        for (int64_t i = 0; i < L; i++)
            out[i] = (float)((float)np_round(out[i]) - 1.0f);
        *len = (int)L;
    }
}

void sched_interp_sigmas(sched_state *s, const float *sigma_table) {
    const int64_t T = s->p.num_train_timesteps;
    for (int i = 0; i < s->n; i++)
        s->sigmas[i] = (float)np_interp_index(s->timesteps[i], sigma_table, T);
    s->sigmas[s->n] = 0.0f;
}

float sched_sigma_init_noise(const sched_state *s) {
    float m = 0;
    for (int i = 0; i <= s->n; i++)
        if (s->sigmas[i] > m) m = s->sigmas[i];
    if (s->p.timestep_spacing == SPACING_LEADING) return sqrtf(m * m + 1.0f);
    return m;
}

void sched_sigma_scale_input(const sched_state *s, int i, float *x, int64_t n) {
    const float sigma = s->sigmas[i];
    const float d = sqrtf(sigma * sigma + 1.0f);
    for (int64_t k = 0; k < n; k++)
        x[k] = x[k] / d;
}

/* ---- the public interface ---- */

cs_status sched_state_new(const sched_config *c, int num_inference_steps, int64_t sample_numel,
                          sched_state **out, char *msg, size_t n) {
    *out = NULL;
    const sched_params *p = sched_config_params(c);
    const int64_t T = p->num_train_timesteps;
    if (num_inference_steps < 1 || num_inference_steps > T)
        return cs_errf(CS_ERR_INVALID_ARG, msg, n,
                       "num_inference_steps %d is outside [1, %lld] (num_train_timesteps)",
                       num_inference_steps, (long long)T);
    if (sample_numel < 1)
        return cs_errf(CS_ERR_INVALID_ARG, msg, n, "sample size %lld must be positive",
                       (long long)sample_numel);
    sched_state *s = cs_calloc(1, sizeof *s);
    if (!s) return cs_errf(CS_ERR_NOMEM, msg, n, "out of memory");
    s->ops = k_ops[p->kind];
    s->p = *p;
    s->numel = sample_numel;
    s->num_inference_steps = num_inference_steps;
    s->init_noise_sigma = 1.0f;
    cs_status st = CS_OK;
    s->alphas_cumprod = cs_malloc((size_t)T * sizeof *s->alphas_cumprod);
    if (!s->alphas_cumprod) st = cs_errf(CS_ERR_NOMEM, msg, n, "out of memory");
    if (st == CS_OK) st = schedule_alphas_cumprod(p, s->alphas_cumprod, msg, n);
    if (st == CS_OK) {
        s->final_alpha_cumprod = p->set_alpha_to_one ? 1.0f : s->alphas_cumprod[0];
        s->p.trained_betas = NULL; /* borrowed from c; not needed any more */
        st = s->ops->setup(s, msg, n);
    }
    if (st != CS_OK) {
        sched_state_free(s);
        return st;
    }
    *out = s;
    return CS_OK;
}

void sched_state_free(sched_state *s) {
    if (!s) return;
    for (int i = 0; i < s->nbuf; i++)
        free(s->buf[i]);
    free(s->coef);
    free(s->timesteps);
    free(s->sigmas);
    free(s->alphas_cumprod);
    free(s);
}

void sched_set_eta(sched_state *s, float eta) {
    CS_ASSERT(s->next_step == 0);
    s->eta = eta;
}

int sched_num_steps(const sched_state *s) {
    return s->n;
}

double sched_timestep(const sched_state *s, int i) {
    CS_ASSERT(i >= 0 && i < s->n);
    return s->timesteps[i];
}

float sched_init_noise_sigma(const sched_state *s) {
    return s->init_noise_sigma;
}

float sched_sigma(const sched_state *s, int i) {
    CS_ASSERT(i >= 0 && i <= s->n);
    if (s->sigmas) return s->sigmas[i];
    /* Alpha-space samplers: the level of timestep i, or after the last step the level
     * of the final alpha (DDIM/PNDM's final_alpha_cumprod, DDPM's 1). */
    float a;
    if (i < s->n)
        a = s->alphas_cumprod[(int64_t)s->timesteps[i]];
    else
        a = s->p.kind == SCHED_DDPM ? 1.0f : s->final_alpha_cumprod;
    return sqrtf((1.0f - a) / a);
}

void sched_scale_model_input(const sched_state *s, int i, float *x_inout, int64_t n) {
    CS_ASSERT(i >= 0 && i < s->n);
    if (s->ops->scale_model_input) s->ops->scale_model_input(s, i, x_inout, n);
}

bool sched_step_needs_noise(const sched_state *s, int i) {
    CS_ASSERT(i >= 0 && i < s->n);
    return s->ops->needs_noise && s->ops->needs_noise(s, i);
}

int sched_strength_begin(int num_inference_steps, double strength) {
    const double prod = (double)num_inference_steps * strength;
    int init = prod >= (double)num_inference_steps ? num_inference_steps : (int)prod;
    if (init < 0) init = 0;
    return num_inference_steps - init;
}

void sched_begin_at(sched_state *s, int begin) {
    CS_ASSERT(s->next_step == 0 && begin >= 0 && begin < s->n);
    s->next_step = begin;
}

void sched_add_noise(const sched_state *s, int i, const float *x0, const float *noise, float *out,
                     int64_t n) {
    CS_ASSERT(i >= 0 && i < s->n);
    float a, b; /* out = a·x0 + b·noise, float32 as torch forms it */
    if (s->p.kind == SCHED_DPMPP) {
        const float sigma = s->sigmas[i];
        a = 1.0f / sqrtf(sigma * sigma + 1.0f);
        b = sigma * a;
    } else if (s->sigmas) {
        a = 1.0f;
        b = s->sigmas[i];
    } else {
        const float ac = s->alphas_cumprod[(int64_t)s->timesteps[i]];
        a = sqrtf(ac);
        b = sqrtf(1.0f - ac);
    }
    if (a == 1.0f) /* original + noise * sigma: no product on x0 */
        for (int64_t k = 0; k < n; k++) out[k] = x0[k] + noise[k] * b;
    else
        for (int64_t k = 0; k < n; k++) out[k] = a * x0[k] + b * noise[k];
}

void sched_step(sched_state *s, int i, const float *model_output, float *sample_inout,
                const float *noise, float *pred_original_or_NULL) {
    CS_ASSERT(i == s->next_step && i < s->n);
    CS_ASSERT(noise || !sched_step_needs_noise(s, i));
    s->ops->step(s, i, model_output, sample_inout, noise, pred_original_or_NULL);
    s->next_step++;
}
