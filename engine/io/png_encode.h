/* PNG encoding (8-bit RGB) into memory, and the conversion from the VAE's output range. */
#ifndef CS_PNG_ENCODE_H
#define CS_PNG_ENCODE_H

#include "common.h"

#include <math.h>

typedef struct png_text_entry {
    const char *key;  /* 1..79 Latin-1 characters, e.g. "parameters" */
    const char *text;
} png_text_entry;

/* Encodes rgb (height rows of width·3 bytes) with the given text chunks (tEXt for ASCII,
 * iTXt for other UTF-8); *out is
 * malloc'd and owned by the caller. */
cs_status png_encode_rgb8(const uint8_t *rgb, int64_t width, int64_t height,
                          const png_text_entry *texts, int ntexts, uint8_t **out, size_t *out_len,
                          char *msg, size_t msg_size);

/* VAE output (3, H, W) -> (H, W, 3) in [0, 1], as diffusers' postprocessing. */
void image_to_unit_hwc(const float *chw, int64_t height, int64_t width, float *hwc);
/* n values in [0, 1] -> bytes, rounded as diffusers' numpy_to_pil. */
void unit_to_rgb8(const float *v, int64_t n, uint8_t *rgb);

#endif
