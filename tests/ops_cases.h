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
 * options, the compute type's significand bits and the tolerances: a fraction of each
 * tensor's largest magnitude (the CPU), or a bound for every element that follows from the
 * compute type, the op's reduction lengths and its inputs' magnitudes ("Error bounds" below;
 * the CUDA backend). A NaN or an infinity fails either way. With a 16-bit compute type
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
    bool bounds;              /* each element within its bound (bound_at) instead of tol */
    double tol;               /* one op: max |got - want| / max |want| over a tensor */
    double tol_block;         /* a residual block (two convolutions, batchnorms, relus) */
    double tol_update;        /* weights after optimizer steps from the plan's gradients (on
                                 every target) */
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
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
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

/* --------------------------------------------------------------------------------------- */
/*
 * Error bounds that follow from the compute type (targets with `bounds`: the CUDA backend).
 *
 * Every input, weight and output gradient a case gives the plan is exact in the compute type
 * (rnd), and the backend sums in fp32 (cuDNN's and cuBLAS's compute type, its own kernels'
 * float accumulators), so the reference (double, on the same numbers) and the plan differ
 * only by roundings. With u = 2^-bits the compute type's unit roundoff (bf16 2^-8, fp16 2^-11,
 * fp32 2^-24) and ua = 2^-23 fp32's for the sums (one bit more than round to nearest's 2^-24,
 * for the truncating adders of tensor cores), element i of a result may be off by
 *
 *     bound_i = u |want_i|  +  L (u sqrt(q_i)  +  sk ua s_i)  +  L eta,    L = 6
 *
 * - u |want_i|: the result's own rounding when it is stored (Higham, Accuracy and Stability of
 *   Numerical Algorithms, (2.4): |fl(x) - x| <= u |x|, round to nearest).
 * - u sqrt(q_i): the roundings of the values stored in the compute type before the result (the
 *   intermediate tensors of a chain, a convolution's output before its bias is added, and
 *   partial results a library may keep in the output's type, as a split-K's; for one
 *   reduction y = sum_k t_k this allowance is q = sum_k t_k^2).
 *   Each moves its value v_j by at most u |v_j|, reaching element i with the coefficient c_ij
 *   of the chain (first order); they are independent with mean 0, so by Hoeffding's
 *   inequality their sum exceeds L u sqrt(sum_j (c_ij v_j)^2) = L u sqrt(q_i) with
 *   probability at most 2 exp(-L^2 / 2) = 3e-8.
 * - sk ua s_i: the fp32 sums. A sum of K terms t_k is off by at most gamma_K sum |t_k|
 *   (Higham (3.4), gamma_K = K ua / (1 - K ua)) and, with errors of mean 0, by
 *   L sqrt(K) ua sum |t_k| (Higham and Mary, A New Approach to Probabilistic Rounding Error
 *   Analysis, SIAM J. Sci. Comput. 41 (2019), Thm 3.1); truncation's errors are not of mean 0,
 *   but they act on partial sums that grow as sqrt(k), so they too stay within it. s_i is the
 *   sum of |terms| of element i through its whole chain (the reference run on absolute
 *   values, so the inputs' magnitudes count, not the result's: the error of a sum that cancels
 *   scales with sum |a_k b_k|, not with |y|), and sk the sum of sqrt(K) over the reductions on
 *   the way.
 * - eta = 2^(emin - bits): half the smallest subnormal, the absolute error of a rounding into
 *   fp16's subnormal range (emin -14; bf16 and fp32: -126, nothing).
 *
 * Why not a relative bound in u sqrt(K) or u K on |err| / sum |terms| with the compute type's u:
 * bf16's u K exceeds 1 from K = 256 on (a 3x3 conv of 32 channels sums 288 terms), and
 * u sqrt(K) sum |terms| is, for terms of random sign (sum |t| about sqrt(K) |y|), u K |y|: a
 * 50% error would pass. The sums are fp32, and only roundings of stored values are the
 * compute type's: those, bounded as above, leave a 10% error of a bf16 result failing
 * (test_ops_cpu's test_bounds_tight shows it on a conv and on ResNet-50's classifier).
 */

#define BOUND_L 6.0
#define BOUND_UA 0x1p-23

/* The bound of every element of one result tensor (n): what bound_at adds up. */
struct bound {
    double *s; /* (n) sum of |terms| through the chain; NULL: |want| */
    double *q; /* (n) sum of (coefficient x value)^2 over the values rounded on the way; NULL: 0 */
    double sk; /* sum of sqrt(K) over the reductions on the way (0: the result is exact) */
};

static const struct bound EXACT = {0}; /* the result is its inputs' values: only u |want| */

static void bound_free(struct bound *b)
{
    free(b->s);
    free(b->q);
    *b = (struct bound){0};
}

/* The three parts of bound_i: the result's rounding, the values rounded on the way, the sums. */
static void bound_parts(const struct bound *b, const double *want, size_t i, double part[3])
{
    double u = ldexp(1.0, -target.bits), s = b->s ? b->s[i] : fabs(want[i]);
    double eta = ldexp(1.0, (target.bits == 11 ? -14 : -126) - target.bits);
    part[0] = u * fabs(want[i]);
    part[1] = BOUND_L * (u * sqrt(b->q ? b->q[i] : 0) + eta);
    part[2] = BOUND_L * b->sk * BOUND_UA * s;
}

static double bound_at(const struct bound *b, const double *want, size_t i)
{
    double part[3];
    bound_parts(b, want, i, part);
    return part[0] + part[1] + part[2];
}

static double *vmap(const double *v, size_t n, bool square)
{
    double *r = zeros(n);
    for (size_t i = 0; i < n; i++) r[i] = square ? v[i] * v[i] : fabs(v[i]);
    return r;
}

static void vadd(double *y, const double *x, size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

/* The bound of values given to the plan in the compute type, or of a copy of b. */
static struct bound bound_of(const double *v, const struct bound *b, size_t n)
{
    struct bound r = {.s = vmap(v, n, false), .q = zeros(n), .sk = b ? b->sk : 0};
    if (b && b->s) memcpy(r.s, b->s, n * sizeof *r.s);
    if (b && b->q) memcpy(r.q, b->q, n * sizeof *r.q);
    return r;
}

/* b where keep[i] > 0, else nothing (a relu: where it gives 0, both sides give exactly 0). */
static void bound_mask(struct bound *b, const double *keep, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!(keep[i] > 0)) b->s[i] = b->q[i] = 0;
}

/* a + b (an add, or a gradient that two consumers contribute), their values va and vb rounded
 * where ra and rb (stored in the compute type before the add). */
static struct bound bound_add(const struct bound *a, const double *va, bool ra,
                              const struct bound *b, const double *vb, bool rb, size_t n)
{
    struct bound r = bound_of(va, a, n);
    for (size_t i = 0; i < n; i++) {
        r.s[i] += b && b->s ? b->s[i] : fabs(vb[i]);
        r.q[i] += (b && b->q ? b->q[i] : 0) + (ra ? va[i] * va[i] : 0) + (rb ? vb[i] * vb[i] : 0);
    }
    r.sk += b ? b->sk : 0;
    return r;
}

