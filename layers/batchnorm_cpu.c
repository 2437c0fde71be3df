/*
 * layers/batchnorm_cpu.c: batchnorm on the CPU with oneDNN: training forward (batch
 * statistics, saved for backward; the running ones updated in C as PyTorch does, with the
 * unbiased variance), inference forward (running statistics), backward (data, gamma, beta).
 * A relu that alone reads the output is done by the same primitives (oneDNN's
 * fuse_norm_relu, its mask kept in a workspace for the backward pass); the relu layer then
 * only hands on the buffers. Covered by tests/test_ops_cpu.c, tests/test_plan.c and the
 * parity test.
 */
#include "cpu.h"

#define FLAGS (dnnl_use_scale | dnnl_use_shift)

/* running = (1 - m) running + m batch; the variance unbiased; num_batches_tracked += 1. */
static void running_kernel(struct cpu *c, const struct cpu_step *s)
{
    const float *mean = s->args[0].ptr, *var = s->args[1].ptr;
    float *rm = s->args[2].ptr, *rv = s->args[3].ptr;
    int64_t *count = s->args[4].ptr;
    int64_t channels = s->n;
    const struct shape *in = graph_input_shape(cpu_graph(c), s->layer, 0);
    double m = s->f, n = (double)(cpu_batch(c) * shape_numel(in) / channels); /* per channel */
    for (int64_t i = 0; i < channels; i++) {
        rm[i] = (float)((1 - m) * rm[i] + m * mean[i]);
        rv[i] = (float)((1 - m) * rv[i] + m * var[i] * (n > 1 ? n / (n - 1) : 1));
    }
    (*count)++;
}

/* Whether layer li's relu is done by its batchnorm: its sole consumer is a relu. */
static bool fuses_relu(struct cpu *c, size_t li)
{
    int k = cpu_sole_consumer(c, li);
    return k >= 0 && cpu_graph(c)->layers[k].op == OP_KIND_RELU;
}

static void batchnorm_forward(struct cpu *c, size_t li)
{
    const struct graph_layer *l = &cpu_graph(c)->layers[li];
    const struct batchnorm_params *p = &l->p.batchnorm;
    struct cpu_layer *cl = cpu_layer(c, l);
    bool relu = fuses_relu(c, li);
    unsigned flags = FLAGS | (relu ? dnnl_fuse_norm_relu : 0);
    dnnl_memory_desc_t src = *cpu_in_md(c, l, 0);
    int64_t channels = cpu_md_dim(&src, 1);
    dnnl_memory_desc_t stat = cpu_md(c, 1, &channels, dnnl_a);
    cpu_output(c, li, &src);
    cl->aux[0] = cpu_buffer(c, onednn_md_size(&stat)); /* batch mean */
    cl->aux[1] = cpu_buffer(c, onednn_md_size(&stat)); /* batch variance */

    struct onednn_op op = {.kind = ONEDNN_BNORM, .prop = dnnl_forward_training, .src = &src,
                           .epsilon = (float)p->eps, .flags = flags};
    dnnl_primitive_desc_t pd = cpu_pd(c, &op, NULL, l, "batch normalization");
    if (!pd) return;
    cpu_keep_pd(c, li, pd);
    dnnl_memory_desc_t ws = cpu_query(c, pd, dnnl_query_workspace_md, 0);
    if (relu) {
        cpu_layer(c, &cpu_graph(c)->layers[cpu_sole_consumer(c, li)])->fused = CPU_FUSED;
        cl->aux[2] = cpu_buffer(c, onednn_md_size(&ws)); /* the relu's mask */
    }
    struct cpu_step *s = cpu_prim(c, CPU_FWD_TRAIN, pd, l);
    if (relu) cpu_act(c, s, DNNL_ARG_WORKSPACE, cl->aux[2], &ws);
    cpu_act(c, s, DNNL_ARG_SRC, cpu_in_buf(c, l, 0), &src);
    cpu_tensor_arg(c, s, DNNL_ARG_SCALE, l->tensor0, false);
    cpu_tensor_arg(c, s, DNNL_ARG_SHIFT, l->tensor0 + 1, false);
    cpu_act(c, s, DNNL_ARG_DST, cl->out, &src);
    cpu_act(c, s, DNNL_ARG_MEAN, cl->aux[0], &stat);
    cpu_act(c, s, DNNL_ARG_VARIANCE, cl->aux[1], &stat);

    s = cpu_kernel(c, CPU_FWD_TRAIN, running_kernel, l);
    cpu_act(c, s, 0, cl->aux[0], &stat);
    cpu_act(c, s, 1, cl->aux[1], &stat);
    cpu_tensor_arg(c, s, 2, l->tensor0 + 2, false);
    cpu_tensor_arg(c, s, 3, l->tensor0 + 3, false);
    cpu_tensor_arg(c, s, 4, l->tensor0 + 4, false);
    s->n = channels;
    s->f = p->momentum;

    op.prop = dnnl_forward_inference;
    op.flags = flags | dnnl_use_global_stats;
    s = cpu_prim(c, CPU_FWD_EVAL, cpu_pd(c, &op, NULL, l, "batch normalization (inference)"), l);
    cpu_act(c, s, DNNL_ARG_SRC, cpu_in_buf(c, l, 0), &src);
    cpu_tensor_arg(c, s, DNNL_ARG_SCALE, l->tensor0, false);
    cpu_tensor_arg(c, s, DNNL_ARG_SHIFT, l->tensor0 + 1, false);
    cpu_tensor_arg(c, s, DNNL_ARG_MEAN, l->tensor0 + 2, false);
    cpu_tensor_arg(c, s, DNNL_ARG_VARIANCE, l->tensor0 + 3, false);
    cpu_act(c, s, DNNL_ARG_DST, cl->out, &src);
}

