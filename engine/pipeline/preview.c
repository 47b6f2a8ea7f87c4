/* Step previews: the latent -> RGB map and its fit (see preview.h). */
#include "preview.h"

#include <math.h>
#include <string.h>

#include "png_encode.h"
#include "rng.h"
#include "session.h"

/* Seeds of the fit's latents: fixed, so every run fits the same map. */
#define PREVIEW_FIT_SEED 0x70726576696577ull

void preview_cell(const float *map, int64_t channels, const float *z, int64_t stride,
                  float rgb[3]) {
    for (int c = 0; c < 3; c++) {
        const float *w = map + c * (channels + 1);
        float v = w[channels];
        for (int64_t k = 0; k < channels; k++) v += w[k] * z[k * stride];
        rgb[c] = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
    }
}

void preview_size(int64_t width, int64_t height, int *pw, int *ph) {
    const int64_t side = width > height ? width : height;
    const double scale = side > CS_PREVIEW_MAX_SIDE ? (double)CS_PREVIEW_MAX_SIDE / side : 1.0;
    *pw = (int)lround((double)width * scale);
    *ph = (int)lround((double)height * scale);
    if (*pw < 1) *pw = 1;
    if (*ph < 1) *ph = 1;
}

/* A colour channel value from u ~ U(0, 1) and a selector: half the time a corner of the
 * colour cube (saturated colours, black, white: where the VAE is least linear), else
 * anywhere. */
static float fit_colour(float u, float pick, float corner) {
    return pick < 0.5f ? (corner < 0.5f ? 0.0f : 1.0f) : u;
}

/* Fit image `sample` (H × W RGB8): a PREVIEW_COARSE² grid of random colours upsampled
 * bilinearly, with PREVIEW_FIT_RECTS solid random rectangles on top: flat regions,
 * gradients and edges over the whole colour cube. */
static void fit_image(int sample, int64_t H, int64_t W, uint8_t *rgb) {
    enum { G = PREVIEW_COARSE, R = PREVIEW_FIT_RECTS, GRID = G * G, K = (GRID + R) * 5 + R * 4 };
    float u[K];
    rng_normal_fill(PREVIEW_FIT_SEED + (uint64_t)sample, RNG_STREAM_LATENTS, 0, u, K);
    for (int k = 0; k < K; k++) u[k] = 0.5f * (1.0f + erff(u[k] * (float)M_SQRT1_2)); /* U(0, 1) */
    float col[GRID + R][3]; /* grid colours, then rectangle colours */
    for (int i = 0; i < GRID + R; i++)
        for (int c = 0; c < 3; c++) col[i][c] = fit_colour(u[5 * i + c], u[5 * i + 3],
                                                           c == 0 ? u[5 * i + 4]
                                                                  : u[5 * i + (c + 3) % 5]);
    const float *geom = u + (GRID + R) * 5;
    for (int64_t y = 0; y < H; y++)
        for (int64_t x = 0; x < W; x++) {
            const double fy = (double)y * (G - 1) / (double)(H > 1 ? H - 1 : 1);
            const double fx = (double)x * (G - 1) / (double)(W > 1 ? W - 1 : 1);
            const int y0 = (int)fy, x0 = (int)fx;
            const int y1 = y0 + 1 < G ? y0 + 1 : y0, x1 = x0 + 1 < G ? x0 + 1 : x0;
            const double ty = fy - y0, tx = fx - x0;
            float v[3];
            for (int c = 0; c < 3; c++)
                v[c] = (float)((1 - ty) * ((1 - tx) * col[y0 * G + x0][c] + tx * col[y0 * G + x1][c]) +
                               ty * ((1 - tx) * col[y1 * G + x0][c] + tx * col[y1 * G + x1][c]));
            for (int r = 0; r < R; r++) {
                const float *g = geom + 4 * r;
                const int64_t rx0 = (int64_t)(g[0] * (float)W * 0.75f);
                const int64_t ry0 = (int64_t)(g[1] * (float)H * 0.75f);
                if (x >= rx0 && y >= ry0 && x < rx0 + 2 + (int64_t)(g[2] * (float)W / 2) &&
                    y < ry0 + 2 + (int64_t)(g[3] * (float)H / 2))
                    memcpy(v, col[GRID + r], sizeof v);
            }
            for (int c = 0; c < 3; c++) rgb[(y * W + x) * 3 + c] = (uint8_t)lrintf(v[c] * 255.0f);
        }
}

cs_status preview_fit_latent(cs_session *s, int sample, int64_t h, int64_t w, float *z) {
    const cs_model *m = session_model(s);
    const int64_t f = m->vae_factor, C = m->latent_channels;
    uint8_t *rgb = cs_malloc((size_t)(h * f * w * f * 3));
    float *logvar = cs_malloc((size_t)(C * h * w) * sizeof *logvar);
    if (!rgb || !logvar) {
        free(rgb), free(logvar);
        return CS_ERR_NOMEM;
    }
    fit_image(sample, h * f, w * f, rgb);
    session_encode_image(s, rgb, NULL, h * f, w * f, z, logvar);
    const float sf = vae_scaling_factor(m->vae);
    for (int64_t q = 0; q < C * h * w; q++) z[q] *= sf; /* the sampler's latent space */
    free(rgb);
    free(logvar);
    return CS_OK;
}

