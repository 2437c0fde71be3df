/*
 * layers/flatten_cuda.c: flatten on the GPU is a view: a channels-last map flattened is its
 * own memory, (N, H*W*C). The readers that care about the order take it as such: a linear
 * layer's weight (layers/linear_cuda.c), dropout's draw, and the output (unpacked into
 * PyTorch's (N, C*H*W)). Covered by tests/test_gpu_plan.c.
 */
#include "gpu_lower.h"

const struct gpu_lowering flatten_cuda = {.forward = gpu_view_forward,
                                          .backward = gpu_view_backward};
