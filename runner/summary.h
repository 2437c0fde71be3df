/*
 * summary.h: what `runner plan` prints: every layer (name, op, settings, output shape,
 * parameters, multiply-adds) and the totals, with the memory one training step needs at the
 * experiment's batch size.
 *
 *     struct summary_memory m = summary_memory(spec, graph, false);   // on the CPU
 *     summary_print(stdout, spec, graph, false, &plan->sizes);
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

struct summary_memory summary_memory(const struct spec *s, const struct graph *g, bool cuda);
/* real: the arenas of the plan built for the experiment (the CPU's, or gpu_plan_sizes' for a
 * GPU), printed beside the estimate of every layer's outputs. */
void summary_print(FILE *out, const struct spec *s, const struct graph *g, bool cuda,
                   const struct plan_sizes *real);

#endif
