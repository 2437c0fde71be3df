/*
 * ops_cases.h: the op-by-op cases that tests/test_ops_cpu.c (the CPU backend) and
 * tests/test_ops_cuda.c (the CUDA backend in fp32, bf16 and fp16) both run, written once.
 * Every op, forward and backward, against the naive reference kernels (tests/ref, double
 * precision) on random inputs over many shapes: odd sizes, stride 2, padding, dilation,
 * groups, batch 1, channel counts that are not multiples of 16 (or of 8). Each case is a
 * one-op graph (or one residual block) run through a real plan, with a flatten after it so the
 * output is a plain (N, F): the layouts, the conversions at the edges and the gradient
 * bookkeeping are tested with the op. Also the loss (label smoothing, soft targets), SGD,
 * Adam and AdamW steps, batchnorm's running statistics and evaluation mode, dropout, and
 * residual blocks (add + relu; batchnorm + add + relu, which a backend may fuse). A failure
 * names the backend and precision, the op, its settings, the tensor, the worst element and
 * the tolerance.
 *
 * The includer sets `target` (ops_target_use) before the cases run: the backend, its plan
 * options, the compute type's significand bits and the tolerances. With a 16-bit compute type
 * every random input, weight and gradient fed to a plan is first rounded to that many bits, so
 * the plan and the reference start from the same numbers and only the roundings of the
 * intermediate tensors the backend stores differ (sums are accumulated in fp32); the
 * reference rounds the same way where a relu follows inside a block, so both sides switch a
 * relu at the same elements. Where the block's last relu still disagrees within the
 * tolerance of zero, the reference's backward takes the plan's decision (a kink, as the
 * finite-difference checks allow). Maxima of pooling windows that tie after rounding are
 * redrawn: a backend may send the gradient to any of the tied elements. A case with a layer
 * the backend declares it does not offer (its `supports` entry; the CUDA backend has no
 * ceil_mode pooling) is skipped with a message.
 */
#ifndef RUNNER_TESTS_OPS_CASES_H
#define RUNNER_TESTS_OPS_CASES_H

#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "graph.h"
#include "plan.h"
#include "ref.h"
#include "test_util.h"

/* What the cases run on. */
struct ops_target {
    const char *name;         /* in messages: "cpu", "cuda bf16" */
    const struct backend *be;
    struct plan_options opt;  /* precision, tf32, device; each case sets batch and the rest */
    int bits;                 /* significand bits of the compute type: 24 (fp32), 11, 8 */
    double tol;               /* one op: max |got - want| / max |want| over a tensor */
    double tol_block;         /* a residual block (two convolutions, batchnorms, relus) */
    double tol_update;        /* weights after optimizer steps from the plan's gradients */
};

static struct ops_target target;
static double tol; /* the running case's */

/* --------------------------------------------------------------------------------------- */
/* Helpers */

static uint64_t rng_state;

/* Selects the target and restarts the random numbers (each target sees the same inputs). */
static void ops_target_use(const struct ops_target *t)
{
    target = *t;
    tol = t->tol;
    rng_state = 0x1234567;
}

static double urand(void)
{
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) * 0x1.0p-53 * 2 - 1;
}

/* v rounded to the target's significand bits (to nearest, ties to even), as a float. */
static float rnd(double v)
{
    return round_bits(v, target.bits);
}

/* The target's rounding of n values in place (what a stored intermediate goes through). */
static void rnd_all(double *v, size_t n)
{
    for (size_t i = 0; i < n; i++) v[i] = rnd(v[i]);
}

/* n random values in [-1, 1): float for the plan, double for the oracle. */
static float *rand_f(size_t n, double **d)
{
    float *f = malloc((n + 1) * sizeof *f);
    *d = malloc((n + 1) * sizeof **d);
    for (size_t i = 0; i < n; i++) {
        f[i] = rnd(urand());
        (*d)[i] = f[i];
    }
    return f;
}

static double *zeros(size_t n)
{
    return calloc(n + 1, sizeof(double));
}

static double max_abs(const double *v, size_t n)
{
    double m = 1e-3;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(v[i]));
    return m;
}

/* What check_eval found: ok, or the element that failed (a value that is not finite, or the
 * worst error). */
struct check_result {
    bool ok;
    size_t at;        /* the element named: the first that is not finite, else the worst */
    double err, lim;  /* |got - want| at it and the tolerance it had */
    const char *why;  /* NULL, or why the tensor fails before any comparison */
};

/* got (n) against want (n). A NaN or an infinity in got fails at once, at the first such
 * element, whatever the tolerance (a NaN compares false with everything, so a running maximum
 * of the errors would let the next finite element replace it); one in want is a bug of the
 * test and fails the same way. Otherwise the worst |got - want| must be within tol of the
 * tensor's largest magnitude. */
static struct check_result check_eval(const float *got, const double *want, size_t n)
{
    struct check_result r = {.ok = true};
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(want[i]))
            return (struct check_result){.at = i, .why = "the reference is not finite (a bug "
                                                          "of the test)"};
        if (!isfinite(got[i])) return (struct check_result){.at = i, .why = "not finite"};
        double e = fabs((double)got[i] - want[i]);
        if (i == 0 || e > r.err) r.err = e, r.at = i;
    }
    r.lim = tol * max_abs(want, n);
    r.ok = r.err <= r.lim;
    return r;
}

static void check(const char *op, const char *settings, const char *tensor, const float *got,
                  const double *want, size_t n)
{
    struct check_result r = check_eval(got, want, n);
    if (r.ok) return;
    if (r.why)
        print_error("%s: %s (%s): %s: element %zu of %zu is %.9g, the reference %.9g: %s\n",
                    target.name, op, settings, tensor, r.at, n, (double)got[r.at], want[r.at],
                    r.why);
    else
        print_error("%s: %s (%s): %s: element %zu of %zu is %.9g, the reference %.9g; error %.3g "
                    "of the tensor's scale %.3g (tolerance %.1e)\n",
                    target.name, op, settings, tensor, r.at, n, (double)got[r.at], want[r.at],
                    r.err / max_abs(want, n), max_abs(want, n), tol);
    fail();
}

struct net {
    struct arena a;
    struct graph *g;
    struct plan *p;
    int N;
    size_t in_n, out_n;
};

/* Builds the graph of yaml and its plan at batch N. A layer the target's backend declares it
 * cannot run (its supports entry) makes the case a skip: false, with the reason printed. */
