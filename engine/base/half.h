/*
 * IEEE half (F16) and bfloat16 (BF16) <-> float. Widening is exact (every 16-bit value
 * is a float), so a weight kept 16-bit and widened where it is used gives the same bits
 * as widening it at load. A signalling F16 NaN comes out quiet, as the CPU's F16C
 * conversion makes it, so software and hardware widening agree on every bit. Narrowing
 * rounds to nearest, ties to even, like PyTorch's .half() / .bfloat16(); NaN stays NaN.
 *
 * Pure functions; inline because the GEMM drivers widen one weight panel per k-block.
 */
#ifndef CS_HALF_H
#define CS_HALF_H

#include <stdint.h>
#include <string.h>

static inline float cs_bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint32_t cs_f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* Rebiases the exponent; a subnormal half becomes (its mantissa as a float of exponent
 * 2^-14 with the implicit 1) minus that implicit 1, an exact subtraction. */
static inline float cs_f16_to_f32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t u = (uint32_t)(h & 0x7fffu) << 13; /* exponent and mantissa in place */
    const uint32_t exp = u & 0x0f800000u;
    u += (127u - 15u) << 23;
    if (exp == 0x0f800000u) {
        u += (128u - 16u) << 23; /* inf / NaN: exponent all ones, payload kept */
        if (u & 0x007fffffu) u |= 0x00400000u; /* NaN: quiet */
    } else if (exp == 0) {
        u += 1u << 23;
        return cs_bits_f32(sign | cs_f32_bits(cs_bits_f32(u) - cs_bits_f32(113u << 23)));
    }
    return cs_bits_f32(sign | u);
}

static inline float cs_bf16_to_f32(uint16_t h) {
    return cs_bits_f32((uint32_t)h << 16);
}

static inline uint16_t cs_f32_to_bf16(float f) {
    const uint32_t u = cs_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* quiet NaN */
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* Rounding as the AVX512_BF16 conversions (vcvtne2ps2bf16) and the bf16 products' DAZ
 * define it: nearest even, but zero and subnormal inputs become a zero of their sign, so
 * the bf16 micro-kernels never see a subnormal and the portable kernel matches vdpbf16ps
 * bit for bit. */
static inline uint16_t cs_f32_to_bf16_ftz(float f) {
    const uint32_t u = cs_f32_bits(f);
    if ((u & 0x7f800000u) == 0) return (uint16_t)((u >> 16) & 0x8000u);
    return cs_f32_to_bf16(f);
}

static inline uint16_t cs_f32_to_f16(float f) {
    const uint32_t u = cs_f32_bits(f);
    const uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    const uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00u;        /* NaN */
    if (a >= 0x477ff000u) return sign | 0x7c00u;       /* rounds past 65504: inf */
    if (a < 0x38800000u) {                             /* below 2^-14: subnormal or 0 */
        /* Adding 0.5 moves the value's mantissa to the half's subnormal grid, the FPU
         * rounding it to nearest even. */
        const float r = cs_bits_f32(a) + 0.5f;
        return sign | (uint16_t)(cs_f32_bits(r) - cs_f32_bits(0.5f));
    }
    const uint32_t m = a + ((uint32_t)(15 - 127) << 23) + 0xfffu + ((a >> 13) & 1u);
    return sign | (uint16_t)(m >> 13);
}

#endif