/* One operand of a bilinear op: its values (n), their bound (NULL: exact, as given to the
 * plan) and whether the plan stores them in the compute type before the op reads them. */
struct operand {
    const double *v;
    size_t n;
    const struct bound *b;
    bool rounded;
};

/* out = f(a, b), linear in each (a convolution's or a linear layer's three passes); out2 the
 * bias's gradient it also gives (or NULL). */
typedef void (*bilinear_fn)(const void *geom, const double *a, const double *b, double *out,
                            double *out2);

static double *operand_q(const struct operand *o)
{
    double *q = zeros(o->n);
    for (size_t i = 0; i < o->n; i++)
        q[i] = (o->b && o->b->q ? o->b->q[i] : 0) + (o->rounded ? o->v[i] * o->v[i] : 0);
    return q;
}

/* The bound of out = f(a, b) (n), summing K terms per element, and of out2 (n2, summing K2;
 * NULL: none): s through f on absolute values; q: a's and b's own q and roundings carried
 * through f with squared coefficients, plus f's terms squared (the allowance for partial
 * results in the compute type). */
static void bound_bilinear(bilinear_fn f, const void *geom, struct operand a, struct operand b,
                           size_t n, double K, struct bound *out, size_t n2, double K2,
                           struct bound *out2)
{
    struct bound sa = bound_of(a.v, a.b, a.n), sb = bound_of(b.v, b.b, b.n);
    double *qa = operand_q(&a), *qb = operand_q(&b), *a2 = vmap(a.v, a.n, true),
           *b2 = vmap(b.v, b.n, true), *t = zeros(n), *t2 = zeros(n2);
    *out = (struct bound){.s = zeros(n), .q = zeros(n), .sk = sa.sk + sb.sk + sqrt(K)};
    if (out2) *out2 = (struct bound){.s = zeros(n2), .q = zeros(n2), .sk = sb.sk + sqrt(K2)};
    f(geom, sa.s, sb.s, out->s, out2 ? out2->s : NULL);
    const double *pass[3][2] = {{qa, b2}, {a2, qb}, {a2, b2}};
    for (int k = 0; k < 3; k++) {
        f(geom, pass[k][0], pass[k][1], t, out2 ? t2 : NULL);
        vadd(out->q, t, n);
        if (out2) vadd(out2->q, t2, n2);
    }
    bound_free(&sa);
    bound_free(&sb);
    free(qa);
    free(qb);
    free(a2);
    free(b2);
    free(t);
    free(t2);
}

/* A bias added to an op's result y (n) after the op, in the compute type (the CUDA backend
 * stores the op's result, then adds the bias): the bias's term and the rounding of y - bias;
 * the channel of element i is (i / inner) % K. */
static void bound_bias(struct bound *o, const double *y, const double *bias, size_t n, int K,
                       size_t inner)
{
    for (size_t i = 0; i < n; i++) {
        double b = bias[(i / inner) % (size_t)K], pre = y[i] - b;
        o->s[i] += fabs(b);
        o->q[i] += pre * pre + b * b;
    }
    o->sk += 1;
}

static void f_conv_fwd(const void *g, const double *x, const double *w, double *y, double *no)
{
    (void)no;
    ref_conv_forward(g, x, w, NULL, y);
}

static void f_conv_data(const void *g, const double *dy, const double *w, double *dx, double *no)
{
    (void)no;
    ref_conv_backward_data(g, dy, w, dx);
}

static void f_conv_filter(const void *g, const double *x, const double *dy, double *dw,
                          double *db)
{
    ref_conv_backward_weights(g, x, dy, dw, db);
}

struct lin_geom {
    int N, IN, OUT;
};

static void f_lin_fwd(const void *g, const double *x, const double *w, double *y, double *no)
{
    const struct lin_geom *l = g;
    (void)no;
    ref_linear_forward(l->N, l->IN, l->OUT, x, w, NULL, y);
}

static void f_lin_data(const void *g, const double *dy, const double *w, double *dx, double *no)
{
    const struct lin_geom *l = g;
    (void)no;
    ref_linear_backward_data(l->N, l->IN, l->OUT, dy, w, dx);
}

static void f_lin_filter(const void *g, const double *x, const double *dy, double *dw,
                         double *db)
{
    const struct lin_geom *l = g;
    ref_linear_backward_weights(l->N, l->IN, l->OUT, x, dy, dw, db);
}

/* A convolution's reduction lengths: forward C/g R S, data (K/g) R S, filter N P Q. */
static double conv_k(const struct ref_conv *c, int pass)
{
    return pass == 0   ? (double)c->C / c->groups * c->R * c->S
           : pass == 1 ? (double)c->K / c->groups * c->R * c->S
                       : (double)c->N * c->P * c->Q;
}

/*
 * Batchnorm over x (N, C, HW) in training, x's bound bx (NULL: exact) and rounded as for an
 * operand: per channel the mean mu, var and s = 1 / sqrt(var + eps) of the reference, and
 * for the bounds (first order in the errors e_j of x_j, |e_j| <= u sx_j, sx >= |x| x's s):
 * mu moves by at most u mean(sx), var by 2 u mean(|x - mu| sx) <= 2 u Vm with
 * Vm = mean(sx^2) + 2 |mu| mean(sx) (also the magnitude of sum x^2 - M mu^2, if a backend
 * computes var so), s by u s qv with qv = Vm / (var + eps); so xhat_i = (x_i - mu) s moves by
 * at most u X_i, X_i = s (sx_i + |mu| + mean(sx) + |x_i - mu| qv). The q parts: e_j reaches
 * xhat_i through x_i (s), mu (s / M) and var (s xhat_i xhat_j / M).
 */
struct bn_bound {
    int N, C, HW;
    double *is, *qv;             /* (C) 1 / sqrt(var + eps), Vm / (var + eps) */
    double *xhat, *X, *qx, *qxh; /* (N, C, HW) xhat, its magnitude X, x's q, xhat's q / s^2 */
    double sk;                   /* of x, with the statistics' sums */
};

/* The element of channel c, image k, position j. */
static size_t bn_at(const struct bn_bound *z, int k, int c, int j)
{
    return ((size_t)k * (size_t)z->C + (size_t)c) * (size_t)z->HW + (size_t)j;
}

/* z for a batchnorm of x (bx, rounded), and the bounds of its output y = gamma xhat + beta
 * and of the running statistics updated from rm0, rv0 (their values before the step; by,
 * brm, brv may be NULL). */