static void batchnorm_backward(struct cpu *c, size_t li)
{
    const struct graph_layer *l = &cpu_graph(c)->layers[li];
    const struct batchnorm_params *p = &l->p.batchnorm;
    struct cpu_layer *cl = cpu_layer(c, l);
    dnnl_memory_desc_t src = *cpu_in_md(c, l, 0);
    int64_t channels = cpu_md_dim(&src, 1);
    dnnl_memory_desc_t stat = cpu_md(c, 1, &channels, dnnl_a);
    bool relu = fuses_relu(c, li);
    struct onednn_op op = {.kind = ONEDNN_BNORM_BWD, .prop = dnnl_backward, .src = &src,
                           .dst = &src, .epsilon = (float)p->eps,
                           .flags = FLAGS | (relu ? dnnl_fuse_norm_relu : 0)};
    struct cpu_step *s =
        cpu_prim(c, CPU_BWD, cpu_pd(c, &op, cl->fwd_pd, l, "batch normalization backward"), l);
    int dx = cpu_grad_begin(c, l, 0);
    bool wanted = dx >= 0;
    if (!wanted) dx = cpu_buffer(c, onednn_md_size(&src)); /* computed, unused */
    cpu_act(c, s, DNNL_ARG_SRC, cpu_in_buf(c, l, 0), &src);
    cpu_act(c, s, DNNL_ARG_MEAN, cl->aux[0], &stat);
    cpu_act(c, s, DNNL_ARG_VARIANCE, cl->aux[1], &stat);
    cpu_act(c, s, DNNL_ARG_DIFF_DST, cpu_grad_out(c, l), &src);
    if (relu) {
        dnnl_memory_desc_t ws = cpu_query(c, cl->fwd_pd, dnnl_query_workspace_md, 0);
        cpu_act(c, s, DNNL_ARG_WORKSPACE, cl->aux[2], &ws);
    }
    cpu_tensor_arg(c, s, DNNL_ARG_SCALE, l->tensor0, false);
    if (onednn_bnorm_backward_takes_shift())
        cpu_tensor_arg(c, s, DNNL_ARG_SHIFT, l->tensor0 + 1, false);
    cpu_act(c, s, DNNL_ARG_DIFF_SRC, dx, &src);
    cpu_tensor_arg(c, s, DNNL_ARG_DIFF_SCALE, l->tensor0, true);
    cpu_tensor_arg(c, s, DNNL_ARG_DIFF_SHIFT, l->tensor0 + 1, true);
    if (wanted) cpu_grad_finish(c, l, 0, dx);
}

const struct cpu_op batchnorm_cpu = {.forward = batchnorm_forward, .backward = batchnorm_backward};
