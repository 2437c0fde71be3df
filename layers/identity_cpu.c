/*
 * layers/identity_cpu.c: identity on the CPU: a copy forward, and of the gradient backward.
 * Covered by tests/test_ops_cpu.c.
 */
#include "cpu.h"

static void identity_forward(struct cpu *c, size_t li)
{
    const struct graph_layer *l = &cpu_graph(c)->layers[li];
    dnnl_memory_desc_t src = *cpu_in_md(c, l, 0);
    cpu_output(c, li, &src);
    for (int ph = CPU_FWD_TRAIN; ph <= CPU_FWD_EVAL; ph++)
        cpu_copy_step(c, (enum cpu_phase)ph, l, cpu_in_buf(c, l, 0), cpu_layer(c, l)->out, &src);
}

static void identity_backward(struct cpu *c, size_t li)
{
    const struct graph_layer *l = &cpu_graph(c)->layers[li];
    int dx = cpu_grad_begin(c, l, 0);
    if (dx < 0) return;
    cpu_copy_step(c, CPU_BWD, l, cpu_grad_out(c, l), dx, &cpu_layer(c, l)->md);
    cpu_grad_finish(c, l, 0, dx);
}

const struct cpu_op identity_cpu = {.forward = identity_forward, .backward = identity_backward};
