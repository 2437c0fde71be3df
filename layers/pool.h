/*
 * layers/pool.h: what maxpool and avgpool share: their parameters and their shape rule, as
 * torch.nn.MaxPool2d / AvgPool2d.
 *
 *     in (C, H, W) -> out (C, P, Q),  P = floor((H + 2 pad - kernel) / stride) + 1
 *                                     (ceiling with ceil_mode)
 *
 * pad may be at most half the kernel; no tensors. Covered by tests/test_graph.c.
 */
#ifndef RUNNER_LAYERS_POOL_H
#define RUNNER_LAYERS_POOL_H

#include <stdbool.h>
#include <stddef.h>

struct pool_params {
    long long kernel[2];
    long long stride[2];      /* 0 (unset): the kernel size */
    long long pad[2];         /* maxpool pads with -inf, avgpool with zeros */
    bool ceil_mode;           /* round the output size up */
    bool count_include_pad;   /* avgpool: padded zeros count in the mean */
};

union op_params;
struct shape;

/* The shape rule of both pools; completes an unset stride. */
bool pool_infer(union op_params *p, const struct shape *in, struct shape *out, char *why,
                size_t size);
void pool_summary(const union op_params *p, char *buf, size_t size);

#endif
