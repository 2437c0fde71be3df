/*
 * step.h: one training step, as the trainer and `runner bench` run it: the training forward,
 * the loss, the backward pass and the optimizer's update, on a plan whose input is set.
 *
 *     struct step_optimizer o;
 *     step_optimizer_init(&o, &spec->optimizer);
 *     plan_set_input(p, images, labels);
 *     double loss = train_step(p, &o, lr, spec->train.label_smoothing);
 *
 * The optimizers follow PyTorch's torch.optim (SGD with momentum, dampening and Nesterov;
 * Adam; AdamW with decoupled weight decay); o counts the updates made (Adam's bias
 * correction, SGD's first momentum step). Covered by tests/test_parity.c (one step against
 * PyTorch) and tests/test_plan.c.
 */
#ifndef RUNNER_STEP_H
#define RUNNER_STEP_H

#include <stdint.h>

#include "plan.h"
#include "spec.h"

struct step_optimizer {
    enum spec_optimizer_type type;
    struct plan_sgd sgd;   /* type sgd */
    struct plan_adam adam; /* type adam, adamw */
    int64_t updates;       /* made so far */
};

/* The optimizer described by s, with no update made yet. */
void step_optimizer_init(struct step_optimizer *o, const struct spec_optimizer *s);

/* Applies one update from the gradients in p at learning rate lr. */
void step_update(struct plan *p, struct step_optimizer *o, double lr);

/* Forward (training mode), loss with label smoothing, backward, update; returns the loss. */
double train_step(struct plan *p, struct step_optimizer *o, double lr, double smoothing);

#endif
