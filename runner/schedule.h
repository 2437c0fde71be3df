/*
 * schedule.h: the learning rate of every optimizer step, from `schedule:` and optimizer.lr.
 *
 *     struct schedule sc;
 *     schedule_init(&sc, &spec->schedule, spec->optimizer.lr, epochs, steps_per_epoch);
 *     for (int64_t t = 0; t < sc.total; t++) step_train(p, &o, schedule_lr(&sc, t), ...);
 *
 * Step t (0-based) is the t-th optimizer update. The shapes follow PyTorch's schedulers
 * stepped once per batch: constant; step and multistep (decay by gamma at whole epochs:
 * StepLR, MultiStepLR counted in epochs); exponential (gamma per epoch, smoothly: gamma^(t /
 * steps_per_epoch)); cosine (CosineAnnealingLR from lr to min_lr over the steps after the
 * warm-up); onecycle (OneCycleLR with pct_start, div_factor, final_div_factor, cos or linear
 * annealing). A warm-up of warmup_epochs (whole steps, rounded) rises linearly from
 * warmup_start_factor x lr (LinearLR) and replaces the other schedule's value meanwhile.
 * Covered by tests/test_schedule.c.
 */
#ifndef RUNNER_SCHEDULE_H
#define RUNNER_SCHEDULE_H

#include <stdint.h>

#include "spec.h"

struct schedule {
    const struct spec_schedule *s;
    double lr;
    int64_t steps_per_epoch, total, warmup; /* steps */
};

void schedule_init(struct schedule *sc, const struct spec_schedule *s, double lr, int64_t epochs,
                   int64_t steps_per_epoch);

/* The learning rate of step t, 0 <= t < total. */
double schedule_lr(const struct schedule *sc, int64_t t);

#endif
