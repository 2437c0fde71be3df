/*
 * layers/flatten.h: a feature map as one vector (torch.flatten(x, 1)).
 *
 *     in (C, H, W) -> out (C H W); a vector passes unchanged
 *
 * No parameters. Covered by tests/test_graph.c.
 */
#ifndef RUNNER_LAYERS_FLATTEN_H
#define RUNNER_LAYERS_FLATTEN_H

extern const struct op_def op_flatten;

#endif
