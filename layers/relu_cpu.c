/*
 * layers/relu_cpu.c: relu on the CPU with oneDNN's eltwise primitive; backward from the
 * output (so the input need not be kept). After a batchnorm or an add it alone reads, that
 * layer does its forward (layers/batchnorm_cpu.c, layers/add_cpu.c; batchnorm its backward
 * too). Covered by tests/test_ops_cpu.c.
 */
#include "cpu.h"

static void relu_forward(struct cpu *c, size_t li)
{
    const struct graph_layer *l = &cpu_graph(c)->layers[li];
    dnnl_memory_desc_t src = *cpu_in_md(c, l, 0);
    if (cpu_layer(c, l)->fused) { /* done by the layer before it: its output is ours */
        cpu_layer(c, l)->md = src;
        cpu_layer(c, l)->out = cpu_in_buf(c, l, 0);
        return;
    }
    cpu_output(c, li, &src);
    struct onednn_op op = {.kind = ONEDNN_ELTWISE, .prop = dnnl_forward_training,
                           .alg = dnnl_eltwise_relu_use_dst_for_bwd, .src = &src};
    dnnl_primitive_desc_t pd = cpu_pd(c, &op, NULL, l, "relu");
    if (!pd) return;
    cpu_keep_pd(c, li, pd);
    for (int ph = CPU_FWD_TRAIN; ph <= CPU_FWD_EVAL; ph++) {
        struct cpu_step *s = cpu_prim(c, (enum cpu_phase)ph, pd, l);
        cpu_act(c, s, DNNL_ARG_SRC, cpu_in_buf(c, l, 0), &src);
        cpu_act(c, s, DNNL_ARG_DST, cpu_layer(c, l)->out, &src);
    }
}

static void relu_backward(struct cpu *c, size_t li)
{
    const struct graph_layer *l = &cpu_graph(c)->layers[li];
    struct cpu_layer *cl = cpu_layer(c, l);
    if (cl->fused == CPU_FUSED) { /* batchnorm's backward takes our gradient, applies the mask */
        if (!cpu_grad_alias(c, l, 0, cpu_grad_out(c, l), NULL, 0)) {
            int dx = cpu_grad_begin(c, l, 0); /* a shared buffer: its own copy */
            cpu_copy_step(c, CPU_BWD, l, cpu_grad_out(c, l), dx, &cl->md);
            cpu_grad_finish(c, l, 0, dx);
        }
        return;
    }
    int dx = cpu_grad_begin(c, l, 0);
    if (dx < 0) return;
    struct onednn_op op = {.kind = ONEDNN_ELTWISE_BWD, .alg = dnnl_eltwise_relu_use_dst_for_bwd,
                           .src = &cl->md, .dst = &cl->md};
    struct cpu_step *s = cpu_prim(c, CPU_BWD, cpu_pd(c, &op, cl->fwd_pd, l, "relu backward"), l);
    cpu_act(c, s, DNNL_ARG_DST, cl->out, &cl->md);
    cpu_act(c, s, DNNL_ARG_DIFF_DST, cpu_grad_out(c, l), &cl->md);
    cpu_act(c, s, DNNL_ARG_DIFF_SRC, dx, &cl->md);
    cpu_grad_finish(c, l, 0, dx);
}

const struct cpu_op relu_cpu = {.forward = relu_forward, .backward = relu_backward};
