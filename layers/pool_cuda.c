/*
 * layers/pool_cuda.c: pooling on the GPU: maxpool and avgpool through cuDNN (its backward
 * adds into a gradient with other contributions, cuDNN's beta), global average pooling with
 * our kernels. cuDNN rounds windows down: ceil_mode is refused. Covered by
 * tests/test_gpu_plan.c and tests/test_ops_cuda.c.
 */
#include <stdio.h>

#include "gpu_lower.h"

static bool pool_supports(const struct graph *g, const struct graph_layer *l, char *why,
                          size_t size)
{
    (void)g;
    if (!l->p.pool.ceil_mode) return true;
    snprintf(why, size, "ceil_mode: true is not offered by the GPU backend (cuDNN's pooling "
                        "rounds down)");
    return false;
}

static void pool_forward(struct gpu_builder *b, enum gpu_prog pr, int li)
{
    gpu_emit_unary(b, pr, GPU_OP_POOL, li);
}

static void pool_backward(struct gpu_builder *b, int li, int dy)
{
    bool acc;
    int sum;
    int64_t n = gpu_in_numel(b, li, 0);
    int dx = gpu_grad_begin(b, b->g->layers[li].in[0], n, true, &acc, &sum);
    if (dx < 0) return;
    struct gpu_step *s = gpu_emit(b, GPU_PROG_BWD, GPU_OP_POOL_BWD, li);
    s->args[0] = gpu_in(b, li, 0);
    s->args[1] = gpu_out(b, li);
    s->args[2] = dy;
    s->args[3] = dx;
    s->accumulate = acc;
    s->n = n;
}

static void gap_forward(struct gpu_builder *b, enum gpu_prog pr, int li)
{
    gpu_emit_unary(b, pr, GPU_OP_GAP, li);
}

static void gap_backward(struct gpu_builder *b, int li, int dy)
{
    gpu_emit_grad(b, li, GPU_OP_GAP_BWD, (const int[]){dy, -1}, 2, 1);
}

const struct gpu_lowering maxpool_cuda = {.supports = pool_supports, .forward = pool_forward,
                                          .backward = pool_backward};
const struct gpu_lowering avgpool_cuda = {.supports = pool_supports, .forward = pool_forward,
                                          .backward = pool_backward};
const struct gpu_lowering global_avg_pool_cuda = {.forward = gap_forward,
                                                  .backward = gap_backward};