/* Solves A x = b (n × n, n <= 17) by Gaussian elimination with partial pivoting, in place;
 * false when A is singular. */
static bool solve(double *A, double *b, int n) {
    for (int col = 0; col < n; col++) {
        int piv = col;
        for (int r = col + 1; r < n; r++)
            if (fabs(A[r * n + col]) > fabs(A[piv * n + col])) piv = r;
        if (fabs(A[piv * n + col]) < 1e-12) return false;
        if (piv != col) {
            for (int k = 0; k < n; k++) {
                const double t = A[col * n + k];
                A[col * n + k] = A[piv * n + k];
                A[piv * n + k] = t;
            }
            const double t = b[col];
            b[col] = b[piv];
            b[piv] = t;
        }
        for (int r = col + 1; r < n; r++) {
            const double f = A[r * n + col] / A[col * n + col];
            for (int k = col; k < n; k++) A[r * n + k] -= f * A[col * n + k];
            b[r] -= f * b[col];
        }
    }
    for (int r = n - 1; r >= 0; r--) {
        double v = b[r];
        for (int k = r + 1; k < n; k++) v -= A[r * n + k] * b[k];
        b[r] = v / A[r * n + r];
    }
    return true;
}

enum { MAX_FIT_CHANNELS = 16 };

/* Fits the (3, C + 1) map in s (see preview.h). */
static cs_status fit(cs_session *s, float *map, char *msg, size_t n) {
    const cs_model *m = session_model(s);
    const int64_t C = m->latent_channels, f = m->vae_factor, P = C + 1;
    if (C > MAX_FIT_CHANNELS)
        return cs_errf(CS_ERR_UNSUPPORTED, msg, n, "previews support up to %d latent channels "
                       "(this model has %lld)", MAX_FIT_CHANNELS, (long long)C);
    int64_t h, w;
    session_max_latent(s, &h, &w);
    if (h > PREVIEW_FIT_SIDE) h = PREVIEW_FIT_SIDE;
    if (w > PREVIEW_FIT_SIDE) w = PREVIEW_FIT_SIDE;
    const int64_t cells = h * w, H = h * f, W = w * f;
    float *z = cs_malloc((size_t)(C * cells) * sizeof *z);
    float *scaled = cs_malloc((size_t)(C * cells) * sizeof *scaled);
    if (!z || !scaled) {
        free(z), free(scaled);
        return cs_errf(CS_ERR_NOMEM, msg, n, "out of memory fitting the preview map");
    }
    double A[(MAX_FIT_CHANNELS + 1) * (MAX_FIT_CHANNELS + 1)] = {0};
    double B[3][MAX_FIT_CHANNELS + 1] = {{0}};
    const float sf = vae_scaling_factor(m->vae);
    for (int k = 0; k < PREVIEW_FIT_SAMPLES; k++) {
        if (preview_fit_latent(s, k, h, w, z) != CS_OK) {
            free(z), free(scaled);
            return cs_errf(CS_ERR_NOMEM, msg, n, "out of memory fitting the preview map");
        }
        for (int64_t q = 0; q < C * cells; q++) scaled[q] = z[q] / sf; /* as cs_decode */
        const float *img = session_decode_one(s, scaled, h, w); // (3, H, W)
        for (int64_t y = 0; y < h; y++)
            for (int64_t x = 0; x < w; x++) {
                double feat[MAX_FIT_CHANNELS + 1];
                for (int64_t c = 0; c < C; c++) feat[c] = z[(c * h + y) * w + x];
                feat[C] = 1.0;
                for (int64_t a = 0; a < P; a++)
                    for (int64_t b = 0; b < P; b++) A[a * P + b] += feat[a] * feat[b];
                for (int c = 0; c < 3; c++) { /* the cell's mean colour in [0, 1] */
                    double t = 0;
                    for (int64_t dy = 0; dy < f; dy++)
                        for (int64_t dx = 0; dx < f; dx++) {
                            const float v = img[(c * H + y * f + dy) * W + x * f + dx] / 2 + 0.5f;
                            t += v < 0 ? 0 : v > 1 ? 1 : v;
                        }
                    t /= (double)(f * f);
                    for (int64_t a = 0; a < P; a++) B[c][a] += feat[a] * t;
                }
            }
    }
    free(z), free(scaled);
    const double ridge = 1e-6 * (double)(PREVIEW_FIT_SAMPLES * cells);
    for (int c = 0; c < 3; c++) {
        double AA[(MAX_FIT_CHANNELS + 1) * (MAX_FIT_CHANNELS + 1)];
        memcpy(AA, A, sizeof AA);
        for (int64_t a = 0; a < C; a++) AA[a * P + a] += ridge;
        if (!solve(AA, B[c], (int)P))
            return cs_errf(CS_ERR_INTERNAL, msg, n, "the preview map's fit is singular");
        for (int64_t a = 0; a < P; a++) map[c * P + a] = (float)B[c][a];
    }
    return CS_OK;
}

