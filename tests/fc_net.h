/*
 * fc_net.h: the linear layer 7 -> 5 on the CPU backend that the optimizer tests (test_optim.c,
 * test_gpu_math.c) update: its plan, its parameters as one vector of NP floats (fc.weight's
 * NW values, then fc.bias's OUT, a vector), and fixed initial weights and gradients of both
 * signs and various sizes. Include after <cmocka.h> and test_util.h.
 */
#ifndef RUNNER_TEST_FC_NET_H
#define RUNNER_TEST_FC_NET_H

#include <math.h>
#include <string.h>

#include "diag.h"
#include "graph.h"
#include "plan.h"

#define IN 7
#define OUT 5
#define NW (IN * OUT) /* fc.weight's values, then fc.bias's: the parameters as one vector */
#define NP (NW + OUT)

static const char *const fc_yaml = "input: [7, 1, 1]\n"
                                   "graph: [flatten, {name: fc, op: linear, out: 5}]\n";

struct net {
    struct arena a;
    struct graph *g;
    struct plan *p;
    const struct graph_tensor *w, *b; /* fc.weight and fc.bias; NULL where yaml has none */
};

/* The plan of yaml (any network; fc_yaml for the vector functions below) at batch 2. */
static inline void net_open(struct net *t, const char *yaml, int slots)
{
    memset(t, 0, sizeof *t);
    t->g = graph_of_text(&t->a, "net.yaml", yaml);
    assert_non_null(t->g);
    struct diag d = {.out = stderr};
    struct plan_options o = {.batch = 2, .optimizer_slots = slots, .seed = 1};
    assert_int_equal(plan_create(t->g, &backend_cpu, &o, &d, &t->p), STATUS_OK);
    t->w = graph_find_tensor(t->g, "fc.weight");
    t->b = graph_find_tensor(t->g, "fc.bias");
}

static inline void net_close(struct net *t)
{
    plan_free(t->p);
    graph_free(t->g);
    arena_free(&t->a);
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