static bool net_try_open(struct net *t, const char *yaml, int N, const char *op, const char *set)
{
    memset(t, 0, sizeof *t);
    t->g = graph_of_text(&t->a, "case.yaml", yaml);
    assert_non_null(t->g);
    struct diag d = {.out = stderr};
    for (size_t i = 0; i < t->g->nlayers; i++) {
        char why[256] = "";
        if (target.be->supports && !target.be->supports(t->g, &t->g->layers[i], why, sizeof why)) {
            print_message("%s: %s (%s): not offered by the backend, skipped: %s\n", target.name,
                          op, set, why);
            graph_free(t->g);
            arena_free(&t->a);
            return false;
        }
    }
    struct plan_options o = target.opt;
    o.batch = N, o.optimizer_slots = 2, o.input_grad = true, o.seed = 7;
    assert_int_equal(plan_create(t->g, target.be, &o, &d, &t->p), STATUS_OK);
    t->N = N;
    t->in_n = (size_t)N * (size_t)shape_numel(&t->g->input);
    t->out_n = (size_t)N * (size_t)shape_numel(&t->g->layers[t->g->output].out);
    return true;
}

/* The same, for cases every backend must run. */
static void net_open(struct net *t, const char *yaml, int N)
{
    if (!net_try_open(t, yaml, N, "a case every backend runs", ""))
        fail_msg("%s: the backend refuses a layer of:\n%s", target.name, yaml);
}

static void net_close(struct net *t)
{
    plan_free(t->p);
    graph_free(t->g);
    arena_free(&t->a);
}

static const struct graph_tensor *tensor(struct net *t, const char *name)
{
    const struct graph_tensor *x = graph_find_tensor(t->g, name);
    if (!x) fail_msg("no tensor %s", name);
    return x;
}

/* Sets tensor name to random values; returns them as doubles (caller frees). */
static double *rand_tensor(struct net *t, const char *name)
{
    const struct graph_tensor *x = tensor(t, name);
    double *d;
    float *f = rand_f((size_t)op_tensor_numel(&x->t), &d);
    plan_set_tensor(t->p, x, f);
    free(f);
    return d;
}

/* Sets a batchnorm's running variance (C) to random values in [0.5, 1.5); returns them. */
static double *rand_running_var(struct net *t, const char *name, int C)
{
    double *rv = zeros((size_t)C);
    float *f = malloc((size_t)C * sizeof *f);
    for (int i = 0; i < C; i++) rv[i] = f[i] = rnd(0.5 + fabs(urand()));
    plan_set_tensor(t->p, tensor(t, name), f);
    free(f);
    return rv;
}

static void check_tensor(struct net *t, const char *op, const char *set, const char *name,
                         bool grad, const double *want)
{
    const struct graph_tensor *x = tensor(t, name);
    size_t n = (size_t)op_tensor_numel(&x->t);
    float *got = malloc((n + 1) * sizeof *got);
    if (grad)
        plan_get_grad(t->p, x, got);
    else
        plan_get_tensor(t->p, x, got);
    char what[192];
    snprintf(what, sizeof what, "%s%s", grad ? "gradient of " : "", name);
    check(op, set, what, got, want, n);
    free(got);
}

/* Runs forward (training) on x and checks the output against y; returns it (caller frees). */
static float *run_forward(struct net *t, const char *op, const char *set, const float *x,
                          const double *y)
{
    plan_set_input(t->p, x, NULL);
    plan_forward(t->p, true);
    float *out = malloc((t->out_n + 1) * sizeof *out);
    plan_get_output(t->p, out);
    check(op, set, "output", out, y, t->out_n);
    return out;
}

/* Runs backward from dy and checks the input's gradient against dx. */
static void run_backward(struct net *t, const char *op, const char *set, const float *dy,
                         const double *dx)
{
    float *gin = malloc((t->in_n + 1) * sizeof *gin);
    plan_backward(t->p, dy);
    plan_get_input_grad(t->p, gin);
    check(op, set, "gradient of the input", gin, dx, t->in_n);
    free(gin);
}

/* Runs forward (training) on x and backward from dy; checks the output and the input's
 * gradient against y and dx. */
static void run_check(struct net *t, const char *op, const char *set, const float *x,
                      const float *dy, const double *y, const double *dx)
{
    free(run_forward(t, op, set, x, y));
    run_backward(t, op, set, dy, dx);
}

/*
 * pre (n), the reference's input of a relu whose output the plan gave as y: where the two
 * disagree on the sign within the tolerance of zero (the compute type's rounding moved the
 * input across the kink), pre takes the plan's side, so the reference's backward passes the
 * gradient where the plan does. A disagreement farther from zero is left for the output check
 * to report. Returns how many elements changed.
 */
static int relu_kinks(double *pre, const float *y, size_t n, double scale)
{
    int k = 0;
    for (size_t i = 0; i < n; i++) {
        bool on = y[i] > 0;
        if (on != (pre[i] > 0) && fabs(pre[i]) <= tol * scale) {
            pre[i] = on ? DBL_MIN : 0;
            k++;
        }
    }
    return k;
}

/* --------------------------------------------------------------------------------------- */
/* conv */

struct conv_case {
    int N, C, H, W, K, R, S, sh, sw, ph, pw, dh, dw, g, bias;
};

