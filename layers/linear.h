/*
 * layers/linear.h: a fully connected layer, as torch.nn.Linear: y = W x + b.
 *
 *     in (F) -> out (out)
 *     weight (out, F), bias (out) when bias is true
 *
 * The input must be a vector: put global_avg_pool or flatten before it.
 * Covered by tests/test_graph.c.
 */
#ifndef RUNNER_LAYERS_LINEAR_H
#define RUNNER_LAYERS_LINEAR_H

#include <stdbool.h>

struct linear_params {
    long long out; /* output features */
    bool bias;
};

extern const struct op_def op_linear;

#endif
