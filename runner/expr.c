/*
 * expr.c: $expressions in graph files: `$width * 4`, `($c + 1) // 2`. A recursive-descent
 * parser over long long and double, with overflow and division by zero reported at their
 * column. See expr.h. Covered by tests/test_graph.c and tests/bad_yaml/ (graph cases).
 */
#include "expr.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct num {
    bool is_int;
    long long i;
    double f;
};

struct expr {
    const char *text, *p;
    const struct node *n; /* the scalar */
    const struct expr_scope *sc;
    struct diag *d;
    struct arena *a;
    bool failed;
};

static struct mark expr_mark(const struct expr *e, const char *at)
{
    struct mark m = e->n->mark;
    /* A plain scalar on one line: its columns follow its text. */
    if (!memchr(e->text, '\n', (size_t)(at - e->text))) m.col += (int)(at - e->text);
    return m;
}

static void expr_fail(struct expr *e, const char *at, const char *fmt, const char *arg)
{
    if (e->failed) return;
    e->failed = true;
    diag_error(e->d, expr_mark(e, at), fmt, arg);
}

static void skip_space(struct expr *e)
{
    while (*e->p == ' ' || *e->p == '\t') e->p++;
}

bool expr_is_ident(char c, bool first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           (!first && c >= '0' && c <= '9');
}

static double num_f(struct num x)
{
    return x.is_int ? (double)x.i : x.f;
}

static struct num parse_sum(struct expr *e);

static const struct expr_global *find_global(const struct expr_scope *sc, const char *name,
                                             size_t len)
{
    for (size_t i = 0; i < sc->nglobals; i++)
        if (strlen(sc->globals[i].name) == len && strncmp(sc->globals[i].name, name, len) == 0)
            return &sc->globals[i];
    return NULL;
}

static struct num global_value(struct expr *e, const char *at, const struct expr_global *g)
{
    if (g->bound) return (struct num){true, g->value, (double)g->value};
    if (!e->failed) {
        e->failed = true;
        diag_error(e->d, expr_mark(e, at), "'$%s' has no value: %s", g->name, g->unbound);
    }
    return (struct num){true, 0, 0};
}

/* The parameter or global closest to word, for a hint; NULL: none is close. */
static const char *closest_name(struct expr *e, const char *word)
{
    const struct expr_scope *sc = e->sc;
    const char **all = arena_alloc(e->a, (sc->n + sc->nglobals + 1) * sizeof *all);
    for (size_t i = 0; i < sc->n; i++) all[i] = sc->names[i];
    for (size_t i = 0; i < sc->nglobals; i++) all[sc->n + i] = sc->globals[i].name;
    return diag_closest(word, all, sc->n + sc->nglobals);
}

static struct num param_value(struct expr *e, const char *at, const char *name, size_t len)
{
    struct num zero = {true, 0, 0};
    const struct expr_scope *sc = e->sc;
    size_t idx = sc->n;
    for (size_t i = 0; i < sc->n; i++)
        if (strlen(sc->names[i]) == len && strncmp(sc->names[i], name, len) == 0) idx = i;
    if (idx == sc->n) {
        const struct expr_global *g = find_global(sc, name, len);
        if (g) return global_value(e, at, g);
    }
    char *word = arena_strndup(e->a, name, len);
    if (!sc->block) {
        if (e->failed) return zero;
        expr_fail(e, at, "'$%s' is not defined: $parameters exist only inside blocks", word);
        const char *best = closest_name(e, word);
        if (best) diag_hint(e->d, "did you mean '$%s'?", best);
        return zero;
    }
    if (idx == sc->n) {
        if (e->failed) return zero;
        expr_fail(e, at, "'$%s' is not a parameter of this block", word);
        const char *best = closest_name(e, word);
        char list[256];
        size_t used = 0;
        list[0] = '\0';
        for (size_t i = 0; i < sc->n && used < sizeof list; i++)
            used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "",
                                     sc->names[i]);
        if (best)
            diag_hint(e->d, "did you mean '$%s'?", best);
        else if (sc->n)
            diag_hint(e->d, "block '%s' has the parameters: %s", sc->block, list);
        else
            diag_hint(e->d, "block '%s' has no parameters; declare them with params: [...]",
                      sc->block);
        return zero;
    }
    if (!sc->values) return (struct num){true, 1, 1}; /* checking only */
    const struct node *v = sc->values[idx];
    if (v->kind == NODE_SCALAR && v->plain && node_text_is_int(v->text)) {
        errno = 0;
        long long x = strtoll(v->text, NULL, 10);
        if (errno != ERANGE) return (struct num){true, x, (double)x};
    } else if (v->kind == NODE_SCALAR && v->plain && node_text_is_float(v->text)) {
        double x = strtod(v->text, NULL);
        if (isfinite(x)) return (struct num){false, 0, x};
    }
    if (!e->failed) {
        e->failed = true;
        diag_error(e->d, v->mark, "parameter '%s' is used in '%s' and must be a number, got %s",
                   word, e->text, node_describe(e->a, v));
    }
    return zero;
}