static void test_conv(void **state)
{
    (void)state;
    tol = target.tol;
    static const struct conv_case cases[] = {
        {2, 3, 7, 9, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 0},    /* odd sizes, C = 3 */
        {1, 17, 8, 8, 20, 3, 3, 2, 2, 1, 1, 1, 1, 1, 0},  /* batch 1, stride 2 */
        {2, 8, 9, 9, 8, 3, 3, 1, 1, 2, 2, 2, 2, 1, 0},    /* dilation 2 */
        {2, 12, 6, 5, 6, 3, 3, 1, 1, 1, 1, 1, 1, 3, 0},   /* groups 3 */
        {3, 5, 5, 5, 7, 1, 1, 2, 2, 0, 0, 1, 1, 1, 1},    /* 1x1 stride 2, bias */
        {2, 16, 8, 8, 32, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0},  /* 1x1, blocked both sides */
        {2, 3, 11, 11, 16, 7, 7, 2, 2, 3, 3, 1, 1, 1, 0}, /* the ImageNet stem */
        {2, 32, 8, 8, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},  /* a ResNet 3x3, bias */
        {2, 6, 5, 7, 4, 1, 3, 1, 2, 0, 1, 1, 1, 1, 0},    /* 1x3, stride [1, 2] */
        {2, 16, 6, 6, 16, 3, 3, 1, 1, 1, 1, 1, 1, 16, 0}, /* depthwise */
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        const struct conv_case *q = &cases[k];
        char yaml[512], set[256];
        snprintf(set, sizeof set, "N%d C%d %dx%d K%d kernel %dx%d stride %d,%d pad %d,%d dil "
                 "%d,%d groups %d bias %d", q->N, q->C, q->H, q->W, q->K, q->R, q->S, q->sh,
                 q->sw, q->ph, q->pw, q->dh, q->dw, q->g, q->bias);
        snprintf(yaml, sizeof yaml,
                 "input: [%d, %d, %d]\ngraph:\n  - {name: x, op: conv, out: %d, kernel: [%d, %d], "
                 "stride: [%d, %d], pad: [%d, %d], dilation: [%d, %d], groups: %d, bias: %s}\n"
                 "  - flatten\n",
                 q->C, q->H, q->W, q->K, q->R, q->S, q->sh, q->sw, q->ph, q->pw, q->dh, q->dw,
                 q->g, q->bias ? "true" : "false");
        struct net t;
        net_open(&t, yaml, q->N);
        struct ref_conv c = {q->N, q->C, q->H, q->W, q->K, q->R, q->S, 0, 0,
                             q->sh, q->sw, q->ph, q->pw, q->dh, q->dw, q->g};
        c.P = ref_window_out(q->H, q->R, q->sh, q->ph, q->dh, 0);
        c.Q = ref_window_out(q->W, q->S, q->sw, q->pw, q->dw, 0);
        double *w = rand_tensor(&t, "x.weight"), *b = q->bias ? rand_tensor(&t, "x.bias") : NULL;
        double *xd, *dyd;
        float *x = rand_f(t.in_n, &xd), *dy = rand_f(t.out_n, &dyd);
        double *y = zeros(t.out_n), *dx = zeros(t.in_n);
        size_t nw = (size_t)op_tensor_numel(&tensor(&t, "x.weight")->t);
        double *dw = zeros(nw), *db = zeros((size_t)q->K);
        ref_conv_forward(&c, xd, w, b, y);
        ref_conv_backward_data(&c, dyd, w, dx);
        ref_conv_backward_weights(&c, xd, dyd, dw, q->bias ? db : NULL);
        run_check(&t, "conv", set, x, dy, y, dx);
        check_tensor(&t, "conv", set, "x.weight", true, dw);
        if (q->bias) check_tensor(&t, "conv", set, "x.bias", true, db);
        free(w), free(b), free(xd), free(dyd), free(x), free(dy), free(y), free(dx), free(dw),
            free(db);
        net_close(&t);
    }
}

/* --------------------------------------------------------------------------------------- */
/* pooling */

struct pool_case {
    const char *op;
    int N, C, H, W, k, s, pad, ceil, include_pad;
};

/* Redraws elements that tie for a window's maximum until every maximum is unique (random
 * values rounded to few bits repeat; fp32 ones practically never do). */
static void untie_windows(const struct ref_pool *p, float *x, double *xd)
{
    for (bool again = target.bits < 24; again;) {
        again = false;
        for (int nc = 0; nc < p->N * p->C; nc++)
            for (int i = 0; i < p->P; i++)
                for (int j = 0; j < p->Q; j++) {
                    double best = -INFINITY;
                    size_t tie = SIZE_MAX;
                    for (int r = 0; r < p->kh; r++)
                        for (int s = 0; s < p->kw; s++) {
                            int h = i * p->stride_h - p->pad_h + r, w = j * p->stride_w -
                                                                       p->pad_w + s;
                            if (h < 0 || h >= p->H || w < 0 || w >= p->W) continue;
                            size_t at = ((size_t)nc * (size_t)p->H + (size_t)h) * (size_t)p->W +
                                        (size_t)w;
                            if (xd[at] > best)
                                best = xd[at], tie = SIZE_MAX;
                            else if (xd[at] == best)
                                tie = at;
                        }
                    if (tie != SIZE_MAX) {
                        xd[tie] = x[tie] = rnd(urand());
                        again = true;
                    }
                }
    }
}

static void test_pools(void **state)
{
    (void)state;
    tol = target.tol;
    static const struct pool_case cases[] = {
        {"maxpool", 2, 5, 9, 9, 3, 2, 1, 0, 1},    /* torchvision's stem pool */
        {"maxpool", 1, 17, 8, 8, 2, 2, 0, 0, 1},
        {"maxpool", 2, 3, 8, 8, 3, 2, 0, 1, 1},    /* ceil_mode */
        {"maxpool", 2, 32, 7, 7, 3, 1, 1, 0, 1},   /* blocked */
        {"avgpool", 2, 5, 7, 7, 3, 1, 1, 0, 1},    /* padded zeros counted */
        {"avgpool", 2, 5, 7, 7, 3, 1, 1, 0, 0},    /* not counted */
        {"avgpool", 1, 16, 9, 9, 2, 2, 0, 1, 0},   /* ceil_mode */
        {"avgpool", 2, 20, 6, 6, 2, 2, 0, 0, 1},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        const struct pool_case *q = &cases[k];
        char yaml[512], set[256];
        snprintf(set, sizeof set, "N%d C%d %dx%d kernel %d stride %d pad %d ceil %d "
                 "include_pad %d", q->N, q->C, q->H, q->W, q->k, q->s, q->pad, q->ceil,
                 q->include_pad);
        snprintf(yaml, sizeof yaml,
                 "input: [%d, %d, %d]\ngraph:\n  - {name: x, op: %s, kernel: %d, stride: %d, "
                 "pad: %d, ceil_mode: %s%s}\n  - flatten\n",
                 q->C, q->H, q->W, q->op, q->k, q->s, q->pad, q->ceil ? "true" : "false",
                 q->op[0] == 'a' ? (q->include_pad ? ", count_include_pad: true"
                                                   : ", count_include_pad: false")
                                 : "");
        struct net t;
        if (!net_try_open(&t, yaml, q->N, q->op, set)) continue;
        struct ref_pool p = {q->N, q->C, q->H, q->W, 0, 0, q->k, q->k, q->s, q->s, q->pad,
                             q->pad, q->include_pad};
        p.P = ref_window_out(q->H, q->k, q->s, q->pad, 1, q->ceil);
        p.Q = ref_window_out(q->W, q->k, q->s, q->pad, 1, q->ceil);
        double *xd, *dyd;
        float *x = rand_f(t.in_n, &xd), *dy = rand_f(t.out_n, &dyd);
        double *y = zeros(t.out_n), *dx = zeros(t.in_n);
        if (q->op[0] == 'm') {
            untie_windows(&p, x, xd);
            ref_maxpool_forward(&p, xd, y);
            ref_maxpool_backward(&p, xd, dyd, dx);
        } else {
            ref_avgpool_forward(&p, xd, y);
            ref_avgpool_backward(&p, dyd, dx);
        }
        run_check(&t, q->op, set, x, dy, y, dx);
        free(xd), free(dyd), free(x), free(dy), free(y), free(dx);
        net_close(&t);
    }

    /* global_avg_pool, then linear (a 1x1 map into an inner product) */
    const int N = 3, C = 17, H = 5, W = 7, OUT = 6;
    char yaml[256];
    snprintf(yaml, sizeof yaml, "input: [%d, %d, %d]\ngraph:\n  - global_avg_pool\n"
             "  - {name: fc, op: linear, out: %d}\n", C, H, W, OUT);
    struct net t;
    net_open(&t, yaml, N);
    double *w = rand_tensor(&t, "fc.weight"), *b = rand_tensor(&t, "fc.bias"), *xd, *dyd;
    float *x = rand_f(t.in_n, &xd), *dy = rand_f(t.out_n, &dyd);
    double *pooled = zeros((size_t)N * C), *y = zeros(t.out_n), *dp = zeros((size_t)N * C);
    double *dx = zeros(t.in_n), *dw = zeros((size_t)OUT * C), *db = zeros(OUT);
    ref_global_avg_pool_forward(N, C, H * W, xd, pooled);
    ref_linear_forward(N, C, OUT, pooled, w, b, y);
    ref_linear_backward_data(N, C, OUT, dyd, w, dp);
    ref_linear_backward_weights(N, C, OUT, pooled, dyd, dw, db);
    ref_global_avg_pool_backward(N, C, H * W, dp, dx);
    run_check(&t, "global_avg_pool + linear", "N3 C17 5x7 out 6", x, dy, y, dx);
    check_tensor(&t, "linear", "after global_avg_pool", "fc.weight", true, dw);
    check_tensor(&t, "linear", "after global_avg_pool", "fc.bias", true, db);
    free(w), free(b), free(xd), free(dyd), free(x), free(dy), free(pooled), free(y), free(dp),
        free(dx), free(dw), free(db);
    net_close(&t);
}

