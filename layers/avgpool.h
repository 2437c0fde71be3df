/*
 * layers/avgpool.h: average pooling (torch.nn.AvgPool2d). Parameters and shape rule: pool.h.
 * Covered by tests/test_graph.c.
 */
#ifndef RUNNER_LAYERS_AVGPOOL_H
#define RUNNER_LAYERS_AVGPOOL_H

#include "layers/pool.h"

extern const struct op_def op_avgpool;

#endif
