/*
 * PNDM (Liu et al. 2022), diffusers PNDMScheduler 0.27.2: pseudo Runge-Kutta warm-up
 * steps (unless skip_prk_steps), then pseudo linear multistep (PLMS) steps.
 *
 * With skip_prk_steps, N steps give N + 1 timesteps: the second timestep is repeated,
 * and the step there redoes the first step from its starting sample with the mean of
 * both noise estimates (a Heun-like start for the multistep history). Float32 in
 * diffusers' order of operations.
 *
 * Buffers: 0-3 the last four model outputs (ets, oldest first), 4 cur_sample,
 * 5 the combined model output of the current step.
 */
#include "sampler.h"

#include <string.h>

enum { ETS = 0, CUR_SAMPLE = 4, COMBINED = 5 };

static cs_status pndm_setup(sched_state *s, char *msg, size_t n) {
    const int N = s->num_inference_steps;
    const int64_t T = s->p.num_train_timesteps;
    double *d = cs_malloc(((size_t)N + 1) * sizeof *d); /* the spacing rule, descending */
    if (!d) return cs_errf(CS_ERR_NOMEM, msg, n, "out of memory");
    int L;
    sched_int_timesteps(&s->p, N, d, N + 1, &L);
    cs_status st;
    if (s->p.skip_prk_steps) {
        /* concat(_t[:-1], _t[-2:-1], _t[-1:])[::-1]: d0, d1, d1, d2, ... */
        st = sched_alloc_steps(s, L >= 2 ? L + 1 : L, false, msg, n);
        if (st == CS_OK) {
            s->timesteps[0] = d[0];
            for (int i = 1; i < L; i++)
                s->timesteps[i + 1] = d[i];
            if (L >= 2) s->timesteps[1] = d[1];
        }
    } else if (L < 4) {
        st = cs_errf(CS_ERR_UNSUPPORTED, msg, n,
                     "PNDM with Runge-Kutta steps (skip_prk_steps false) needs at least 4 "
                     "steps, not %d",
                     N);
    } else {
        /* prk = (repeat(_t[-4:], 2) + tile([0, T//N//2], 4))[:-1].repeat(2)[1:-1][::-1],
         * then plms = _t[:-3][::-1]. With a < b < c < dd the last four: dd, c+h, c+h, c,
         * c, b+h, b+h, b, b, a+h, a+h, a, then a and the earlier ones descending. */
        const double h = (double)(T / N / 2);
        st = sched_alloc_steps(s, L + 9, false, msg, n);
        if (st == CS_OK) {
            const double dd = d[0], c = d[1], b = d[2], a = d[3];
            const double prk[12] = {dd, c + h, c + h, c, c, b + h, b + h, b, b, a + h, a + h, a};
            memcpy(s->timesteps, prk, sizeof prk);
            for (int i = 3; i < L; i++)
                s->timesteps[12 + i - 3] = d[i];
        }
    }
    free(d);
    if (st == CS_OK) st = sched_check_index_timesteps(s, msg, n);
    if (st == CS_OK) st = sched_alloc_bufs(s, 6, msg, n);
    return st;
}

/* _get_prev_sample (formula (9) of the paper): out = x_{t_prev} from sample at t and the
 * combined model output mo. x0_out (optional) gets the implied x_0. */
static void prev_sample(const sched_state *s, int64_t t, int64_t prev_t, const float *sample,
                        const float *mo, float *out, float *x0_out) {
    const float a_t = s->alphas_cumprod[t];
    const float a_prev = prev_t >= 0 ? s->alphas_cumprod[prev_t] : s->final_alpha_cumprod;
    const float b_t = 1.0f - a_t, b_prev = 1.0f - a_prev;
    const float sa = sqrtf(a_t), sb = sqrtf(b_t);
    const float sample_coeff = sqrtf(a_prev / a_t);
    const float denom = a_t * sqrtf(b_prev) + sqrtf(a_t * b_t * a_prev);
    const float diff = a_prev - a_t;
    const bool v = s->p.prediction_type == PRED_V;
    for (int64_t k = 0; k < s->numel; k++) {
        const float x = sample[k];
        const float eps = v ? sa * mo[k] + sb * x : mo[k];
        if (x0_out) x0_out[k] = (x - sb * eps) / sa;
        out[k] = sample_coeff * x - diff * eps / denom;
    }
}

