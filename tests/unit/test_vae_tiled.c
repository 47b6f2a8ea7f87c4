/* Tiled VAE decoding against a plain re-statement of diffusers' tiled_decode: every tile
 * decoded and held, then blended in place row by row (vertical over the tile above, then
 * horizontal over the tile to the left, both already blended) and the kept corners
 * concatenated. The engine keeps only two rows of tiles; the results must agree to the
 * bit. Also: a latent no larger than the tile decodes exactly as without tiling, and the
 * arena plan covers the largest tile. */
#include "check.h"
#include "vae.h"

#include <stdlib.h>

static const char *const k_tiny =
    "{\"_class_name\": \"AutoencoderKL\", \"act_fn\": \"silu\", \"block_out_channels\": [32, 64], "
    "\"down_block_types\": [\"DownEncoderBlock2D\", \"DownEncoderBlock2D\"], \"up_block_types\": "
    "[\"UpDecoderBlock2D\", \"UpDecoderBlock2D\"], \"in_channels\": 3, \"latent_channels\": 4, "
    "\"layers_per_block\": 1, \"norm_num_groups\": 32, \"out_channels\": 3, \"sample_size\": 32, "
    "\"scaling_factor\": 0.18215}";

static float *random_latent(int64_t n, uint32_t seed) {
    float *x = malloc((size_t)n * sizeof *x);
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = (float)((seed >> 8) / 16777216.0 * 4.0 - 2.0);
    }
    return x;
}

/* vae_decode of one (C, h, w) latent into a fresh buffer. */
static float *decode_plain(const vae_model *m, const float *lat, int64_t h, int64_t w) {
    const int64_t f = vae_scale_factor(m);
    cs_ctx c;
    CHECK(ctx_init(&c, vae_decode_activation_bytes(m, 1, h, w)) == CS_OK);
    float *img = malloc((size_t)(3 * h * f * w * f) * sizeof *img);
    vae_decode(&c, m, img, lat, 1, h, w);
    ctx_deinit(&c);
    return img;
}

typedef struct tile {
    float *px; /* (3, ph, pw) */
    int64_t ph, pw;
} tile;

/* diffusers' tiled_decode with tile_latent_min_size = t, overlap factor 1/4. */
static float *decode_reference(const vae_model *m, const float *lat, int64_t h, int64_t w,
                               int64_t t) {
    const int64_t f = vae_scale_factor(m), lc = vae_latent_channels(m);
    const int64_t overlap = (int64_t)(t * (1 - 0.25)), blend = (int64_t)(t * f * 0.25);
    const int64_t limit = t * f - blend;
    const int64_t rows = (h + overlap - 1) / overlap, cols = (w + overlap - 1) / overlap;
    tile *tiles = calloc((size_t)(rows * cols), sizeof *tiles);
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++) {
            const int64_t y0 = i * overlap, x0 = j * overlap;
            const int64_t lh = h - y0 < t ? h - y0 : t, lw = w - x0 < t ? w - x0 : t;
            float *slice = malloc((size_t)(lc * lh * lw) * sizeof *slice);
            for (int64_t ch = 0; ch < lc; ch++)
                for (int64_t y = 0; y < lh; y++)
                    for (int64_t x = 0; x < lw; x++)
                        slice[(ch * lh + y) * lw + x] = lat[(ch * h + y0 + y) * w + x0 + x];
            tiles[i * cols + j] = (tile){decode_plain(m, slice, lh, lw), lh * f, lw * f};
            free(slice);
        }
    float *out = malloc((size_t)(3 * h * f * w * f) * sizeof *out);
    int64_t oy = 0;
    for (int64_t i = 0; i < rows; i++) {
        int64_t ox = 0, kept_h = 0;
        for (int64_t j = 0; j < cols; j++) {
            tile *b = &tiles[i * cols + j];
            if (i > 0) { /* blend_v(rows[i-1][j], tile) */
                const tile *a = &tiles[(i - 1) * cols + j];
                int64_t e = blend < a->ph ? blend : a->ph;
                e = e < b->ph ? e : b->ph;
                for (int64_t ch = 0; ch < 3; ch++)
                    for (int64_t y = 0; y < e; y++)
                        for (int64_t x = 0; x < b->pw; x++) {
                            float *bv = &b->px[(ch * b->ph + y) * b->pw + x];
                            const float av = a->px[(ch * a->ph + a->ph - e + y) * a->pw + x];
                            *bv = av * (float)(1 - (double)y / e) + *bv * (float)((double)y / e);
                        }
            }
            if (j > 0) { /* blend_h(row[j-1], tile) */
                const tile *a = &tiles[i * cols + j - 1];
                int64_t e = blend < a->pw ? blend : a->pw;
                e = e < b->pw ? e : b->pw;
                for (int64_t ch = 0; ch < 3; ch++)
                    for (int64_t y = 0; y < b->ph; y++)
                        for (int64_t x = 0; x < e; x++) {
                            float *bv = &b->px[(ch * b->ph + y) * b->pw + x];
                            const float av = a->px[(ch * a->ph + y) * a->pw + a->pw - e + x];
                            *bv = av * (float)(1 - (double)x / e) + *bv * (float)((double)x / e);
                        }
            }
            const int64_t kh = b->ph < limit ? b->ph : limit, kw = b->pw < limit ? b->pw : limit;
            for (int64_t ch = 0; ch < 3; ch++)
                for (int64_t y = 0; y < kh; y++)
                    for (int64_t x = 0; x < kw; x++)
                        out[(ch * h * f + oy + y) * w * f + ox + x] = b->px[(ch * b->ph + y) * b->pw + x];
            ox += kw;
            kept_h = kh;
        }
        CHECK_EQ_INT(ox, w * f);
        oy += kept_h;
    }
    CHECK_EQ_INT(oy, h * f);
    for (int64_t i = 0; i < rows * cols; i++) free(tiles[i].px);
    free(tiles);
    return out;
}

