/*
 * Reference twins of the matrix and normalisation kernels: the definitions written as
 * plain loops with double accumulation, no BLAS, no scratch, no chunking. Slow on
 * purpose; the unit tests compare the fast kernels against these on odd shapes.
 */
#include "ops.h"

#include <math.h>
#include <stdlib.h>

void op_linear_ref(float *y, const float *x, const float *w, const float *b, int64_t rows,
                   int64_t in, int64_t out) {
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t o = 0; o < out; o++) {
            double acc = b ? (double)b[o] : 0.0;
            for (int64_t i = 0; i < in; i++)
                acc += (double)x[r * in + i] * (double)w[o * in + i];
            y[r * out + o] = (float)acc;
        }
    }
}

double op_conv2d_ref_at(const float *x, const float *w, const float *b, const op_conv2d_shape *s,
                        int64_t n, int64_t co, int64_t oh, int64_t ow) {
    const int64_t k = s->kernel;
    double acc = b ? (double)b[co] : 0.0;
    for (int64_t ci = 0; ci < s->in_ch; ci++) {
        for (int64_t kh = 0; kh < k; kh++) {
            int64_t ih = oh * s->stride - s->pad_top + kh;
            if (ih < 0 || ih >= s->height) continue;
            for (int64_t kw = 0; kw < k; kw++) {
                int64_t iw = ow * s->stride - s->pad_left + kw;
                if (iw < 0 || iw >= s->width) continue;
                double xv = x[((n * s->in_ch + ci) * s->height + ih) * s->width + iw];
                double wv = w[((co * s->in_ch + ci) * k + kh) * k + kw];
                acc += xv * wv;
            }
        }
    }
    return acc;
}

void op_conv2d_ref(float *y, const float *x, const float *w, const float *b,
                   const op_conv2d_shape *s) {
    const int64_t ho = op_conv2d_out_h(s), wo = op_conv2d_out_w(s);
    for (int64_t n = 0; n < s->batch; n++)
        for (int64_t co = 0; co < s->out_ch; co++)
            for (int64_t oh = 0; oh < ho; oh++)
                for (int64_t ow = 0; ow < wo; ow++)
                    y[((n * s->out_ch + co) * ho + oh) * wo + ow] =
                        (float)op_conv2d_ref_at(x, w, b, s, n, co, oh, ow);
}

void op_attention_ref(float *out, const float *q, const float *k, const float *v,
                      const op_attn_shape *s) {
    const int64_t lq = s->q_len, lk = s->kv_len, hd = s->head_dim;
    double *p = malloc((size_t)(lk > 0 ? lk : 1) * sizeof(double));
    CS_ASSERT(p);
    for (int64_t b = 0; b < s->batch; b++) {
        for (int64_t h = 0; h < s->heads; h++) {
            for (int64_t i = 0; i < lq; i++) {
                const float *qi = q + (b * lq + i) * s->q_stride + h * hd;
                const int64_t visible = s->causal && i + 1 < lk ? i + 1 : lk;
                double mx = -INFINITY;
                for (int64_t j = 0; j < visible; j++) {
                    const float *kj = k + (b * lk + j) * s->kv_stride + h * hd;
                    double dot = 0.0;
                    for (int64_t d = 0; d < hd; d++)
                        dot += (double)qi[d] * (double)kj[d];
                    p[j] = dot * (double)s->scale;
                    if (p[j] > mx) mx = p[j];
                }
                double sum = 0.0;
                for (int64_t j = 0; j < visible; j++) {
                    p[j] = exp(p[j] - mx);
                    sum += p[j];
                }
                float *oi = out + (b * lq + i) * s->out_stride + h * hd;
                for (int64_t d = 0; d < hd; d++) {
                    double acc = 0.0;
                    for (int64_t j = 0; j < visible; j++)
                        acc += p[j] * (double)v[(b * lk + j) * s->kv_stride + h * hd + d];
                    oi[d] = (float)(acc / sum);
                }
            }
        }
    }
    free(p);
}

void op_group_norm_ref(float *y, const float *x, const float *gamma, const float *beta,
                       int64_t batch, int64_t channels, int64_t hw, int64_t groups, float eps) {
    const int64_t cg = channels / groups, n = cg * hw;
    for (int64_t b = 0; b < batch; b++) {
        for (int64_t g = 0; g < groups; g++) {
            const float *xg = x + (b * channels + g * cg) * hw;
            double mean = 0.0, var = 0.0;
            for (int64_t i = 0; i < n; i++)
                mean += xg[i];
            mean /= (double)n;
            for (int64_t i = 0; i < n; i++)
                var += ((double)xg[i] - mean) * ((double)xg[i] - mean);
            var /= (double)n;
            const double rstd = 1.0 / sqrt(var + (double)eps);
            for (int64_t i = 0; i < n; i++) {
                const int64_t ch = g * cg + i / hw;
                double v = ((double)xg[i] - mean) * rstd;
                if (gamma) v *= gamma[ch];
                if (beta) v += beta[ch];
                y[(b * channels + g * cg) * hw + i] = (float)v;
            }
        }
    }
}

void op_layer_norm_ref(float *y, const float *x, const float *gamma, const float *beta,
                       int64_t rows, int64_t dim, float eps) {
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * dim;
        double mean = 0.0, var = 0.0;
        for (int64_t j = 0; j < dim; j++)
            mean += xr[j];
        mean /= (double)dim;
        for (int64_t j = 0; j < dim; j++)
            var += ((double)xr[j] - mean) * ((double)xr[j] - mean);
        var /= (double)dim;
        const double rstd = 1.0 / sqrt(var + (double)eps);
        for (int64_t j = 0; j < dim; j++) {
            double v = ((double)xr[j] - mean) * rstd;
            if (gamma) v *= gamma[j];
            if (beta) v += beta[j];
            y[r * dim + j] = (float)v;
        }
    }
}