/* self.ets = self.ets[-3:]; self.ets.append(model_output) */
static void push_ets(sched_state *s, const float *mo) {
    if (s->count == 4) {
        float *oldest = s->buf[ETS];
        memmove(&s->buf[ETS], &s->buf[ETS + 1], 3 * sizeof s->buf[0]);
        s->buf[ETS + 3] = oldest;
        s->count = 3;
    }
    memcpy(s->buf[ETS + s->count++], mo, (size_t)s->numel * sizeof *mo);
}

static void step_prk(sched_state *s, int i, const float *mo, float *x, float *x0) {
    const int64_t T = s->p.num_train_timesteps, N = s->num_inference_steps;
    const int c = s->counter;
    const int64_t prev_t = (int64_t)s->timesteps[i] - (c % 2 ? 0 : T / N / 2);
    const int64_t t = (int64_t)s->timesteps[c / 4 * 4];
    float *cur = s->buf[COMBINED], *cur_sample = s->buf[CUR_SAMPLE];
    const float *use = mo;
    const int64_t numel = s->numel;
    if (c % 4 == 0) {
        for (int64_t k = 0; k < numel; k++)
            cur[k] = (float)(1.0 / 6) * mo[k];
        push_ets(s, mo);
        memcpy(cur_sample, x, (size_t)numel * sizeof *x);
    } else if (c % 4 != 3) {
        for (int64_t k = 0; k < numel; k++)
            cur[k] = cur[k] + (float)(1.0 / 3) * mo[k];
    } else {
        for (int64_t k = 0; k < numel; k++)
            cur[k] = cur[k] + (float)(1.0 / 6) * mo[k];
        use = cur;
    }
    prev_sample(s, t, prev_t, cur_sample, use, x, x0);
}

static void step_plms(sched_state *s, int i, const float *mo, float *x, float *x0) {
    const int64_t ratio = s->p.num_train_timesteps / s->num_inference_steps;
    const int c = s->counter;
    int64_t t = (int64_t)s->timesteps[i], prev_t = t - ratio;
    if (c != 1) {
        push_ets(s, mo);
    } else {
        prev_t = t;
        t = t + ratio;
    }
    const float *const *e = (const float *const *)&s->buf[ETS];
    const int m = s->count;
    float *comb = s->buf[COMBINED];
    const float *sample = x;
    const int64_t numel = s->numel;
    if (m == 1 && c == 0) {
        memcpy(s->buf[CUR_SAMPLE], x, (size_t)numel * sizeof *x);
        memcpy(comb, mo, (size_t)numel * sizeof *mo);
    } else if (m == 1 && c == 1) {
        for (int64_t k = 0; k < numel; k++)
            comb[k] = (mo[k] + e[0][k]) / 2;
        sample = s->buf[CUR_SAMPLE];
    } else if (m == 2) {
        for (int64_t k = 0; k < numel; k++)
            comb[k] = (3 * e[1][k] - e[0][k]) / 2;
    } else if (m == 3) {
        for (int64_t k = 0; k < numel; k++)
            comb[k] = (23 * e[2][k] - 16 * e[1][k] + 5 * e[0][k]) / 12;
    } else {
        for (int64_t k = 0; k < numel; k++)
            comb[k] =
                (float)(1.0 / 24) * (55 * e[3][k] - 59 * e[2][k] + 37 * e[1][k] - 9 * e[0][k]);
    }
    prev_sample(s, t, prev_t, sample, comb, x, x0);
}

static void pndm_step(sched_state *s, int i, const float *mo, float *x, const float *noise,
                      float *x0) {
    if (!s->p.skip_prk_steps && s->counter < 12)
        step_prk(s, i, mo, x, x0);
    else
        step_plms(s, i, mo, x, x0);
    s->counter++;
}

const sampler_ops sampler_pndm_ops = {SCHED_PNDM, pndm_setup, NULL, NULL, pndm_step};
