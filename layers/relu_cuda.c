/*
 * layers/relu_cuda.c: relu on the GPU, our pointwise kernel; backward from the output. After
 * a batchnorm (or a batchnorm and an add) it alone reads, the batchnorm's kernel applies it
 * (layers/batchnorm_cuda.c) and this lowering is not called. Covered by tests/test_gpu_plan.c
 * and tests/test_ops_cuda.c.
 */
#include "gpu_lower.h"

static void relu_forward(struct gpu_builder *b, enum gpu_prog pr, int li)
{
    gpu_emit_unary(b, pr, GPU_OP_RELU, li);
}

static void relu_backward(struct gpu_builder *b, int li, int dy)
{
    gpu_emit_grad(b, li, GPU_OP_RELU_BWD, (const int[]){gpu_out(b, li), dy, -1}, 3, 2);
}

const struct gpu_lowering relu_cuda = {.forward = relu_forward, .backward = relu_backward};
