/*
 * summary.h: what `runner plan` prints: every layer (name, op, settings, output shape,
 * parameters, multiply-adds) and the totals, with the memory one training step needs at the
 * experiment's batch size.
 *
 *     struct summary_memory m = summary_memory(spec, graph, false);   // on the CPU
 *     summary_print(stdout, spec, graph, false, &plan->sizes);
 *     struct summary_target t = {.cuda = true, .cc = 75, .precision = "fp16",
 *                                .source = "as --gpu sm_75 asks"};
 *     summary_print_for(stdout, spec, graph, &t, &gpu_sizes);         // a T4's plan
 *
 * The memory is the plan's arenas, beside summary_memory's estimate from the graph:
 * parameters and buffers in fp32 (plus a 16-bit copy of the parameters with bf16/fp16
 * compute), fp32 gradients, the optimizer's state, and every layer's output at the compute
 * precision, all kept for the backward pass.
 * Covered by tests/test_graph.c and tests/test_cli.sh.
 */
#ifndef RUNNER_SUMMARY_H
#define RUNNER_SUMMARY_H

#include <stdbool.h>
#include <stdio.h>

#include "graph.h"
#include "plan.h"
#include "spec.h"

struct summary_memory {
    long long batch;
    const char *precision;  /* "fp32", "bf16", "fp16" */
    int state_per_param;    /* optimizer values per parameter */
    size_t params;          /* parameters, buffers and (mixed precision) their compute copy */
    size_t grads;
    size_t optimizer;
    size_t activations;     /* the input batch and every layer's output */
    size_t total;
};

/* What a plan is for: the CPU, or a GPU of compute capability cc at a precision (the one
 * device_precision gives there). */
struct summary_target {
    bool cuda;
    int cc;                /* cuda: the compute capability planned for (75 for 7.5) */
    const char *precision; /* "fp32", "bf16", "fp16" */
    const char *source;    /* cuda: where cc comes from, after "planned for compute
                              capability 7.5 (fp16), ": "as --gpu sm_75 asks" */
};

/* The target summary_memory and summary_print assume: the CPU in fp32, or a GPU of compute
 * capability DEVICE_CC_DEFAULT at s's precision (auto: bf16 there). */
struct summary_target summary_target_default(const struct spec *s, bool cuda);

struct summary_memory summary_memory(const struct spec *s, const struct graph *g, bool cuda);
struct summary_memory summary_memory_for(const struct spec *s, const struct graph *g,
                                         const struct summary_target *t);
/* real: the arenas of the plan built for the experiment (the CPU's, or gpu_plan_sizes' for a
 * GPU), printed beside the estimate of every layer's outputs. A GPU plan's header says which
 * compute capability and precision it assumed. */
void summary_print(FILE *out, const struct spec *s, const struct graph *g, bool cuda,
                   const struct plan_sizes *real);
void summary_print_for(FILE *out, const struct spec *s, const struct graph *g,
                       const struct summary_target *t, const struct plan_sizes *real);

/* `runner plan`: s's plan for target t (t->cuda, t->cc and t->source set; t->precision is set
 * here, as a run decides it: device_precision, with gpu naming the device in its errors): the
 * CPU's arenas sized and not allocated, or the GPU's planning, then summary_print_for onto out.
 * STATUS_CONFIG, in d, when the precision or a layer is refused. */
MUST_CHECK enum status summary_plan(FILE *out, const struct spec *s, const struct graph *g,
                                    struct summary_target *t, const char *gpu, struct diag *d);

#endif
