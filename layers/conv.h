/*
 * layers/conv.h: 2-D convolution, as torch.nn.Conv2d (cross-correlation).
 *
 *     in (C, H, W) -> out (K, P, Q),  P = floor((H + 2 pad - dilation (R - 1) - 1) / stride) + 1
 *     weight (K, C / groups, R, S), bias (K) when bias is true
 *
 * C and K must be divisible by groups; the dilated kernel must fit the padded input.
 * Covered by tests/test_graph.c.
 */
#ifndef RUNNER_LAYERS_CONV_H
#define RUNNER_LAYERS_CONV_H

#include <stdbool.h>

struct conv_params {
    long long out;         /* K: output channels */
    long long kernel[2];   /* R, S */
    long long stride[2];
    long long pad[2];      /* zero padding on each side */
    long long dilation[2];
    long long groups;
    bool bias;
};

extern const struct op_def op_conv;

#endif