static void bn_bound_train(struct bn_bound *z, int N, int C, int HW, double eps, double momentum,
                           struct operand x, const double *gamma, const double *beta,
                           const double *rm0, const double *rv0, struct bound *by,
                           struct bound *brm, struct bound *brv)
{
    size_t n = x.n;
    double M = (double)N * HW, unb = M > 1 ? M / (M - 1) : 1;
    struct bound sx = bound_of(x.v, x.b, n);
    *z = (struct bn_bound){.N = N, .C = C, .HW = HW, .is = zeros((size_t)C),
                           .qv = zeros((size_t)C), .xhat = zeros(n), .X = zeros(n),
                           .qx = operand_q(&x), .qxh = zeros(n),
                           .sk = sx.sk + 2 * sqrt(M) + 2};
    if (by) *by = (struct bound){.s = zeros(n), .q = zeros(n), .sk = z->sk};
    if (brm) *brm = (struct bound){.s = zeros((size_t)C), .q = zeros((size_t)C), .sk = z->sk};
    if (brv) *brv = (struct bound){.s = zeros((size_t)C), .q = zeros((size_t)C), .sk = z->sk};
    for (int c = 0; c < C; c++) {
        double mu = 0, var = 0, ms = 0, ms2 = 0, mq = 0, mxq = 0, mdq = 0;
        for (int k = 0; k < N; k++)
            for (int j = 0; j < HW; j++) {
                size_t i = bn_at(z, k, c, j);
                mu += x.v[i] / M;
                ms += sx.s[i] / M;
                ms2 += sx.s[i] * sx.s[i] / M;
                mq += z->qx[i] / M;
            }
        for (int k = 0; k < N; k++)
            for (int j = 0; j < HW; j++) {
                size_t i = bn_at(z, k, c, j);
                var += (x.v[i] - mu) * (x.v[i] - mu) / M;
            }
        double is = 1 / sqrt(var + eps), vm = ms2 + 2 * fabs(mu) * ms, qv = vm / (var + eps);
        z->is[c] = is;
        z->qv[c] = qv;
        for (int k = 0; k < N; k++)
            for (int j = 0; j < HW; j++) {
                size_t i = bn_at(z, k, c, j);
                z->xhat[i] = (x.v[i] - mu) * is;
                z->X[i] = is * (sx.s[i] + fabs(mu) + ms + fabs(x.v[i] - mu) * qv);
                mxq += z->xhat[i] * z->xhat[i] * z->qx[i] / M;
                mdq += (x.v[i] - mu) * (x.v[i] - mu) * z->qx[i] / M;
            }
        for (int k = 0; k < N; k++)
            for (int j = 0; j < HW; j++) {
                size_t i = bn_at(z, k, c, j);
                z->qxh[i] = z->qx[i] + mq / M + z->xhat[i] * z->xhat[i] * mxq / M;
                if (!by) continue;
                by->s[i] = fabs(gamma[c]) * z->X[i] + fabs(beta[c]);
                by->q[i] = gamma[c] * gamma[c] * is * is * z->qxh[i];
            }
        if (brm) {
            brm->s[c] = (1 - momentum) * fabs(rm0[c]) + momentum * ms;
            brm->q[c] = momentum * momentum * mq / M;
        }
        if (brv) {
            brv->s[c] = (1 - momentum) * fabs(rv0[c]) + momentum * unb * vm;
            brv->q[c] = momentum * momentum * unb * unb * 4 * mdq / M;
        }
    }
    bound_free(&sx);
}

/* The bounds of the backward of z's batchnorm from g (the gradient reaching it, after a fused
 * relu's mask), g's bound bg and rounding as for an operand: dx = gamma s (g - mean(g) -
 * xhat mean(g xhat)), dgamma = sum g xhat, dbeta = sum g (any may be NULL). */
static void bn_bound_backward(const struct bn_bound *z, const double *gamma, struct operand g,
                              struct bound *bdx, struct bound *bdg, struct bound *bdb)
{
    size_t n = g.n;
    double M = (double)z->N * z->HW;
    struct bound sg = bound_of(g.v, g.b, n);
    double *qg = operand_q(&g), sk = sg.sk + z->sk + sqrt(M) + 2;
    if (bdx) *bdx = (struct bound){.s = zeros(n), .q = zeros(n), .sk = sk + sqrt(M)};
    if (bdg) *bdg = (struct bound){.s = zeros((size_t)z->C), .q = zeros((size_t)z->C), .sk = sk};
    if (bdb) *bdb = (struct bound){.s = zeros((size_t)z->C), .q = zeros((size_t)z->C),
                                   .sk = sg.sk + sqrt(M)};
    for (int c = 0; c < z->C; c++) {
        double sb = 0, sgx = 0, qb = 0, qgx = 0, dg = 0, mq = 0, mxq = 0, mgq = 0;
        double is = z->is[c], k2 = gamma[c] * gamma[c] * is * is;
        for (int k = 0; k < z->N; k++)
            for (int j = 0; j < z->HW; j++) {
                size_t i = bn_at(z, k, c, j);
                double xh = z->xhat[i];
                sb += sg.s[i];
                sgx += sg.s[i] * z->X[i];
                qb += qg[i];
                qgx += qg[i] * xh * xh + g.v[i] * g.v[i] * is * is * z->qxh[i];
                dg += g.v[i] * xh;
                mq += qg[i] / M;
                mxq += xh * xh * qg[i] / M;
                mgq += g.v[i] * g.v[i] * is * is * z->qxh[i] / M;
            }
        if (bdg) {
            bdg->s[c] = sgx;
            bdg->q[c] = qgx;
        }
        if (bdb) {
            bdb->s[c] = sb;
            bdb->q[c] = qb;
        }
        if (!bdx) continue;
        for (int k = 0; k < z->N; k++)
            for (int j = 0; j < z->HW; j++) {
                size_t i = bn_at(z, k, c, j);
                double xh = z->xhat[i], mgx = dg / M;
                bdx->s[i] = fabs(gamma[c]) * is * (sg.s[i] + sb / M + z->X[i] * sgx / M) *
                            (1 + z->qv[c]);
                bdx->q[i] = k2 * (qg[i] + mq / M + xh * xh * mxq / M +
                                  mgx * mgx * is * is * z->qxh[i] + xh * xh * mgq / M);
            }
    }
    bound_free(&sg);
    free(qg);
}

static void bn_bound_free(struct bn_bound *z)
{
    free(z->is);
    free(z->qv);
    free(z->xhat);
    free(z->X);
    free(z->qx);
    free(z->qxh);
}

/* The bound of an evaluation batchnorm y = gamma (x - rm) / sqrt(rv + eps) + beta of x (bx,
 * rounded), the running statistics being the reference's rm, rv with the bounds brm, brv of
 * the plan's (NULL: exact). */
