/*
 * step.h: one training step, as the trainer and `runner bench` run it: the training forward,
 * the loss, the backward pass and the optimizer's update, on a plan whose input is set.
 *
 *     struct step_optimizer o;
 *     step_optimizer_init(&o, &spec->optimizer);
 *     plan_set_input(p, images, labels);
 *     double loss = step_train(p, &o, lr, spec->train.label_smoothing);
 *
 * The optimizers follow PyTorch's torch.optim (SGD with momentum, dampening and Nesterov;
 * Adam, with amsgrad; AdamW with decoupled weight decay). decay_bn_bias false puts the
 * tensors of rank <= 1 (batchnorm weights and biases, every bias) in a parameter group of
 * their own without weight decay. An update first clips the gradients to clip_grad_norm
 * (torch.nn.utils.clip_grad_norm_) and ends with the weights' EMA (ema_decay: what
 * torch.optim.swa_utils.AveragedModel keeps with avg_fn = decay * avg + (1 - decay) * w,
 * updated after every step). o counts the updates applied (Adam's bias correction, SGD's first
 * momentum step, the EMA's first copy). Covered by tests/test_optim.c (hand-computed values),
 * tests/test_optim_parity.c (twelve steps against torch.optim under every schedule) and
 * tests/test_parity.c (one ResNet-50 step).
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
    double clip_grad_norm; /* 0: off */
    double grad_norm;      /* the gradients' norm before the last update's clipping */
    double ema_decay;
    int ema_slot;    /* the optimizer slot holding the weights' EMA (the last); -1: no EMA */
    int64_t updates; /* applied so far (as the backend counts them: skipped fp16 steps not) */
};

/* The optimizer described by s, with no update made yet. Its slots are
 * model_optimizer_slots' (the EMA's last). */
void step_optimizer_init(struct step_optimizer *o, const struct spec_optimizer *s);

/* Applies one update from the gradients in p at learning rate lr: clipping, the optimizer's
 * step, the EMA. */
void step_update(struct plan *p, struct step_optimizer *o, double lr);

/* Forward (training mode), loss with label smoothing, backward, update; returns the loss. */
double step_train(struct plan *p, struct step_optimizer *o, double lr, double smoothing);
/* The same in two halves (plan_step_start, plan_step_wait): start a step, set the next batch
 * while the device computes, start it, then wait for the first one's result. */
void step_train_start(struct plan *p, struct step_optimizer *o, double lr, double smoothing);
void step_train_wait(struct plan *p, struct step_optimizer *o, struct plan_step_result *r);

#endif