static int64_t count_differences(const float *a, const float *b, int64_t n) {
    int64_t d = 0;
    for (int64_t i = 0; i < n; i++) d += memcmp(&a[i], &b[i], sizeof a[i]) != 0;
    return d;
}

static void check_tiled(const vae_model *m, int64_t h, int64_t w, int64_t t, bool expect_tiling) {
    const int64_t f = vae_scale_factor(m), n = 3 * h * f * w * f;
    CHECK(vae_tiling_applies(t, h, w) == expect_tiling);
    float *lat = random_latent(vae_latent_channels(m) * h * w, (uint32_t)(h * 131 + w * 7 + t));
    cs_ctx c;
    CHECK(ctx_init(&c, vae_decode_tiled_bytes(m, h, w, t)) == CS_OK);
    float *got = malloc((size_t)n * sizeof *got);
    vae_decode_tiled(&c, m, got, lat, h, w, t);
    CHECK(c.peak <= c.cap);
    float *want = expect_tiling ? decode_reference(m, lat, h, w, t) : decode_plain(m, lat, h, w);
    const int64_t diff = count_differences(got, want, n);
    if (diff) fprintf(stderr, "latent %lldx%lld tile %lld: %lld values differ\n", (long long)h,
                      (long long)w, (long long)t, (long long)diff);
    CHECK_EQ_INT(diff, 0);
    if (expect_tiling) { /* tiling changes the image (the seams are blended), but not by much */
        float *plain = decode_plain(m, lat, h, w);
        CHECK(count_differences(got, plain, n) > 0);
        free(plain);
        /* Memory follows the tile: the plan is below an untiled decode of the image. */
        CHECK(vae_decode_tiled_bytes(m, h, w, t) < vae_decode_activation_bytes(m, 1, h, w));
    }
    ctx_deinit(&c);
    free(got), free(want), free(lat);
}

int main(void) {
    char msg[512];
    vae_config cfg;
    CHECK_EQ_INT(vae_read_config_src("tiny", k_tiny, &cfg, msg, sizeof msg), CS_OK);
    vae_model *m = NULL;
    CHECK_EQ_INT(vae_new_random(&cfg, 7, &m, msg, sizeof msg), CS_OK);
    if (!m) return 1;
    check_tiled(m, 8, 8, 8, false);   /* the latent fits one tile: plain decode */
    check_tiled(m, 12, 8, 0, false);  /* tiling off */
    check_tiled(m, 20, 12, 8, true);  /* 4 × 2 tiles, a short last row */
    check_tiled(m, 8, 20, 8, true);   /* one row, wider than the tile */
    check_tiled(m, 16, 16, 12, true); /* stride 9: the last tile 7 wide */
    vae_free(m);
    CHECK_DONE();
}
