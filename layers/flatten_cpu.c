/*
 * layers/flatten_cpu.c: flatten on the CPU: a reorder of the feature map into the plain
 * (N, C*H*W) layout, and back for the gradient. Covered by tests/test_ops_cpu.c.
 */
#include "cpu.h"

/* The plain layout of a feature map has the bytes of its (N, C*H*W) flattening. */

static void flatten_forward(struct cpu *c, size_t li)
{
    const struct graph_layer *l = &cpu_graph(c)->layers[li];
    dnnl_memory_desc_t src = *cpu_in_md(c, l, 0), flat = cpu_plain_md(c, &src);
    int64_t dd[2] = {cpu_batch(c), l->out.d[0]};
    dnnl_memory_desc_t out = cpu_md(c, 2, dd, dnnl_nc);
    cpu_output(c, li, &out);
    for (int ph = CPU_FWD_TRAIN; ph <= CPU_FWD_EVAL; ph++)
        cpu_reorder_step(c, (enum cpu_phase)ph, l, cpu_in_buf(c, l, 0), &src,
                         cpu_layer(c, l)->out, &flat);
}

static void flatten_backward(struct cpu *c, size_t li)
{
    const struct graph_layer *l = &cpu_graph(c)->layers[li];
    int dx = cpu_grad_begin(c, l, 0);
    if (dx < 0) return;
    dnnl_memory_desc_t src = *cpu_in_md(c, l, 0), flat = cpu_plain_md(c, &src);
    cpu_reorder_step(c, CPU_BWD, l, cpu_grad_out(c, l), &flat, dx, &src);
    cpu_grad_finish(c, l, 0, dx);
}

const struct cpu_op flatten_cpu = {.forward = flatten_forward, .backward = flatten_backward};