static struct num parse_primary(struct expr *e)
{
    struct num zero = {true, 0, 0};
    skip_space(e);
    const char *at = e->p;
    if (*e->p == '(') {
        e->p++;
        struct num x = parse_sum(e);
        skip_space(e);
        if (*e->p != ')') {
            expr_fail(e, e->p, "expected ')' in '%s'", e->text);
            return zero;
        }
        e->p++;
        return x;
    }
    if (*e->p == '$') {
        e->p++;
        const char *name = e->p;
        while (expr_is_ident(*e->p, e->p == name)) e->p++;
        if (e->p == name) {
            expr_fail(e, at, "'$' must be followed by a parameter name in '%s'", e->text);
            return zero;
        }
        return param_value(e, at, name, (size_t)(e->p - name));
    }
    if ((*e->p >= '0' && *e->p <= '9') || *e->p == '.') {
        const char *s = e->p;
        while ((*e->p >= '0' && *e->p <= '9') || *e->p == '.') e->p++;
        if ((*e->p == 'e' || *e->p == 'E') &&
            ((e->p[1] >= '0' && e->p[1] <= '9') ||
             ((e->p[1] == '-' || e->p[1] == '+') && e->p[2] >= '0' && e->p[2] <= '9'))) {
            e->p += 2;
            while (*e->p >= '0' && *e->p <= '9') e->p++;
        }
        char *tok = arena_strndup(e->a, s, (size_t)(e->p - s));
        if (node_text_is_int(tok)) {
            errno = 0;
            long long x = strtoll(tok, NULL, 10);
            if (errno == ERANGE) expr_fail(e, s, "the number '%s' is too large", tok);
            return (struct num){true, x, (double)x};
        }
        if (!node_text_is_float(tok)) {
            expr_fail(e, s, "'%s' is not a number", tok);
            return zero;
        }
        return (struct num){false, 0, strtod(tok, NULL)};
    }
    if (*e->p)
        expr_fail(e, at, "expected a number, '$name' or '(' in '%s'", e->text);
    else
        expr_fail(e, at, "'%s' ends where a number, '$name' or '(' is expected", e->text);
    return zero;
}

static struct num parse_unary(struct expr *e)
{
    skip_space(e);
    if (*e->p == '-' || *e->p == '+') {
        bool neg = *e->p == '-';
        const char *at = e->p++;
        struct num x = parse_unary(e);
        if (!neg) return x;
        if (x.is_int && x.i == LLONG_MIN) expr_fail(e, at, "'%s' overflows", e->text);
        return x.is_int ? (struct num){true, -x.i, -(double)x.i} : (struct num){false, 0, -x.f};
    }
    return parse_primary(e);
}

