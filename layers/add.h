/*
 * layers/add.h: the elementwise sum of two inputs: the join of a residual block's body and
 * shortcut paths, used as the first op of a block's join.
 *
 *     in (S), (S) -> out (S): both inputs must have the same shape
 *
 * No parameters. Covered by tests/test_graph.c.
 */
#ifndef RUNNER_LAYERS_ADD_H
#define RUNNER_LAYERS_ADD_H

extern const struct op_def op_add;

#endif
