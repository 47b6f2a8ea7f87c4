/* Test helper: writes a random kohya-format LoRA for a model's module tables (every
 * `stride`-th layer from `offset`, rank r, alpha = r/2), F32 or BF16 tensors. */
#ifndef CS_TEST_LORA_BUILD_H
#define CS_TEST_LORA_BUILD_H

#include "lora.h"
#include "st_build.h"

static inline float lb_rand(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((*s >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

/* n floats as F32 or BF16 bytes (BF16: the upper half, so values are exact in both). */
static inline void lb_tensor(stb_file *f, const char *name, bool bf16, int ndim,
                             const int64_t *shape, uint64_t *seed, float scale) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    uint32_t *bits = malloc((size_t)(n ? n : 1) * 4);
    uint16_t *half = malloc((size_t)(n ? n : 1) * 2);
    for (int64_t i = 0; i < n; i++) {
        float v = lb_rand(seed) * scale;
        memcpy(&bits[i], &v, 4);
        bits[i] &= 0xffff0000u;
        half[i] = (uint16_t)(bits[i] >> 16);
    }
    if (bf16)
        stb_tensor(f, name, "BF16", ndim, shape, half, (size_t)n * 2);
    else
        stb_tensor(f, name, "F32", ndim, shape, bits, (size_t)n * 4);
    free(bits);
    free(half);
}

static inline void lb_write(const char *dir, const char *file,
                            const lora_module_table *const tables[LORA_COMPONENTS], int stride,
                            int offset, int64_t r, bool bf16, uint64_t seed) {
    stb_file f = {0};
    char name[LORA_MODULE_NAME + 32];
    for (int c = 0; c < LORA_COMPONENTS; c++)
        for (int i = offset; i < tables[c]->count; i += stride) {
            const lora_module *m = &tables[c]->items[i];
            const int64_t k = m->conv ? m->kernel : 1;
            snprintf(name, sizeof name, "%s.lora_down.weight", m->name);
            if (m->conv)
                lb_tensor(&f, name, bf16, 4, (const int64_t[]){r, m->in, k, k}, &seed, 0.5f);
            else
                lb_tensor(&f, name, bf16, 2, (const int64_t[]){r, m->in}, &seed, 0.5f);
            snprintf(name, sizeof name, "%s.lora_up.weight", m->name);
            if (m->conv)
                lb_tensor(&f, name, bf16, 4, (const int64_t[]){m->out, r, 1, 1}, &seed, 0.5f);
            else
                lb_tensor(&f, name, bf16, 2, (const int64_t[]){m->out, r}, &seed, 0.5f);
            snprintf(name, sizeof name, "%s.alpha", m->name);
            const float alpha = (float)r / 2;
            stb_tensor(&f, name, "F32", 0, NULL, &alpha, 4);
        }
    stb_buf img = stb_finish(&f);
    free(stb_write(dir, file, img.p, img.len));
    free(img.p);
}

#endif