static struct num apply(struct expr *e, const char *at, char op, bool floor_div, struct num x,
                        struct num y)
{
    struct num r = {true, 0, 0};
    if ((op == '/' || op == '%') && num_f(y) == 0) {
        expr_fail(e, at, "division by zero in '%s'", e->text);
        return r;
    }
    if (x.is_int && y.is_int) {
        bool over = false;
        switch (op) {
        case '+': over = __builtin_add_overflow(x.i, y.i, &r.i); break;
        case '-': over = __builtin_sub_overflow(x.i, y.i, &r.i); break;
        case '*': over = __builtin_mul_overflow(x.i, y.i, &r.i); break;
        case '%':
            if (y.i == -1) return r;
            r.i = x.i % y.i;
            if (r.i && (r.i < 0) != (y.i < 0)) r.i += y.i; /* Python's sign rule */
            break;
        case '/':
            if (y.i == -1 && x.i == LLONG_MIN) {
                over = true;
                break;
            }
            if (floor_div) {
                r.i = x.i / y.i;
                if ((x.i % y.i) && ((x.i < 0) != (y.i < 0))) r.i--;
            } else if (x.i % y.i) {
                return (struct num){false, 0, (double)x.i / (double)y.i};
            } else {
                r.i = x.i / y.i;
            }
            break;
        }
        if (over) expr_fail(e, at, "'%s' overflows", e->text);
        r.f = (double)r.i;
        return r;
    }
    double a = num_f(x), b = num_f(y), f = 0;
    switch (op) {
    case '+': f = a + b; break;
    case '-': f = a - b; break;
    case '*': f = a * b; break;
    case '/': f = floor_div ? floor(a / b) : a / b; break;
    case '%': f = a - b * floor(a / b); break;
    }
    if (!isfinite(f)) expr_fail(e, at, "'%s' overflows", e->text);
    return (struct num){false, 0, f};
}

static struct num parse_product(struct expr *e)
{
    struct num x = parse_unary(e);
    for (;;) {
        skip_space(e);
        char op = *e->p;
        if (op != '*' && op != '/' && op != '%') return x;
        const char *at = e->p++;
        bool floor_div = op == '/' && *e->p == '/';
        if (floor_div) e->p++;
        struct num y = parse_unary(e);
        x = apply(e, at, op, floor_div, x, y);
    }
}

static struct num parse_sum(struct expr *e)
{
    struct num x = parse_product(e);
    for (;;) {
        skip_space(e);
        char op = *e->p;
        if (op != '+' && op != '-') return x;
        const char *at = e->p++;
        struct num y = parse_product(e);
        x = apply(e, at, op, false, x, y);
    }
}

static const struct node *subst_scalar(struct arena *a, struct diag *d, const struct node *n,
                                       const struct expr_scope *sc)
{
    if (n->kind != NODE_SCALAR || !n->plain || !memchr(n->text, '$', n->len)) return n;
    struct expr e = {.text = n->text, .p = n->text, .n = n, .sc = sc, .d = d, .a = a};
    if (strlen(n->text) != n->len) {
        expr_fail(&e, n->text, "'%s' holds a NUL character", n->text);
        return NULL;
    }
    /* A bare $name passes the argument as written (any type, its own position). */
    if (sc->values && n->text[0] == '$' && n->len > 1 && expr_is_ident(n->text[1], true)) {
        size_t len = 1;
        while (expr_is_ident(n->text[len + 1], false)) len++;
        if (len + 1 == n->len) {
            for (size_t i = 0; i < sc->n; i++)
                if (strlen(sc->names[i]) == len && strncmp(sc->names[i], n->text + 1, len) == 0)
                    return sc->values[i];
        }
    }
    struct num x = parse_sum(&e);
    skip_space(&e);
    if (!e.failed && *e.p) expr_fail(&e, e.p, "expected an operator in '%s'", n->text);
    if (e.failed) return NULL;
    if (sc->block && !sc->values) return n; /* checking only */
    char buf[64];
    if (x.is_int) {
        snprintf(buf, sizeof buf, "%lld", x.i);
    } else {
        snprintf(buf, sizeof buf, "%.17g", x.f);
        if (!strpbrk(buf, ".eEn")) strcat(buf, ".0");
    }
    return node_scalar(a, n->mark, buf, true);
}

const struct node *expr_subst(struct arena *a, struct diag *d, const struct node *n,
                              const struct expr_scope *sc)
{
    if (n->kind == NODE_SCALAR) return subst_scalar(a, d, n, sc);
    struct node *c = arena_alloc(a, sizeof *c);
    *c = *n;
    c->items = arena_alloc(a, (n->n + 1) * sizeof *c->items);
    bool ok = true;
    for (size_t i = 0; i < n->n; i++) {
        const struct node *v = expr_subst(a, d, n->items[i], sc);
        ok &= v != NULL;
        c->items[i] = (struct node *)(v ? v : n->items[i]);
    }
    return ok ? c : NULL;
}

