/* Odd shapes the GEMM tests (test_gemm, test_gemm_bf16) run every product on: sizes of
 * 1, 3, 17, 64 + 5, k not a multiple of the k-block, odd k (27), strides and asymmetric
 * padding, batches whose tiles span items. */
#ifndef CS_TEST_GEMM_SHAPES_H
#define CS_TEST_GEMM_SHAPES_H

#include "ops.h"

/* m, k, n of linear products; the last with weights too large to come back from cache
 * (16.9 MB: items cut by columns, so each weight is read once) */
static const int64_t gemm_linear_shapes[][3] = {{1, 1, 1},         {3, 17, 5},      {17, 69, 49},
                                                {64 + 5, 300, 97}, {130, 513, 320}, {9, 4, 1},
                                                {5, 1025, 50},     {37, 1031, 4100}};

static const op_conv2d_shape gemm_conv_shapes[] = {
    {.batch = 2, .in_ch = 3, .height = 7, .width = 9, .out_ch = 5, .kernel = 3, .stride = 1,
     .pad_top = 1, .pad_left = 1, .pad_bottom = 1, .pad_right = 1},
    {.batch = 3, .in_ch = 5, .height = 9, .width = 7, .out_ch = 17, .kernel = 3, .stride = 2,
     .pad_top = 0, .pad_left = 1, .pad_bottom = 1, .pad_right = 0},
    {.batch = 2, .in_ch = 69, .height = 13, .width = 17, .out_ch = 33, .kernel = 1,
     .stride = 1},
    {.batch = 1, .in_ch = 32, .height = 16, .width = 16, .out_ch = 64 + 5, .kernel = 3,
     .stride = 1, .pad_top = 1, .pad_left = 1, .pad_bottom = 1, .pad_right = 1},
    {.batch = 2, .in_ch = 40, .height = 5, .width = 3, .out_ch = 1, .kernel = 3, .stride = 1,
     .pad_top = 1, .pad_left = 1, .pad_bottom = 1, .pad_right = 1},
    /* rows wider than a tile, uneven padding; a padded 1×1 (not a plain product) */
    {.batch = 1, .in_ch = 6, .height = 5, .width = 70, .out_ch = 9, .kernel = 3, .stride = 1,
     .pad_top = 0, .pad_left = 2, .pad_bottom = 1, .pad_right = 0},
    {.batch = 2, .in_ch = 7, .height = 4, .width = 5, .out_ch = 11, .kernel = 1, .stride = 1,
     .pad_top = 1, .pad_left = 1, .pad_bottom = 1, .pad_right = 1},
    /* tiles that span batch items: 16 columns an item (three items and more a tile), and
     * one column an item (a tile of 48 pieces) */
    {.batch = 5, .in_ch = 8, .height = 4, .width = 4, .out_ch = 9, .kernel = 3, .stride = 1,
     .pad_top = 1, .pad_left = 1, .pad_bottom = 1, .pad_right = 1},
    {.batch = 50, .in_ch = 3, .height = 1, .width = 1, .out_ch = 4, .kernel = 1, .stride = 1},
    /* the default model's 8×8 latents (a tile spans six rows and the end of an item), and a
     * 5×5 kernel with uneven padding whose output rows keep the input's width */
    {.batch = 3, .in_ch = 16, .height = 8, .width = 8, .out_ch = 20, .kernel = 3, .stride = 1,
     .pad_top = 1, .pad_left = 1, .pad_bottom = 1, .pad_right = 1},
    {.batch = 2, .in_ch = 4, .height = 6, .width = 11, .out_ch = 7, .kernel = 5, .stride = 1,
     .pad_top = 3, .pad_left = 1, .pad_bottom = 0, .pad_right = 3},
    /* weights too large to stay in cache (1.1 MB) over two tiles: both tiles in one item,
     * its rows cut into blocks that read the tiles packed ahead (a last row panel of 3) */
    {.batch = 2, .in_ch = 80, .height = 5, .width = 7, .out_ch = 400 + 3, .kernel = 3,
     .stride = 1, .pad_top = 1, .pad_left = 1, .pad_bottom = 1, .pad_right = 1},
};

/* A conv shape's operand sizes: k of its product (in_ch · kernel²) and the floats of one
 * batch item's input and output. */
typedef struct gemm_conv_sizes {
    int64_t kd, nin, nout;
} gemm_conv_sizes;

static inline gemm_conv_sizes gemm_conv_sizes_of(const op_conv2d_shape *sh) {
    return (gemm_conv_sizes){
        .kd = sh->in_ch * sh->kernel * sh->kernel,
        .nin = sh->in_ch * sh->height * sh->width,
        .nout = sh->out_ch * op_conv2d_out_h(sh) * op_conv2d_out_w(sh)};
}

#endif
