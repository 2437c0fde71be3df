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
    bool acc;
    int sum;
    int64_t n = gpu_in_numel(b, li, 0);
    int dx = gpu_grad_begin(b, b->g->layers[li].in[0], n, false, &acc, &sum);
    if (dx < 0) return;
    struct gpu_step *s = gpu_emit(b, GPU_PROG_BWD, GPU_OP_RELU_BWD, li);
    s->args[0] = gpu_out(b, li);
    s->args[1] = dy;
    s->args[2] = dx;
    s->n = n;
    gpu_grad_finish(b, dx, sum, n);
}

const struct gpu_lowering relu_cuda = {.forward = relu_forward, .backward = relu_backward};
