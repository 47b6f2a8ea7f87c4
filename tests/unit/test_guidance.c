/* CFG combination, rescale and interval rules (guidance.h) against hand computations. */
#include "check.h"
#include "guidance.h"

#include <math.h>

int main(void) {
    /* Row selection: s = 1 cond only, s = 0 uncond only, else both; outside the
     * interval cond only; hi <= 0 means no interval. */
    guidance_rows r = guidance_rows_for(7.5, 5.0, 0, 0);
    CHECK(r.cond && r.uncond);
    r = guidance_rows_for(1.0, 5.0, 0, 0);
    CHECK(r.cond && !r.uncond);
    r = guidance_rows_for(0.0, 5.0, 0, 0);
    CHECK(!r.cond && r.uncond);
    r = guidance_rows_for(7.5, 20.0, 0.3, 10.0);
    CHECK(r.cond && !r.uncond);
    r = guidance_rows_for(7.5, 0.1, 0.3, 10.0);
    CHECK(r.cond && !r.uncond);
    r = guidance_rows_for(7.5, 3.0, 0.3, 10.0);
    CHECK(r.cond && r.uncond);

    const float c[4] = {1, 2, 3, 4}, u[4] = {0.5f, 1, -1, 4};
    float e[4];
    guidance_combine(e, c, u, 3.0f, (guidance_rows){true, true}, 4);
    for (int i = 0; i < 4; i++) CHECK_NEAR(e[i], u[i] + 3.0f * (c[i] - u[i]), 0);
    guidance_combine(e, c, u, 3.0f, (guidance_rows){true, false}, 4);
    for (int i = 0; i < 4; i++) CHECK_NEAR(e[i], c[i], 0);
    guidance_combine(e, c, u, 3.0f, (guidance_rows){false, true}, 4);
    for (int i = 0; i < 4; i++) CHECK_NEAR(e[i], u[i], 0);
    /* In place on an input buffer. */
    float cc[4] = {1, 2, 3, 4};
    guidance_combine(cc, cc, u, 2.0f, (guidance_rows){true, true}, 4);
    for (int i = 0; i < 4; i++) CHECK_NEAR(cc[i], u[i] + 2.0f * (c[i] - u[i]), 1e-6);

    /* Rescale: with phi = 1 the result has exactly std(eps_c) (unbiased); phi = 0.5 is
     * the midpoint; phi = 0 is the identity. */
    float g[4] = {2, -2, 4, 0};
    const float gc[4] = {1, 0, 1, 0};
    guidance_rescale(g, gc, 1.0f, 4);
    double m = 0, ss = 0;
    for (int i = 0; i < 4; i++) m += g[i];
    m /= 4;
    for (int i = 0; i < 4; i++) ss += (g[i] - m) * (g[i] - m);
    CHECK_NEAR(sqrt(ss / 3), sqrt(1.0 / 3.0), 1e-6); /* std of {1,0,1,0} */
    float h[4] = {2, -2, 4, 0}, orig[4] = {2, -2, 4, 0};
    guidance_rescale(h, gc, 0.5f, 4);
    float full[4] = {2, -2, 4, 0};
    guidance_rescale(full, gc, 1.0f, 4);
    for (int i = 0; i < 4; i++) CHECK_NEAR(h[i], 0.5f * full[i] + 0.5f * orig[i], 1e-6);
    float same[4] = {2, -2, 4, 0};
    guidance_rescale(same, gc, 0.0f, 4);
    for (int i = 0; i < 4; i++) CHECK_NEAR(same[i], orig[i], 0);

    /* Guidance-scale embedding, by hand: s = 3 → w = 2000; dim 8 → half 4, frequencies
     * 10000^(-k/3) = 1, 0.0464159, 0.00215443, 0.0001; [sin | cos]. The float32 argument
     * (2000·f rounded) bounds the agreement with exact math near 1e-4. */
    float emb[9];
    guidance_scale_embedding(3.0, 8, emb);
    const double f[4] = {1.0, 0.046415888336127795, 0.0021544346900318843, 1e-4};
    for (int k = 0; k < 4; k++) {
        CHECK_NEAR(emb[k], sin(2000.0 * f[k]), 2e-4);
        CHECK_NEAR(emb[4 + k], cos(2000.0 * f[k]), 2e-4);
    }
    /* s = 1 (w = 0): sin 0 = 0, cos 0 = 1; an odd dim gets a zero last column. */
    for (int k = 0; k < 9; k++) emb[k] = 7.0f;
    guidance_scale_embedding(1.0, 9, emb);
    for (int k = 0; k < 4; k++) {
        CHECK_NEAR(emb[k], 0.0, 0);
        CHECK_NEAR(emb[4 + k], 1.0, 0);
    }
    CHECK_NEAR(emb[8], 0.0, 0);
    CHECK_DONE();
}
