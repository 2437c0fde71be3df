/*
 * layers/batchnorm_cuda.c: batch normalization on the GPU, one kernel for the group it heads:
 * the batchnorm alone, with the relu after it, or with the add and relu after it (gpu_plan.c
 * finds the groups: each layer the only reader of the one before). Training saves the batch
 * statistics (and cuDNN's reserve space) for the backward, which gives the input's gradient
 * and, fused with an add, its other input's. cuDNN's fused kernels where its probe takes
 * them, ours otherwise (runner/cuda_exec.c). Covered by tests/test_gpu_plan.c and
 * tests/test_ops_cuda.c.
 */
#include <stdio.h>

#include "gpu_lower.h"

static bool batchnorm_supports(const struct graph *g, const struct graph_layer *l, char *why,
                               size_t size)
{
    int64_t ch, hw;
    const struct shape *s = gpu_layout(g, l->in[0], &ch, &hw);
    if (!s || graph_input_shape(g, l, 0)->rank == 3) return true;
    snprintf(why, size, "a batchnorm of a flattened %lldx%lldx%lld map is not offered by the "
             "GPU backend (it keeps maps channels-last); normalize the map before the flatten",
             (long long)s->d[0], (long long)s->d[1], (long long)s->d[2]);
    return false;
}

static void batchnorm_forward(struct gpu_builder *b, enum gpu_prog pr, int bn)
{
    const struct graph *g = b->g;
    int last = b->tail[bn] >= 0 ? b->tail[bn] : bn;
    int y = gpu_out(b, last);
    for (int k = bn; k < last; k++) /* every layer of the group has its output */
        if (k == bn || b->head[k] == bn) gpu_set_out(b, k, y);
    bool train = pr == GPU_PROG_FWD_TRAIN;
    struct gpu_step *s = gpu_emit(b, pr, train ? GPU_OP_BN_TRAIN : GPU_OP_BN_EVAL, bn);
    s->args[0] = gpu_in(b, bn, 0);
    s->args[1] = b->z[bn] == GPU_NO_Z ? -1 : gpu_buf_of(b, b->z[bn]); /* the add's other input */
    s->args[2] = y;
    s->relu = b->tail[bn] >= 0;
    s->add = b->z[bn] != GPU_NO_Z;
    s->n = gpu_out_numel(b, bn);
    if (!train) return;
    int64_t c = g->layers[bn].out.rank ? g->layers[bn].out.d[0] : 1;
    s->args[3] = gpu_new_buf(b, GPU_BUF_STAT, c);
    s->args[4] = gpu_new_buf(b, GPU_BUF_STAT, c);
    s->args[5] = gpu_new_buf(b, GPU_BUF_BYTES, 0);
}

static void batchnorm_backward(struct gpu_builder *b, int bn, int dy)
{
    const struct gpu_step *f = gpu_plan_step_of(b->gp, GPU_PROG_FWD_TRAIN, bn);
    bool acc;
    int sum, zsum = -1, dz = -1;
    int64_t n = gpu_in_numel(b, bn, 0);
    int dx = gpu_grad_begin(b, b->g->layers[bn].in[0], n, false, &acc, &sum);
    if (f->add) dz = gpu_grad_begin(b, b->z[bn], n, false, &acc, &zsum);
    if (f->add && dz < 0) dz = gpu_new_buf(b, GPU_BUF_ACT, n); /* cuDNN's fused kernel wants one */
    struct gpu_step *s = gpu_emit(b, GPU_PROG_BWD, GPU_OP_BN_BWD, bn);
    s->args[0] = gpu_in(b, bn, 0);
    s->args[1] = f->args[2];
    s->args[2] = dy;
    s->args[3] = dx >= 0 ? dx : gpu_new_buf(b, GPU_BUF_ACT, n); /* the input needs none */
    s->args[4] = dz;
    s->args[5] = f->args[3];
    s->args[6] = f->args[4];
    s->args[7] = f->args[5];
    s->relu = f->relu;
    s->add = f->add;
    s->n = n;
    gpu_grad_finish(b, dx, sum, n);
    gpu_grad_finish(b, dz, zsum, n);
}

const struct gpu_lowering batchnorm_cuda = {.supports = batchnorm_supports,
                                            .forward = batchnorm_forward,
                                            .backward = batchnorm_backward};
