/*
 * test_net.h: a network's CPU plan built from YAML text, for the tests that train, update or
 * save one (test_plan.c, test_weights.c, and through fc_net.h test_optim.c and
 * test_gpu_math.c): the arena, graph and plan, opened and closed together, and input values
 * for a batch. Include after <cmocka.h>.
 */
#ifndef RUNNER_TEST_NET_H
#define RUNNER_TEST_NET_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "diag.h"
#include "graph.h"
#include "plan.h"
#include "test_util.h"
#include "yaml_load.h"

struct net {
    struct arena a;
    struct graph *g;
    struct plan *p;
    size_t in_n;                      /* input values of a batch */
    const struct graph_tensor *w, *b; /* fc.weight and fc.bias; NULL where yaml has none */
};

/* The CPU plan of yaml (a network's text, net.yaml in messages) with the options o; data,
 * where not NULL, the shape of the data the network's input takes. The parameters are as
 * plan_create leaves them (plan_init_params sets them); errors go to stderr and fail the test. */
static inline void net_open_text(struct net *t, const char *yaml, const struct shape *data,
                                 const struct plan_options *o)
{
    memset(t, 0, sizeof *t);
    struct source *src = arena_alloc(&t->a, sizeof *src);
    *src = (struct source){"net.yaml", ".", yaml, strlen(yaml)};
    struct diag d = {.out = stderr};
    struct node *root;
    assert_int_equal(yaml_load_text(&t->a, &d, src, yaml, strlen(yaml), 1, 1, &root), STATUS_OK);
    assert_int_equal(graph_build_for(root, data, TEST_CLASSES, &d, &t->g), STATUS_OK);
    assert_int_equal(plan_create(t->g, &backend_cpu, o, &d, &t->p), STATUS_OK);
    t->in_n = (size_t)o->batch * (size_t)shape_numel(&t->g->input);
    t->w = graph_find_tensor(t->g, "fc.weight");
    t->b = graph_find_tensor(t->g, "fc.bias");
}

static inline void net_close(struct net *t)
{
    plan_free(t->p);
    graph_free(t->g);
    arena_free(&t->a);
}

/* n input values in [-1, 1) from seed into x (a batch: in_n of them). */
static inline void net_batch(size_t n, uint64_t seed, float *x)
{
    uint64_t s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        x[i] = (float)((double)(s >> 11) * 0x1.0p-53 * 2 - 1);
    }
}

#endif
