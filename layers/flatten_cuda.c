/*
 * layers/flatten_cuda.c: flatten on the GPU is a view: a channels-last map flattened is its
 * own memory, (N, H*W*C). The readers that care about the order take it as such: a linear
 * layer's weight (layers/linear_cuda.c), dropout's draw, and the output (unpacked into
 * PyTorch's (N, C*H*W)). Covered by tests/test_gpu_plan.c.
 */
#include "gpu_lower.h"

static void flatten_forward(struct gpu_builder *b, enum gpu_prog pr, int li)
{
    (void)pr;
    gpu_set_out(b, li, gpu_in(b, li, 0));
}

static void flatten_backward(struct gpu_builder *b, int li, int dy)
{
    gpu_grad_pass(b, b->g->layers[li].in[0], dy, gpu_in_numel(b, li, 0));
}

const struct gpu_lowering flatten_cuda = {.forward = flatten_forward,
                                          .backward = flatten_backward};
