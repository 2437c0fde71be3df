/*
 * fc_net.h: the linear layer 7 -> 5 on the CPU backend that the optimizer tests (test_optim.c,
 * test_gpu_math.c) update: its plan, its parameters as one vector of NP floats (fc.weight's
 * NW values, then fc.bias's OUT, a vector), and fixed initial weights and gradients of both
 * signs and various sizes. Include after <cmocka.h>.
 */
#ifndef RUNNER_TEST_FC_NET_H
#define RUNNER_TEST_FC_NET_H

#include <math.h>

#include "graph.h"
#include "plan.h"
#include "test_net.h"

#define IN 7
#define OUT 5
#define NW (IN * OUT) /* fc.weight's values, then fc.bias's: the parameters as one vector */
#define NP (NW + OUT)

static const char *const fc_yaml = "input: [7, 1, 1]\n"
                                   "graph: [flatten, {name: fc, op: linear, out: 5}]\n";

/* The plan of yaml (any network; fc_yaml for the vector functions below) at batch 2, its
 * parameters as plan_create leaves them (test_net.h's struct net; net_close closes it). */
static inline void net_open(struct net *t, const char *yaml, int slots)
{
    struct plan_options o = {.batch = 2, .optimizer_slots = slots, .seed = 1};
    net_open_text(t, yaml, NULL, &o);
}

static inline void net_check_fc(const struct net *t)
{
    assert_non_null(t->w);
    assert_non_null(t->b);
}

/* Sets fc's weights, or their gradients, from the NP values of f. */
static inline void net_set(struct net *t, const float *f)
{
    net_check_fc(t);
    plan_set_tensor(t->p, t->w, f);
    plan_set_tensor(t->p, t->b, f + NW);
}

static inline void net_set_grad(struct net *t, const float *f)
{
    net_check_fc(t);
    plan_set_grad(t->p, t->w, f);
    plan_set_grad(t->p, t->b, f + NW);
}

/* fc's weights (slot -1) or optimizer slot `slot`, as NP values into f. */
static inline void net_get(struct net *t, int slot, float *f)
{
    net_check_fc(t);
    if (slot < 0) {
        plan_get_tensor(t->p, t->w, f);
        plan_get_tensor(t->p, t->b, f + NW);
    } else {
        plan_get_state(t->p, t->w, slot, f);
        plan_get_state(t->p, t->b, slot, f + NW);
    }
}

/* Fixed values of both signs and various sizes: initial weights, gradients of update s (1,
 * 2, ...). The first update's gradient is the largest, so Adam's second moment shrinks after
 * it (amsgrad keeps the first). */
static inline float weight0(int i)
{
    return (float)(0.5 * sin(1.3 * i + 0.2));
}

static inline float grad_of(int s, int i)
{
    return (float)((s == 1 ? 1.0 : 0.2) * cos(0.7 * i + 1.1 * s) + 0.01 * s);
}

#endif