/* --------------------------------------------------------------------------------------- */
/* batchnorm: training (batch statistics, running averages), evaluation, backward */

static void test_batchnorm(void **state)
{
    (void)state;
    tol = target.tol;
    static const int cases[][4] = {{3, 5, 4, 3}, {2, 32, 4, 4}, {1, 17, 3, 5}, {8, 3, 1, 1}};
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        int N = cases[k][0], C = cases[k][1], H = cases[k][2], W = cases[k][3];
        char yaml[256], set[128];
        snprintf(set, sizeof set, "N%d C%d %dx%d eps 1e-3 momentum 0.2", N, C, H, W);
        snprintf(yaml, sizeof yaml, "input: [%d, %d, %d]\ngraph:\n  - {name: bn, op: batchnorm, "
                 "eps: 1.0e-3, momentum: 0.2}\n  - flatten\n", C, H, W);
        struct net t;
        net_open(&t, yaml, N);
        double *gamma = rand_tensor(&t, "bn.weight"), *beta = rand_tensor(&t, "bn.bias");
        double *rm = rand_tensor(&t, "bn.running_mean");
        double *rv = rand_running_var(&t, "bn.running_var", C);

        double *xd, *dyd;
        float *x = rand_f(t.in_n, &xd), *dy = rand_f(t.out_n, &dyd);
        for (size_t i = 0; i < t.in_n; i++) xd[i] = x[i] = rnd((float)(x[i] * 3 + 1)); /* not centred */
        double *y = zeros(t.out_n), *dx = zeros(t.in_n), *mean = zeros((size_t)C),
               *var = zeros((size_t)C), *dg = zeros((size_t)C), *dbeta = zeros((size_t)C);
        ref_batchnorm_forward_train(N, C, H * W, 1e-3, 0.2, xd, gamma, beta, y, mean, var, rm, rv);
        ref_batchnorm_backward(N, C, H * W, 1e-3, xd, dyd, gamma, mean, var, dx, dg, dbeta);
        run_check(&t, "batchnorm", set, x, dy, y, dx);
        check_tensor(&t, "batchnorm", set, "bn.weight", true, dg);
        check_tensor(&t, "batchnorm", set, "bn.bias", true, dbeta);
        check_tensor(&t, "batchnorm", set, "bn.running_mean", false, rm);
        check_tensor(&t, "batchnorm", set, "bn.running_var", false, rv);
        int64_t count = 0;
        plan_get_tensor(t.p, tensor(&t, "bn.num_batches_tracked"), &count);
        assert_int_equal(count, 1);

        /* Evaluation: the running statistics, which do not change. */
        ref_batchnorm_forward_infer(N, C, H * W, 1e-3, xd, gamma, beta, rm, rv, y);
        plan_forward(t.p, false);
        float *out = malloc((t.out_n + 1) * sizeof *out);
        plan_get_output(t.p, out);
        check("batchnorm (evaluation)", set, "output", out, y, t.out_n);
        check_tensor(&t, "batchnorm (evaluation)", set, "bn.running_mean", false, rm);
        free(out), free(gamma), free(beta), free(rm), free(rv);
        free(xd), free(dyd), free(x), free(dy), free(y), free(dx), free(mean), free(var), free(dg),
            free(dbeta);
        net_close(&t);
    }
}

/* --------------------------------------------------------------------------------------- */
/* relu, identity, flatten, add (in a residual block), linear */

