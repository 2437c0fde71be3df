/*
 * step.c: one training step; see step.h. Covered by tests/test_optim.c,
 * tests/test_optim_parity.c and tests/test_parity.c.
 */
#include "step.h"

void step_optimizer_init(struct step_optimizer *o, const struct spec_optimizer *s)
{
    bool adam = s->type != SPEC_OPTIMIZER_SGD, no_decay = !s->decay_bn_bias;
    *o = (struct step_optimizer){.type = s->type, .clip_grad_norm = s->clip_grad_norm,
                                 .ema_decay = s->ema_decay, .ema_slot = -1};
    o->sgd = (struct plan_sgd){.lr = s->lr, .momentum = s->momentum, .dampening = s->dampening,
                               .weight_decay = s->weight_decay, .nesterov = s->nesterov,
                               .no_decay_vectors = no_decay};
    o->adam = (struct plan_adam){.lr = s->lr, .beta1 = s->betas[0], .beta2 = s->betas[1],
                                 .eps = s->eps, .weight_decay = s->weight_decay,
                                 .decoupled = s->type == SPEC_OPTIMIZER_ADAMW,
                                 .amsgrad = adam && s->amsgrad, .no_decay_vectors = no_decay};
    /* The optimizer's own slots come first (model_optimizer_slots counts the same). */
    if (s->ema_decay > 0) o->ema_slot = adam ? 2 + o->adam.amsgrad : s->momentum > 0;
}

void step_update(struct plan *p, struct step_optimizer *o, double lr)
{
    o->updates++;
    if (o->clip_grad_norm > 0) o->grad_norm = plan_clip_grad_norm(p, o->clip_grad_norm);
    if (o->type == SPEC_OPTIMIZER_SGD) {
        o->sgd.lr = lr;
        plan_sgd_step(p, &o->sgd, o->updates == 1);
    } else {
        o->adam.lr = lr;
        plan_adam_step(p, &o->adam, o->updates);
    }
    /* AveragedModel copies the weights on its first update_parameters. */
    if (o->ema_slot >= 0) plan_ema_update(p, o->ema_slot, o->ema_decay, o->updates == 1);
}

double train_step(struct plan *p, struct step_optimizer *o, double lr, double smoothing)
{
    plan_forward(p, true);
    double loss = plan_loss(p, smoothing);
    plan_backward(p, NULL);
    step_update(p, o, lr);
    return loss;
}
