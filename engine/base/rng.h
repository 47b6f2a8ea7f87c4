/*
 * Counter-based Gaussian noise: Philox4x32-10 (Salmon et al., "Parallel random numbers:
 * as easy as 1, 2, 3", SC 2011) plus the Box–Muller transform.
 *
 * Value i of a stream depends only on (seed, stream, i) — never on how many values
 * were drawn before, in what order, or what else shares the batch. That is what makes
 * an image independent of batching (STYLE §17). Layout: the Philox key is the 64-bit
 * seed (low word first), the counter is (i / 4 low, i / 4 high, stream, 0); the four
 * 32-bit outputs u0..u3 become uniforms (u + 0.5)·2^-32 in (0, 1), and Box–Muller turns
 * (u0, u1) into normals 0 and 1 and (u2, u3) into normals 2 and 3 of the block,
 * computed in double and rounded to float.
 *
 * Streams: RNG_STREAM_LATENTS for a job's initial latents, rng_stream_step(k) for the
 * noise a stochastic sampler adds at step k; for img2img / inpainting RNG_STREAM_ENCODER
 * for the VAE's latent sample (values [0, numel) the init image's, [numel, 2·numel) the
 * masked image's) and RNG_STREAM_IMG2IMG for the noise added to the init latents. The
 * image streams sit far above any step stream.
 *
 * Pure functions; thread-safe.
 */
#ifndef CS_RNG_H
#define CS_RNG_H

#include <stdint.h>

enum { RNG_STREAM_LATENTS = 0 };
#define RNG_STREAM_ENCODER 0x80000001u
#define RNG_STREAM_IMG2IMG 0x80000002u

static inline uint32_t rng_stream_step(int step) {
    return 1u + (uint32_t)step;
}

/* One Philox4x32-10 block. */
void philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* out[j] = normal number (first + j) of (seed, stream), for j < n. */
void rng_normal_fill(uint64_t seed, uint32_t stream, uint64_t first, float *out, int64_t n);

#endif
