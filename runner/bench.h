/*
 * bench.h: `runner bench`: times whole training steps (train_step: forward, loss, backward,
 * optimizer update) or evaluation batches of an experiment's network on synthetic input at
 * its batch size, and prints each step, the peak memory and, last, the median images/s.
 * With profile, also the time per op kind and per layer (forward and backward).
 * Covered by tests/test_cli.sh.
 */
#ifndef RUNNER_BENCH_H
#define RUNNER_BENCH_H

#include <stdbool.h>
#include <stdio.h>

#include "common.h"
#include "graph.h"
#include "spec.h"

struct bench_options {
    bool infer;  /* evaluation batches, not training steps */
    int steps;   /* timed */
    int warmup;  /* run first, not timed */
    bool profile;
};

MUST_CHECK enum status bench_run(const struct spec *s, const struct graph *g,
                                 const struct bench_options *o, FILE *out);

#endif
