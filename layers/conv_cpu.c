/*
 * layers/conv_cpu.c: conv on the CPU with oneDNN: forward (the layouts oneDNN prefers for its
 * output and weights), backward data and backward weights (and bias) in the same layouts.
 * Covered by tests/test_ops_cpu.c.
 */
#include "cpu.h"

/* oneDNN's geometry: strides, dilation (minus one), padding on each side. */
static void geometry(const struct conv_params *p, dnnl_dims_t st, dnnl_dims_t dil, dnnl_dims_t pl,
                     dnnl_dims_t pr)
{
    for (int i = 0; i < 2; i++) {
        st[i] = p->stride[i];
        dil[i] = p->dilation[i] - 1;
        pl[i] = pr[i] = p->pad[i];
    }
}

/* (K, C/g, R, S), or (g, K/g, C/g, R, S) for groups. */
static dnnl_memory_desc_t weights_any(const struct conv_params *p, int64_t c)
{
    int64_t d[5] = {p->groups, p->out / p->groups, c / p->groups, p->kernel[0], p->kernel[1]};
    return p->groups == 1 ? cpu_md(4, d + 1, dnnl_format_tag_any) : cpu_md(5, d, dnnl_format_tag_any);
}

static void conv_forward(struct cpu *c, size_t li)
{
    const struct graph_layer *l = &cpu_graph(c)->layers[li];
    const struct conv_params *p = &l->p.conv;
    dnnl_memory_desc_t src = *cpu_in_md(c, l, 0);
    int64_t dd[4];
    dnnl_dims_t st, dil, pl, pr;
    cpu_dims(c, &l->out, dd);
    geometry(p, st, dil, pl, pr);
    dnnl_memory_desc_t dst = cpu_md(4, dd, dnnl_format_tag_any);
    dnnl_memory_desc_t w = weights_any(p, src.dims[1]);
    int64_t k = p->out;
    dnnl_memory_desc_t b = cpu_md(1, &k, dnnl_a);
    dnnl_convolution_desc_t cd;
    if (!cpu_ok(c, dnnl_dilated_convolution_forward_desc_init(
                       &cd, dnnl_forward_training, dnnl_convolution_direct, &src, &w,
                       p->bias ? &b : NULL, &dst, st, dil, pl, pr),
                l, "convolution"))
        return;
    dnnl_primitive_desc_t pd = cpu_pd(c, &cd, NULL, l, "convolution");
    if (!pd) return;
    cpu_weighted_forward(c, li, pd, p->bias);
}

static void conv_backward(struct cpu *c, size_t li)
{
    const struct graph_layer *l = &cpu_graph(c)->layers[li];
    const struct conv_params *p = &l->p.conv;
    struct cpu_layer *cl = cpu_layer(c, l);
    dnnl_memory_desc_t src = *cpu_in_md(c, l, 0), dst = cl->md;
    dnnl_memory_desc_t w = *dnnl_primitive_desc_query_md(cl->fwd_pd, dnnl_query_weights_md, 0);
    int64_t k = p->out;
    dnnl_memory_desc_t b = cpu_md(1, &k, dnnl_a);
    dnnl_dims_t st, dil, pl, pr;
    geometry(p, st, dil, pl, pr);
    int dy = cpu_grad_out(c, l);

    dnnl_convolution_desc_t wd;
    if (!cpu_ok(c, dnnl_dilated_convolution_backward_weights_desc_init(
                       &wd, dnnl_convolution_direct, &src, &w, p->bias ? &b : NULL, &dst, st,
                       dil, pl, pr),
                l, "convolution backward weights"))
        return;
    struct cpu_step *s =
        cpu_prim(c, CPU_BWD, cpu_pd(c, &wd, cl->fwd_pd, l, "convolution backward weights"), l);
    cpu_act(c, s, DNNL_ARG_SRC, cpu_in_buf(c, l, 0), &src);
    cpu_act(c, s, DNNL_ARG_DIFF_DST, dy, &dst);
    cpu_tensor_arg(c, s, DNNL_ARG_DIFF_WEIGHTS, l->tensor0, true);
    if (p->bias) cpu_tensor_arg(c, s, DNNL_ARG_DIFF_BIAS, l->tensor0 + 1, true);

    int dx = cpu_grad_begin(c, l, 0);
    if (dx < 0) return;
    /* Backward data wants its own weight layout (blocks transposed); a reorder of the
     * weights into it costs far less than running the forward layout's reference kernel. */
    dnnl_memory_desc_t wany = weights_any(p, src.dims[1]);
    dnnl_convolution_desc_t dd;
    if (!cpu_ok(c, dnnl_dilated_convolution_backward_data_desc_init(
                       &dd, dnnl_convolution_direct, &src, &wany, &dst, st, dil, pl, pr),
                l, "convolution backward data"))
        return;
    dnnl_primitive_desc_t pd = cpu_pd(c, &dd, cl->fwd_pd, l, "convolution backward data");
    if (!pd) return;
    dnnl_memory_desc_t wb = cpu_query(pd, dnnl_query_weights_md, 0);
    int wbuf = -1;
    if (!dnnl_memory_desc_equal(&wb, &w)) {
        wbuf = cpu_buffer(c, dnnl_memory_desc_get_size(&wb));
        s = cpu_reorder(c, CPU_BWD, l, &w, &wb);
        cpu_tensor_arg(c, s, DNNL_ARG_FROM, l->tensor0, false);
        cpu_act(c, s, DNNL_ARG_TO, wbuf, &wb);
    }
    s = cpu_prim(c, CPU_BWD, pd, l);
    cpu_act(c, s, DNNL_ARG_DIFF_DST, dy, &dst);
    if (wbuf >= 0)
        cpu_act(c, s, DNNL_ARG_WEIGHTS, wbuf, &wb);
    else
        cpu_tensor_arg(c, s, DNNL_ARG_WEIGHTS, l->tensor0, false);
    cpu_act(c, s, DNNL_ARG_DIFF_SRC, dx, &src);
    cpu_grad_finish(c, l, 0, dx);
}

const struct cpu_op conv_cpu = {.forward = conv_forward, .backward = conv_backward};
