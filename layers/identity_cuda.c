/*
 * layers/identity_cuda.c: identity on the GPU: its input's buffer is its output, and the
 * gradient passes through. Covered by tests/test_gpu_plan.c.
 */
#include "gpu_lower.h"

static void identity_forward(struct gpu_builder *b, enum gpu_prog pr, int li)
{
    (void)pr;
    gpu_set_out(b, li, gpu_in(b, li, 0));
}

static void identity_backward(struct gpu_builder *b, int li, int dy)
{
    gpu_grad_pass(b, b->g->layers[li].in[0], dy, gpu_in_numel(b, li, 0));
}

const struct gpu_lowering identity_cuda = {.forward = identity_forward,
                                           .backward = identity_backward};
