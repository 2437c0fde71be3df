/*
 * layers/conv_cuda.c: a convolution on the GPU: cuDNN's forward (with our bias kernel), and
 * its backward filter and backward data, the data gradient added in place (cuDNN's beta)
 * where the input has other readers. Descriptors and algorithms: runner/cuda_exec.c. Covered
 * by tests/test_gpu_plan.c (the plan) and tests/test_ops_cuda.c (on a GPU).
 */
#include "gpu_lower.h"

static void conv_forward(struct gpu_builder *b, enum gpu_prog pr, int li)
{
    gpu_emit_unary(b, pr, GPU_OP_CONV, li);
}

static void conv_backward(struct gpu_builder *b, int li, int dy)
{
    gpu_weighted_backward(b, li, dy, GPU_OP_CONV_WGRAD, GPU_OP_CONV_DGRAD);
}

const struct gpu_lowering conv_cuda = {.forward = conv_forward, .backward = conv_backward};
