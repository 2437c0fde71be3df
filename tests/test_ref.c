/*
 * test_ref.c: checks the naive reference kernels of tests/ref/ref.c, the oracle the fast
 * backends are compared against:
 *   - every backward against central finite differences of its forward (Caffe GradientChecker
 *     style), in double precision, on several small random shapes per op;
 *   - the forwards on tiny hand-computed cases (known weights, ties, padded corners, ...);
 *   - the SGD / Adam / AdamW steps against hand-computed values over 2-3 steps.
 * Every buffer carries canary words after its end, checked when it is freed.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ref.h"

/* ---------------------------------------------------------------------------------------- */
/* Random numbers: splitmix64 with a fixed seed, so every run checks the same cases */

struct rng {
    uint64_t state;
};

static uint64_t rng_next(struct rng *g)
{
    uint64_t z = (g->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi). */
static double rng_uniform(struct rng *g, double lo, double hi)
{
    return lo + (hi - lo) * (double)(rng_next(g) >> 11) * 0x1.0p-53;
}

/* ---------------------------------------------------------------------------------------- */
/* Buffers with canary words after the end (a kernel writing past its tensor trips them) */

#define CANARY_WORDS 4
#define CANARY_VALUE (-12345.671875)

static double *tensor_new(int64_t n) /* (n), zeroed */
{
    double *t = calloc((size_t)n + CANARY_WORDS, sizeof *t);
    assert_non_null(t);
    for (int i = 0; i < CANARY_WORDS; i++) t[n + i] = CANARY_VALUE;
    return t;
}

static double *tensor_random(struct rng *g, int64_t n, double lo, double hi) /* (n) */
{
    double *t = tensor_new(n);
    for (int64_t i = 0; i < n; i++) t[i] = rng_uniform(g, lo, hi);
    return t;
}

/* Frees t (NULL ok) after checking its canaries. */
static void tensor_free(const char *op, const char *name, double *t, int64_t n)
{
    if (!t) return;
    for (int i = 0; i < CANARY_WORDS; i++)
        if (t[n + i] != CANARY_VALUE) {
            print_error("%s: canary word %d after tensor %s (%lld elements) overwritten: %.17g\n",
                        op, i, name, (long long)n, t[n + i]);
            fail();
        }
    free(t);
}

static double dot(int64_t n, const double *a, const double *b)
{
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += a[i] * b[i];
    return sum;
}

/* ---------------------------------------------------------------------------------------- */
/* Hand-computed checks */

#define HAND_TOL 1e-12 /* relative error, scale floored at 1: the hand values are exact-ish */

static void expect_close(const char *what, double got, double want, double tol)
{
    double err = fabs(got - want) / fmax(1.0, fabs(want));
    if (!(err <= tol)) {
        print_error("%s: got %.17g, want %.17g (rel err %.3g > threshold %.3g)\n", what, got, want,
                    err, tol);
        fail();
    }
}

/* Element-wise expect_close; reports the first mismatch and the largest error. */
static void expect_array(const char *what, int64_t n, const double *got, const double *want,
                         double tol)
{
    int64_t first = -1;
    double worst = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double err = fabs(got[i] - want[i]) / fmax(1.0, fabs(want[i]));
        if (!(err <= tol) && first < 0) first = i;
        if (!(err <= worst)) worst = err;
    }
    if (first >= 0) {
        print_error("%s: element %lld: got %.17g, want %.17g; max rel err %.3g > threshold %.3g\n",
                    what, (long long)first, got[first], want[first], worst, tol);
        fail();
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Finite differences: L = sum(y * r) with a fixed random r, so dL/dy = r. Each checked input
 * element is moved by +-FD_H and (L+ - L-) / (2 FD_H) compared with the analytic gradient by
 * |a - n| / max(1, |a|, |n|) <= FD_TOL. */

#define FD_H 1e-6
#define FD_TOL 1e-7            /* the observed worst is 9e-9 (test_fd_summary prints it) */
#define FD_MAX_CHECKED 200     /* per tensor; larger tensors are sampled evenly */
#define KINK_MARGIN (2 * FD_H) /* relu / maxpool elements this close to a kink are skipped */

struct fd_problem {
    const char *op;   /* "conv", "maxpool", ... */
    char params[256]; /* its shape and parameters, for the failure message */
    double (*objective)(void *ctx); /* recomputes L from the current inputs */
    bool (*near_kink)(void *ctx, const double *t, int64_t i); /* NULL: smooth everywhere */
    void *ctx;
};

static double fd_worst_seen;     /* the largest relative error over all checks so far */
static char fd_worst_where[400]; /* which op, parameters and tensor it came from */
static int fd_tensors_checked;   /* tensors checked so far */

/* Checks analytic (n), the gradient of L with respect to tensor t (n), which it perturbs in
 * place and restores. */
static void fd_check(const struct fd_problem *pb, const char *tensor, double *t, int64_t n,
                     const double *analytic)
{
    int64_t picks = n < FD_MAX_CHECKED ? n : FD_MAX_CHECKED;
    int64_t checked = 0, worst_i = -1;
    double worst = -1.0, worst_a = 0.0, worst_n = 0.0;
    for (int64_t j = 0; j < picks; j++) {
        int64_t i = j * n / picks; /* every element, or an even spread of FD_MAX_CHECKED */
        if (pb->near_kink && pb->near_kink(pb->ctx, t, i)) continue;
        double saved = t[i];
        t[i] = saved + FD_H;
        double plus = pb->objective(pb->ctx);
        t[i] = saved - FD_H;
        double minus = pb->objective(pb->ctx);
        t[i] = saved;
        double numeric = (plus - minus) / (2 * FD_H);
        double err = fabs(analytic[i] - numeric) /
                     fmax(1.0, fmax(fabs(analytic[i]), fabs(numeric)));
        if (!(err <= worst)) {
            worst = err;
            worst_i = i;
            worst_a = analytic[i];
            worst_n = numeric;
        }
        checked++;
    }
    if (checked == 0) {
        print_error("%s (%s): tensor %s: every element was skipped as near a kink\n", pb->op,
                    pb->params, tensor);
        fail();
    }
    if (!(worst <= FD_TOL)) {
        print_error("%s (%s): tensor %s: worst element (flat index) %lld: analytic %.12g vs numeric %.12g, "
                    "rel err %.3g > threshold %.3g (h %g, %lld of %lld elements checked)\n",
                    pb->op, pb->params, tensor, (long long)worst_i, worst_a, worst_n, worst,
                    FD_TOL, FD_H, (long long)checked, (long long)n);
        fail();
    }
    if (worst > fd_worst_seen) {
        fd_worst_seen = worst;
        snprintf(fd_worst_where, sizeof fd_worst_where, "%s (%s), tensor %s", pb->op, pb->params,
                 tensor);
    }
    fd_tensors_checked++;
}

/* ---------------------------------------------------------------------------------------- */
/* Window geometry */

static void test_window_out(void **state)
{
    (void)state;
    assert_int_equal(ref_window_out(224, 7, 2, 3, 1, 0), 112); /* ResNet stem conv */
    assert_int_equal(ref_window_out(112, 3, 2, 1, 1, 0), 56);  /* ResNet stem maxpool */
    assert_int_equal(ref_window_out(6, 3, 2, 0, 1, 0), 2);     /* floor((6 - 3) / 2) + 1 */
    assert_int_equal(ref_window_out(6, 3, 2, 0, 1, 1), 3);     /* ceil: a partial last window */
    assert_int_equal(ref_window_out(5, 2, 2, 1, 1, 0), 3);
    /* ceil would give 4, but the 4th window would start at 6 - 1 = 5, in the right padding */
    assert_int_equal(ref_window_out(5, 2, 2, 1, 1, 1), 3);
    assert_int_equal(ref_window_out(7, 3, 1, 0, 2, 0), 3);     /* dilated span 5 */
    assert_int_equal(ref_window_out(2, 5, 1, 0, 1, 0), 0);     /* does not fit */
}

/* ---------------------------------------------------------------------------------------- */
/* Convolution */

static void test_conv_forward_hand(void **state)
{
    (void)state;
    /* x = 1..9 (1, 1, 3, 3), a 3x3 kernel of ones, bias 0.5, pad 1: each output is the sum of
     * the 3x3 neighbourhood inside the input, plus 0.5. */
    double x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, ones[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1}, b = 0.5;
    double y[9];
    struct ref_conv c = {.N = 1, .C = 1, .H = 3, .W = 3, .K = 1, .R = 3, .S = 3, .P = 3, .Q = 3,
                         .stride_h = 1, .stride_w = 1, .pad_h = 1, .pad_w = 1, .dil_h = 1,
                         .dil_w = 1, .groups = 1};
    ref_conv_forward(&c, x, ones, &b, y);
    double want[9] = {12.5, 21.5, 16.5, 27.5, 45.5, 33.5, 24.5, 39.5, 28.5};
    expect_array("conv 3x3 pad 1 ones", 9, y, want, HAND_TOL);

    /* No padding, a known kernel: one output = sum x * w = 1 - 3 + 2*5 - 7 + 9 = 10. */
    double w[9] = {1, 0, -1, 0, 2, 0, -1, 0, 1};
    c.pad_h = c.pad_w = 0;
    c.P = c.Q = 1;
    ref_conv_forward(&c, x, w, NULL, y);
    expect_close("conv 3x3 pad 0", y[0], 10.0, HAND_TOL);

    /* Stride 2, pad 1 over the same x: the four corners of the 3x3 result above (no bias). */
    c.pad_h = c.pad_w = 1;
    c.stride_h = c.stride_w = 2;
    c.P = c.Q = 2;
    ref_conv_forward(&c, x, ones, NULL, y);
    double want_s2[4] = {12, 16, 24, 28};
    expect_array("conv 3x3 stride 2 pad 1", 4, y, want_s2, HAND_TOL);

    /* Dilation 2: x = 0..24 (5x5) and a 3x3 kernel of ones sample rows and columns 0, 2, 4:
     * (0 + 2 + 4) + (10 + 12 + 14) + (20 + 22 + 24) = 108. */
    double x5[25];
    for (int i = 0; i < 25; i++) x5[i] = i;
    struct ref_conv d = {.N = 1, .C = 1, .H = 5, .W = 5, .K = 1, .R = 3, .S = 3, .P = 1, .Q = 1,
                         .stride_h = 1, .stride_w = 1, .dil_h = 2, .dil_w = 2, .groups = 1};
    ref_conv_forward(&d, x5, ones, NULL, y);
    expect_close("conv 3x3 dilation 2", y[0], 108.0, HAND_TOL);

    /* Groups 2, 1x1: output channel k sees input channel k only. x (1, 2, 1, 2). */
    double xg[4] = {1, 2, 3, 4}, wg[2] = {10, 100}, yg[4];
    struct ref_conv e = {.N = 1, .C = 2, .H = 1, .W = 2, .K = 2, .R = 1, .S = 1, .P = 1, .Q = 2,
                         .stride_h = 1, .stride_w = 1, .dil_h = 1, .dil_w = 1, .groups = 2};
    ref_conv_forward(&e, xg, wg, NULL, yg);
    double want_g[4] = {10, 20, 300, 400};
    expect_array("conv 1x1 groups 2", 4, yg, want_g, HAND_TOL);
}

struct conv_case {
    int N, C, H, W, K, R, S, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups, bias;
};

struct conv_problem {
    struct ref_conv c;
    double *x, *w, *b, *y, *r; /* (N, C, H, W), (K, C/groups, R, S), (K) or NULL, (N, K, P, Q) x2 */
};

static double conv_objective(void *ctx)
{
    struct conv_problem *cp = ctx;
    ref_conv_forward(&cp->c, cp->x, cp->w, cp->b, cp->y);
    return dot((int64_t)cp->c.N * cp->c.K * cp->c.P * cp->c.Q, cp->y, cp->r);
}

static void conv_fd(const struct conv_case *k, struct rng *g)
{
    struct conv_problem cp = {
        .c = {.N = k->N, .C = k->C, .H = k->H, .W = k->W, .K = k->K, .R = k->R, .S = k->S,
              .stride_h = k->stride_h, .stride_w = k->stride_w, .pad_h = k->pad_h,
              .pad_w = k->pad_w, .dil_h = k->dil_h, .dil_w = k->dil_w, .groups = k->groups}};
    struct ref_conv *c = &cp.c;
    c->P = ref_window_out(c->H, c->R, c->stride_h, c->pad_h, c->dil_h, 0);
    c->Q = ref_window_out(c->W, c->S, c->stride_w, c->pad_w, c->dil_w, 0);
    assert_true(c->P > 0 && c->Q > 0);
    int64_t nx = (int64_t)c->N * c->C * c->H * c->W, nw = (int64_t)c->K * (c->C / c->groups) * c->R * c->S;
    int64_t ny = (int64_t)c->N * c->K * c->P * c->Q;
    cp.x = tensor_random(g, nx, -1, 1);
    cp.w = tensor_random(g, nw, -1, 1);
    cp.b = k->bias ? tensor_random(g, c->K, -1, 1) : NULL;
    cp.y = tensor_new(ny);
    cp.r = tensor_random(g, ny, -1, 1);
    double *dx = tensor_new(nx), *dw = tensor_new(nw), *db = k->bias ? tensor_new(c->K) : NULL;
    ref_conv_backward_data(c, cp.r, cp.w, dx);
    ref_conv_backward_weights(c, cp.x, cp.r, dw, db);

    struct fd_problem pb = {.op = "conv", .objective = conv_objective, .ctx = &cp};
    snprintf(pb.params, sizeof pb.params,
             "x %dx%dx%dx%d, w %dx%dx%dx%d, y %dx%dx%dx%d, stride %dx%d, pad %dx%d, "
             "dilation %dx%d, groups %d, bias %d", c->N, c->C, c->H, c->W, c->K,
             c->C / c->groups, c->R, c->S, c->N, c->K, c->P, c->Q, c->stride_h, c->stride_w,
             c->pad_h, c->pad_w, c->dil_h, c->dil_w, c->groups, k->bias);
    fd_check(&pb, "x", cp.x, nx, dx);
    fd_check(&pb, "w", cp.w, nw, dw);
    if (k->bias) fd_check(&pb, "b", cp.b, c->K, db);

    tensor_free("conv", "x", cp.x, nx);
    tensor_free("conv", "w", cp.w, nw);
    tensor_free("conv", "b", cp.b, c->K);
    tensor_free("conv", "y", cp.y, ny);
    tensor_free("conv", "r", cp.r, ny);
    tensor_free("conv", "dx", dx, nx);
    tensor_free("conv", "dw", dw, nw);
    tensor_free("conv", "db", db, c->K);
}

static void test_conv_fd(void **state)
{
    (void)state;
    static const struct conv_case cases[] = {
        /* N  C  H  W   K  R  S  sh sw ph pw dh dw  g  bias */
        {1, 3, 5, 5, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},    /* batch 1, C 3, same padding */
        {2, 5, 7, 6, 3, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1},    /* stride 2, odd sizes */
        {2, 4, 6, 6, 6, 3, 3, 1, 1, 2, 2, 2, 2, 2, 0},    /* dilation 2, groups 2, no bias */
        {1, 6, 5, 7, 9, 1, 1, 1, 1, 0, 0, 1, 1, 3, 1},    /* 1x1, groups 3 */
        {2, 17, 4, 4, 17, 3, 3, 1, 1, 1, 1, 1, 1, 17, 0}, /* depthwise, 17 channels */
        {1, 3, 9, 9, 5, 7, 7, 2, 2, 3, 3, 1, 1, 1, 0},    /* a 7x7 stride-2 stem */
        {2, 2, 5, 6, 3, 2, 3, 2, 1, 0, 1, 1, 2, 1, 1},    /* rectangular kernel, mixed h/w */
        {3, 5, 3, 3, 2, 3, 3, 1, 1, 0, 0, 1, 1, 1, 1},    /* kernel = input: a 1x1 output */
    };
    struct rng g = {.state = 0xC0417};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) conv_fd(&cases[i], &g);
}

/* ---------------------------------------------------------------------------------------- */
/* Batch normalization */

static void test_batchnorm_forward_hand(void **state)
{
    (void)state;
    /* One channel, x = 1, 2, 3, 4 as (N 2, C 1, HW 2): mean 2.5, biased variance 1.25, unbiased
     * 5/3. gamma 2, beta 1, eps 0: y = 2 (x - 2.5) / sqrt(1.25) + 1. Momentum 0.1 from (0, 1):
     * running mean 0.25, running variance 0.9 + 0.1 * 5/3. */
    double x[4] = {1, 2, 3, 4}, gamma = 2, beta = 1, y[4], mean, var, rm = 0, rv = 1;
    ref_batchnorm_forward_train(2, 1, 2, 0.0, 0.1, x, &gamma, &beta, y, &mean, &var, &rm, &rv);
    double s = sqrt(1.25);
    double want[4] = {-3 / s + 1, -1 / s + 1, 1 / s + 1, 3 / s + 1};
    expect_array("batchnorm train y", 4, y, want, HAND_TOL);
    expect_close("batchnorm saved mean", mean, 2.5, HAND_TOL);
    expect_close("batchnorm saved var (biased)", var, 1.25, HAND_TOL);
    expect_close("batchnorm running mean", rm, 0.25, HAND_TOL);
    expect_close("batchnorm running var (unbiased)", rv, 0.9 + 0.1 * 5.0 / 3.0, HAND_TOL);

    /* Inference: gamma (x - rm) / sqrt(rv + eps) + beta = 2 (3 - 1) / 2 + 1 = 3. */
    double xi = 3, rmi = 1, rvi = 4, yi;
    ref_batchnorm_forward_infer(1, 1, 1, 0.0, &xi, &gamma, &beta, &rmi, &rvi, &yi);
    expect_close("batchnorm infer", yi, 3.0, HAND_TOL);

    /* Random x (N 3, C 5, HW 7), gamma 1, beta 0, eps 0: each channel of y has mean 0 and
     * biased variance 1. */
    enum { N = 3, C = 5, HW = 7 };
    struct rng g = {.state = 0xB47};
    double xr[N * C * HW], yr[N * C * HW], ga[C], be[C], mu[C], va[C], rmr[C], rvr[C];
    for (int i = 0; i < N * C * HW; i++) xr[i] = rng_uniform(&g, -3, 5);
    for (int ch = 0; ch < C; ch++) {
        ga[ch] = 1;
        be[ch] = 0;
        rmr[ch] = 0;
        rvr[ch] = 1;
    }
    ref_batchnorm_forward_train(N, C, HW, 0.0, 0.1, xr, ga, be, yr, mu, va, rmr, rvr);
    for (int ch = 0; ch < C; ch++) {
        double sum = 0, sq = 0;
        for (int n = 0; n < N; n++)
            for (int i = 0; i < HW; i++) sum += yr[(n * C + ch) * HW + i];
        for (int n = 0; n < N; n++)
            for (int i = 0; i < HW; i++) sq += pow(yr[(n * C + ch) * HW + i] - sum / (N * HW), 2);
        expect_close("batchnorm per-channel mean of y", sum / (N * HW), 0.0, HAND_TOL);
        expect_close("batchnorm per-channel variance of y", sq / (N * HW), 1.0, HAND_TOL);
    }
}

struct bn_problem {
    int N, C, HW;
    double eps;
    double *x, *y, *r;                  /* (N, C, HW) */
    double *gamma, *beta, *mean, *var;  /* (C) */
    double *running_mean, *running_var; /* (C), scratch: updated by every forward */
};

static double bn_objective(void *ctx)
{
    struct bn_problem *bp = ctx;
    ref_batchnorm_forward_train(bp->N, bp->C, bp->HW, bp->eps, 0.1, bp->x, bp->gamma, bp->beta,
                                bp->y, bp->mean, bp->var, bp->running_mean, bp->running_var);
    return dot((int64_t)bp->N * bp->C * bp->HW, bp->y, bp->r);
}

static void batchnorm_fd(int N, int C, int HW, double eps, double xlo, double xhi, struct rng *g)
{
    int64_t n = (int64_t)N * C * HW;
    struct bn_problem bp = {.N = N, .C = C, .HW = HW, .eps = eps};
    bp.x = tensor_random(g, n, xlo, xhi);
    bp.y = tensor_new(n);
    bp.r = tensor_random(g, n, -1, 1);
    bp.gamma = tensor_random(g, C, 0.5, 1.5);
    bp.beta = tensor_random(g, C, -1, 1);
    bp.mean = tensor_new(C);
    bp.var = tensor_new(C);
    bp.running_mean = tensor_new(C);
    bp.running_var = tensor_new(C);
    double *dx = tensor_new(n), *dgamma = tensor_new(C), *dbeta = tensor_new(C);
    bn_objective(&bp); /* the saved statistics */
    ref_batchnorm_backward(N, C, HW, eps, bp.x, bp.r, bp.gamma, bp.mean, bp.var, dx, dgamma, dbeta);

    struct fd_problem pb = {.op = "batchnorm", .objective = bn_objective, .ctx = &bp};
    snprintf(pb.params, sizeof pb.params, "x %dx%dx%d (N, C, HW), eps %g, x in [%g, %g)", N, C,
             HW, eps, xlo, xhi);
    fd_check(&pb, "x", bp.x, n, dx);
    fd_check(&pb, "gamma", bp.gamma, C, dgamma);
    fd_check(&pb, "beta", bp.beta, C, dbeta);

    tensor_free("batchnorm", "x", bp.x, n);
    tensor_free("batchnorm", "y", bp.y, n);
    tensor_free("batchnorm", "r", bp.r, n);
    tensor_free("batchnorm", "gamma", bp.gamma, C);
    tensor_free("batchnorm", "beta", bp.beta, C);
    tensor_free("batchnorm", "mean", bp.mean, C);
    tensor_free("batchnorm", "var", bp.var, C);
    tensor_free("batchnorm", "running_mean", bp.running_mean, C);
    tensor_free("batchnorm", "running_var", bp.running_var, C);
    tensor_free("batchnorm", "dx", dx, n);
    tensor_free("batchnorm", "dgamma", dgamma, C);
    tensor_free("batchnorm", "dbeta", dbeta, C);
}

static void test_batchnorm_fd(void **state)
{
    (void)state;
    struct rng g = {.state = 0xB4};
    batchnorm_fd(2, 3, 25, 1e-5, -1, 1, &g);  /* BatchNorm2d on 5x5 */
    batchnorm_fd(4, 5, 1, 1e-5, -1, 1, &g);   /* BatchNorm1d */
    batchnorm_fd(1, 17, 9, 1e-3, -1, 1, &g);  /* batch 1, 17 channels */
    batchnorm_fd(3, 2, 6, 1e-5, 2, 5, &g);    /* off-centre input: the mean matters */
    batchnorm_fd(2, 5, 13, 0.0, -2, 2, &g);   /* eps 0 */
}

/* ---------------------------------------------------------------------------------------- */
/* ReLU and add */

static void test_relu_add_hand(void **state)
{
    (void)state;
    double x[5] = {-2, -0.0, 0, 1e-300, 3}, dy[5] = {1, 2, 3, 4, 5}, y[5], dx[5];
    ref_relu_forward(5, x, y);
    double want[5] = {0, 0, 0, 1e-300, 3};
    expect_array("relu forward", 5, y, want, 0.0);
    ref_relu_backward(5, x, dy, dx);
    double want_dx[5] = {0, 0, 0, 4, 5}; /* the gradient at 0 is 0 */
    expect_array("relu backward", 5, dx, want_dx, 0.0);

    double a[3] = {1, -2, 0.5}, b[3] = {10, 20, -0.5}, s[3];
    ref_add_forward(3, a, b, s);
    double want_s[3] = {11, 18, 0};
    expect_array("add forward", 3, s, want_s, 0.0);
}

struct relu_problem {
    int64_t n;
    double *x, *y, *r; /* (n) */
};

static double relu_objective(void *ctx)
{
    struct relu_problem *rp = ctx;
    ref_relu_forward(rp->n, rp->x, rp->y);
    return dot(rp->n, rp->y, rp->r);
}

static bool relu_near_kink(void *ctx, const double *t, int64_t i)
{
    (void)ctx;
    return fabs(t[i]) <= KINK_MARGIN;
}

static void relu_fd(int64_t n, struct rng *g)
{
    struct relu_problem rp = {.n = n};
    rp.x = tensor_random(g, n, -1, 1);
    /* Some elements at and near the kink: skipped, except 3e-6, which +-h does not cross. */
    static const double near_zero[] = {0.0, 1e-7, -5e-7, 3e-6};
    for (size_t i = 0; i < sizeof near_zero / sizeof near_zero[0] && n >= 12; i++)
        rp.x[i * 3] = near_zero[i];
    rp.y = tensor_new(n);
    rp.r = tensor_random(g, n, -1, 1);
    double *dx = tensor_new(n);
    ref_relu_backward(n, rp.x, rp.r, dx);
    struct fd_problem pb = {.op = "relu", .objective = relu_objective,
                            .near_kink = relu_near_kink, .ctx = &rp};
    snprintf(pb.params, sizeof pb.params, "n %lld, kink margin %g", (long long)n, KINK_MARGIN);
    fd_check(&pb, "x", rp.x, n, dx);
    tensor_free("relu", "x", rp.x, n);
    tensor_free("relu", "y", rp.y, n);
    tensor_free("relu", "r", rp.r, n);
    tensor_free("relu", "dx", dx, n);
}

static void test_relu_fd(void **state)
{
    (void)state;
    struct rng g = {.state = 0x7E1};
    relu_fd(1, &g);
    relu_fd(17, &g);
    relu_fd(3 * 5 * 7, &g);
    relu_fd(1000, &g); /* over the cap: 200 sampled */
}

/* ---------------------------------------------------------------------------------------- */
/* Pooling */

static void test_maxpool_hand(void **state)
{
    (void)state;
    /* One 2x2 window (k 2, stride 2) with a three-way tie: the first maximum, scanning rows
     * then columns, is (0, 0) and takes all the gradient. */
    struct ref_pool p = {.N = 1, .C = 1, .H = 2, .W = 2, .P = 1, .Q = 1, .kh = 2, .kw = 2,
                         .stride_h = 2, .stride_w = 2};
    double tie[4] = {5, 5, 5, 1}, y, dy = 1.5, dx[4];
    ref_maxpool_forward(&p, tie, &y);
    expect_close("maxpool tie forward", y, 5.0, 0.0);
    ref_maxpool_backward(&p, tie, &dy, dx);
    double want_dx[4] = {1.5, 0, 0, 0};
    expect_array("maxpool tie backward (first maximum)", 4, dx, want_dx, 0.0);
    double tie2[4] = {1, 7, 7, 7}; /* the first maximum is (0, 1) */
    ref_maxpool_backward(&p, tie2, &dy, dx);
    double want_dx2[4] = {0, 1.5, 0, 0};
    expect_array("maxpool tie backward (first maximum, not first element)", 4, dx, want_dx2, 0.0);

    /* Padding is -inf, not 0: an all-negative input, k 3, stride 2, pad 1 on 3x3. */
    double neg[9] = {-1, -2, -3, -4, -5, -6, -7, -8, -9}, y4[4], dy4[4] = {1, 1, 1, 1}, dx9[9];
    struct ref_pool q = {.N = 1, .C = 1, .H = 3, .W = 3, .P = 2, .Q = 2, .kh = 3, .kw = 3,
                         .stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1};
    ref_maxpool_forward(&q, neg, y4);
    double want_y4[4] = {-1, -2, -4, -5};
    expect_array("maxpool padded all-negative forward", 4, y4, want_y4, 0.0);
    /* Each window's maximum is its top-left input element: (0,0), (0,1), (1,0), (1,1). */
    ref_maxpool_backward(&q, neg, dy4, dx9);
    double want_dx9[9] = {1, 1, 0, 1, 1, 0, 0, 0, 0};
    expect_array("maxpool padded all-negative backward", 9, dx9, want_dx9, 0.0);
}

static void test_avgpool_hand(void **state)
{
    (void)state;
    /* x = 1..9 (3x3), k 3, stride 1, pad 1: the corner window holds 1 + 2 + 4 + 5 = 12 over
     * 4 input elements of its 9. */
    double x9[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, y9[9];
    struct ref_pool p = {.N = 1, .C = 1, .H = 3, .W = 3, .P = 3, .Q = 3, .kh = 3, .kw = 3,
                         .stride_h = 1, .stride_w = 1, .pad_h = 1, .pad_w = 1};
    p.count_include_pad = 1;
    ref_avgpool_forward(&p, x9, y9);
    expect_close("avgpool corner, count_include_pad 1", y9[0], 12.0 / 9.0, HAND_TOL);
    expect_close("avgpool centre, count_include_pad 1", y9[4], 5.0, HAND_TOL);
    p.count_include_pad = 0;
    ref_avgpool_forward(&p, x9, y9);
    expect_close("avgpool corner, count_include_pad 0", y9[0], 3.0, HAND_TOL);
    expect_close("avgpool edge, count_include_pad 0", y9[1], 21.0 / 6.0, HAND_TOL);

    /* ceil_mode: x = 1..16 (4x4), k 3, stride 2, pad 1 -> 3x3. Window rows (and columns) are
     * [-1, 2), [1, 4), [3, 6): clipped to the padded input [-1, 5) they span 3, 3, 2; inside
     * the input 2, 3, 1. The last corner window holds only x[3][3] = 16. */
    double x16[16], y[9];
    for (int i = 0; i < 16; i++) x16[i] = i + 1;
    struct ref_pool c = {.N = 1, .C = 1, .H = 4, .W = 4, .kh = 3, .kw = 3, .stride_h = 2,
                         .stride_w = 2, .pad_h = 1, .pad_w = 1};
    c.P = ref_window_out(4, 3, 2, 1, 1, 1);
    c.Q = c.P;
    assert_int_equal(c.P, 3);
    c.count_include_pad = 1;
    ref_avgpool_forward(&c, x16, y);
    expect_close("avgpool ceil corner (0,0), count_include_pad 1", y[0], 14.0 / 9.0, HAND_TOL);
    expect_close("avgpool ceil corner (2,2), count_include_pad 1", y[8], 16.0 / 4.0, HAND_TOL);
    expect_close("avgpool ceil edge (0,2), count_include_pad 1", y[2], (4 + 8) / 6.0, HAND_TOL);
    c.count_include_pad = 0;
    ref_avgpool_forward(&c, x16, y);
    expect_close("avgpool ceil corner (0,0), count_include_pad 0", y[0], 3.5, HAND_TOL);
    expect_close("avgpool ceil corner (2,2), count_include_pad 0", y[8], 16.0, HAND_TOL);
    expect_close("avgpool ceil edge (0,2), count_include_pad 0", y[2], (4 + 8) / 2.0, HAND_TOL);

    /* Backward spreads dy / divisor over the window's input elements: with count_include_pad
     * 1 and dy = 1 everywhere, x[3][3] gets 1/9 (window (1,1)) + 1/6 + 1/6 + 1/4. */
    double ones[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1}, dx[16];
    c.count_include_pad = 1;
    ref_avgpool_backward(&c, ones, dx);
    expect_close("avgpool ceil backward x[3][3]", dx[15], 1.0 / 9 + 1.0 / 6 + 1.0 / 6 + 1.0 / 4,
                 HAND_TOL);
    expect_close("avgpool ceil backward x[0][0]", dx[0], 1.0 / 9, HAND_TOL);
}

struct pool_case {
    int N, C, H, W, kh, kw, stride_h, stride_w, pad_h, pad_w, ceil_mode, count_include_pad;
};

struct pool_problem {
    struct ref_pool p;
    int is_max;
    double *x;     /* (N, C, H, W) */
    double *y, *r; /* (N, C, P, Q) */
};

static double pool_objective(void *ctx)
{
    struct pool_problem *pp = ctx;
    if (pp->is_max)
        ref_maxpool_forward(&pp->p, pp->x, pp->y);
    else
        ref_avgpool_forward(&pp->p, pp->x, pp->y);
    return dot((int64_t)pp->p.N * pp->p.C * pp->p.P * pp->p.Q, pp->y, pp->r);
}

/* Element i is near a kink when, in some window holding it, it is within KINK_MARGIN of the
 * largest other element there: moving it by +-h could change which element is the maximum. */
static bool maxpool_near_kink(void *ctx, const double *t, int64_t i)
{
    const struct ref_pool *p = &((struct pool_problem *)ctx)->p;
    int w = (int)(i % p->W), h = (int)(i / p->W % p->H);
    int64_t plane = i - ((int64_t)h * p->W + w); /* offset of (n, c, 0, 0) */
    for (int oh = 0; oh < p->P; oh++)
        for (int ow = 0; ow < p->Q; ow++) {
            int h0 = oh * p->stride_h - p->pad_h, w0 = ow * p->stride_w - p->pad_w;
            if (h < h0 || h >= h0 + p->kh || w < w0 || w >= w0 + p->kw) continue;
            for (int hh = h0; hh < h0 + p->kh; hh++)
                for (int ww = w0; ww < w0 + p->kw; ww++) {
                    if (hh < 0 || hh >= p->H || ww < 0 || ww >= p->W || (hh == h && ww == w))
                        continue;
                    if (fabs(t[plane + (int64_t)hh * p->W + ww] - t[i]) <= KINK_MARGIN)
                        return true;
                }
        }
    return false;
}

static void pool_fd(const struct pool_case *k, int is_max, struct rng *g)
{
    struct pool_problem pp = {
        .p = {.N = k->N, .C = k->C, .H = k->H, .W = k->W, .kh = k->kh, .kw = k->kw,
              .stride_h = k->stride_h, .stride_w = k->stride_w, .pad_h = k->pad_h,
              .pad_w = k->pad_w, .count_include_pad = k->count_include_pad},
        .is_max = is_max};
    struct ref_pool *p = &pp.p;
    p->P = ref_window_out(p->H, p->kh, p->stride_h, p->pad_h, 1, k->ceil_mode);
    p->Q = ref_window_out(p->W, p->kw, p->stride_w, p->pad_w, 1, k->ceil_mode);
    assert_true(p->P > 0 && p->Q > 0);
    int64_t nx = (int64_t)p->N * p->C * p->H * p->W, ny = (int64_t)p->N * p->C * p->P * p->Q;
    pp.x = tensor_random(g, nx, -1, 1);
    if (is_max && nx > 4) pp.x[1] = pp.x[2] = pp.x[4]; /* a tie, to exercise the kink skip */
    pp.y = tensor_new(ny);
    pp.r = tensor_random(g, ny, -1, 1);
    double *dx = tensor_new(nx);
    if (is_max)
        ref_maxpool_backward(p, pp.x, pp.r, dx);
    else
        ref_avgpool_backward(p, pp.r, dx);

    const char *op = is_max ? "maxpool" : "avgpool";
    struct fd_problem pb = {.op = op, .objective = pool_objective,
                            .near_kink = is_max ? maxpool_near_kink : NULL, .ctx = &pp};
    snprintf(pb.params, sizeof pb.params,
             "x %dx%dx%dx%d -> y %dx%dx%dx%d, kernel %dx%d, stride %dx%d, pad %dx%d, ceil_mode %d, "
             "count_include_pad %d", p->N, p->C, p->H, p->W, p->N, p->C, p->P, p->Q, p->kh, p->kw,
             p->stride_h, p->stride_w, p->pad_h, p->pad_w, k->ceil_mode, p->count_include_pad);
    fd_check(&pb, "x", pp.x, nx, dx);
    tensor_free(op, "x", pp.x, nx);
    tensor_free(op, "y", pp.y, ny);
    tensor_free(op, "r", pp.r, ny);
    tensor_free(op, "dx", dx, nx);
}

static const struct pool_case pool_cases[] = {
    /* N  C  H  W  kh kw sh sw ph pw ceil incl */
    {1, 3, 7, 7, 3, 3, 2, 2, 1, 1, 0, 1},  /* the ResNet stem pool, batch 1 */
    {2, 5, 6, 5, 2, 2, 2, 2, 0, 0, 0, 1},  /* 2x2 stride 2, odd width */
    {1, 17, 5, 5, 3, 3, 1, 1, 1, 1, 0, 0}, /* overlapping windows, 17 channels */
    {1, 2, 6, 6, 3, 3, 2, 2, 0, 0, 1, 1},  /* ceil_mode: a partial last window */
    {2, 3, 4, 4, 3, 3, 2, 2, 1, 1, 1, 1},  /* ceil_mode and pad: divisor clipped to padded input */
    {2, 3, 5, 4, 2, 3, 1, 2, 1, 1, 0, 0},  /* rectangular window, mixed strides */
    {2, 3, 5, 5, 3, 3, 2, 2, 1, 1, 1, 0},  /* ceil_mode and pad, count_include_pad 0 */
};

static void test_maxpool_fd(void **state)
{
    (void)state;
    struct rng g = {.state = 0x9001};
    for (size_t i = 0; i < sizeof pool_cases / sizeof pool_cases[0]; i++)
        pool_fd(&pool_cases[i], 1, &g);
}

static void test_avgpool_fd(void **state)
{
    (void)state;
    struct rng g = {.state = 0xA9};
    for (size_t i = 0; i < sizeof pool_cases / sizeof pool_cases[0]; i++) {
        struct pool_case k = pool_cases[i];
        pool_fd(&k, 0, &g);
        k.count_include_pad = !k.count_include_pad; /* both divisors on every geometry */
        pool_fd(&k, 0, &g);
    }
}

struct gap_problem {
    int N, C, HW;
    double *x;     /* (N, C, HW) */
    double *y, *r; /* (N, C) */
};

static double gap_objective(void *ctx)
{
    struct gap_problem *gp = ctx;
    ref_global_avg_pool_forward(gp->N, gp->C, gp->HW, gp->x, gp->y);
    return dot((int64_t)gp->N * gp->C, gp->y, gp->r);
}

static void gap_fd(int N, int C, int HW, struct rng *g)
{
    int64_t nx = (int64_t)N * C * HW, ny = (int64_t)N * C;
    struct gap_problem gp = {.N = N, .C = C, .HW = HW};
    gp.x = tensor_random(g, nx, -1, 1);
    gp.y = tensor_new(ny);
    gp.r = tensor_random(g, ny, -1, 1);
    double *dx = tensor_new(nx);
    ref_global_avg_pool_backward(N, C, HW, gp.r, dx);
    struct fd_problem pb = {.op = "global_avg_pool", .objective = gap_objective, .ctx = &gp};
    snprintf(pb.params, sizeof pb.params, "x %dx%dx%d (N, C, HW)", N, C, HW);
    fd_check(&pb, "x", gp.x, nx, dx);
    tensor_free(pb.op, "x", gp.x, nx);
    tensor_free(pb.op, "y", gp.y, ny);
    tensor_free(pb.op, "r", gp.r, ny);
    tensor_free(pb.op, "dx", dx, nx);
}

static void test_global_avg_pool(void **state)
{
    (void)state;
    double x[6] = {1, 2, 3, 10, 20, 30}, y[2]; /* (1, 2, 3) */
    ref_global_avg_pool_forward(1, 2, 3, x, y);
    double want[2] = {2, 20};
    expect_array("global_avg_pool forward", 2, y, want, HAND_TOL);

    struct rng g = {.state = 0x6A9};
    gap_fd(1, 3, 49, &g);
    gap_fd(2, 17, 9, &g);
    gap_fd(4, 5, 1, &g);
}

/* ---------------------------------------------------------------------------------------- */
/* Linear */

struct linear_problem {
    int N, IN, OUT;
    double *x;     /* (N, IN) */
    double *w;     /* (OUT, IN) */
    double *b;     /* (OUT) or NULL */
    double *y, *r; /* (N, OUT) */
};

static double linear_objective(void *ctx)
{
    struct linear_problem *lp = ctx;
    ref_linear_forward(lp->N, lp->IN, lp->OUT, lp->x, lp->w, lp->b, lp->y);
    return dot((int64_t)lp->N * lp->OUT, lp->y, lp->r);
}

static void linear_fd(int N, int IN, int OUT, int bias, struct rng *g)
{
    int64_t nx = (int64_t)N * IN, nw = (int64_t)OUT * IN, ny = (int64_t)N * OUT;
    struct linear_problem lp = {.N = N, .IN = IN, .OUT = OUT};
    lp.x = tensor_random(g, nx, -1, 1);
    lp.w = tensor_random(g, nw, -1, 1);
    lp.b = bias ? tensor_random(g, OUT, -1, 1) : NULL;
    lp.y = tensor_new(ny);
    lp.r = tensor_random(g, ny, -1, 1);
    double *dx = tensor_new(nx), *dw = tensor_new(nw), *db = bias ? tensor_new(OUT) : NULL;
    ref_linear_backward_data(N, IN, OUT, lp.r, lp.w, dx);
    ref_linear_backward_weights(N, IN, OUT, lp.x, lp.r, dw, db);
    struct fd_problem pb = {.op = "linear", .objective = linear_objective, .ctx = &lp};
    snprintf(pb.params, sizeof pb.params, "x %dx%d, w %dx%d, bias %d", N, IN, OUT, IN, bias);
    fd_check(&pb, "x", lp.x, nx, dx);
    fd_check(&pb, "w", lp.w, nw, dw);
    if (bias) fd_check(&pb, "b", lp.b, OUT, db);
    tensor_free("linear", "x", lp.x, nx);
    tensor_free("linear", "w", lp.w, nw);
    tensor_free("linear", "b", lp.b, OUT);
    tensor_free("linear", "y", lp.y, ny);
    tensor_free("linear", "r", lp.r, ny);
    tensor_free("linear", "dx", dx, nx);
    tensor_free("linear", "dw", dw, nw);
    tensor_free("linear", "db", db, OUT);
}

static void test_linear(void **state)
{
    (void)state;
    /* x (2, 3), w (2, 3), b (2): y[n][o] = b[o] + sum_i x[n][i] w[o][i]. */
    double x[6] = {1, 2, 3, -1, 0, 1}, w[6] = {1, 0, -1, 2, 2, 2}, b[2] = {0.5, -1}, y[4];
    ref_linear_forward(2, 3, 2, x, w, b, y);
    double want[4] = {0.5 - 2, -1 + 12, 0.5 - 2, -1 + 0};
    expect_array("linear forward", 4, y, want, HAND_TOL);

    struct rng g = {.state = 0x11E};
    linear_fd(1, 3, 5, 1, &g);
    linear_fd(4, 17, 3, 1, &g);
    linear_fd(2, 5, 5, 0, &g);
    linear_fd(3, 1, 1, 1, &g);
    linear_fd(2, 64, 10, 1, &g); /* w over the cap: 200 of 640 sampled */
}

/* ---------------------------------------------------------------------------------------- */
/* Dropout */

struct dropout_problem {
    int64_t n;
    double p;
    unsigned char *mask; /* (n) */
    double *x, *y, *r;   /* (n) */
};

static double dropout_objective(void *ctx)
{
    struct dropout_problem *dp = ctx;
    ref_dropout_forward(dp->n, dp->p, dp->mask, dp->x, dp->y);
    return dot(dp->n, dp->y, dp->r);
}

static void dropout_fd(int64_t n, double p, struct rng *g)
{
    struct dropout_problem dp = {.n = n, .p = p};
    dp.mask = malloc((size_t)n);
    assert_non_null(dp.mask);
    for (int64_t i = 0; i < n; i++) dp.mask[i] = rng_uniform(g, 0, 1) >= p;
    dp.x = tensor_random(g, n, -1, 1);
    dp.y = tensor_new(n);
    dp.r = tensor_random(g, n, -1, 1);
    double *dx = tensor_new(n);
    ref_dropout_backward(n, p, dp.mask, dp.r, dx);
    struct fd_problem pb = {.op = "dropout", .objective = dropout_objective, .ctx = &dp};
    snprintf(pb.params, sizeof pb.params, "n %lld, p %g", (long long)n, p);
    fd_check(&pb, "x", dp.x, n, dx);
    free(dp.mask);
    tensor_free("dropout", "x", dp.x, n);
    tensor_free("dropout", "y", dp.y, n);
    tensor_free("dropout", "r", dp.r, n);
    tensor_free("dropout", "dx", dx, n);
}

static void test_dropout(void **state)
{
    (void)state;
    unsigned char mask[4] = {1, 0, 1, 1};
    double x[4] = {1, 2, 3, -4}, y[4], dx[4];
    ref_dropout_forward(4, 0.25, mask, x, y);
    double want[4] = {4.0 / 3, 0, 4, -16.0 / 3};
    expect_array("dropout forward p 0.25", 4, y, want, HAND_TOL);
    ref_dropout_backward(4, 0.25, mask, x, dx); /* the same map, applied to dy = x */
    expect_array("dropout backward p 0.25", 4, dx, want, HAND_TOL);

    struct rng g = {.state = 0xD0};
    dropout_fd(37, 0.5, &g);
    dropout_fd(5, 0.0, &g);
    dropout_fd(300, 0.1, &g);
}

/* ---------------------------------------------------------------------------------------- */
/* Softmax cross-entropy */

static void test_xent_hand(void **state)
{
    (void)state;
    /* Uniform logits: softmax is 1/K whatever the label or smoothing, so the loss is log K. */
    enum { K = 7 };
    double z[2 * K], dz[2 * K];
    for (int i = 0; i < 2 * K; i++) z[i] = 3.25;
    int labels[2] = {0, 6};
    expect_close("xent uniform logits", ref_softmax_xent(2, K, z, labels, 0.0, dz), log(K),
                 HAND_TOL);
    expect_close("xent uniform logits, dlogits at the label", dz[K + 6], (1.0 / K - 1) / 2, HAND_TOL);
    expect_close("xent uniform logits, dlogits off the label", dz[1], (1.0 / K) / 2, HAND_TOL);
    expect_close("xent uniform logits, smoothing 0.3", ref_softmax_xent(2, K, z, labels, 0.3, NULL),
                 log(K), HAND_TOL);

    /* K 2, logits (0, log 3): softmax (1/4, 3/4). Label 1, smoothing 0.2: q = (0.1, 0.9),
     * loss = -(0.1 log 1/4 + 0.9 log 3/4), dlogits = p - q = (0.15, -0.15). */
    double z2[2] = {0, log(3.0)}, dz2[2];
    int label1 = 1;
    double want = -(0.1 * log(0.25) + 0.9 * log(0.75));
    expect_close("xent label smoothing 0.2", ref_softmax_xent(1, 2, z2, &label1, 0.2, dz2), want,
                 HAND_TOL);
    double want_dz2[2] = {0.15, -0.15};
    expect_array("xent label smoothing 0.2, dlogits", 2, dz2, want_dz2, HAND_TOL);
    /* The same as soft targets (0.1, 0.9). */
    double q[2] = {0.1, 0.9};
    expect_close("xent soft targets = smoothed one-hot", ref_softmax_xent_soft(1, 2, z2, q, dz2),
                 want, HAND_TOL);
    expect_array("xent soft targets, dlogits", 2, dz2, want_dz2, HAND_TOL);

    /* Stability: logits (1000, 0) must not overflow. Label 0: log(1 + e^-1000) ~ 0; label 1:
     * 1000 + log(1 + e^-1000) ~ 1000. */
    double big[4] = {1000, 0, 1000, 0};
    int lab[2] = {0, 1};
    expect_close("xent logits (1000, 0), mean of labels 0 and 1",
                 ref_softmax_xent(2, 2, big, lab, 0.0, NULL), 500.0, HAND_TOL);
}

struct xent_problem {
    int N, K;
    double *logits;   /* (N, K) */
    int *labels;      /* (N), or NULL with targets */
    double smoothing;
    double *targets;  /* (N, K), or NULL with labels */
};

static double xent_objective(void *ctx)
{
    struct xent_problem *xp = ctx;
    if (xp->targets) return ref_softmax_xent_soft(xp->N, xp->K, xp->logits, xp->targets, NULL);
    return ref_softmax_xent(xp->N, xp->K, xp->logits, xp->labels, xp->smoothing, NULL);
}

/* soft: random soft targets instead of labels; scale: the logits' spread. */
static void xent_fd(int N, int K, double smoothing, int soft, double scale, struct rng *g)
{
    int64_t n = (int64_t)N * K;
    struct xent_problem xp = {.N = N, .K = K, .smoothing = smoothing};
    xp.logits = tensor_random(g, n, -scale, scale);
    int labels[64];
    assert_true(N <= 64);
    for (int i = 0; i < N; i++) labels[i] = (int)(rng_next(g) % (uint64_t)K);
    if (soft) {
        xp.targets = tensor_random(g, n, 0, 1);
        for (int i = 0; i < N; i++) {
            double sum = 0;
            for (int k = 0; k < K; k++) sum += xp.targets[i * K + k];
            for (int k = 0; k < K; k++) xp.targets[i * K + k] /= sum;
        }
    } else {
        xp.labels = labels;
    }
    double *dlogits = tensor_new(n);
    if (soft)
        ref_softmax_xent_soft(N, K, xp.logits, xp.targets, dlogits);
    else
        ref_softmax_xent(N, K, xp.logits, labels, smoothing, dlogits);
    struct fd_problem pb = {.op = soft ? "softmax_xent_soft" : "softmax_xent",
                            .objective = xent_objective, .ctx = &xp};
    snprintf(pb.params, sizeof pb.params, "logits %dx%d in [-%g, %g), smoothing %g", N, K, scale,
             scale, smoothing);
    fd_check(&pb, "logits", xp.logits, n, dlogits);
    tensor_free(pb.op, "logits", xp.logits, n);
    tensor_free(pb.op, "targets", xp.targets, n);
    tensor_free(pb.op, "dlogits", dlogits, n);
}

static void test_xent_fd(void **state)
{
    (void)state;
    struct rng g = {.state = 0x5EF7};
    xent_fd(1, 3, 0.0, 0, 2, &g);
    xent_fd(4, 5, 0.1, 0, 2, &g);
    xent_fd(3, 17, 0.2, 0, 4, &g);
    xent_fd(2, 10, 0.0, 0, 30, &g); /* peaked softmax */
    xent_fd(2, 5, 0.0, 1, 2, &g);
    xent_fd(3, 17, 0.0, 1, 3, &g);
}

/* ---------------------------------------------------------------------------------------- */
/* Optimizers */

static void test_sgd(void **state)
{
    (void)state;
    /* Momentum 0.9, dampening 0, weight decay 0.01, lr 0.1, w 1, g 0.5 each step:
     *   1: g' = 0.5 + 0.01 * 1 = 0.51;            buf = 0.51;                        w = 0.949
     *   2: g' = 0.5 + 0.00949 = 0.50949;          buf = 0.459 + 0.50949 = 0.96849;    w = 0.852151
     *   3: g' = 0.5 + 0.00852151 = 0.50852151;    buf = 0.871641 + 0.50852151;       w = 0.714134749 */
    double w = 1, g = 0.5, buf = 0;
    ref_sgd_step(1, 0.1, 0.9, 0.0, 0, 0.01, 1, &w, &g, &buf);
    expect_close("sgd momentum step 1: w", w, 0.949, HAND_TOL);
    expect_close("sgd momentum step 1: buf", buf, 0.51, HAND_TOL);
    ref_sgd_step(1, 0.1, 0.9, 0.0, 0, 0.01, 0, &w, &g, &buf);
    expect_close("sgd momentum step 2: w", w, 0.852151, HAND_TOL);
    expect_close("sgd momentum step 2: buf", buf, 0.96849, HAND_TOL);
    ref_sgd_step(1, 0.1, 0.9, 0.0, 0, 0.01, 0, &w, &g, &buf);
    expect_close("sgd momentum step 3: w", w, 0.714134749, HAND_TOL);
    expect_close("sgd momentum step 3: buf", buf, 1.38016251, HAND_TOL);

    /* Nesterov, momentum 0.5, lr 1, w 0, g 1, 2, -1:
     *   1: buf = 1;               g' = 1 + 0.5 * 1 = 1.5;       w = -1.5
     *   2: buf = 0.5 + 2 = 2.5;   g' = 2 + 1.25 = 3.25;         w = -4.75
     *   3: buf = 1.25 - 1 = 0.25; g' = -1 + 0.125 = -0.875;     w = -3.875 */
    double wn = 0, gs[3] = {1, 2, -1}, bn = 0, want_n[3] = {-1.5, -4.75, -3.875};
    for (int t = 0; t < 3; t++) {
        ref_sgd_step(1, 1.0, 0.5, 0.0, 1, 0.0, t == 0, &wn, &gs[t], &bn);
        char what[64];
        snprintf(what, sizeof what, "sgd nesterov step %d: w", t + 1);
        expect_close(what, wn, want_n[t], HAND_TOL);
    }

    /* Dampening 0.5 (not applied on the first step), momentum 0.9, lr 0.1, w 2, g 1:
     *   buf 1, 1.4, 1.76; w 1.9, 1.76, 1.584. */
    double wd = 2, one = 1, bd = 0, want_d[3] = {1.9, 1.76, 1.584};
    for (int t = 0; t < 3; t++) {
        ref_sgd_step(1, 0.1, 0.9, 0.5, 0, 0.0, t == 0, &wd, &one, &bd);
        char what[64];
        snprintf(what, sizeof what, "sgd dampening step %d: w", t + 1);
        expect_close(what, wd, want_d[t], HAND_TOL);
    }

    /* No momentum (buf unused), lr 0.5, weight decay 0.1, w 1, g 1:
     *   w = 1 - 0.5 * 1.1 = 0.45;  w = 0.45 - 0.5 * 1.045 = -0.0725. Two parameters at once. */
    double w2[2] = {1, 1}, g2[2] = {1, 1};
    ref_sgd_step(2, 0.5, 0.0, 0.0, 0, 0.1, 1, w2, g2, NULL);
    ref_sgd_step(2, 0.5, 0.0, 0.0, 0, 0.1, 0, w2, g2, NULL);
    double want2[2] = {-0.0725, -0.0725};
    expect_array("sgd plain, two steps", 2, w2, want2, HAND_TOL);
}

static void test_adam(void **state)
{
    (void)state;
    const double lr = 0.1, b1 = 0.9, b2 = 0.999, eps = 1e-8;
    /* Adam, no weight decay, w 1, g 1, -1, 2:
     *   1: m 0.1, v 0.001: mhat 1, vhat 1                          -> w -= 0.1 / (1 + eps)
     *   2: m -0.01, v 0.001999: mhat -0.01 / 0.19, vhat 1           -> w += 0.1 (0.01 / 0.19) / (1 + eps)
     *   3: m 0.191, v 0.005997001; 1 - b1^3 = 0.271, 1 - b2^3 = 0.002997001 */
    double w = 1, m = 0, v = 0, gs[3] = {1, -1, 2};
    double want[3];
    want[0] = 1 - 0.1 / (1 + eps);
    want[1] = want[0] + 0.1 * (0.01 / 0.19) / (1 + eps);
    want[2] = want[1] - 0.1 * (0.191 / 0.271) / (sqrt(0.005997001 / 0.002997001) + eps);
    for (int t = 0; t < 3; t++) {
        ref_adam_step(1, lr, b1, b2, eps, 0.0, 0, t + 1, &w, &gs[t], &m, &v);
        char what[64];
        snprintf(what, sizeof what, "adam step %d: w", t + 1);
        expect_close(what, w, want[t], HAND_TOL);
    }
    expect_close("adam step 3: m", m, 0.191, HAND_TOL);
    expect_close("adam step 3: v", v, 0.005997001, HAND_TOL);

    /* Adam with L2 weight decay 0.5 (coupled: g' = g + 0.5 w), w 1, g 0:
     *   1: g' 0.5: m 0.05, v 0.00025: mhat 0.5, vhat 0.25           -> w = 1 - 0.1 * 0.5 / (0.5 + eps)
     *   2: g' 0.5 w1: m 0.045 + 0.05 w1, v 0.00024975 + 0.00025 w1^2 over 0.19 and 0.001999 */
    double wc = 1, mc = 0, vc = 0, zero = 0;
    ref_adam_step(1, lr, b1, b2, eps, 0.5, 0, 1, &wc, &zero, &mc, &vc);
    double w1 = 1 - 0.1 * 0.5 / (0.5 + eps);
    expect_close("adam L2 step 1: w", wc, w1, HAND_TOL);
    ref_adam_step(1, lr, b1, b2, eps, 0.5, 0, 2, &wc, &zero, &mc, &vc);
    double m2 = 0.045 + 0.05 * w1, v2 = 0.00024975 + 0.00025 * w1 * w1;
    expect_close("adam L2 step 2: w", wc, w1 - 0.1 * (m2 / 0.19) / (sqrt(v2 / 0.001999) + eps),
                 HAND_TOL);

    /* AdamW, weight decay 0.5, w 1, g 1: each step w *= 1 - 0.1 * 0.5, then (mhat 1, vhat 1)
     * w -= 0.1 / (1 + eps): 0.95 - s, then (0.95 - s) 0.95 - s, ... with s = 0.1 / (1 + eps). */
    double ww = 1, mw = 0, vw = 0, one = 1, s = 0.1 / (1 + eps), want_w = 1;
    for (int t = 0; t < 3; t++) {
        ref_adam_step(1, lr, b1, b2, eps, 0.5, 1, t + 1, &ww, &one, &mw, &vw);
        want_w = want_w * 0.95 - s;
        char what[64];
        snprintf(what, sizeof what, "adamw step %d: w", t + 1);
        expect_close(what, ww, want_w, HAND_TOL);
    }
    /* In closed form: 0.95^3 - s (1 + 0.95 + 0.95^2) = 0.857375 - 2.8525 s (0.572125 at eps 0). */
    expect_close("adamw step 3: w, closed form", ww, 0.857375 - 2.8525 * s, HAND_TOL);
}

/* ---------------------------------------------------------------------------------------- */

static void test_fd_summary(void **state)
{
    (void)state;
    print_message("finite differences: %d tensors checked, worst rel err %.3g (threshold %.3g, "
                  "h %g) in %s\n", fd_tensors_checked, fd_worst_seen, FD_TOL, FD_H, fd_worst_where);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window_out),
        cmocka_unit_test(test_conv_forward_hand),
        cmocka_unit_test(test_conv_fd),
        cmocka_unit_test(test_batchnorm_forward_hand),
        cmocka_unit_test(test_batchnorm_fd),
        cmocka_unit_test(test_relu_add_hand),
        cmocka_unit_test(test_relu_fd),
        cmocka_unit_test(test_maxpool_hand),
        cmocka_unit_test(test_maxpool_fd),
        cmocka_unit_test(test_avgpool_hand),
        cmocka_unit_test(test_avgpool_fd),
        cmocka_unit_test(test_global_avg_pool),
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_dropout),
        cmocka_unit_test(test_xent_hand),
        cmocka_unit_test(test_xent_fd),
        cmocka_unit_test(test_sgd),
        cmocka_unit_test(test_adam),
        cmocka_unit_test(test_fd_summary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
