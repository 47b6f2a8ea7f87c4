/* The "fill" masked content (inpaint_fill.c): unmasked pixels keep their bytes, masked
 * ones take the colours around them (a constant surround gives that constant; between a
 * red and a blue half, the side nearer the red is redder), a fully masked image becomes
 * black, and the latent fills replace exactly the masked cells. */
#include "check.h"
#include "cfgserve/cfgserve.h"
#include "inpaint_fill.h"

#include <stdlib.h>

enum { W = 96, H = 64 };

static uint8_t g_rgb[W * H * 3], g_mask[W * H], g_out[W * H * 3];

static void test_keeps_unmasked_and_fills_masked(void) {
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            uint8_t *p = &g_rgb[(y * W + x) * 3];
            p[0] = x < W / 2 ? 230 : 10, p[1] = 40, p[2] = x < W / 2 ? 10 : 230;
            /* a band across the middle, with a soft edge */
            const int d = abs(x - W / 2);
            g_mask[y * W + x] = d < 12 ? 255 : d < 14 ? 128 : 0;
        }
    CHECK(inpaint_fill_image(g_rgb, g_mask, W, H, g_out));
    int64_t kept_changed = 0;
    for (int q = 0; q < W * H; q++)
        if (!g_mask[q]) kept_changed += memcmp(&g_rgb[q * 3], &g_out[q * 3], 3) != 0;
    CHECK_EQ_INT(kept_changed, 0);
    const uint8_t *left = &g_out[(H / 2 * W + W / 2 - 8) * 3], *right = &g_out[(H / 2 * W + W / 2 + 7) * 3];
    CHECK(left[0] > left[2] + 40);  /* nearer the red half: red */
    CHECK(right[2] > right[0] + 40); /* nearer the blue half: blue */
    CHECK(abs(left[1] - 40) <= 2 && abs(right[1] - 40) <= 2);
    /* A masked pixel is a mix of surround colours, never outside their range. */
    for (int q = 0; q < W * H; q++)
        if (g_mask[q] == 255) CHECK(g_out[q * 3] >= 9 && g_out[q * 3] <= 231);
}

static void test_constant_surround(void) {
    for (int q = 0; q < W * H; q++) {
        g_rgb[q * 3] = 17, g_rgb[q * 3 + 1] = 200, g_rgb[q * 3 + 2] = 99;
        const int x = q % W, y = q / W;
        g_mask[q] = (x > 20 && x < 60 && y > 5 && y < 50) ? 255 : 0;
        if (g_mask[q]) g_rgb[q * 3] = 255, g_rgb[q * 3 + 1] = 0, g_rgb[q * 3 + 2] = 0; /* hidden */
    }
    CHECK(inpaint_fill_image(g_rgb, g_mask, W, H, g_out));
    int worst = 0;
    for (int q = 0; q < W * H; q++) {
        const int d = abs(g_out[q * 3] - 17) + abs(g_out[q * 3 + 1] - 200) + abs(g_out[q * 3 + 2] - 99);
        worst = d > worst ? d : worst;
    }
    CHECK(worst <= 3); /* the hidden red never leaks out */
    memset(g_mask, 255, sizeof g_mask);
    CHECK(inpaint_fill_image(g_rgb, g_mask, W, H, g_out));
    int nonzero = 0;
    for (int i = 0; i < W * H * 3; i++) nonzero += g_out[i] != 0;
    CHECK_EQ_INT(nonzero, 0);
}

static void test_latent_fills(void) {
    enum { C = 2, CELLS = 6 };
    const float mask[CELLS] = {0, 1, 0, 1, 1, 0};
    float noise[C * CELLS], init[C * CELLS], orig[C * CELLS];
    for (int k = 0; k < C * CELLS; k++) orig[k] = (float)k + 0.5f, noise[k] = -(float)k - 1;
    for (int fill = CS_FILL_ORIGINAL; fill <= CS_FILL_LATENT_NOTHING; fill++) {
        memcpy(init, orig, sizeof init);
        inpaint_fill_latents(fill, init, noise, mask, C, CELLS);
        for (int k = 0; k < C * CELLS; k++) {
            const bool masked = mask[k % CELLS] > 0;
            const float want = !masked || fill == CS_FILL_ORIGINAL || fill == CS_FILL_BLUR ? orig[k]
                               : fill == CS_FILL_LATENT_NOISE                          ? noise[k]
                                                                                       : 0.0f;
            CHECK(init[k] == want);
        }
    }
}

int main(void) {
    test_keeps_unmasked_and_fills_masked();
    test_constant_surround();
    test_latent_fills();
    CHECK_DONE();
}
