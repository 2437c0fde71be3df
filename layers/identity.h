/*
 * layers/identity.h: the input, unchanged (a named pass-through).
 *
 *     in: any shape -> out: the same shape
 *
 * No parameters. Covered by tests/test_graph.c.
 */
#ifndef RUNNER_LAYERS_IDENTITY_H
#define RUNNER_LAYERS_IDENTITY_H

extern const struct op_def op_identity;

#endif
