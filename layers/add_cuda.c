/*
 * layers/add_cuda.c: the sum of two tensors on the GPU, our pointwise kernel; its gradient
 * goes to both inputs as it is. Before a relu, after a batchnorm that alone feeds it, the
 * batchnorm's kernel does it (layers/batchnorm_cuda.c). Both inputs must be ordered alike on
 * the device (a flattened map and a vector are not). Covered by tests/test_gpu_plan.c and
 * tests/test_ops_cuda.c.
 */
#include <stdio.h>

#include "gpu_lower.h"

static bool add_supports(const struct graph *g, const struct graph_layer *l, char *why,
                         size_t size)
{
    int64_t ch, hw, ch1, hw1;
    const struct shape *a = gpu_layout(g, l->in[0], &ch, &hw);
    const struct shape *c = gpu_layout(g, l->in[1], &ch1, &hw1);
    if (hw == hw1 && ch == ch1) return true;
    snprintf(why, size, "an add of two tensors whose elements are ordered differently on the "
             "GPU (a %s and a %s) is not offered by the GPU backend",
             a ? "flattened map" : "vector", c ? "flattened map" : "vector");
    return false;
}

static void add_forward(struct gpu_builder *b, enum gpu_prog pr, int li)
{
    int x0 = gpu_in(b, li, 0), x1 = gpu_in(b, li, 1);
    struct gpu_step *s = gpu_emit(b, pr, GPU_OP_ADD, li);
    s->args[0] = x0;
    s->args[1] = x1;
    s->args[2] = gpu_out(b, li);
    s->n = gpu_out_numel(b, li);
}

static void add_backward(struct gpu_builder *b, int li, int dy)
{
    for (int i = 0; i < 2; i++)
        gpu_grad_pass(b, b->g->layers[li].in[i], dy, gpu_in_numel(b, li, i));
}

const struct gpu_lowering add_cuda = {.supports = add_supports, .forward = add_forward,
                                      .backward = add_backward};
