/*
 * layers/dropout_cpu.c: dropout on the CPU in C: in training each element is kept with
 * probability 1 - p (a counter-based draw of (seed, step, element), so the mask does not
 * depend on threads) and scaled by 1 / (1 - p); in evaluation a copy. Covered by
 * tests/test_ops_cpu.c.
 */
#include "cpu.h"

#include "rng.h"

static void dropout_kernel(struct cpu *c, const struct cpu_step *s)
{
    const float *x = s->args[0].ptr;
    float *y = s->args[1].ptr;
    unsigned char *mask = s->args[2].ptr;
    int64_t n = s->n;
    double p = s->f;
    float scale = (float)(1 / (1 - p));
    uint64_t key = cpu_seed(c);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        mask[i] = rng_uniform(key, (uint64_t)i) >= p;
        y[i] = mask[i] ? x[i] * scale : 0.0f;
    }
}

static void dropout_backward_kernel(struct cpu *c, const struct cpu_step *s)
{
    (void)c;
    const float *dy = s->args[0].ptr;
    float *dx = s->args[1].ptr;
    const unsigned char *mask = s->args[2].ptr;
    float scale = (float)(1 / (1 - s->f));
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < s->n; i++) dx[i] = mask[i] ? dy[i] * scale : 0.0f;
}

static void dropout_forward(struct cpu *c, size_t li)
{
    const struct graph_layer *l = &cpu_graph(c)->layers[li];
    struct cpu_layer *cl = cpu_layer(c, l);
    dnnl_memory_desc_t src = *cpu_in_md(c, l, 0);
    cpu_output(c, li, &src);
    int64_t n = (int64_t)(onednn_md_size(&src) / sizeof(float));
    cl->aux[0] = cpu_buffer(c, (size_t)n);
    struct cpu_step *s = cpu_kernel(c, CPU_FWD_TRAIN, dropout_kernel, l);
    cpu_act(c, s, 0, cpu_in_buf(c, l, 0), &src);
    cpu_act(c, s, 1, cl->out, &src);
    cpu_act(c, s, 2, cl->aux[0], &src);
    s->n = n;
    s->f = l->p.dropout.p;
    cpu_copy_step(c, CPU_FWD_EVAL, l, cpu_in_buf(c, l, 0), cl->out, &src);
}

static void dropout_backward(struct cpu *c, size_t li)
{
    const struct graph_layer *l = &cpu_graph(c)->layers[li];
    struct cpu_layer *cl = cpu_layer(c, l);
    int dx = cpu_grad_begin(c, l, 0);
    if (dx < 0) return;
    struct cpu_step *s = cpu_kernel(c, CPU_BWD, dropout_backward_kernel, l);
    cpu_act(c, s, 0, cpu_grad_out(c, l), &cl->md);
    cpu_act(c, s, 1, dx, &cl->md);
    cpu_act(c, s, 2, cl->aux[0], &cl->md);
    s->n = (int64_t)(onednn_md_size(&cl->md) / sizeof(float));
    s->f = l->p.dropout.p;
    cpu_grad_finish(c, l, 0, dx);
}

const struct cpu_op dropout_cpu = {.forward = dropout_forward, .backward = dropout_backward};