static void test_pointwise_and_blocks(void **state)
{
    (void)state;
    tol = target.tol;
    /* relu after a conv (blocked layout) and identity, then flatten. */
    const int N = 2, C = 20, H = 5, W = 3;
    char yaml[512];
    snprintf(yaml, sizeof yaml, "input: [%d, %d, %d]\ngraph:\n  - relu\n  - {name: id, op: "
             "identity}\n  - flatten\n", C, H, W);
    struct net t;
    net_open(&t, yaml, N);
    double *xd, *dyd;
    float *x = rand_f(t.in_n, &xd), *dy = rand_f(t.out_n, &dyd);
    double *y = zeros(t.out_n), *dx = zeros(t.in_n);
    ref_relu_forward((int64_t)t.in_n, xd, y);
    ref_relu_backward((int64_t)t.in_n, xd, dyd, dx);
    run_check(&t, "relu + identity", "N2 C20 5x3", x, dy, y, dx);
    free(xd), free(dyd), free(x), free(dy), free(y), free(dx);
    net_close(&t);

    /* A residual block: y = relu(conv(x) + x); x feeds two consumers, so its gradient is a
     * sum. (The block's shortcut conv is not used: the body keeps the shape.) */
    tol = target.tol_block;
    const int C2 = 16, S = 6;
    snprintf(yaml, sizeof yaml,
             "input: [%d, %d, %d]\nblocks:\n  b:\n    params: [w, s]\n    body:\n"
             "      - {name: conv, op: conv, out: $w, kernel: 3, stride: $s, pad: 1}\n"
             "    shortcut:\n      - {name: down, op: conv, out: $w, kernel: 1, stride: $s}\n"
             "    join: [add, relu]\n"
             "graph:\n  - {name: a, block: b, w: %d, s: 1}\n  - flatten\n", C2, S, S, C2);
    net_open(&t, yaml, N);
    struct ref_conv c = {N, C2, S, S, C2, 3, 3, S, S, 1, 1, 1, 1, 1, 1, 1};
    double *w = rand_tensor(&t, "a.conv.weight");
    assert_null(graph_find_tensor(t.g, "a.down.weight")); /* the shape is kept: identity */
    x = rand_f(t.in_n, &xd), dy = rand_f(t.out_n, &dyd);
    double *conv = zeros(t.out_n), *sum = zeros(t.out_n);
    y = zeros(t.out_n), dx = zeros(t.in_n);
    double *dsum = zeros(t.out_n), *dw = zeros((size_t)C2 * C2 * 9);
    ref_conv_forward(&c, xd, w, NULL, conv);
    ref_add_forward((int64_t)t.out_n, conv, xd, sum);
    ref_relu_forward((int64_t)t.out_n, sum, y);
    float *out = run_forward(&t, "add (residual block)", "identity shortcut", x, y);
    relu_kinks(sum, out, t.out_n, max_abs(y, t.out_n));
    ref_relu_backward((int64_t)t.out_n, sum, dyd, dsum);
    ref_conv_backward_data(&c, dsum, w, dx);
    for (size_t i = 0; i < t.in_n; i++) dx[i] += dsum[i];
    ref_conv_backward_weights(&c, xd, dsum, dw, NULL);
    run_backward(&t, "add (residual block)", "identity shortcut", dy, dx);
    check_tensor(&t, "add (residual block)", "identity shortcut", "a.conv.weight", true, dw);
    free(w), free(xd), free(dyd), free(x), free(dy), free(conv), free(sum), free(y), free(dx),
        free(dsum), free(dw), free(out);
    net_close(&t);
}

/* --------------------------------------------------------------------------------------- */
/* A basic residual block with batchnorms: conv, bn, relu, conv, bn, then add and relu (the
 * batchnorm + add + relu and batchnorm + relu a backend may fuse), with the identity shortcut
 * and with a projection (1x1 stride-2 conv and batchnorm) */

struct bn_ref {
    const char *name;
    int C;
    double *gamma, *beta, *rm, *rv, *mean, *var, *dg, *db;
};

static void bn_ref_open(struct bn_ref *b, struct net *t, const char *name, int C)
{
    char n[128];
    b->name = name, b->C = C;
    snprintf(n, sizeof n, "%s.weight", name);
    b->gamma = rand_tensor(t, n);
    snprintf(n, sizeof n, "%s.bias", name);
    b->beta = rand_tensor(t, n);
    snprintf(n, sizeof n, "%s.running_mean", name);
    b->rm = rand_tensor(t, n);
    snprintf(n, sizeof n, "%s.running_var", name);
    b->rv = rand_running_var(t, n, C);
    b->mean = zeros((size_t)C), b->var = zeros((size_t)C);
    b->dg = zeros((size_t)C), b->db = zeros((size_t)C);
}

/* The training forward of x (N, C, HW) into y, eps 1e-5 and momentum 0.1 (the defaults). */
static void bn_ref_train(struct bn_ref *b, int N, int HW, const double *x, double *y)
{
    ref_batchnorm_forward_train(N, b->C, HW, 1e-5, 0.1, x, b->gamma, b->beta, y, b->mean,
                                b->var, b->rm, b->rv);
}

static void bn_ref_check(struct bn_ref *b, struct net *t, const char *set)
{
    static const char *const what[] = {"weight", "bias", "running_mean", "running_var"};
    double *want[] = {b->dg, b->db, b->rm, b->rv};
    for (int i = 0; i < 4; i++) {
        char n[128];
        snprintf(n, sizeof n, "%s.%s", b->name, what[i]);
        check_tensor(t, "batchnorm in a residual block", set, n, i < 2, want[i]);
    }
}

static void bn_ref_close(struct bn_ref *b)
{
    free(b->gamma), free(b->beta), free(b->rm), free(b->rv), free(b->mean), free(b->var),
        free(b->dg), free(b->db);
}