static void bn_bound_eval(int N, int C, int HW, double eps, struct operand x, const double *gamma,
                          const double *beta, const double *rm, const double *rv,
                          const struct bound *brm, const struct bound *brv, struct bound *by)
{
    size_t n = x.n, hw = (size_t)HW;
    struct bound sx = bound_of(x.v, x.b, n);
    double *qx = operand_q(&x);
    *by = (struct bound){.s = zeros(n), .q = zeros(n),
                         .sk = sx.sk + fmax(brm ? brm->sk : 0, brv ? brv->sk : 0) + 2};
    for (size_t i = 0; i < n; i++) {
        size_t c = (i / hw) % (size_t)C;
        double a = gamma[c] / sqrt(rv[c] + eps), d = x.v[i] - rm[c], h = d / (2 * (rv[c] + eps));
        by->s[i] = fabs(a) * (sx.s[i] + (brm ? brm->s[c] : fabs(rm[c])) +
                              fabs(h) * (brv ? brv->s[c] : 0)) + fabs(beta[c]);
        by->q[i] = a * a * (qx[i] + (brm ? brm->q[c] : 0) + h * h * (brv ? brv->q[c] : 0));
    }
    (void)N;
    bound_free(&sx);
    free(qx);
}

/* --------------------------------------------------------------------------------------- */
/* Checking a result */

/* What check_eval found: ok, or the element that failed (a value that is not finite, or the
 * worst error). */
struct check_result {
    bool ok;
    size_t at;        /* the element named: the first that is not finite, else the worst */
    double err, lim;  /* |got - want| at it and the tolerance it had */
    const char *why;  /* NULL, or why the tensor fails before any comparison */
};

/* Whether got is checked element by element against b (else against tol of the tensor's
 * largest magnitude). */
static bool elementwise(const struct bound *b)
{
    return target.bounds && b;
}

/* got (n) against want (n). A NaN or an infinity in got fails at once, at the first such
 * element, whatever the tolerance (a NaN compares false with everything, so a running maximum
 * of the errors would let the next finite element replace it); one in want is a bug of the
 * test and fails the same way. Otherwise every |got_i - want_i| must be within bound_at(b)
 * (elementwise), or the worst within tol of the tensor's largest magnitude; the element named
 * is the one nearest its limit (the worst). */
static struct check_result check_eval(const float *got, const double *want, size_t n,
                                      const struct bound *b)
{
    struct check_result r = {.ok = true};
    double scale = tol * max_abs(want, n), worst = -1;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(want[i]))
            return (struct check_result){.at = i, .why = "the reference is not finite (a bug "
                                                          "of the test)"};
        if (!isfinite(got[i])) return (struct check_result){.at = i, .why = "not finite"};
        double e = fabs((double)got[i] - want[i]), lim = elementwise(b) ? bound_at(b, want, i)
                                                                        : scale;
        if (e / lim > worst) {
            worst = e / lim;
            r.at = i;
            r.err = e;
            r.lim = lim;
        }
    }
    r.ok = worst <= 1;
    return r;
}

/* Fails (cmocka's fail) unless got passes check_eval; b NULL: against tol on every target. */
static void check(const char *op, const char *settings, const char *tensor, const float *got,
                  const double *want, size_t n, const struct bound *b)
{
    struct check_result r = check_eval(got, want, n, b);
    if (r.ok) return;
    double part[3];
    if (elementwise(b)) bound_parts(b, want, r.at, part);
    if (r.why)
        print_error("%s: %s (%s): %s: element %zu of %zu is %.9g, the reference %.9g: %s\n",
                    target.name, op, settings, tensor, r.at, n, (double)got[r.at], want[r.at],
                    r.why);
    else if (elementwise(b))
        print_error("%s: %s (%s): %s: element %zu of %zu is %.9g, the reference %.9g; error "
                    "%.3g, its bound %.3g (u = 2^-%d: the result's rounding %.2g, the values "
                    "rounded on the way %.2g, the fp32 sums %.2g)\n",
                    target.name, op, settings, tensor, r.at, n, (double)got[r.at], want[r.at],
                    r.err, r.lim, target.bits, part[0], part[1], part[2]);
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
    o.batch = N;
    o.optimizer_slots = 2;
    o.input_grad = true;
    o.seed = 7;
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

/* Checks tensor name of t (its gradient with grad) against want, with want's bound b. */
static void check_tensor(struct net *t, const char *op, const char *set, const char *name,
                         bool grad, const double *want, const struct bound *b)
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
    check(op, set, what, got, want, n, b);
    free(got);
}

/* Runs forward (training) on x and checks the output against y (its bound by); returns it
 * (caller frees). */
static float *run_forward(struct net *t, const char *op, const char *set, const float *x,
                          const double *y, const struct bound *by)
{
    plan_set_input(t->p, x, NULL);
    plan_forward(t->p, true);
    float *out = malloc((t->out_n + 1) * sizeof *out);
    plan_get_output(t->p, out);
    check(op, set, "output", out, y, t->out_n, by);
    return out;
}

/* Runs backward from dy and checks the input's gradient against dx (its bound bdx). */
static void run_backward(struct net *t, const char *op, const char *set, const float *dy,
                         const double *dx, const struct bound *bdx)
{
    float *gin = malloc((t->in_n + 1) * sizeof *gin);
    plan_backward(t->p, dy);
    plan_get_input_grad(t->p, gin);
    check(op, set, "gradient of the input", gin, dx, t->in_n, bdx);
    free(gin);
}

/* Runs forward (training) on x and backward from dy; checks the output and the input's
 * gradient against y and dx (their bounds by, bdx). */
static void run_check(struct net *t, const char *op, const char *set, const float *x,
                      const float *dy, const double *y, const struct bound *by,
                      const double *dx, const struct bound *bdx)
{
    free(run_forward(t, op, set, x, y, by));
    run_backward(t, op, set, dy, dx, bdx);
}

/*
 * pre (n), the reference's input of a relu whose output the plan gave as y, the reference's
 * output being want with the bound b: where the two disagree on the sign within the output's
 * tolerance of zero (the compute type's rounding moved the input across the kink), pre takes
 * the plan's side, so the reference's backward passes the gradient where the plan does. A
 * disagreement farther from zero is left for the output check to report. Returns how many
 * elements changed.
 */
