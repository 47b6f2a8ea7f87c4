/* Philox4x32-10 and Box–Muller (see rng.h for the layout that defines every value). */
#include "rng.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

void philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3], k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0, p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

static double to_unit(uint32_t u) {
    return ((double)u + 0.5) * (1.0 / 4294967296.0); /* (0, 1): log() never sees 0 */
}

/* The four normals of block `block` of (seed, stream). */
static void normal_block(uint64_t seed, uint32_t stream, uint64_t block, float z[4]) {
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    const uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), stream, 0};
    uint32_t u[4];
    philox4x32_10(ctr, key, u);
    const double two_pi = 6.283185307179586476925286766559;
    for (int pair = 0; pair < 2; pair++) {
        double r = sqrt(-2.0 * log(to_unit(u[2 * pair])));
        double a = two_pi * to_unit(u[2 * pair + 1]);
        z[2 * pair] = (float)(r * cos(a));
        z[2 * pair + 1] = (float)(r * sin(a));
    }
}

void rng_normal_fill(uint64_t seed, uint32_t stream, uint64_t first, float *out, int64_t n) {
    float z[4];
    uint64_t cached = UINT64_MAX;
    for (int64_t j = 0; j < n; j++) {
        uint64_t i = first + (uint64_t)j, block = i / 4;
        if (block != cached) {
            normal_block(seed, stream, block, z);
            cached = block;
        }
        out[j] = z[i % 4];
    }
}