static void test_residual_batchnorm(void **state)
{
    (void)state;
    tol = target.tol_block;
    static const int cases[][5] = {{2, 16, 6, 16, 1}, {2, 8, 7, 12, 2}}; /* N, C, S, width, stride */
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        const int N = cases[k][0], C = cases[k][1], S = cases[k][2], Wd = cases[k][3],
                  st = cases[k][4];
        const bool proj = st != 1 || C != Wd;
        char yaml[1024], set[128];
        snprintf(set, sizeof set, "N%d C%d %dx%d width %d stride %d, %s shortcut", N, C, S, S, Wd,
                 st, proj ? "projection" : "identity");
        snprintf(yaml, sizeof yaml,
                 "input: [%d, %d, %d]\nblocks:\n  basic:\n    params: [w, s]\n    body:\n"
                 "      - {name: conv1, op: conv, out: $w, kernel: 3, stride: $s, pad: 1}\n"
                 "      - {name: bn1, op: batchnorm}\n      - relu\n"
                 "      - {name: conv2, op: conv, out: $w, kernel: 3, pad: 1}\n"
                 "      - {name: bn2, op: batchnorm}\n"
                 "    shortcut:\n      - {name: down, op: conv, out: $w, kernel: 1, stride: $s}\n"
                 "      - {name: downbn, op: batchnorm}\n"
                 "    join: [add, relu]\n"
                 "graph:\n  - {name: a, block: basic, w: %d, s: %d}\n  - flatten\n",
                 C, S, S, Wd, st);
        struct net t;
        net_open(&t, yaml, N);
        int P = ref_window_out(S, 3, st, 1, 1, 0);
        struct ref_conv c1 = {N, C, S, S, Wd, 3, 3, P, P, st, st, 1, 1, 1, 1, 1};
        struct ref_conv c2 = {N, Wd, P, P, Wd, 3, 3, P, P, 1, 1, 1, 1, 1, 1, 1};
        struct ref_conv cd = {N, C, S, S, Wd, 1, 1, P, P, st, st, 0, 0, 1, 1, 1};
        double *w1 = rand_tensor(&t, "a.conv1.weight"), *w2 = rand_tensor(&t, "a.conv2.weight");
        double *wd = proj ? rand_tensor(&t, "a.down.weight") : NULL;
        struct bn_ref b1, b2, bd = {0};
        bn_ref_open(&b1, &t, "a.bn1", Wd);
        bn_ref_open(&b2, &t, "a.bn2", Wd);
        if (proj)
            bn_ref_open(&bd, &t, "a.downbn", Wd);
        else
            assert_null(graph_find_tensor(t.g, "a.down.weight"));

        double *xd, *dyd;
        float *x = rand_f(t.in_n, &xd), *dy = rand_f(t.out_n, &dyd);
        size_t n = t.out_n; /* every activation after the first conv has the output's size */
        double *h1 = zeros(n), *a1 = zeros(n), *r1 = zeros(n), *h2 = zeros(n), *a2 = zeros(n);
        double *hd = zeros(n), *ad = zeros(n), *sum = zeros(n), *y = zeros(n);
        /* Forward; the convolutions' outputs and the inner relu's rounded as stored. */
        ref_conv_forward(&c1, xd, w1, NULL, h1);
        rnd_all(h1, n);
        bn_ref_train(&b1, N, P * P, h1, a1);
        ref_relu_forward((int64_t)n, a1, r1);
        rnd_all(r1, n);
        ref_conv_forward(&c2, r1, w2, NULL, h2);
        rnd_all(h2, n);
        bn_ref_train(&b2, N, P * P, h2, a2);
        if (proj) {
            ref_conv_forward(&cd, xd, wd, NULL, hd);
            rnd_all(hd, n);
            bn_ref_train(&bd, N, P * P, hd, ad);
        } else {
            memcpy(ad, xd, n * sizeof *ad);
        }
        ref_add_forward((int64_t)n, a2, ad, sum);
        ref_relu_forward((int64_t)n, sum, y);
        float *out = run_forward(&t, "residual block", set, x, y);
        relu_kinks(sum, out, n, max_abs(y, n));

        /* Backward. */
        double *dsum = zeros(n), *dh = zeros(n), *dr = zeros(n), *da = zeros(n),
               *dx = zeros(t.in_n), *dxd = zeros(t.in_n);
        double *dw1 = zeros((size_t)Wd * C * 9), *dw2 = zeros((size_t)Wd * Wd * 9),
               *dwd = zeros((size_t)Wd * C);
        ref_relu_backward((int64_t)n, sum, dyd, dsum);
        if (proj) {
            ref_batchnorm_backward(N, Wd, P * P, 1e-5, hd, dsum, bd.gamma, bd.mean, bd.var, dh,
                                   bd.dg, bd.db);
            ref_conv_backward_data(&cd, dh, wd, dxd);
            ref_conv_backward_weights(&cd, xd, dh, dwd, NULL);
        } else {
            memcpy(dxd, dsum, n * sizeof *dxd);
        }
        ref_batchnorm_backward(N, Wd, P * P, 1e-5, h2, dsum, b2.gamma, b2.mean, b2.var, dh, b2.dg,
                               b2.db);
        ref_conv_backward_data(&c2, dh, w2, dr);
        ref_conv_backward_weights(&c2, r1, dh, dw2, NULL);
        ref_relu_backward((int64_t)n, a1, dr, da);
        ref_batchnorm_backward(N, Wd, P * P, 1e-5, h1, da, b1.gamma, b1.mean, b1.var, dh, b1.dg,
                               b1.db);
        ref_conv_backward_data(&c1, dh, w1, dx);
        ref_conv_backward_weights(&c1, xd, dh, dw1, NULL);
        for (size_t i = 0; i < t.in_n; i++) dx[i] += dxd[i];
        run_backward(&t, "residual block", set, dy, dx);
        check_tensor(&t, "residual block", set, "a.conv1.weight", true, dw1);
        check_tensor(&t, "residual block", set, "a.conv2.weight", true, dw2);
        bn_ref_check(&b1, &t, set);
        bn_ref_check(&b2, &t, set);
        if (proj) {
            check_tensor(&t, "residual block", set, "a.down.weight", true, dwd);
            bn_ref_check(&bd, &t, set);
        }

        /* Evaluation: the running statistics, through the same fused join. */
        ref_batchnorm_forward_infer(N, Wd, P * P, 1e-5, h1, b1.gamma, b1.beta, b1.rm, b1.rv, a1);
        ref_relu_forward((int64_t)n, a1, r1);
        rnd_all(r1, n);
        ref_conv_forward(&c2, r1, w2, NULL, h2);
        rnd_all(h2, n);
        ref_batchnorm_forward_infer(N, Wd, P * P, 1e-5, h2, b2.gamma, b2.beta, b2.rm, b2.rv, a2);
        if (proj)
            ref_batchnorm_forward_infer(N, Wd, P * P, 1e-5, hd, bd.gamma, bd.beta, bd.rm, bd.rv,
                                        ad);
        ref_add_forward((int64_t)n, a2, ad, sum);
        ref_relu_forward((int64_t)n, sum, y);
        plan_forward(t.p, false);
        plan_get_output(t.p, out);
        check("residual block (evaluation)", set, "output", out, y, n);

        free(w1), free(w2), free(wd), free(xd), free(dyd), free(x), free(dy), free(out);
        free(h1), free(a1), free(r1), free(h2), free(a2), free(hd), free(ad), free(sum), free(y);
        free(dsum), free(dh), free(dr), free(da), free(dx), free(dxd), free(dw1), free(dw2),
            free(dwd);
        bn_ref_close(&b1), bn_ref_close(&b2);
        if (proj) bn_ref_close(&bd);
        net_close(&t);
    }
}

/* --------------------------------------------------------------------------------------- */
/* linear, flatten */

