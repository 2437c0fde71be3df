/*
 * layers/global_avg_pool.h: the mean over each channel's whole feature map
 * (torch.nn.AdaptiveAvgPool2d(1) followed by a flatten).
 *
 *     in (C, H, W) -> out (C)
 *
 * No parameters. Covered by tests/test_graph.c.
 */
#ifndef RUNNER_LAYERS_GLOBAL_AVG_POOL_H
#define RUNNER_LAYERS_GLOBAL_AVG_POOL_H

extern const struct op_def op_global_avg_pool;

#endif
