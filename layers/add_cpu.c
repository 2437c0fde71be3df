/*
 * layers/add_cpu.c: add on the CPU with oneDNN's binary primitive (with the relu that alone
 * reads it as a post-op); its backward hands the output's gradient to both inputs (the same
 * buffer where that is safe, else a copy). Covered by tests/test_ops_cpu.c.
 */
#include "cpu.h"

static void add_forward(struct cpu *c, size_t li)
{
    const struct graph_layer *l = &cpu_graph(c)->layers[li];
    dnnl_memory_desc_t a = *cpu_in_md(c, l, 0), b = *cpu_in_md(c, l, 1);
    cpu_output(c, li, &a);
    struct onednn_op op = {.kind = ONEDNN_BINARY, .alg = dnnl_binary_add, .src = &a, .src1 = &b,
                           .dst = &a};
    /* A relu that alone reads the sum is applied here; its backward (from the output) stays. */
    int k = cpu_sole_consumer(c, li);
    bool relu = k >= 0 && cpu_graph(c)->layers[k].op == OP_KIND_RELU;
    if (relu) cpu_layer(c, &cpu_graph(c)->layers[k])->fused = CPU_FUSED_FORWARD;
    dnnl_primitive_desc_t pd = relu ? cpu_pd_relu(c, &op, l, "add") : cpu_pd(c, &op, NULL, l, "add");
    if (!pd) return;
    cpu_keep_pd(c, li, pd);
    for (int ph = CPU_FWD_TRAIN; ph <= CPU_FWD_EVAL; ph++) {
        struct cpu_step *s = cpu_prim(c, (enum cpu_phase)ph, pd, l);
        cpu_act(c, s, DNNL_ARG_SRC_0, cpu_in_buf(c, l, 0), &a);
        cpu_act(c, s, DNNL_ARG_SRC_1, cpu_in_buf(c, l, 1), &b);
        cpu_act(c, s, DNNL_ARG_DST, cpu_layer(c, l)->out, &a);
    }
}

static void add_backward(struct cpu *c, size_t li)
{
    const struct graph_layer *l = &cpu_graph(c)->layers[li];
    struct cpu_layer *cl = cpu_layer(c, l);
    int aliased[2], n = 0;
    for (int i = 0; i < 2; i++) {
        /* Both inputs' gradients are the output's: share its buffer where that is safe. */
        if (cpu_grad_alias(c, l, i, cpu_grad_out(c, l), aliased, n)) {
            aliased[n++] = l->in[i];
            continue;
        }
        int dx = cpu_grad_begin(c, l, i);
        if (dx < 0) continue;
        const dnnl_memory_desc_t *md = cpu_in_md(c, l, i);
        if (onednn_md_equal(md, &cl->md))
            cpu_copy_step(c, CPU_BWD, l, cpu_grad_out(c, l), dx, md);
        else
            cpu_reorder_step(c, CPU_BWD, l, cpu_grad_out(c, l), &cl->md, dx, md);
        cpu_grad_finish(c, l, i, dx);
    }
}

const struct cpu_op add_cpu = {.forward = add_forward, .backward = add_backward};
