/*
 * layers/linear_cpu.c: linear on the CPU with oneDNN's inner product (its input may be a
 * feature map of 1x1, as global_avg_pool leaves it); the output is a plain (N, OUT).
 * Covered by tests/test_ops_cpu.c.
 */
#include "cpu.h"

static dnnl_memory_desc_t weights_any(const struct graph_layer *l, const dnnl_memory_desc_t *src)
{
    int64_t d[4] = {l->p.linear.out, 1, 1, 1};
    for (int i = 1; i < src->ndims; i++) d[i] = src->dims[i];
    return cpu_md(src->ndims, d, dnnl_format_tag_any);
}

static void linear_forward(struct cpu *c, size_t li)
{
    const struct graph_layer *l = &cpu_graph(c)->layers[li];
    const struct linear_params *p = &l->p.linear;
    dnnl_memory_desc_t src = *cpu_in_md(c, l, 0), w = weights_any(l, &src);
    int64_t dd[2] = {cpu_batch(c), p->out};
    dnnl_memory_desc_t dst = cpu_md(2, dd, dnnl_nc), b = cpu_md(1, (int64_t[]){p->out}, dnnl_a);
    dnnl_inner_product_desc_t id;
    if (!cpu_ok(c, dnnl_inner_product_forward_desc_init(&id, dnnl_forward_training, &src, &w,
                                                        p->bias ? &b : NULL, &dst),
                l, "inner product"))
        return;
    dnnl_primitive_desc_t pd = cpu_pd(c, &id, NULL, l, "inner product");
    if (!pd) return;
    cpu_weighted_forward(c, li, pd, p->bias);
}

static void linear_backward(struct cpu *c, size_t li)
{
    const struct graph_layer *l = &cpu_graph(c)->layers[li];
    const struct linear_params *p = &l->p.linear;
    struct cpu_layer *cl = cpu_layer(c, l);
    dnnl_memory_desc_t src = *cpu_in_md(c, l, 0);
    dnnl_memory_desc_t w = *dnnl_primitive_desc_query_md(cl->fwd_pd, dnnl_query_weights_md, 0);
    dnnl_memory_desc_t b = cpu_md(1, (int64_t[]){p->out}, dnnl_a);
    int dy = cpu_grad_out(c, l);
    dnnl_inner_product_desc_t wd;
    if (!cpu_ok(c, dnnl_inner_product_backward_weights_desc_init(&wd, &src, &w,
                                                                 p->bias ? &b : NULL, &cl->md),
                l, "inner product backward weights"))
        return;
    struct cpu_step *s =
        cpu_prim(c, CPU_BWD, cpu_pd(c, &wd, cl->fwd_pd, l, "inner product backward weights"), l);
    cpu_act(c, s, DNNL_ARG_SRC, cpu_in_buf(c, l, 0), &src);
    cpu_act(c, s, DNNL_ARG_DIFF_DST, dy, &cl->md);
    cpu_tensor_arg(c, s, DNNL_ARG_DIFF_WEIGHTS, l->tensor0, true);
    if (p->bias) cpu_tensor_arg(c, s, DNNL_ARG_DIFF_BIAS, l->tensor0 + 1, true);

    int dx = cpu_grad_begin(c, l, 0);
    if (dx < 0) return;
    dnnl_inner_product_desc_t dd;
    if (!cpu_ok(c, dnnl_inner_product_backward_data_desc_init(&dd, &src, &w, &cl->md), l,
                "inner product backward data"))
        return;
    s = cpu_prim(c, CPU_BWD, cpu_pd(c, &dd, cl->fwd_pd, l, "inner product backward data"), l);
    cpu_act(c, s, DNNL_ARG_DIFF_DST, dy, &cl->md);
    cpu_tensor_arg(c, s, DNNL_ARG_WEIGHTS, l->tensor0, false);
    cpu_act(c, s, DNNL_ARG_DIFF_SRC, dx, &src);
    cpu_grad_finish(c, l, 0, dx);
}

const struct cpu_op linear_cpu = {.forward = linear_forward, .backward = linear_backward};
