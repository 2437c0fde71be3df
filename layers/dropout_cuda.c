/*
 * layers/dropout_cuda.c: dropout on the GPU: in training our kernel keeps an element where
 * the CPU backend does (rng_uniform(key, i) >= p with i its index in PyTorch's order, however
 * the tensor is laid out on the device) and keeps the mask for the backward; in evaluation a
 * copy. Covered by tests/test_gpu_plan.c and tests/test_ops_cuda.c.
 */
#include "gpu_lower.h"

static void dropout_forward(struct gpu_builder *b, enum gpu_prog pr, int li)
{
    if (pr != GPU_PROG_FWD_TRAIN) {
        gpu_emit_unary(b, pr, GPU_OP_COPY, li);
        return;
    }
    struct gpu_step *s = gpu_emit_unary(b, pr, GPU_OP_DROPOUT, li);
    s->args[2] = gpu_new_buf(b, GPU_BUF_MASK, s->n);
    gpu_layout(b->g, li, &s->ch, &s->hw);
}

static void dropout_backward(struct gpu_builder *b, int li, int dy)
{
    int mask = gpu_plan_step_of(b->gp, GPU_PROG_FWD_TRAIN, li)->args[2];
    gpu_emit_grad(b, li, GPU_OP_DROPOUT_BWD, (const int[]){dy, -1, mask}, 3, 1);
}

const struct gpu_lowering dropout_cuda = {.forward = dropout_forward,
                                          .backward = dropout_backward};