static void test_linear(void **state)
{
    (void)state;
    tol = target.tol;
    static const int cases[][4] = {{3, 20, 7, 1}, {1, 5, 3, 0}, {4, 64, 10, 1},
                                   {8, 2048, 10, 1}}; /* the last: ResNet-50's classifier */
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        int N = cases[k][0], IN = cases[k][1], OUT = cases[k][2], bias = cases[k][3];
        char yaml[256], set[128];
        snprintf(set, sizeof set, "N%d in %d out %d bias %d", N, IN, OUT, bias);
        /* An input of (IN, 1, 1) flattened to a vector. */
        snprintf(yaml, sizeof yaml, "input: [%d, 1, 1]\ngraph:\n  - flatten\n  - {name: fc, "
                 "op: linear, out: %d, bias: %s}\n", IN, OUT, bias ? "true" : "false");
        struct net t;
        net_open(&t, yaml, N);
        double *w = rand_tensor(&t, "fc.weight"), *b = bias ? rand_tensor(&t, "fc.bias") : NULL;
        double *xd, *dyd;
        float *x = rand_f(t.in_n, &xd), *dy = rand_f(t.out_n, &dyd);
        double *y = zeros(t.out_n), *dx = zeros(t.in_n), *dw = zeros((size_t)IN * OUT),
               *db = zeros((size_t)OUT);
        ref_linear_forward(N, IN, OUT, xd, w, b, y);
        ref_linear_backward_data(N, IN, OUT, dyd, w, dx);
        ref_linear_backward_weights(N, IN, OUT, xd, dyd, dw, bias ? db : NULL);
        run_check(&t, "linear", set, x, dy, y, dx);
        check_tensor(&t, "linear", set, "fc.weight", true, dw);
        if (bias) check_tensor(&t, "linear", set, "fc.bias", true, db);
        free(w), free(b), free(xd), free(dyd), free(x), free(dy), free(y), free(dx), free(dw),
            free(db);
        net_close(&t);
    }
}

/* A conv's output (blocked, or NHWC) flattened: the plain (N, C*H*W) order is PyTorch's. */
static void test_flatten_blocked(void **state)
{
    (void)state;
    tol = target.tol;
    const int N = 2, C = 3, H = 6, W = 5, K = 24;
    char yaml[256];
    snprintf(yaml, sizeof yaml, "input: [%d, %d, %d]\ngraph:\n  - {name: c, op: conv, out: %d, "
             "kernel: 3, pad: 1}\n  - flatten\n  - {name: fc, op: linear, out: 4}\n", C, H, W, K);
    struct net t;
    net_open(&t, yaml, N);
    double *w = rand_tensor(&t, "c.weight"), *fw = rand_tensor(&t, "fc.weight"),
           *fb = rand_tensor(&t, "fc.bias");
    struct ref_conv c = {N, C, H, W, K, 3, 3, H, W, 1, 1, 1, 1, 1, 1, 1};
    size_t F = (size_t)K * H * W;
    double *xd, *dyd;
    float *x = rand_f(t.in_n, &xd), *dy = rand_f(t.out_n, &dyd);
    double *h = zeros((size_t)N * F), *y = zeros(t.out_n), *dh = zeros((size_t)N * F),
           *dx = zeros(t.in_n), *dfw = zeros(4 * F);
    ref_conv_forward(&c, xd, w, NULL, h);
    ref_linear_forward(N, (int)F, 4, h, fw, fb, y);
    ref_linear_backward_data(N, (int)F, 4, dyd, fw, dh);
    ref_linear_backward_weights(N, (int)F, 4, h, dyd, dfw, NULL);
    ref_conv_backward_data(&c, dh, w, dx);
    run_check(&t, "conv + flatten + linear", "K24 6x5", x, dy, y, dx);
    check_tensor(&t, "linear", "after flatten", "fc.weight", true, dfw);
    free(w), free(fw), free(fb), free(xd), free(dyd), free(x), free(dy), free(h), free(y),
        free(dh), free(dx), free(dfw);
    net_close(&t);
}

/* --------------------------------------------------------------------------------------- */
/* dropout */

static void test_dropout(void **state)
{
    (void)state;
    const int N = 4, C = 50, H = 4, W = 5;
    const double p = 0.3;
    /* y = x / (1 - p) rounded once to the compute type, and the scale to fp32 */
    const double u = ldexp(1.0, -target.bits);
    char yaml[256];
    snprintf(yaml, sizeof yaml, "input: [%d, %d, %d]\ngraph:\n  - {name: d, op: dropout, p: %g}\n"
             "  - flatten\n", C, H, W, p);
    struct net t;
    net_open(&t, yaml, N);
    double *xd, *dyd;
    float *x = rand_f(t.in_n, &xd), *dy = rand_f(t.out_n, &dyd);
    float *y = malloc(t.in_n * sizeof *y), *y2 = malloc(t.in_n * sizeof *y2),
          *gx = malloc(t.in_n * sizeof *gx);
    plan_set_input(t.p, x, NULL);
    plan_forward(t.p, true);
    plan_get_output(t.p, y);
    plan_backward(t.p, dy);
    plan_get_input_grad(t.p, gx);
    size_t dropped = 0;
    for (size_t i = 0; i < t.in_n; i++) {
        bool keep = y[i] != 0;
        dropped += !keep;
        float want = keep ? (float)(x[i] / (1 - p)) : 0;
        float dwant = keep ? (float)(dy[i] / (1 - p)) : 0;
        if (fabsf(y[i] - want) > fmax(1e-6, 2 * u * fabsf(want)) ||
            fabsf(gx[i] - dwant) > fmax(1e-6, 2 * u * fabsf(dwant)))
            fail_msg("%s: dropout p %g: element %zu: y %g (x %g), dx %g (dy %g)", target.name, p,
                     i, y[i], x[i], gx[i], dy[i]);
    }
    double frac = (double)dropped / (double)t.in_n;
    if (fabs(frac - p) > 0.05)
        fail_msg("%s: dropout p %g dropped %.3f of %zu", target.name, p, frac, t.in_n);
    /* Another step draws another mask; evaluation passes the input through. */
    plan_forward(t.p, true);
    plan_get_output(t.p, y2);
    assert_true(memcmp(y, y2, t.in_n * sizeof *y) != 0);
    plan_forward(t.p, false);
    plan_get_output(t.p, y2);
    assert_memory_equal(y2, x, t.in_n * sizeof *x);
    free(xd), free(dyd), free(x), free(dy), free(y), free(y2), free(gx);
    net_close(&t);
}

/* --------------------------------------------------------------------------------------- */
/* Loss and optimizers */

/* Labels (smoothed or not) and soft targets (mixup, cutmix; smoothed on top as PyTorch does:
 * (1 - s) q + s / K); a later plan_set_input returns to the labels. The loss is computed in
 * fp32 on every target (the logits are exact in the compute type): relative 1e-5. */
