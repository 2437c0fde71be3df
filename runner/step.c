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

/* The plan's description of o's next update at learning rate lr. */
static void next_step(struct step_optimizer *o, double lr, double smoothing, struct plan_step *st)
{
    o->updates++;
    o->sgd.lr = o->adam.lr = lr;
    struct plan_optimizer opt = {.kind = PLAN_OPT_SGD, .u.sgd = o->sgd};
    if (o->type != SPEC_OPTIMIZER_SGD) opt = (struct plan_optimizer){PLAN_OPT_ADAM, .u.adam = o->adam};
    *st = (struct plan_step){.smoothing = smoothing, .opt = opt, .t = o->updates,
                             .clip_grad_norm = o->clip_grad_norm, .ema_slot = o->ema_slot,
                             .ema_decay = o->ema_decay};
}

void step_update(struct plan *p, struct step_optimizer *o, double lr)
{
    struct plan_step st;
    next_step(o, lr, 0, &st);
    double norm = plan_update(p, &st);
    if (st.clip_grad_norm > 0) o->grad_norm = norm;
}

void step_train_start(struct plan *p, struct step_optimizer *o, double lr, double smoothing)
{
    struct plan_step st;
    next_step(o, lr, smoothing, &st);
    plan_step_start(p, &st);
}

void step_train_wait(struct plan *p, struct step_optimizer *o, struct plan_step_result *r)
{
    plan_step_wait(p, r);
    /* The count of applied updates is the backend's (a skipped fp16 step does not count), plus
     * the steps still in flight, which take the next numbers if they apply: exact once none
     * is pending, as at every checkpoint. */
    o->updates = r->updates + plan_steps_pending(p);
    if (o->clip_grad_norm > 0) o->grad_norm = r->grad_norm;
}

double step_train(struct plan *p, struct step_optimizer *o, double lr, double smoothing)
{
    struct plan_step_result r;
    step_train_start(p, o, lr, smoothing);
    step_train_wait(p, o, &r);
    return r.loss;
}
