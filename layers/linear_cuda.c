/*
 * layers/linear_cuda.c: a linear layer on the GPU: cuBLAS's matrix products (with our bias
 * kernel) for the forward and both gradients. After a flatten of a channels-last map its
 * weight is kept as (OUT, H*W*C) (gpu_plan.c's GPU_LAYOUT_HWC_IN), so no reorder runs.
 * Covered by tests/test_gpu_plan.c and tests/test_ops_cuda.c.
 */
#include "gpu_lower.h"

static void linear_forward(struct gpu_builder *b, enum gpu_prog pr, int li)
{
    gpu_emit_unary(b, pr, GPU_OP_LINEAR, li);
}

static void linear_backward(struct gpu_builder *b, int li, int dy)
{
    gpu_weighted_backward(b, li, dy, GPU_OP_LINEAR_WGRAD, GPU_OP_LINEAR_DGRAD);
}

const struct gpu_lowering linear_cuda = {.forward = linear_forward, .backward = linear_backward};
