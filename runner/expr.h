/*
 * expr.h: the $expressions of graph files. Inside a block, a setting or a stage argument may
 * compute with the block's parameters:
 *
 *     out: $width * 4          kernel: [1, $k]          pad: ($k - 1) // 2
 *
 * + - * / // % and parentheses over integers and numbers; integers stay integers (with
 * overflow checked), `/` gives a number where it does not divide, `//` and `%` round toward
 * minus infinity as in Python. A bare `$name` stands for the argument as written (any type,
 * at its own position).
 *
 *     struct expr_scope sc = {"bottleneck", names, 2, values};
 *     const struct node *v = expr_subst(arena, diag, setting, &sc);   // NULL: reported
 *
 * Errors (syntax, an undefined $name, a parameter that is not a number, division by zero,
 * overflow) are reported at their column in the scalar. Covered by tests/test_graph.c and
 * tests/bad_yaml/ (graph cases).
 */
#ifndef RUNNER_EXPR_H
#define RUNNER_EXPR_H

#include <stdbool.h>
#include <stddef.h>

#include "arena.h"
#include "diag.h"
#include "node.h"

/* What $names mean: a block's parameters, and their values in one instance. */
struct expr_scope {
    const char *block;         /* the block's name for messages; NULL: outside any block */
    const char *const *names;  /* n parameter names */
    size_t n;
    const struct node *const *values; /* per name; NULL: check syntax and names only */
};

/*
 * n (a scalar, list or mapping) with every plain scalar holding a `$` evaluated: a new tree
 * where something changed (results are plain scalars at the expression's mark), n itself
 * otherwise, and when checking only. NULL after an error, reported to d.
 */
const struct node *expr_subst(struct arena *a, struct diag *d, const struct node *n,
                              const struct expr_scope *sc);

/* Letters, '_' and (not first) digits: parameter names. */
bool expr_is_ident(char c, bool first);

#endif
