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
 * Globals are integers every expression sees, at the top level and in every block: the
 * graph's `$classes` (the data's class count). A block's parameters are looked up first, so
 * the caller keeps their names apart (graph.c rejects a parameter named after a global). A
 * global without a value (a graph built without data) is an error at its use, with the
 * global's own reason.
 *
 *     struct expr_global classes = {"classes", true, 10, NULL};
 *     struct expr_scope sc = {"bottleneck", names, 2, values, &classes, 1};
 *     const struct node *v = expr_subst(arena, diag, setting, &sc);   // NULL: reported
 *
 * Errors (syntax, an undefined $name, a parameter that is not a number, an unbound global,
 * division by zero, overflow) are reported at their column in the scalar. Covered by
 * tests/test_graph.c and tests/bad_yaml/ (graph cases).
 */
#ifndef RUNNER_EXPR_H
#define RUNNER_EXPR_H

#include <stdbool.h>
#include <stddef.h>

#include "arena.h"
#include "diag.h"
#include "node.h"

/* A $name defined everywhere in a graph, outside and inside blocks. */
struct expr_global {
    const char *name;    /* "classes" */
    bool bound;          /* false: using it is an error */
    long long value;     /* where bound */
    const char *unbound; /* where not: why it has no value, ends the message */
};

/* What $names mean: a block's parameters, and their values in one instance; then globals. */
struct expr_scope {
    const char *block;         /* the block's name for messages; NULL: outside any block */
    const char *const *names;  /* n parameter names */
    size_t n;
    const struct node *const *values; /* per name; NULL in a block: check syntax and names
                                       * only (parameters count as 1, globals as bound) */
    const struct expr_global *globals; /* nglobals, looked up after the parameters */
    size_t nglobals;
};

/*
 * n (a scalar, list or mapping) with every plain scalar holding a `$` evaluated: a new tree
 * where something changed (results are plain scalars at the expression's mark), n itself
 * otherwise, and when checking only (a block's scope without values). NULL after an error,
 * reported to d.
 */
const struct node *expr_subst(struct arena *a, struct diag *d, const struct node *n,
                              const struct expr_scope *sc);

/* Letters, '_' and (not first) digits: parameter names. */
bool expr_is_ident(char c, bool first);

#endif
