/*
 * layers/pool_cpu.c: maxpool, avgpool and global_avg_pool on the CPU with oneDNN's pooling
 * primitive (max keeps a workspace for its backward). Covered by tests/test_ops_cpu.c.
 */
#include "cpu.h"

struct window {
    dnnl_alg_kind_t alg;
    dnnl_dims_t kernel, stride, dil, pl, pr;
};

static struct window window_of(const struct graph_layer *l, const dnnl_memory_desc_t *src,
                               int64_t P, int64_t Q)
{
    struct window w = {0};
    if (l->op == OP_KIND_GLOBAL_AVG_POOL) {
        w.alg = dnnl_pooling_avg_exclude_padding;
        for (int i = 0; i < 2; i++) w.kernel[i] = w.stride[i] = cpu_md_dim(src, 2 + i);
        return w;
    }
    const struct pool_params *p = &l->p.pool;
    w.alg = l->op == OP_KIND_MAXPOOL      ? dnnl_pooling_max
            : p->count_include_pad ? dnnl_pooling_avg_include_padding
                                   : dnnl_pooling_avg_exclude_padding;
    int64_t out[2] = {P, Q};
    for (int i = 0; i < 2; i++) {
        w.kernel[i] = p->kernel[i];
        w.stride[i] = p->stride[i];
        w.pl[i] = p->pad[i];
        /* ceil_mode: the right padding reaches the last window's end. */
        w.pr[i] = (out[i] - 1) * p->stride[i] + p->kernel[i] - cpu_md_dim(src, 2 + i) - p->pad[i];
        if (w.pr[i] < 0) w.pr[i] = p->pad[i] < -w.pr[i] ? 0 : p->pad[i];
    }
    return w;
}

static bool avgpool_supports(const struct graph *g, const struct graph_layer *l, char *why,
                             size_t size)
{
    const struct pool_params *p = &l->p.pool;
    const struct shape *in = graph_input_shape(g, l, 0);
    if (!p->ceil_mode || !p->count_include_pad) return true;
    for (int i = 0; i < 2; i++) {
        int64_t pr = (l->out.d[1 + i] - 1) * p->stride[i] + p->kernel[i] - in->d[1 + i] - p->pad[i];
        if (pr > p->pad[i]) {
            snprintf(why, size, "ceil_mode with count_include_pad averages the last window "
                     "over part of it; set count_include_pad: false or ceil_mode: false");
            return false;
        }
    }
    return true;
}

static void pool_forward(struct cpu *c, size_t li)
{
    const struct graph_layer *l = &cpu_graph(c)->layers[li];
    struct cpu_layer *cl = cpu_layer(c, l);
    dnnl_memory_desc_t src = *cpu_in_md(c, l, 0);
    int64_t dd[4] = {cpu_md_dim(&src, 0), cpu_md_dim(&src, 1), 1, 1};
    if (l->op != OP_KIND_GLOBAL_AVG_POOL) {
        dd[2] = l->out.d[1];
        dd[3] = l->out.d[2];
    }
    struct window w = window_of(l, &src, dd[2], dd[3]);
    dnnl_memory_desc_t dst = cpu_md(c, 4, dd, dnnl_format_tag_any);
    for (int ph = CPU_FWD_TRAIN; ph <= CPU_FWD_EVAL; ph++) {
        bool train = ph == CPU_FWD_TRAIN;
        struct onednn_op op = {.kind = ONEDNN_POOL,
                               .prop = train ? dnnl_forward_training : dnnl_forward_inference,
                               .alg = w.alg, .src = &src, .dst = &dst, .strides = w.stride,
                               .kernel = w.kernel, .dilation = w.dil, .pad_l = w.pl,
                               .pad_r = w.pr};
        dnnl_primitive_desc_t pd = cpu_pd(c, &op, NULL, l, "pooling");
        if (!pd) return;
        if (train) {
            cpu_keep_pd(c, li, pd);
            dst = cpu_query(c, pd, dnnl_query_dst_md, 0);
            cpu_output(c, li, &dst);
            cl->aux[0] = -1;
            dnnl_memory_desc_t ws = cpu_query(c, pd, dnnl_query_workspace_md, 0);
            if (onednn_md_size(&ws)) cl->aux[0] = cpu_buffer(c, onednn_md_size(&ws));
        }
        struct cpu_step *s = cpu_prim(c, (enum cpu_phase)ph, pd, l);
        cpu_act(c, s, DNNL_ARG_SRC, cpu_in_buf(c, l, 0), &src);
        cpu_act(c, s, DNNL_ARG_DST, cl->out, &dst);
        if (train && cl->aux[0] >= 0) {
            dnnl_memory_desc_t ws = cpu_query(c, cl->fwd_pd, dnnl_query_workspace_md, 0);
            cpu_act(c, s, DNNL_ARG_WORKSPACE, cl->aux[0], &ws);
        }
    }
}

static void pool_backward(struct cpu *c, size_t li)
{
    const struct graph_layer *l = &cpu_graph(c)->layers[li];
    struct cpu_layer *cl = cpu_layer(c, l);
    int dx = cpu_grad_begin(c, l, 0);
    if (dx < 0) return;
    dnnl_memory_desc_t src = *cpu_in_md(c, l, 0);
    struct window w = window_of(l, &src, cpu_md_dim(&cl->md, 2), cpu_md_dim(&cl->md, 3));
    struct onednn_op op = {.kind = ONEDNN_POOL_BWD, .alg = w.alg, .src = &src, .dst = &cl->md,
                           .strides = w.stride, .kernel = w.kernel, .dilation = w.dil,
                           .pad_l = w.pl, .pad_r = w.pr};
    struct cpu_step *s = cpu_prim(c, CPU_BWD, cpu_pd(c, &op, cl->fwd_pd, l, "pooling backward"), l);
    cpu_act(c, s, DNNL_ARG_DIFF_DST, cpu_grad_out(c, l), &cl->md);
    if (cl->aux[0] >= 0) {
        dnnl_memory_desc_t ws = cpu_query(c, cl->fwd_pd, dnnl_query_workspace_md, 0);
        cpu_act(c, s, DNNL_ARG_WORKSPACE, cl->aux[0], &ws);
    }
    cpu_act(c, s, DNNL_ARG_DIFF_SRC, dx, &src);
    cpu_grad_finish(c, l, 0, dx);
}

const struct cpu_op maxpool_cpu = {.forward = pool_forward, .backward = pool_backward};
const struct cpu_op avgpool_cpu = {
    .supports = avgpool_supports, .forward = pool_forward, .backward = pool_backward};
const struct cpu_op global_avg_pool_cpu = {.forward = pool_forward, .backward = pool_backward};