cs_status preview_map(cs_session *s, const float **out, char *msg, size_t n) {
    /* The map is the model's one lazily written field: set once under its lock. */
    cs_model *m = (cs_model *)session_model(s);
    cs_status st = CS_OK;
    pthread_mutex_lock(&m->preview_lock);
    if (!m->preview_map) {
        float *map = cs_malloc((size_t)(3 * (m->latent_channels + 1)) * sizeof *map);
        st = map ? fit(s, map, msg, n)
                 : cs_errf(CS_ERR_NOMEM, msg, n, "out of memory for the preview map");
        if (st == CS_OK) {
            m->preview_map = map;
            cs_log(CS_LOG_INFO, "preview: fitted the latent -> RGB map of %s on %d VAE decodes",
                   m->name, PREVIEW_FIT_SAMPLES);
        } else {
            free(map);
        }
    }
    *out = m->preview_map;
    pthread_mutex_unlock(&m->preview_lock);
    return st;
}

cs_status cs_job_preview(cs_session *s, const cs_job *j, int image, uint8_t **rgb, int *width,
                         int *height, char *msg, size_t n) {
    *rgb = NULL;
    if (j->model != session_model(s))
        return cs_errf(CS_ERR_INVALID_ARG, msg, n, "cs_job_preview: the job is for another model");
    if (image < 0 || image >= j->n_images)
        return cs_errf(CS_ERR_INVALID_ARG, msg, n, "cs_job_preview: no image %d (the job has %d)",
                       image, j->n_images);
    const float *map = NULL;
    cs_status st = preview_map(s, &map, msg, n);
    if (st != CS_OK) return st;
    const int64_t C = j->model->latent_channels, h = j->lat_h, w = j->lat_w, cells = h * w;
    int pw, ph;
    preview_size(j->width, j->height, &pw, &ph);
    float *z = cs_malloc((size_t)j->image_numel * sizeof *z);
    float *cell = cs_malloc((size_t)(3 * cells) * sizeof *cell);
    uint8_t *out = cs_malloc((size_t)pw * (size_t)ph * 3);
    if (!z || !cell || !out) {
        free(z), free(cell), free(out);
        return cs_errf(CS_ERR_NOMEM, msg, n, "out of memory for a preview");
    }
    job_x0(j, image, z);
    for (int64_t q = 0; q < cells; q++) preview_cell(map, C, z + q, cells, cell + 3 * q);
    /* Bilinear from cell centres (align_corners = false), edges clamped. */
    for (int y = 0; y < ph; y++) {
        double fy = (y + 0.5) * (double)h / ph - 0.5;
        fy = fy < 0 ? 0 : fy > (double)(h - 1) ? (double)(h - 1) : fy;
        const int64_t y0 = (int64_t)fy, y1 = y0 + 1 < h ? y0 + 1 : y0;
        const float ty = (float)(fy - (double)y0);
        for (int x = 0; x < pw; x++) {
            double fx = (x + 0.5) * (double)w / pw - 0.5;
            fx = fx < 0 ? 0 : fx > (double)(w - 1) ? (double)(w - 1) : fx;
            const int64_t x0 = (int64_t)fx, x1 = x0 + 1 < w ? x0 + 1 : x0;
            const float tx = (float)(fx - (double)x0);
            for (int c = 0; c < 3; c++) {
                const float a = cell[3 * (y0 * w + x0) + c], b = cell[3 * (y0 * w + x1) + c];
                const float d = cell[3 * (y1 * w + x0) + c], e = cell[3 * (y1 * w + x1) + c];
                const float v = (1 - ty) * ((1 - tx) * a + tx * b) + ty * ((1 - tx) * d + tx * e);
                out[((size_t)y * (size_t)pw + (size_t)x) * 3 + c] = (uint8_t)lrintf(v * 255.0f);
            }
        }
    }
    free(z);
    free(cell);
    *rgb = out;
    *width = pw;
    *height = ph;
    return CS_OK;
}

cs_status cs_job_preview_png(cs_session *s, const cs_job *j, int image, uint8_t **png,
                             size_t *len, char *msg, size_t n) {
    *png = NULL;
    uint8_t *rgb;
    int w, h;
    cs_status st = cs_job_preview(s, j, image, &rgb, &w, &h, msg, n);
    if (st != CS_OK) return st;
    st = png_encode_rgb8(rgb, w, h, NULL, 0, png, len, msg, n);
    free(rgb);
    return st;
}
