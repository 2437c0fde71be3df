/*
 * step.c: one training step; see step.h. Covered by tests/test_parity.c.
 */
#include "step.h"

void step_optimizer_init(struct step_optimizer *o, const struct spec_optimizer *s)
{
    *o = (struct step_optimizer){.type = s->type};
    o->sgd = (struct plan_sgd){.lr = s->lr, .momentum = s->momentum, .dampening = s->dampening,
                               .weight_decay = s->weight_decay, .nesterov = s->nesterov};
    o->adam = (struct plan_adam){.lr = s->lr, .beta1 = s->betas[0], .beta2 = s->betas[1],
                                 .eps = s->eps, .weight_decay = s->weight_decay,
                                 .decoupled = s->type == SPEC_OPTIMIZER_ADAMW};
}

void step_update(struct plan *p, struct step_optimizer *o, double lr)
{
    o->updates++;
    if (o->type == SPEC_OPTIMIZER_SGD) {
        o->sgd.lr = lr;
        plan_sgd_step(p, &o->sgd, o->updates == 1);
    } else {
        o->adam.lr = lr;
        plan_adam_step(p, &o->adam, o->updates);
    }
}

double train_step(struct plan *p, struct step_optimizer *o, double lr, double smoothing)
{
    plan_forward(p, true);
    double loss = plan_loss(p, smoothing);
    plan_backward(p, NULL);
    step_update(p, o, lr);
    return loss;
}
