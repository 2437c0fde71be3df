/*
 * layers/relu.h: max(x, 0), elementwise.
 *
 *     in: any shape -> out: the same shape
 *
 * No parameters. Covered by tests/test_graph.c.
 */
#ifndef RUNNER_LAYERS_RELU_H
#define RUNNER_LAYERS_RELU_H

extern const struct op_def op_relu;

#endif
