/*
 * layers/linear_cpu.c: linear on the CPU with oneDNN's inner product (its input may be a
 * feature map of 1x1, as global_avg_pool leaves it); the output is a plain (N, OUT).
 * Covered by tests/test_ops_cpu.c.
 */
#include "cpu.h"

static dnnl_memory_desc_t weights_any(struct cpu *c, const struct graph_layer *l,
                                      const dnnl_memory_desc_t *src)
{
    int64_t d[4] = {l->p.linear.out, 1, 1, 1};
    int nd = onednn_md_ndims(src);
    for (int i = 1; i < nd; i++) d[i] = cpu_md_dim(src, i);
    return cpu_md(c, nd, d, dnnl_format_tag_any);
}

static void linear_forward(struct cpu *c, size_t li)
{
    const struct graph_layer *l = &cpu_graph(c)->layers[li];
    const struct linear_params *p = &l->p.linear;
    dnnl_memory_desc_t src = *cpu_in_md(c, l, 0), w = weights_any(c, l, &src);
    int64_t dd[2] = {cpu_batch(c), p->out};
    dnnl_memory_desc_t dst = cpu_md(c, 2, dd, dnnl_nc);
    dnnl_memory_desc_t b = cpu_md(c, 1, (int64_t[]){p->out}, dnnl_a);
    struct onednn_op op = {.kind = ONEDNN_INNER, .prop = dnnl_forward_training, .src = &src,
                           .weights = &w, .bias = p->bias ? &b : NULL, .dst = &dst};
    dnnl_primitive_desc_t pd = cpu_pd(c, &op, NULL, l, "inner product");
    if (!pd) return;
    cpu_weighted_forward(c, li, pd, p->bias);
}

static void linear_backward(struct cpu *c, size_t li)
{
    const struct graph_layer *l = &cpu_graph(c)->layers[li];
    const struct linear_params *p = &l->p.linear;
    struct cpu_layer *cl = cpu_layer(c, l);
    dnnl_memory_desc_t src = *cpu_in_md(c, l, 0);
    dnnl_memory_desc_t w = cpu_query(c, cl->fwd_pd, dnnl_query_weights_md, 0);
    dnnl_memory_desc_t b = cpu_md(c, 1, (int64_t[]){p->out}, dnnl_a);
    int dy = cpu_grad_out(c, l);
    struct onednn_op op = {.kind = ONEDNN_INNER_BWD_WEIGHTS, .src = &src, .weights = &w,
                           .bias = p->bias ? &b : NULL, .dst = &cl->md};
    struct cpu_step *s =
        cpu_prim(c, CPU_BWD, cpu_pd(c, &op, cl->fwd_pd, l, "inner product backward weights"), l);
    cpu_act(c, s, DNNL_ARG_SRC, cpu_in_buf(c, l, 0), &src);
    cpu_act(c, s, DNNL_ARG_DIFF_DST, dy, &cl->md);
    cpu_tensor_arg(c, s, DNNL_ARG_DIFF_WEIGHTS, l->tensor0, true);
    if (p->bias) cpu_tensor_arg(c, s, DNNL_ARG_DIFF_BIAS, l->tensor0 + 1, true);

    int dx = cpu_grad_begin(c, l, 0);
    if (dx < 0) return;
    op = (struct onednn_op){.kind = ONEDNN_INNER_BWD_DATA, .src = &src, .weights = &w,
                            .dst = &cl->md};
    s = cpu_prim(c, CPU_BWD, cpu_pd(c, &op, cl->fwd_pd, l, "inner product backward data"), l);
    cpu_act(c, s, DNNL_ARG_DIFF_DST, dy, &cl->md);
    cpu_tensor_arg(c, s, DNNL_ARG_WEIGHTS, l->tensor0, false);
    cpu_act(c, s, DNNL_ARG_DIFF_SRC, dx, &src);
    cpu_grad_finish(c, l, 0, dx);
}

const struct cpu_op linear_cpu = {.forward = linear_forward, .backward = linear_backward};
