/* Philox known-answer vectors (Random123's kat_vectors) and the properties the batching
 * contract relies on: values depend only on (seed, stream, index). */
#include "check.h"
#include "rng.h"

#include <stdlib.h>

static void kat(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1,
                uint32_t e0, uint32_t e1, uint32_t e2, uint32_t e3) {
    const uint32_t ctr[4] = {c0, c1, c2, c3}, key[2] = {k0, k1};
    uint32_t out[4];
    philox4x32_10(ctr, key, out);
    CHECK_EQ_INT(out[0], e0);
    CHECK_EQ_INT(out[1], e1);
    CHECK_EQ_INT(out[2], e2);
    CHECK_EQ_INT(out[3], e3);
}

int main(void) {
    kat(0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8);
    kat(0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d,
        0x41c83b0e, 0xa20bc7c6, 0x6d5451fd);
    kat(0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09,
        0x94fdcceb, 0x5001e420, 0x24126ea1);

    /* A slice drawn at an offset equals the same slice of a full draw. */
    enum { N = 1001 };
    float *all = malloc(N * sizeof *all), part[37];
    rng_normal_fill(42, RNG_STREAM_LATENTS, 0, all, N);
    rng_normal_fill(42, RNG_STREAM_LATENTS, 517, part, 37);
    for (int i = 0; i < 37; i++) CHECK(part[i] == all[517 + i]);

    /* Different seeds and streams differ; the moments look Gaussian. */
    float other[8];
    rng_normal_fill(43, RNG_STREAM_LATENTS, 0, other, 8);
    CHECK(other[0] != all[0] || other[1] != all[1]);
    rng_normal_fill(42, rng_stream_step(0), 0, other, 8);
    CHECK(other[0] != all[0] || other[1] != all[1]);
    enum { M = 200000 };
    float *big = malloc(M * sizeof *big);
    rng_normal_fill(7, 3, 0, big, M);
    double sum = 0, sq = 0;
    for (int i = 0; i < M; i++) {
        sum += big[i];
        sq += (double)big[i] * big[i];
    }
    double mean = sum / M, var = sq / M - mean * mean;
    CHECK_NEAR(mean, 0.0, 0.01);
    CHECK_NEAR(var, 1.0, 0.02);
    free(big);
    free(all);
    CHECK_DONE();
}
