/*
 * layers/batchnorm.h: batch normalization over channels, as torch.nn.BatchNorm2d (CxHxW
 * input) or BatchNorm1d (a vector). Training normalizes with the batch's statistics and
 * updates the running ones; evaluation uses the running ones.
 *
 *     in (C, H, W) or (C) -> out, same shape
 *     weight (C) (gamma: 1, or 0 with zero_init), bias (C) (beta: 0),
 *     buffers running_mean (C), running_var (C), num_batches_tracked (a scalar, int64)
 *
 * Covered by tests/test_graph.c.
 */
#ifndef RUNNER_LAYERS_BATCHNORM_H
#define RUNNER_LAYERS_BATCHNORM_H

#include <stdbool.h>

struct batchnorm_params {
    double eps;      /* added to the variance */
    double momentum; /* running = (1 - momentum) running + momentum batch */
    bool zero_init;  /* gamma starts at 0 (the last batchnorm of a residual block) */
};

extern const struct op_def op_batchnorm;

#endif
