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
    bool acc;
    int sum;
    int64_t n = gpu_in_numel(b, li, 0);
    int dx = gpu_grad_begin(b, b->g->layers[li].in[0], n, false, &acc, &sum);
    if (dx < 0) return;
    struct gpu_step *s = gpu_emit(b, GPU_PROG_BWD, GPU_OP_DROPOUT_BWD, li);
    s->args[0] = dy;
    s->args[1] = dx;
    s->args[2] = gpu_plan_step_of(b->gp, GPU_PROG_FWD_TRAIN, li)->args[2];
    s->n = n;
    gpu_grad_finish(b, dx, sum, n);
}

const struct gpu_lowering dropout_cuda = {.forward = dropout_forward,
                                          .backward = dropout_backward};