static int relu_kinks(double *pre, const float *y, const double *want, size_t n,
                      const struct bound *b)
{
    int k = 0;
    double scale = tol * max_abs(want, n);
    for (size_t i = 0; i < n; i++) {
        bool on = y[i] > 0;
        if (on != (pre[i] > 0) && fabs(pre[i]) <= (elementwise(b) ? bound_at(b, want, i) : scale)) {
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
        /* One sum per element, of exact inputs (the bias added after the convolution). */
        struct operand ox = {xd, t.in_n, NULL, false}, ow = {w, nw, NULL, false},
                       ody = {dyd, t.out_n, NULL, false};
        struct bound by, bdx, bdw, bdb = {0};
        bound_bilinear(f_conv_fwd, &c, ox, ow, t.out_n, conv_k(&c, 0), &by, 0, 0, NULL);
        if (q->bias) bound_bias(&by, y, b, t.out_n, q->K, (size_t)c.P * (size_t)c.Q);
        bound_bilinear(f_conv_data, &c, ody, ow, t.in_n, conv_k(&c, 1), &bdx, 0, 0, NULL);
        bound_bilinear(f_conv_filter, &c, ox, ody, nw, conv_k(&c, 2), &bdw,
                       q->bias ? (size_t)q->K : 0, conv_k(&c, 2), q->bias ? &bdb : NULL);
        run_check(&t, "conv", set, x, dy, y, &by, dx, &bdx);
        check_tensor(&t, "conv", set, "x.weight", true, dw, &bdw);
        if (q->bias) check_tensor(&t, "conv", set, "x.bias", true, db, &bdb);
        free(w);
        free(b);
        free(xd);
        free(dyd);
        free(x);
        free(dy);
        free(y);
        free(dx);
        free(dw);
        free(db);
        bound_free(&by);
        bound_free(&bdx);
        bound_free(&bdw);
        bound_free(&bdb);
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
                            if (xd[at] > best) {
                                best = xd[at];
                                tie = SIZE_MAX;
                            } else if (xd[at] == best)
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
        /* A maximum is exact; the sums (an average, the gradients of overlapping windows) are
         * fp32 over at most k^2 terms, written once. */
        double *xa = vmap(xd, t.in_n, false), *dya = vmap(dyd, t.out_n, false);
        struct bound by = {0}, bdx = {.s = zeros(t.in_n), .sk = q->k + 1};
        if (q->op[0] == 'm') {
            untie_windows(&p, x, xd);
            ref_maxpool_forward(&p, xd, y);
            ref_maxpool_backward(&p, xd, dyd, dx);
            ref_maxpool_backward(&p, xd, dya, bdx.s);
        } else {
            ref_avgpool_forward(&p, xd, y);
            ref_avgpool_backward(&p, dyd, dx);
            by = (struct bound){.s = zeros(t.out_n), .sk = q->k + 1};
            ref_avgpool_forward(&p, xa, by.s);
            ref_avgpool_backward(&p, dya, bdx.s);
        }
        run_check(&t, q->op, set, x, dy, y, &by, dx, &bdx);
        free(xd);
        free(dyd);
        free(x);
        free(dy);
        free(y);
        free(dx);
        free(xa);
        free(dya);
        bound_free(&by);
        bound_free(&bdx);
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
    /* The pooled vector and its gradient are stored in the compute type between the two. */
    const size_t np = (size_t)N * C, nw = (size_t)OUT * C;
    struct lin_geom lg = {N, C, OUT};
    struct bound bp = {.s = zeros(np), .sk = sqrt(H * W) + 1}, by, bdp, bdw, bdb;
    double *xa = vmap(xd, t.in_n, false);
    ref_global_avg_pool_forward(N, C, H * W, xa, bp.s);
    struct operand op = {pooled, np, &bp, true}, ow = {w, nw, NULL, false},
                   ody = {dyd, t.out_n, NULL, false};
    bound_bilinear(f_lin_fwd, &lg, op, ow, t.out_n, C, &by, 0, 0, NULL);
    bound_bias(&by, y, b, t.out_n, OUT, 1);
    bound_bilinear(f_lin_data, &lg, ody, ow, np, OUT, &bdp, 0, 0, NULL);
    bound_bilinear(f_lin_filter, &lg, op, ody, nw, N, &bdw, OUT, N, &bdb);
    struct bound bdx = {.s = zeros(t.in_n), .q = zeros(t.in_n), .sk = bdp.sk + 1};
    for (size_t i = 0; i < np; i++) bdp.q[i] += dp[i] * dp[i];
    ref_global_avg_pool_backward(N, C, H * W, bdp.s, bdx.s);
    ref_global_avg_pool_backward(N, C, H * W, bdp.q, bdx.q);
    for (size_t i = 0; i < t.in_n; i++) bdx.q[i] /= H * W;
    run_check(&t, "global_avg_pool + linear", "N3 C17 5x7 out 6", x, dy, y, &by, dx, &bdx);
    check_tensor(&t, "linear", "after global_avg_pool", "fc.weight", true, dw, &bdw);
    check_tensor(&t, "linear", "after global_avg_pool", "fc.bias", true, db, &bdb);
    free(w);
    free(b);
    free(xd);
    free(dyd);
    free(x);
    free(dy);
    free(pooled);
    free(y);
    free(dp);
    free(dx);
    free(dw);
    free(db);
    free(xa);
    bound_free(&bp);
    bound_free(&by);
    bound_free(&bdp);
    bound_free(&bdw);
    bound_free(&bdb);
    bound_free(&bdx);
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
        struct bn_bound z;
        struct bound by, brm, brv, bdx, bdg, bdb, bye;
        struct operand ox = {xd, t.in_n, NULL, false};
        bn_bound_train(&z, N, C, H * W, 1e-3, 0.2, ox, gamma, beta, rm, rv, &by, &brm, &brv);
        bn_bound_backward(&z, gamma, (struct operand){dyd, t.out_n, NULL, false}, &bdx, &bdg,
                          &bdb);
        ref_batchnorm_forward_train(N, C, H * W, 1e-3, 0.2, xd, gamma, beta, y, mean, var, rm, rv);
        ref_batchnorm_backward(N, C, H * W, 1e-3, xd, dyd, gamma, mean, var, dx, dg, dbeta);
        run_check(&t, "batchnorm", set, x, dy, y, &by, dx, &bdx);
        check_tensor(&t, "batchnorm", set, "bn.weight", true, dg, &bdg);
        check_tensor(&t, "batchnorm", set, "bn.bias", true, dbeta, &bdb);
        check_tensor(&t, "batchnorm", set, "bn.running_mean", false, rm, &brm);
        check_tensor(&t, "batchnorm", set, "bn.running_var", false, rv, &brv);
        int64_t count = 0;
        plan_get_tensor(t.p, tensor(&t, "bn.num_batches_tracked"), &count);
        assert_int_equal(count, 1);

        /* Evaluation: the running statistics, which do not change. */
        ref_batchnorm_forward_infer(N, C, H * W, 1e-3, xd, gamma, beta, rm, rv, y);
        bn_bound_eval(N, C, H * W, 1e-3, ox, gamma, beta, rm, rv, &brm, &brv, &bye);
        plan_forward(t.p, false);
        float *out = malloc((t.out_n + 1) * sizeof *out);
        plan_get_output(t.p, out);
        check("batchnorm (evaluation)", set, "output", out, y, t.out_n, &bye);
        check_tensor(&t, "batchnorm (evaluation)", set, "bn.running_mean", false, rm, &brm);
        bn_bound_free(&z);
        bound_free(&by);
        bound_free(&brm);
        bound_free(&brv);
        bound_free(&bdx);
        bound_free(&bdg);
        bound_free(&bdb);
        bound_free(&bye);
        free(out);
        free(gamma);
        free(beta);
        free(rm);
        free(rv);
        free(xd);
        free(dyd);
        free(x);
        free(dy);
        free(y);
        free(dx);
        free(mean);
        free(var);
        free(dg);
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
    run_check(&t, "relu + identity", "N2 C20 5x3", x, dy, y, &EXACT, dx, &EXACT);
    free(xd);
    free(dyd);
    free(x);
    free(dy);
    free(y);
    free(dx);
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
    x = rand_f(t.in_n, &xd);
    dy = rand_f(t.out_n, &dyd);
    double *conv = zeros(t.out_n), *sum = zeros(t.out_n);
    y = zeros(t.out_n);
    dx = zeros(t.in_n);
    double *dsum = zeros(t.out_n), *dw = zeros((size_t)C2 * C2 * 9);
    ref_conv_forward(&c, xd, w, NULL, conv);
    ref_add_forward((int64_t)t.out_n, conv, xd, sum);
    ref_relu_forward((int64_t)t.out_n, sum, y);
    /* The conv's output is stored before the add; so is its data gradient before the
     * shortcut's is added. */
    const size_t nw = (size_t)C2 * C2 * 9;
    struct operand ox = {xd, t.in_n, NULL, false}, ow = {w, nw, NULL, false};
    struct bound bc, bcd, bdx, bdw;
    bound_bilinear(f_conv_fwd, &c, ox, ow, t.out_n, conv_k(&c, 0), &bc, 0, 0, NULL);
    struct bound by = bound_add(&bc, conv, true, NULL, xd, false, t.out_n);
    float *out = run_forward(&t, "add (residual block)", "identity shortcut", x, y, &by);
    relu_kinks(sum, out, y, t.out_n, &by);
    ref_relu_backward((int64_t)t.out_n, sum, dyd, dsum);
    ref_conv_backward_data(&c, dsum, w, dx);
    struct operand ods = {dsum, t.out_n, NULL, false};
    bound_bilinear(f_conv_data, &c, ods, ow, t.in_n, conv_k(&c, 1), &bcd, 0, 0, NULL);
    bdx = bound_add(&bcd, dx, true, NULL, dsum, false, t.in_n);
    for (size_t i = 0; i < t.in_n; i++) dx[i] += dsum[i];
    ref_conv_backward_weights(&c, xd, dsum, dw, NULL);
    bound_bilinear(f_conv_filter, &c, ox, ods, nw, conv_k(&c, 2), &bdw, 0, 0, NULL);
    run_backward(&t, "add (residual block)", "identity shortcut", dy, dx, &bdx);
    check_tensor(&t, "add (residual block)", "identity shortcut", "a.conv.weight", true, dw,
                 &bdw);
    free(w);
    free(xd);
    free(dyd);
    free(x);
    free(dy);
    free(conv);
    free(sum);
    free(y);
    free(dx);
    free(dsum);
    free(dw);
    free(out);
    bound_free(&bc);
    bound_free(&by);
    bound_free(&bcd);
    bound_free(&bdx);
    bound_free(&bdw);
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
    struct bn_bound z;                         /* of the training forward */
    struct bound y, rm_b, rv_b, dg_b, db_b, e; /* e: the evaluation's output */
};

static void bn_ref_open(struct bn_ref *b, struct net *t, const char *name, int C)
{
    char n[128];
    b->name = name;
    b->C = C;
    snprintf(n, sizeof n, "%s.weight", name);
    b->gamma = rand_tensor(t, n);
    snprintf(n, sizeof n, "%s.bias", name);
    b->beta = rand_tensor(t, n);
    snprintf(n, sizeof n, "%s.running_mean", name);
    b->rm = rand_tensor(t, n);
    snprintf(n, sizeof n, "%s.running_var", name);
    b->rv = rand_running_var(t, n, C);
    b->mean = zeros((size_t)C);
    b->var = zeros((size_t)C);
    b->dg = zeros((size_t)C);
    b->db = zeros((size_t)C);
}

/* The training forward of x (N, C, HW; read as the operand ox: its bound, stored in the
 * compute type) into y, eps 1e-5 and momentum 0.1 (the defaults), with its bounds. */
static void bn_ref_train(struct bn_ref *b, int N, int HW, struct operand ox, double *y)
{
    bn_bound_train(&b->z, N, b->C, HW, 1e-5, 0.1, ox, b->gamma, b->beta, b->rm, b->rv, &b->y,
                   &b->rm_b, &b->rv_b);
    ref_batchnorm_forward_train(N, b->C, HW, 1e-5, 0.1, ox.v, b->gamma, b->beta, y, b->mean,
                                b->var, b->rm, b->rv);
}

/* Its backward from g (the operand: the gradient after the relu's mask) into dx, with the
 * bounds of dx (bdx) and of the parameters' gradients. */
static void bn_ref_backward(struct bn_ref *b, int N, int HW, const double *x, struct operand g,
                            double *dx, struct bound *bdx)
{
    bn_bound_backward(&b->z, b->gamma, g, bdx, &b->dg_b, &b->db_b);
    ref_batchnorm_backward(N, b->C, HW, 1e-5, x, g.v, b->gamma, b->mean, b->var, dx, b->dg,
                           b->db);
}

/* The evaluation forward of x (the operand ox) into y, with its bound (b->e). */
static void bn_ref_eval(struct bn_ref *b, int N, int HW, struct operand ox, double *y)
{
    bn_bound_eval(N, b->C, HW, 1e-5, ox, b->gamma, b->beta, b->rm, b->rv, &b->rm_b, &b->rv_b,
                  &b->e);
    ref_batchnorm_forward_infer(N, b->C, HW, 1e-5, ox.v, b->gamma, b->beta, b->rm, b->rv, y);
}

static void bn_ref_check(struct bn_ref *b, struct net *t, const char *set)
{
    static const char *const what[] = {"weight", "bias", "running_mean", "running_var"};
    double *want[] = {b->dg, b->db, b->rm, b->rv};
    const struct bound *bounds[] = {&b->dg_b, &b->db_b, &b->rm_b, &b->rv_b};
    for (int i = 0; i < 4; i++) {
        char n[128];
        snprintf(n, sizeof n, "%s.%s", b->name, what[i]);
        check_tensor(t, "batchnorm in a residual block", set, n, i < 2, want[i], bounds[i]);
    }
}

static void bn_ref_close(struct bn_ref *b)
{
    free(b->gamma);
    free(b->beta);
    free(b->rm);
    free(b->rv);
    free(b->mean);
    free(b->var);
    free(b->dg);
    free(b->db);
    bn_bound_free(&b->z);
    bound_free(&b->y);
    bound_free(&b->rm_b);
    bound_free(&b->rv_b);
    bound_free(&b->dg_b);
    bound_free(&b->db_b);
    bound_free(&b->e);
}

/* The bound of a relu's output from its input's (b, the values pre), stored: nothing where
 * the relu gives 0. */
static struct bound bound_relu(const struct bound *b, const double *pre, size_t n)
{
    struct bound r = bound_of(pre, b, n);
    bound_mask(&r, pre, n);
    return r;
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
        struct bn_ref b1 = {0}, b2 = {0}, bd = {0};
        bn_ref_open(&b1, &t, "a.bn1", Wd);
        bn_ref_open(&b2, &t, "a.bn2", Wd);
        if (proj)
            bn_ref_open(&bd, &t, "a.downbn", Wd);
        else
            assert_null(graph_find_tensor(t.g, "a.down.weight"));

        double *xd, *dyd;
        float *x = rand_f(t.in_n, &xd), *dy = rand_f(t.out_n, &dyd);
        size_t n = t.out_n; /* every activation after the first conv has the output's size */
        const size_t nx = t.in_n, nw1 = (size_t)Wd * C * 9, nw2 = (size_t)Wd * Wd * 9,
                     nwd = (size_t)Wd * C;
        double *h1 = zeros(n), *a1 = zeros(n), *r1 = zeros(n), *h2 = zeros(n), *a2 = zeros(n);
        double *hd = zeros(n), *ad = zeros(n), *sum = zeros(n), *y = zeros(n);
        /* Forward; the convolutions' outputs and the inner relu's rounded as stored (the
         * bounds: h1, r1, h2, hd and the shortcut's batchnorm output are stored in the
         * compute type; bn2, the add and the last relu are one kernel). */
        struct operand ox = {xd, nx, NULL, false}, ow1 = {w1, nw1, NULL, false},
                       ow2 = {w2, nw2, NULL, false}, owd = {wd, nwd, NULL, false};
        struct bound bh1, br1, bh2, bhd = {0}, by;
        ref_conv_forward(&c1, xd, w1, NULL, h1);
        rnd_all(h1, n);
        bound_bilinear(f_conv_fwd, &c1, ox, ow1, n, conv_k(&c1, 0), &bh1, 0, 0, NULL);
        bn_ref_train(&b1, N, P * P, (struct operand){h1, n, &bh1, true}, a1);
        ref_relu_forward((int64_t)n, a1, r1);
        rnd_all(r1, n);
        br1 = bound_relu(&b1.y, a1, n);
        ref_conv_forward(&c2, r1, w2, NULL, h2);
        rnd_all(h2, n);
        bound_bilinear(f_conv_fwd, &c2, (struct operand){r1, n, &br1, true}, ow2, n,
                       conv_k(&c2, 0), &bh2, 0, 0, NULL);
        bn_ref_train(&b2, N, P * P, (struct operand){h2, n, &bh2, true}, a2);
        if (proj) {
            ref_conv_forward(&cd, xd, wd, NULL, hd);
            rnd_all(hd, n);
            bound_bilinear(f_conv_fwd, &cd, ox, owd, n, conv_k(&cd, 0), &bhd, 0, 0, NULL);
            bn_ref_train(&bd, N, P * P, (struct operand){hd, n, &bhd, true}, ad);
        } else {
            memcpy(ad, xd, n * sizeof *ad);
        }
        ref_add_forward((int64_t)n, a2, ad, sum);
        ref_relu_forward((int64_t)n, sum, y);
        by = bound_add(&b2.y, a2, false, proj ? &bd.y : NULL, ad, proj, n);
        float *out = run_forward(&t, "residual block", set, x, y, &by);
        relu_kinks(sum, out, y, n, &by);

        /* Backward (the bounds: every gradient but the relu's is stored). */
        double *dsum = zeros(n), *dh = zeros(n), *dr = zeros(n), *da = zeros(n),
               *dx = zeros(nx), *dxd = zeros(nx);
        double *dw1 = zeros(nw1), *dw2 = zeros(nw2), *dwd = zeros(nwd);
        struct bound bdh, bdxd = {0}, bdwd = {0}, bdr, bda, bdx1, bdw1, bdw2, bdx;
        ref_relu_backward((int64_t)n, sum, dyd, dsum);
        struct operand og = {dsum, n, NULL, false};
        if (proj) {
            bn_ref_backward(&bd, N, P * P, hd, og, dh, &bdh);
            ref_conv_backward_data(&cd, dh, wd, dxd);
            ref_conv_backward_weights(&cd, xd, dh, dwd, NULL);
            struct operand odh = {dh, n, &bdh, true};
            bound_bilinear(f_conv_data, &cd, odh, owd, nx, conv_k(&cd, 1), &bdxd, 0, 0, NULL);
            bound_bilinear(f_conv_filter, &cd, ox, odh, nwd, conv_k(&cd, 2), &bdwd, 0, 0, NULL);
            bound_free(&bdh);
        } else {
            memcpy(dxd, dsum, n * sizeof *dxd);
        }
        bn_ref_backward(&b2, N, P * P, h2, og, dh, &bdh);
        ref_conv_backward_data(&c2, dh, w2, dr);
        ref_conv_backward_weights(&c2, r1, dh, dw2, NULL);
        struct operand odh2 = {dh, n, &bdh, true};
        bound_bilinear(f_conv_data, &c2, odh2, ow2, n, conv_k(&c2, 1), &bdr, 0, 0, NULL);
        bound_bilinear(f_conv_filter, &c2, (struct operand){r1, n, &br1, true}, odh2, nw2,
                       conv_k(&c2, 2), &bdw2, 0, 0, NULL);
        bound_free(&bdh);
        ref_relu_backward((int64_t)n, a1, dr, da);
        bda = bound_of(dr, &bdr, n);
        bound_mask(&bda, a1, n);
        bn_ref_backward(&b1, N, P * P, h1, (struct operand){da, n, &bda, true}, dh, &bdh);
        ref_conv_backward_data(&c1, dh, w1, dx);
        ref_conv_backward_weights(&c1, xd, dh, dw1, NULL);
        struct operand odh1 = {dh, n, &bdh, true};
        bound_bilinear(f_conv_data, &c1, odh1, ow1, nx, conv_k(&c1, 1), &bdx1, 0, 0, NULL);
        bound_bilinear(f_conv_filter, &c1, ox, odh1, nw1, conv_k(&c1, 2), &bdw1, 0, 0, NULL);
        bound_free(&bdh);
        bdx = bound_add(&bdx1, dx, true, proj ? &bdxd : NULL, dxd, proj, nx);
        for (size_t i = 0; i < nx; i++) dx[i] += dxd[i];
        run_backward(&t, "residual block", set, dy, dx, &bdx);
        check_tensor(&t, "residual block", set, "a.conv1.weight", true, dw1, &bdw1);
        check_tensor(&t, "residual block", set, "a.conv2.weight", true, dw2, &bdw2);
        bn_ref_check(&b1, &t, set);
        bn_ref_check(&b2, &t, set);
        if (proj) {
            check_tensor(&t, "residual block", set, "a.down.weight", true, dwd, &bdwd);
            bn_ref_check(&bd, &t, set);
        }

        /* Evaluation: the running statistics, through the same fused join. */
        struct bound br1e, bh2e, bye;
        bn_ref_eval(&b1, N, P * P, (struct operand){h1, n, &bh1, true}, a1);
        ref_relu_forward((int64_t)n, a1, r1);
        rnd_all(r1, n);
        br1e = bound_relu(&b1.e, a1, n);
        ref_conv_forward(&c2, r1, w2, NULL, h2);
        rnd_all(h2, n);
        bound_bilinear(f_conv_fwd, &c2, (struct operand){r1, n, &br1e, true}, ow2, n,
                       conv_k(&c2, 0), &bh2e, 0, 0, NULL);
        bn_ref_eval(&b2, N, P * P, (struct operand){h2, n, &bh2e, true}, a2);
        if (proj) bn_ref_eval(&bd, N, P * P, (struct operand){hd, n, &bhd, true}, ad);
        ref_add_forward((int64_t)n, a2, ad, sum);
        ref_relu_forward((int64_t)n, sum, y);
        bye = bound_add(&b2.e, a2, false, proj ? &bd.e : NULL, ad, proj, n);
        plan_forward(t.p, false);
        plan_get_output(t.p, out);
        check("residual block (evaluation)", set, "output", out, y, n, &bye);

        free(w1);
        free(w2);
        free(wd);
        free(xd);
        free(dyd);
        free(x);
        free(dy);
        free(out);
        free(h1);
        free(a1);
        free(r1);
        free(h2);
        free(a2);
        free(hd);
        free(ad);
        free(sum);
        free(y);
        free(dsum);
        free(dh);
        free(dr);
        free(da);
        free(dx);
        free(dxd);
        free(dw1);
        free(dw2);
        free(dwd);
        bound_free(&bh1);
        bound_free(&br1);
        bound_free(&bh2);
        bound_free(&bhd);
        bound_free(&by);
        bound_free(&bdxd);
        bound_free(&bdwd);
        bound_free(&bdr);
        bound_free(&bda);
        bound_free(&bdx1);
        bound_free(&bdw1);
        bound_free(&bdw2);
        bound_free(&bdx);
        bound_free(&br1e);
        bound_free(&bh2e);
        bound_free(&bye);
        bn_ref_close(&b1);
        bn_ref_close(&b2);
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
        /* One sum per element, of exact inputs (the bias added after the product). */
        struct lin_geom lg = {N, IN, OUT};
        struct operand ox = {xd, t.in_n, NULL, false}, ow = {w, (size_t)IN * OUT, NULL, false},
                       ody = {dyd, t.out_n, NULL, false};
        struct bound by, bdx, bdw, bdb = {0};
        bound_bilinear(f_lin_fwd, &lg, ox, ow, t.out_n, IN, &by, 0, 0, NULL);
        if (bias) bound_bias(&by, y, b, t.out_n, OUT, 1);
        bound_bilinear(f_lin_data, &lg, ody, ow, t.in_n, OUT, &bdx, 0, 0, NULL);
        bound_bilinear(f_lin_filter, &lg, ox, ody, (size_t)IN * OUT, N, &bdw,
                       bias ? (size_t)OUT : 0, N, bias ? &bdb : NULL);
        run_check(&t, "linear", set, x, dy, y, &by, dx, &bdx);
        check_tensor(&t, "linear", set, "fc.weight", true, dw, &bdw);
        if (bias) check_tensor(&t, "linear", set, "fc.bias", true, db, &bdb);
        free(w);
        free(b);
        free(xd);
        free(dyd);
        free(x);
        free(dy);
        free(y);
        free(dx);
        free(dw);
        free(db);
        bound_free(&by);
        bound_free(&bdx);
        bound_free(&bdw);
        bound_free(&bdb);
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
    /* The conv's output and its gradient are stored in the compute type between the two. */
    const size_t nh = (size_t)N * F;
    struct lin_geom lg = {N, (int)F, 4};
    struct operand ox = {xd, t.in_n, NULL, false}, ow = {w, (size_t)K * C * 9, NULL, false},
                   ofw = {fw, 4 * F, NULL, false}, ody = {dyd, t.out_n, NULL, false};
    struct bound bh, by, bdh, bdx, bdfw;
    bound_bilinear(f_conv_fwd, &c, ox, ow, nh, conv_k(&c, 0), &bh, 0, 0, NULL);
    struct operand oh = {h, nh, &bh, true};
    bound_bilinear(f_lin_fwd, &lg, oh, ofw, t.out_n, (double)F, &by, 0, 0, NULL);
    bound_bias(&by, y, fb, t.out_n, 4, 1);
    bound_bilinear(f_lin_data, &lg, ody, ofw, nh, 4, &bdh, 0, 0, NULL);
    bound_bilinear(f_conv_data, &c, (struct operand){dh, nh, &bdh, true}, ow, t.in_n,
                   conv_k(&c, 1), &bdx, 0, 0, NULL);
    bound_bilinear(f_lin_filter, &lg, oh, ody, 4 * F, N, &bdfw, 0, 0, NULL);
    run_check(&t, "conv + flatten + linear", "K24 6x5", x, dy, y, &by, dx, &bdx);
    check_tensor(&t, "linear", "after flatten", "fc.weight", true, dfw, &bdfw);
    free(w);
    free(fw);
    free(fb);
    free(xd);
    free(dyd);
    free(x);
    free(dy);
    free(h);
    free(y);
    free(dh);
    free(dx);
    free(dfw);
    bound_free(&bh);
    bound_free(&by);
    bound_free(&bdh);
    bound_free(&bdx);
    bound_free(&bdfw);
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
    free(xd);
    free(dyd);
    free(x);
    free(dy);
    free(y);
    free(y2);
    free(gx);
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
        /* dz = (softmax - target) / N from fp32 exponentials and a sum of K, stored once:
         * its terms are the softmax's and the target's. */
        struct bound bdz = {.s = zeros(t.in_n), .sk = sqrt(K) + 4};
        for (int i = 0; i < N; i++)
            for (int j = 0; j < K; j++) {
                double qt = soft ? qd[i * K + j]
                                 : (1 - smoothing[s]) * (j == lab[i]) + smoothing[s] / K;
                size_t at = (size_t)i * K + (size_t)j;
                bdz.s[at] = (fabs(N * dz[at] + qt) + fabs(qt)) / N;
            }
        check("softmax cross-entropy", set, "gradient of the logits", g, dz, t.in_n, &bdz);
        bound_free(&bdz);
        if (soft) { /* the next input's labels replace the targets */
            plan_set_input(t.p, z, labels);
            plan_forward(t.p, true);
            double hard = ref_softmax_xent(N, K, zd, lab, smoothing[s], NULL);
            got = plan_loss(t.p, smoothing[s]);
            if (fabs(got - hard) > 1e-5 * fmax(1, fabs(hard)))
                fail_msg("%s: after plan_set_input the loss %.9g should use the labels (%.9g)",
                         target.name, got, hard);
        }
        free(g);
        free(zd);
        free(z);
        free(dz);
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
            check_tensor(&t, names[kind], "after a step", "fc.weight", false, w, NULL);
            check_tensor(&t, names[kind], "after a step", "fc.bias", false, b, NULL);
            free(xd);
            free(dyd);
            free(x);
            free(dy);
        }
        free(w);
        free(b);
        free(mw);
        free(vw);
        free(mb);
        free(vb);
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
