/*
 * Antialiased 8-bit image resizing (cs_image_resize, cfgserve.h) with the A1111 web UI's
 * three img2img resize modes (its modules/images.py resize_image):
 *   0 stretch: resize to width x height;
 *   1 crop:    keep the aspect ratio and cover the target, then crop the centre;
 *   2 fill:    keep the aspect ratio and fit inside the target, centred; the bands left
 *              over are filled by stretching the image's outer row (or column) across
 *              them, as the web UI pastes a zero-height crop of each edge resized.
 * The resampling filter is Lanczos-3 widened by the downscale factor (Pillow's
 * Image.resize(LANCZOS), which the web UI uses), run separably in float with one rounding
 * at the end.
 *
 * Threads: any; no state.
 */
#ifndef CS_IMAGE_RESIZE_H
#define CS_IMAGE_RESIZE_H

#include "common.h"

/* Plain resize of src (sh rows of sw·ch bytes) to dst (dh rows of dw·ch bytes). Returns
 * CS_ERR_NOMEM when the filter tables cannot be allocated (dst then untouched). */
cs_status image_resize_stretch(const uint8_t *src, int sw, int sh, int ch, uint8_t *dst, int dw,
                               int dh);

#endif