static void test_loss(void **state)
{
    (void)state;
    tol = target.tol;
    const int N = 5, K = 10;
    const double smoothing[] = {0.0, 0.1, 0.0, 0.1};
    for (int s = 0; s < 4; s++) {
        bool soft = s >= 2;
        char yaml[128], set[64];
        snprintf(yaml, sizeof yaml, "input: [%d, 1, 1]\ngraph:\n  - flatten\n", K);
        snprintf(set, sizeof set, "N5 K10 %s smoothing %g", soft ? "soft targets" : "labels",
                 smoothing[s]);
        struct net t;
        net_open(&t, yaml, N);
        double *zd;
        float *z = rand_f(t.in_n, &zd);
        for (size_t i = 0; i < t.in_n; i++) zd[i] = z[i] = z[i] * 4;
        int32_t labels[N];
        int lab[N];
        for (int i = 0; i < N; i++) labels[i] = lab[i] = (i * 7) % K;
        /* Soft targets: 0.7 on the label, 0.3 on another class, smoothed for the reference. */
        float q[N * K];
        double qd[N * K];
        for (int i = 0; i < N; i++)
            for (int j = 0; j < K; j++) {
                q[i * K + j] = (j == lab[i] ? 0.7f : 0) + (j == (lab[i] + 3) % K ? 0.3f : 0);
                qd[i * K + j] = (1 - smoothing[s]) * q[i * K + j] + smoothing[s] / K;
            }
        double *dz = zeros(t.in_n);
        double want = soft ? ref_softmax_xent_soft(N, K, zd, qd, dz)
                           : ref_softmax_xent(N, K, zd, lab, smoothing[s], dz);
        plan_set_input(t.p, z, labels);
        if (soft) plan_set_targets(t.p, q);
        plan_forward(t.p, true);
        double got = plan_loss(t.p, smoothing[s]);
        if (fabs(got - want) > 1e-5 * fmax(1, fabs(want)))
            fail_msg("%s: softmax cross-entropy (%s): loss %.9g, the reference %.9g",
                     target.name, set, got, want);
        plan_backward(t.p, NULL);
        float *g = malloc(t.in_n * sizeof *g);
        plan_get_input_grad(t.p, g);
        check("softmax cross-entropy", set, "gradient of the logits", g, dz, t.in_n);
        if (soft) { /* the next input's labels replace the targets */
            plan_set_input(t.p, z, labels);
            plan_forward(t.p, true);
            double hard = ref_softmax_xent(N, K, zd, lab, smoothing[s], NULL);
            got = plan_loss(t.p, smoothing[s]);
            if (fabs(got - hard) > 1e-5 * fmax(1, fabs(hard)))
                fail_msg("%s: after plan_set_input the loss %.9g should use the labels (%.9g)",
                         target.name, got, hard);
        }
        free(g), free(zd), free(z), free(dz);
        net_close(&t);
    }
}

/* Three steps of each optimizer from the plan's own gradients (read back, so the update is
 * checked apart from the gradients' rounding): the fp32 master weights must follow the
 * reference closely whatever the compute type. */
static void test_optimizers(void **state)
{
    (void)state;
    tol = target.tol_update;
    const int N = 3, IN = 7, OUT = 5;
    char yaml[128];
    snprintf(yaml, sizeof yaml, "input: [%d, 1, 1]\ngraph:\n  - flatten\n  - {name: fc, op: "
             "linear, out: %d}\n", IN, OUT);
    for (int kind = 0; kind < 4; kind++) {
        const char *names[] = {"sgd momentum 0.9 dampening 0.1 wd 0.01",
                               "sgd nesterov momentum 0.9 wd 0.05", "adam wd 0.01",
                               "adamw wd 0.1"};
        struct net t;
        net_open(&t, yaml, N);
        const struct graph_tensor *tw = tensor(&t, "fc.weight"), *tb = tensor(&t, "fc.bias");
        double *w = rand_tensor(&t, "fc.weight"), *b = rand_tensor(&t, "fc.bias");
        double *mw = zeros(IN * OUT), *vw = zeros(IN * OUT), *mb = zeros(OUT), *vb = zeros(OUT);
        float gw[IN * OUT], gb[OUT];
        double gwd[IN * OUT], gbd[OUT];
        for (int step = 1; step <= 3; step++) {
            double *xd, *dyd;
            float *x = rand_f(t.in_n, &xd), *dy = rand_f(t.out_n, &dyd);
            plan_set_input(t.p, x, NULL);
            plan_forward(t.p, true);
            plan_backward(t.p, dy);
            plan_get_grad(t.p, tw, gw);
            plan_get_grad(t.p, tb, gb);
            for (int i = 0; i < IN * OUT; i++) gwd[i] = gw[i];
            for (int i = 0; i < OUT; i++) gbd[i] = gb[i];
            if (kind < 2) {
                struct plan_sgd o = {.lr = 0.1, .momentum = 0.9, .dampening = kind ? 0 : 0.1,
                                     .weight_decay = kind ? 0.05 : 0.01, .nesterov = kind == 1};
                plan_sgd_step(t.p, &o, step == 1);
                ref_sgd_step(IN * OUT, o.lr, o.momentum, o.dampening, o.nesterov, o.weight_decay,
                             step == 1, w, gwd, mw);
                ref_sgd_step(OUT, o.lr, o.momentum, o.dampening, o.nesterov, o.weight_decay,
                             step == 1, b, gbd, mb);
            } else {
                struct plan_adam o = {.lr = 0.01, .beta1 = 0.9, .beta2 = 0.99, .eps = 1e-8,
                                      .weight_decay = kind == 2 ? 0.01 : 0.1,
                                      .decoupled = kind == 3};
                plan_adam_step(t.p, &o, step);
                ref_adam_step(IN * OUT, o.lr, o.beta1, o.beta2, o.eps, o.weight_decay,
                              o.decoupled, step, w, gwd, mw, vw);
                ref_adam_step(OUT, o.lr, o.beta1, o.beta2, o.eps, o.weight_decay, o.decoupled,
                              step, b, gbd, mb, vb);
            }
            check_tensor(&t, names[kind], "after a step", "fc.weight", false, w);
            check_tensor(&t, names[kind], "after a step", "fc.bias", false, b);
            free(xd), free(dyd), free(x), free(dy);
        }
        free(w), free(b), free(mw), free(vw), free(mb), free(vb);
        net_close(&t);
    }
}

/* The cases, in the order they run (the random inputs follow from it). */
#define OPS_CASES                                                                              \
    cmocka_unit_test(test_conv), cmocka_unit_test(test_pools),                                 \
        cmocka_unit_test(test_batchnorm), cmocka_unit_test(test_pointwise_and_blocks),         \
        cmocka_unit_test(test_linear), cmocka_unit_test(test_flatten_blocked),                 \
        cmocka_unit_test(test_dropout), cmocka_unit_test(test_loss),                           \
        cmocka_unit_test(test_optimizers), cmocka_unit_test(test_residual_batchnorm)

#endif
