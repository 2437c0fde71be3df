/*
 * plan_compare.h: whether two plans of one graph hold the same bits in every tensor and every
 * optimizer slot (the GPU tests: graph replay against kernel by kernel, a resident batch
 * against an uploaded one, started steps against whole ones).
 */
#ifndef RUNNER_TEST_PLAN_COMPARE_H
#define RUNNER_TEST_PLAN_COMPARE_H

#include <stdlib.h>
#include <string.h>

#include "plan.h"

/* Fails (cmocka's fail_msg) naming the first tensor that differs. */
static inline void expect_same_bits(struct plan *a, struct plan *b, const char *what)
{
    const struct graph *g = a->g;
    for (size_t i = 0; i < g->ntensors; i++) {
        const struct graph_tensor *gt = &g->tensors[i];
        size_t n = (size_t)op_tensor_numel(&gt->t) * (gt->t.dtype == TENSOR_I64 ? 8 : 4);
        char *u = malloc(n), *v = malloc(n);
        if (!u || !v) abort();
        for (int k = -1; k < (gt->t.role == TENSOR_PARAM ? a->opt.optimizer_slots : 0); k++) {
            if (k < 0) {
                plan_get_tensor(a, gt, u);
                plan_get_tensor(b, gt, v);
            } else {
                plan_get_state(a, gt, k, (float *)u);
                plan_get_state(b, gt, k, (float *)v);
            }
            if (memcmp(u, v, n))
                fail_msg("%s: %s%s differs between the two plans", what, gt->name,
                         k < 0 ? "" : k == 0 ? " (optimizer slot 0)"
                                  : k == 1 ? " (optimizer slot 1)" : " (optimizer slot 2)");
        }
        free(u);
        free(v);
    }
}

#endif
