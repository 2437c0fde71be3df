/*
 * bench.h: `runner bench`: times whole training steps (step_train: forward, loss, backward,
 * optimizer update) or evaluation batches of an experiment's network on synthetic input at
 * its batch size, and prints each step, the peak memory and, last, the median images/s.
 * With profile, also the time per op kind and per layer (forward and backward).
 * Covered by tests/test_cli.sh.
 */
#ifndef RUNNER_BENCH_H
#define RUNNER_BENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common.h"
#include "graph.h"
#include "plan.h"
#include "spec.h"

struct bench_options {
    bool infer;  /* evaluation batches, not training steps */
    int steps;   /* timed */
    int warmup;  /* run first, not timed */
    bool profile;
};

MUST_CHECK enum status bench_run(const struct spec *s, const struct graph *g,
                                 const struct bench_options *o, FILE *out);

/* The kernel times of p (plan_options.profile) per op kind and per layer, as ms per step
 * (per batch with infer) over `steps` of them. */
void bench_print_profile(FILE *out, struct plan *p, const struct graph *g, int64_t steps,
                         bool infer);

#endif
