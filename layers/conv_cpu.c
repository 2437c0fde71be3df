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

/*
 * The algorithm for a convolution: Winograd F(4x4, 3x3) where it pays (3x3, stride 1, no
 * dilation or groups, an output of at least 8x8) unless the plan asks for direct only;
 * direct otherwise, with a oneDNN that has no Winograd (3.x), and where oneDNN has no
 * Winograd kernel for this machine (the caller falls back).
 */
static dnnl_alg_kind_t algorithm(struct cpu *c, const struct conv_params *p,
                                 const struct shape *out)
{
    bool wino = onednn_winograd() && !cpu_options(c)->conv_direct && p->kernel[0] == 3 &&
                p->kernel[1] == 3 && p->stride[0] == 1 &&
                p->stride[1] == 1 && p->dilation[0] == 1 && p->dilation[1] == 1 &&
                p->groups == 1 && out->rank == 3 && out->d[1] >= 8 && out->d[2] >= 8;
    return wino ? dnnl_convolution_winograd : dnnl_convolution_direct;
}

/* (K, C/g, R, S), or (g, K/g, C/g, R, S) for groups. */
static dnnl_memory_desc_t weights_any(struct cpu *c, const struct conv_params *p, int64_t C)
{
    int64_t d[5] = {p->groups, p->out / p->groups, C / p->groups, p->kernel[0], p->kernel[1]};
    return p->groups == 1 ? cpu_md(c, 4, d + 1, dnnl_format_tag_any)
                          : cpu_md(c, 5, d, dnnl_format_tag_any);
}

enum direction { FORWARD, BACKWARD_WEIGHTS, BACKWARD_DATA };
static const enum onednn_kind kinds[] = {ONEDNN_CONV, ONEDNN_CONV_BWD_WEIGHTS, ONEDNN_CONV_BWD_DATA};

/* The primitive descriptor of one direction of l's convolution: with algorithm() when oneDNN
 * has it, else direct; NULL (the failure recorded) when neither is available. */
static dnnl_primitive_desc_t conv_pd(struct cpu *c, const struct graph_layer *l,
                                     enum direction dir, const dnnl_memory_desc_t *src,
                                     const dnnl_memory_desc_t *w, const dnnl_memory_desc_t *dst,
                                     const_dnnl_primitive_desc_t hint)
{
    static const char *const what[] = {"convolution", "convolution backward weights",
                                       "convolution backward data"};
    const struct conv_params *p = &l->p.conv;
    int64_t k = p->out;
    dnnl_memory_desc_t b = cpu_md(c, 1, &k, dnnl_a);
    dnnl_dims_t st, dil, pl, pr;
    geometry(p, st, dil, pl, pr);
    struct onednn_op op = {.kind = kinds[dir], .prop = dnnl_forward_training,
                           .alg = algorithm(c, p, &l->out), .src = src, .weights = w,
                           .bias = p->bias && dir != BACKWARD_DATA ? &b : NULL, .dst = dst,
                           .strides = st, .dilation = dil, .pad_l = pl, .pad_r = pr};
    if (op.alg != dnnl_convolution_direct) {
        dnnl_primitive_desc_t pd = cpu_pd_try(c, &op, hint);
        if (pd) return pd;
        op.alg = dnnl_convolution_direct;
    }
    return cpu_pd(c, &op, hint, l, what[dir]);
}

static void conv_forward(struct cpu *c, size_t li)
{
    const struct graph_layer *l = &cpu_graph(c)->layers[li];
    const struct conv_params *p = &l->p.conv;
    int64_t dd[4];
    cpu_dims(c, &l->out, dd);
    dnnl_memory_desc_t dst = cpu_md(c, 4, dd, dnnl_format_tag_any);
    dnnl_memory_desc_t w = weights_any(c, p, cpu_md_dim(cpu_in_md(c, l, 0), 1));
    dnnl_primitive_desc_t pd = conv_pd(c, l, FORWARD, cpu_in_md(c, l, 0), &w, &dst, NULL);
    if (pd) cpu_weighted_forward(c, li, pd, p->bias);
}

static void conv_backward(struct cpu *c, size_t li)
{
    const struct graph_layer *l = &cpu_graph(c)->layers[li];
    const struct conv_params *p = &l->p.conv;
    struct cpu_layer *cl = cpu_layer(c, l);
    dnnl_memory_desc_t src = *cpu_in_md(c, l, 0), dst = cl->md;
    dnnl_memory_desc_t w = cpu_query(c, cl->fwd_pd, dnnl_query_weights_md, 0);
    int dy = cpu_grad_out(c, l);

    struct cpu_step *s =
        cpu_prim(c, CPU_BWD, conv_pd(c, l, BACKWARD_WEIGHTS, &src, &w, &dst, cl->fwd_pd), l);
    cpu_act(c, s, DNNL_ARG_SRC, cpu_in_buf(c, l, 0), &src);
    cpu_act(c, s, DNNL_ARG_DIFF_DST, dy, &dst);
    cpu_tensor_arg(c, s, DNNL_ARG_DIFF_WEIGHTS, l->tensor0, true);
    if (p->bias) cpu_tensor_arg(c, s, DNNL_ARG_DIFF_BIAS, l->tensor0 + 1, true);

    int dx = cpu_grad_begin(c, l, 0);
    if (dx < 0) return;
    /* Backward data wants its own weight layout (blocks transposed); a reorder of the
     * weights into it costs far less than running the forward layout's reference kernel. */
    dnnl_memory_desc_t wany = weights_any(c, p, cpu_md_dim(&src, 1));
    dnnl_primitive_desc_t pd = conv_pd(c, l, BACKWARD_DATA, &src, &wany, &dst, cl->fwd_pd);
    if (!pd) return;
    dnnl_memory_desc_t wb = cpu_query(c, pd, dnnl_query_weights_md, 0);
    int wbuf = -1;
    if (!onednn_md_equal(&wb, &w)) {
        wbuf = cpu_buffer(c, onednn_md_size(&wb));
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
