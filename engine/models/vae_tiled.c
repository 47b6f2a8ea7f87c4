/* Tiled VAE decoding (vae.h): diffusers' AutoencoderKL.tiled_decode, one image at a time. */
#include "vae.h"

#include <string.h>

/* The tile grid of diffusers for a latent side n: tiles start every `stride` latents,
 * each at most `tile` long; the decoded tile keeps its first `keep` pixels (the last of
 * each side keeps what it has). tile is a multiple of 4, so keep == stride · f exactly
 * and the kept parts add up to n · f. */
typedef struct tile_grid {
    int64_t tile, stride, blend, keep, f;
} tile_grid;

static tile_grid grid_of(const vae_model *m, int64_t tile) {
    const int64_t f = vae_scale_factor(m);
    return (tile_grid){.tile = tile,
                       .stride = tile * 3 / 4,
                       .blend = tile * f / 4,
                       .keep = tile * f - tile * f / 4,
                       .f = f};
}

static int64_t tiles_along(const tile_grid *g, int64_t n) { return (n + g->stride - 1) / g->stride; }

static int64_t span(const tile_grid *g, int64_t n, int64_t i) {
    const int64_t start = i * g->stride;
    return n - start < g->tile ? n - start : g->tile;
}

bool vae_tiling_applies(int64_t tile, int64_t h, int64_t w) { return tile > 0 && (h > tile || w > tile); }

size_t vae_decode_tiled_bytes(const vae_model *m, int64_t h, int64_t w, int64_t tile) {
    static float no_data[1];
    cs_ctx c;
    ctx_init_measure(&c);
    vae_decode_tiled(&c, m, no_data, no_data, h, w, tile);
    return c.peak;
}

/* diffusers' blend_v: the first rows of b fade in over the last rows of a (both (3, ·, w)). */
static void blend_v(const float *a, int64_t ah, float *b, int64_t bh, int64_t w, int64_t extent) {
    if (extent > ah) extent = ah;
    if (extent > bh) extent = bh;
    for (int64_t ch = 0; ch < 3; ch++) {
        for (int64_t y = 0; y < extent; y++) {
            const float wb = (float)((double)y / (double)extent), wa = (float)(1.0 - (double)y / (double)extent);
            const float *ar = a + (ch * ah + ah - extent + y) * w;
            float *br = b + (ch * bh + y) * w;
            for (int64_t x = 0; x < w; x++) br[x] = ar[x] * wa + br[x] * wb;
        }
    }
}

/* diffusers' blend_h: the first columns of b fade in over the last columns of a. */
static void blend_h(const float *a, int64_t aw, float *b, int64_t bw, int64_t h, int64_t extent) {
    if (extent > aw) extent = aw;
    if (extent > bw) extent = bw;
    for (int64_t ch = 0; ch < 3; ch++) {
        for (int64_t y = 0; y < h; y++) {
            const float *ar = a + (ch * h + y) * aw;
            float *br = b + (ch * h + y) * bw;
            for (int64_t x = 0; x < extent; x++) {
                const float wb = (float)((double)x / (double)extent);
                const float wa = (float)(1.0 - (double)x / (double)extent);
                br[x] = ar[aw - extent + x] * wa + br[x] * wb;
            }
        }
    }
}

void vae_decode_tiled(cs_ctx *c, const vae_model *m, float *image, const float *latent, int64_t h,
                      int64_t w, int64_t tile) {
    if (!vae_tiling_applies(tile, h, w)) {
        vae_decode(c, m, image, latent, 1, h, w);
        return;
    }
    CS_ASSERT(tile % 4 == 0);
    const tile_grid g = grid_of(m, tile);
    const int64_t rows = tiles_along(&g, h), cols = tiles_along(&g, w);
    const int64_t lat_c = vae_latent_channels(m), H = h * g.f, W = w * g.f;
    const int64_t th_max = h < tile ? h : tile, tw_max = w < tile ? w : tile;
    const int64_t tile_px = 3 * th_max * g.f * tw_max * g.f;
    const size_t mark = ctx_mark(c);
    float *row_a = ctx_alloc(c, cols * tile_px), *row_b = ctx_alloc(c, cols * tile_px);
    float *slice = ctx_alloc(c, lat_c * th_max * tw_max);
    const size_t pass = ctx_mark(c);
    if (c->measuring) { /* the largest tile is the decoder's largest pass */
        ctx_release(c, pass);
        vae_decode(c, m, slice, slice, 1, th_max, tw_max);
        ctx_release(c, mark);
        return;
    }
    float *above = row_a, *cur = row_b; /* decoded (and blended) tiles of row i - 1 and i */
    for (int64_t i = 0; i < rows; i++) {
        const int64_t lh = span(&g, h, i), ph = lh * g.f;
        for (int64_t j = 0; j < cols; j++) {
            const int64_t lw = span(&g, w, j), pw = lw * g.f;
            for (int64_t ch = 0; ch < lat_c; ch++)
                for (int64_t y = 0; y < lh; y++)
                    memcpy(slice + (ch * lh + y) * lw,
                           latent + (ch * h + i * g.stride + y) * w + j * g.stride,
                           (size_t)lw * sizeof(float));
            float *t = cur + j * tile_px;
            ctx_release(c, pass);
            vae_decode(c, m, t, slice, 1, lh, lw);
            /* In diffusers' order: the tile above, then the one to the left, both as
             * already blended themselves. */
            if (i > 0) blend_v(above + j * tile_px, span(&g, h, i - 1) * g.f, t, ph, pw, g.blend);
            if (j > 0) blend_h(cur + (j - 1) * tile_px, span(&g, w, j - 1) * g.f, t, pw, ph, g.blend);
            const int64_t kh = ph < g.keep ? ph : g.keep, kw = pw < g.keep ? pw : g.keep;
            for (int64_t ch = 0; ch < 3; ch++)
                for (int64_t y = 0; y < kh; y++)
                    memcpy(image + (ch * H + i * g.keep + y) * W + j * g.keep, t + (ch * ph + y) * pw,
                           (size_t)kw * sizeof(float));
        }
        float *swap = above;
        above = cur, cur = swap;
    }
    ctx_release(c, mark);
}
