/*
 * What the masked area of an inpainting job starts from (cs_gen_params.inpaint_fill):
 * the A1111 web UI's "masked content" choices beside diffusers' own (the init image).
 *
 * CS_FILL_BLUR (the web UI's "fill") repaints the masked pixels of the init image with
 * colours spread in from the unmasked ones before it is encoded: the unmasked image,
 * premultiplied by its coverage (1 - mask/255), is blurred at radii 256, 64, 16, 4, 2
 * and 0 pixels and the blurs are laid over each other, each with its own coverage
 * ("over" compositing), the sharp image last; so unmasked pixels keep their colour and
 * masked ones take that of the nearest unmasked area at the finest scale that reaches
 * them. The blur is three box passes of the Gaussian's width per axis (as PIL's
 * GaussianBlur, which the web UI uses), edges extended.
 *
 * The latent fills act on the init latents in the masked cells before noise is added:
 * CS_FILL_LATENT_NOISE puts the image's own start noise there, CS_FILL_LATENT_NOTHING
 * zeros.
 */
#ifndef CS_INPAINT_FILL_H
#define CS_INPAINT_FILL_H

#include "common.h"

/* rgb (height rows of width·3 bytes) with its masked pixels filled, into out (same
 * size). false: out of memory (out untouched). */
bool inpaint_fill_image(const uint8_t *rgb, const uint8_t *mask, int width, int height,
                        uint8_t *out);

/* The latent fills over one image's init latents (C planes of `cells`): mask[q] = 1
 * marks a repainted cell; noise is the image's start noise. */
void inpaint_fill_latents(int fill, float *init, const float *noise, const float *mask,
                          int64_t channels, int64_t cells);

#endif
