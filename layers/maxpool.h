/*
 * layers/maxpool.h: max pooling (torch.nn.MaxPool2d). Parameters and shape rule: pool.h.
 * Covered by tests/test_graph.c.
 */
#ifndef RUNNER_LAYERS_MAXPOOL_H
#define RUNNER_LAYERS_MAXPOOL_H

#include "layers/pool.h"

extern const struct op_def op_maxpool;

#endif
