/*
 * test_gpu_math.c: the element math the CUDA backend's kernels share with the host
 * (runner/gpu_math.h), checked on the CPU with no GPU:
 *   - the SGD, Adam (L2, AdamW, amsgrad) and EMA elements over several updates give the CPU
 *     backend's bits (runner/optim_cpu.c, through a plan of a linear layer 7 -> 5 whose bias
 *     is a vector, exempt from decay when asked) from the same gradients and scalars, with
 *     clipping applied as a gradient multiplier; and agree with tests/ref in double;
 *   - clipping's factor and the gradient multiplier by hand; GradScaler's rule over
 *     sequences of steps against hand-computed scales;
 *   - a softmax cross-entropy row (loss, gradient, first maximum) against tests/ref, with
 *     label smoothing and soft targets; argmax merges in a warp's order;
 *   - batchnorm: Welford moments and their merges against two-pass statistics in double on
 *     data far from zero, the running statistics, forward and backward against tests/ref,
 *     the backward formula against central finite differences, relu keeping nan;
 *   - the NHWC <-> NCHW padded index maps (bijections, padding, hand-computed elements);
 *   - the host's fp32 <-> bf16 / fp16 conversions (safetensors.h's st_*): decoding by hand,
 *     all 65536 patterns round trip, rounding against a nearest-even oracle (ties,
 *     subnormals, overflow to inf, nan);
 *   - dropout's integer threshold against rng_uniform(key, i) >= p, at exact boundaries.
 */
#include <float.h>
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

#include "gpu_math.h"
#include "graph.h"
#include "plan.h"
#include "safetensors.h"
#include "test_util.h"
#include "ref.h"
#include "fc_net.h" /* after ref.h, whose prototypes name parameters IN and OUT */

/* ---------------------------------------------------------------------------------------- */
/* Helpers */

/* A float's bits, and back. */
static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

struct prng {
    uint64_t s;
};

static double prng_unit(struct prng *g) /* [0, 1) */
{
    return (double)(rng_bits(0x5eed, g->s++) >> 11) * 0x1.0p-53;
}

static double prng_range(struct prng *g, double lo, double hi)
{
    return lo + (hi - lo) * prng_unit(g);
}

/* |got - want| <= atol + rtol |want| for n values, else a failure naming the first. */
static void check_close(const char *what, const double *got, const double *want, int n,
                        double atol, double rtol)
{
    for (int i = 0; i < n; i++)
        if (!(fabs(got[i] - want[i]) <= atol + rtol * fabs(want[i])))
            fail_msg("%s[%d]: %.9g, expected %.9g (atol %g, rtol %g)", what, i, got[i], want[i],
                     atol, rtol);
}

/* The same bits in n floats. */
static void check_bits(const char *what, int step, const float *got, const float *want, int n)
{
    for (int i = 0; i < n; i++)
        if (f32_bits(got[i]) != f32_bits(want[i]))
            fail_msg("%s, update %d, element %d: CPU backend %.9g (0x%08x), gpu_math %.9g "
                     "(0x%08x)",
                     what, step, i, (double)got[i], f32_bits(got[i]), (double)want[i],
                     f32_bits(want[i]));
}

/* ---------------------------------------------------------------------------------------- */
/* Optimizers against the CPU backend (fc_net.h's linear layer) and tests/ref */

#define STEPS 4

struct sgd_case {
    const char *name;
    double momentum, dampening, wd;
    bool nesterov, no_decay_vectors;
    double clip; /* max_norm at update 3; 0: none */
};

static void test_sgd(void **state)
{
    (void)state;
    const struct sgd_case cases[] = {
        {"sgd without momentum, decay on all", 0, 0, 0.05, false, false, 0},
        {"sgd momentum 0.9 dampening 0.1, decay on all, clipped", 0.9, 0.1, 0.05, false, false,
         0.5},
        {"sgd nesterov, vectors undecayed", 0.9, 0, 0.01, true, true, 0},
        {"sgd momentum 0.8 dampening 0.5, no decay, clip not reached", 0.8, 0.5, 0, false, true,
         100},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const struct sgd_case *k = &cases[c];
        struct net t;
        net_open(&t, fc_yaml, 1);
        float w[NP], buf[NP] = {0}, g[NP], cpu[NP];
        double rw[NP], rbuf[NP] = {0}, rg[NP], got[NP];
        for (int i = 0; i < NP; i++) {
            w[i] = weight0(i);
            rw[i] = w[i];
        }
        net_set(&t, w);
        for (int step = 1; step <= STEPS; step++) {
            double lr = 0.1 / step;
            for (int i = 0; i < NP; i++) g[i] = grad_of(step, i);
            net_set_grad(&t, g);
            float mult = 1;
            double coef = 1;
            if (step == 3 && k->clip > 0) {
                double norm = plan_clip_grad_norm(t.p, k->clip);
                mult = gpu_grad_mult(1.0f, k->clip, norm);
                coef = gpu_clip_factor(k->clip, norm);
                if (k->clip < 1 && !(coef < 1)) fail_msg("%s: the clip is not reached", k->name);
            }
            struct plan_sgd o = {.lr = lr, .momentum = k->momentum, .dampening = k->dampening,
                                 .weight_decay = k->wd, .nesterov = k->nesterov,
                                 .no_decay_vectors = k->no_decay_vectors};
            plan_sgd_step(t.p, &o, step == 1);
            for (int i = 0; i < NP; i++) {
                float wd = k->no_decay_vectors && i >= NW ? 0 : (float)k->wd;
                w[i] = gpu_sgd_element(w[i], gpu_fmul(g[i], mult), &buf[i], (float)lr, wd,
                                       (float)k->momentum, (float)(1 - k->dampening),
                                       k->nesterov, step == 1);
                rg[i] = (double)g[i] * coef;
            }
            net_get(&t, -1, cpu);
            check_bits(k->name, step, cpu, w, NP);
            if (k->momentum != 0) {
                net_get(&t, 0, cpu);
                check_bits(k->name, step, cpu, buf, NP);
            }
            ref_sgd_step(NW, lr, k->momentum, k->dampening, k->nesterov, k->wd, step == 1, rw,
                         rg, rbuf);
            ref_sgd_step(OUT, lr, k->momentum, k->dampening, k->nesterov,
                         k->no_decay_vectors ? 0 : k->wd, step == 1, rw + NW, rg + NW,
                         rbuf + NW);
            for (int i = 0; i < NP; i++) got[i] = w[i];
            check_close(k->name, got, rw, NP, 1e-6, 1e-5);
        }
        net_close(&t);
    }
}

struct adam_case {
    const char *name;
    double lr, beta1, beta2, eps, wd;
    bool decoupled, amsgrad, no_decay_vectors;
};

static void test_adam(void **state)
{
    (void)state;
    const struct adam_case cases[] = {
        {"adam L2 decay on all", 0.01, 0.9, 0.999, 1e-8, 0.01, false, false, false},
        {"adamw vectors undecayed", 0.003, 0.8, 0.99, 1e-6, 0.05, true, false, true},
        {"adam amsgrad vectors undecayed", 0.01, 0.9, 0.5, 1e-8, 0.02, false, true, true},
        {"adamw amsgrad eps 1e-3 decay on all", 0.002, 0.9, 0.999, 1e-3, 0.3, true, true,
         false},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const struct adam_case *k = &cases[c];
        struct net t;
        net_open(&t, fc_yaml, 3);
        float w[NP], m[NP] = {0}, v[NP] = {0}, vmax[NP] = {0}, g[NP], cpu[NP];
        float fw[NP], fm[NP] = {0}, fv[NP] = {0}, fvmax[NP] = {0}; /* float step values */
        double rw[NP], rm[NP] = {0}, rv[NP] = {0}, rg[NP], got[NP], fgot[NP];
        for (int i = 0; i < NP; i++) {
            w[i] = fw[i] = weight0(i);
            rw[i] = w[i];
        }
        net_set(&t, w);
        for (int step = 1; step <= STEPS; step++) {
            double lr = k->lr / step, b1 = 1 - pow(k->beta1, step), b2 = 1 - pow(k->beta2, step);
            for (int i = 0; i < NP; i++) {
                g[i] = grad_of(step, i);
                rg[i] = g[i];
            }
            net_set_grad(&t, g);
            struct plan_adam o = {.lr = lr, .beta1 = k->beta1, .beta2 = k->beta2, .eps = k->eps,
                                  .weight_decay = k->wd, .decoupled = k->decoupled,
                                  .amsgrad = k->amsgrad,
                                  .no_decay_vectors = k->no_decay_vectors};
            plan_adam_step(t.p, &o, step);
            /* With the CPU's scalars: its bits. With the device's (gpu_step_in's float lr, the
             * bias corrections of the update's number): within an ulp or so. */
            struct gpu_adam_scalars a = gpu_adam_prepare(lr, b1, b2, k->beta1, k->beta2, k->eps,
                                                         k->wd, k->decoupled);
            struct gpu_adam_scalars fa =
                gpu_adam_prepare((float)lr, gpu_adam_bias(k->beta1, step),
                                 gpu_adam_bias(k->beta2, step), k->beta1, k->beta2, k->eps,
                                 k->wd, k->decoupled);
            for (int i = 0; i < NP; i++) {
                bool decay = !(k->no_decay_vectors && i >= NW);
                w[i] = gpu_adam_element(w[i], gpu_fmul(g[i], 1.0f), &m[i], &v[i],
                                        k->amsgrad ? &vmax[i] : NULL, &a, decay);
                fw[i] = gpu_adam_element(fw[i], g[i], &fm[i], &fv[i],
                                         k->amsgrad ? &fvmax[i] : NULL, &fa, decay);
                got[i] = w[i];
                fgot[i] = fw[i];
            }
            net_get(&t, -1, cpu);
            check_bits(k->name, step, cpu, w, NP);
            net_get(&t, 0, cpu);
            check_bits(k->name, step, cpu, m, NP);
            net_get(&t, 1, cpu);
            check_bits(k->name, step, cpu, v, NP);
            if (k->amsgrad) {
                net_get(&t, 2, cpu);
                check_bits(k->name, step, cpu, vmax, NP);
            }
            check_close(k->name, fgot, got, NP, 1e-7, 1e-6);
            if (!k->amsgrad) {
                ref_adam_step(NW, lr, k->beta1, k->beta2, k->eps, k->wd, k->decoupled, step,
                              rw, rg, rm, rv);
                ref_adam_step(OUT, lr, k->beta1, k->beta2, k->eps,
                              k->no_decay_vectors ? 0 : k->wd, k->decoupled, step, rw + NW,
                              rg + NW, rm + NW, rv + NW);
                check_close(k->name, got, rw, NP, 1e-6, 1e-5);
            }
        }
        net_close(&t);
    }
}

/* The EMA: a copy on the first update, then decay ema + (1 - decay) w, as the CPU backend. */
static void test_ema(void **state)
{
    (void)state;
    struct net t;
    net_open(&t, fc_yaml, 1);
    float w[NP], ema[NP], cpu[NP];
    const double decay = 0.9;
    for (int step = 1; step <= STEPS; step++) {
        for (int i = 0; i < NP; i++) w[i] = weight0(i) + 0.1f * grad_of(step, i);
        net_set(&t, w);
        plan_ema_update(t.p, 0, decay, step == 1);
        for (int i = 0; i < NP; i++)
            ema[i] = step == 1 ? w[i]
                               : gpu_ema_element(ema[i], w[i], (float)decay, (float)(1 - decay));
        net_get(&t, 0, cpu);
        check_bits("ema 0.9", step, cpu, ema, NP);
    }
    assert_true(fabsf(ema[3] - w[3]) > 1e-4f); /* the average lags the weights */
    net_close(&t);
}

/*
 * The device's count of applied updates over fp16 steps, the first two overflowing: as
 * PyTorch's GradScaler, a skipped step leaves optimizer.step uncalled, so Adam's state['step']
 * and SGD's momentum buffer start at the first applied update (t 1, first), and the EMA is
 * seeded with the weights there, not averaged from zeros. The host's count, when it gives one
 * (nothing in flight, a resume), replaces the device's.
 */
static void test_skipped_updates(void **state)
{
    (void)state;
    const bool overflow[] = {true, true, false, false, true, false};
    const int32_t want_t[] = {1, 1, 1, 2, 3, 3}; /* each step's number if applied */
    int32_t kept = 0;
    float w = 1.0f, m = 0, v = 0, ema = 0, buf = 0;
    bool seeded = false;
    for (int s = 0; s < 6; s++) {
        int32_t before = gpu_updates_before(0, 0, kept);
        assert_int_equal(before + 1, want_t[s]);
        if (!overflow[s]) {
            struct gpu_adam_scalars a = gpu_adam_prepare(1e-3, gpu_adam_bias(0.9, before + 1),
                                                         gpu_adam_bias(0.999, before + 1), 0.9,
                                                         0.999, 1e-8, 0, false);
            float w0 = w;
            w = gpu_adam_element(w, 0.5f, &m, &v, NULL, &a, true);
            /* Adam's first applied step moves by about lr whatever the gradient's size */
            if (before == 0) assert_true(fabs((w0 - w) - 1e-3) < 1e-6);
            float sgd_w = gpu_sgd_element(1.0f, 0.5f, &buf, 0.1f, 0, 0.9f, 1, false, before == 0);
            if (before == 0) assert_true(buf == 0.5f && sgd_w == 0.95f); /* buf = d */
            ema = before == 0 ? w : gpu_ema_element(ema, w, 0.9f, 0.1f);
            if (before == 0) seeded = true;
        }
        kept = gpu_updates_after(before, overflow[s]);
    }
    assert_int_equal(kept, 3);
    assert_true(seeded);
    assert_true(ema > 0.99f); /* from the weights (about 1), never from zero */
    /* the host's count replaces the device's */
    assert_int_equal(gpu_updates_before(1, 41, kept), 41);
    assert_int_equal(gpu_updates_after(gpu_updates_before(1, 41, kept), false), 42);
    assert_true(gpu_adam_bias(0.9, 1) == 1 - 0.9);
    assert_true(gpu_adam_bias(0.999, 3) == 1 - pow(0.999, 3));
}

static void test_clip_factor(void **state)
{
    (void)state;
    assert_true(gpu_clip_factor(1, 0.5) == 1);
    assert_true(gpu_clip_factor(0, 100) == 1);  /* off */
    assert_true(gpu_clip_factor(-1, 100) == 1); /* off */
    assert_true(gpu_clip_factor(1, NAN) == 1);
    assert_true(gpu_clip_factor(1, INFINITY) == 0);
    assert_true(fabs(gpu_clip_factor(1, 3) - 1 / 3.000001) < 1e-15);
    assert_true(gpu_clip_factor(2, 2) < 1); /* the norm at the limit: 2 / (2 + 1e-6) */
    assert_true(gpu_grad_mult(65536, 0, 1e9) == 1.0f / 65536);
    assert_true(gpu_grad_mult(1, 0, 1e9) == 1);
    assert_true(gpu_grad_mult(1024, 1, 3) == (float)(1 / 3.000001 / 1024));
    assert_true(gpu_grad_mult(1024, 5, 3) == 1.0f / 1024);
}

/* torch.amp.GradScaler(init_scale 65536, growth_interval 3) over a sequence of overflows. */
static void test_scaler(void **state)
{
    (void)state;
    static const struct {
        bool inf;
        float scale;
        int good, skipped;
    } seq[] = {
        {false, 65536, 1, 0},  {false, 65536, 2, 0},  {false, 131072, 0, 0},
        {true, 65536, 0, 1},   {false, 65536, 1, 1},  {false, 65536, 2, 1},
        {true, 32768, 0, 2},   {false, 32768, 1, 2},  {false, 32768, 2, 2},
        {false, 65536, 0, 2},  {true, 32768, 0, 3},   {true, 16384, 0, 4},
        {false, 16384, 1, 4},  {false, 16384, 2, 4},  {false, 32768, 0, 4},
    };
    float scale = 65536;
    int32_t good = 0, skipped = 0;
    for (size_t k = 0; k < sizeof seq / sizeof seq[0]; k++) {
        gpu_scaler_update(&scale, &good, &skipped, seq[k].inf, 3);
        if (scale != seq[k].scale || good != seq[k].good || skipped != seq[k].skipped)
            fail_msg("GradScaler step %zu (overflow %d): scale %g good %d skipped %d, expected "
                     "%g %d %d",
                     k + 1, seq[k].inf, (double)scale, good, skipped, (double)seq[k].scale,
                     seq[k].good, seq[k].skipped);
    }
    /* Growth that would overflow float keeps the scale but restarts the count. */
    scale = 0x1.0p127f;
    good = 4;
    skipped = 0;
    gpu_scaler_update(&scale, &good, &skipped, false, 5);
    assert_true(scale == 0x1.0p127f);
    assert_int_equal(good, 0);
    gpu_scaler_update(&scale, &good, &skipped, false, 1);
    assert_true(scale == 0x1.0p127f);
    scale = 1;
    for (int k = 0; k < 3; k++) gpu_scaler_update(&scale, &good, &skipped, false, 1);
    assert_true(scale == 8);
}

/* ---------------------------------------------------------------------------------------- */
/* Softmax cross-entropy */

#define XN 6
#define XK 11

/* Rows of random logits; row 1 far from zero (100 up), row 2 with its maximum twice (3 and 7). */
static void xent_logits(float *z, double *zd, int *labels)
{
    struct prng g = {1};
    for (int r = 0; r < XN; r++) {
        for (int k = 0; k < XK; k++) z[r * XK + k] = (float)prng_range(&g, -3, 3);
        labels[r] = (int)(prng_unit(&g) * XK);
    }
    for (int k = 0; k < XK; k++) z[XK + k] += 100; /* exp(z) overflows float */
    z[2 * XK + 3] = z[2 * XK + 7] = 5;
    labels[2] = 3;
    for (int i = 0; i < XN * XK; i++) zd[i] = z[i];
}

static void test_xent_row(void **state)
{
    (void)state;
    float z[XN * XK], grad[XN * XK], t[XN * XK];
    double zd[XN * XK], want[XN * XK], got[XN * XK], td[XN * XK];
    int labels[XN];
    xent_logits(z, zd, labels);
    struct prng g = {7};
    for (int r = 0; r < XN; r++) { /* soft targets, rows summing to 1 */
        double sum = 0;
        for (int k = 0; k < XK; k++) sum += td[r * XK + k] = prng_unit(&g);
        for (int k = 0; k < XK; k++) t[r * XK + k] = (float)(td[r * XK + k] / sum);
    }
    for (int soft = 0; soft < 2; soft++)
        for (int s = 0; s < 3; s++) {
            double e = s * 0.1;
            double wl;
            if (soft) {
                double q[XN * XK]; /* (1 - e) q + e / K, what ref_softmax_xent_soft then takes */
                for (int i = 0; i < XN * XK; i++) q[i] = (1 - e) * t[i] + e / XK;
                wl = ref_softmax_xent_soft(XN, XK, zd, q, want);
            } else {
                wl = ref_softmax_xent(XN, XK, zd, labels, e, want);
            }
            double loss = 0;
            for (int r = 0; r < XN; r++) {
                int at = -1;
                loss += gpu_xent_row(z + r * XK, XK, labels[r], soft ? t + r * XK : NULL,
                                     (float)e, 1.0f / XN, grad + r * XK, &at);
                int best = 0;
                for (int k = 1; k < XK; k++) best = zd[r * XK + k] > zd[r * XK + best] ? k : best;
                if (at != best)
                    fail_msg("xent row %d: argmax %d, the first maximum %d", r, at, best);
            }
            char what[64];
            snprintf(what, sizeof what, "xent %s smoothing %.1f", soft ? "soft" : "labels", e);
            double lm = loss / XN;
            check_close(what, &lm, &wl, 1, 1e-6, 1e-5);
            for (int i = 0; i < XN * XK; i++) got[i] = grad[i];
            check_close(what, got, want, XN * XK, 1e-7, 1e-5);
        }
    int at;
    gpu_xent_row(z + 2 * XK, XK, 3, NULL, 0, 1, NULL, &at);
    assert_int_equal(at, 3); /* the first of the two maxima */
}

/* A warp's merge: lane l takes classes l, l + 32, ..., then butterfly shuffles, in every
 * lane; the result must be the first maximum whatever the ties. */
static void test_argmax_merge(void **state)
{
    (void)state;
    struct prng g = {3};
    for (int trial = 0; trial < 200; trial++) {
        int k = 1 + (int)(prng_unit(&g) * 150);
        float z[150];
        for (int j = 0; j < k; j++) z[j] = (float)(int)(prng_unit(&g) * 3);
        float v[32];
        int at[32];
        for (int l = 0; l < 32; l++) {
            v[l] = -INFINITY;
            at[l] = 0x7fffffff;
            for (int j = l; j < k; j += 32) gpu_argmax_merge(&v[l], &at[l], z[j], j);
        }
        for (int o = 16; o > 0; o /= 2) {
            float nv[32];
            int nat[32];
            for (int l = 0; l < 32; l++) {
                nv[l] = v[l];
                nat[l] = at[l];
                gpu_argmax_merge(&nv[l], &nat[l], v[l ^ o], at[l ^ o]);
            }
            memcpy(v, nv, sizeof v);
            memcpy(at, nat, sizeof at);
        }
        int best = 0;
        for (int j = 1; j < k; j++) best = z[j] > z[best] ? j : best;
        for (int l = 0; l < 32; l++)
            if (at[l] != best) fail_msg("argmax of %d: lane %d has %d, first maximum %d", k, l,
                                        at[l], best);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Batch normalization */

static struct gpu_moments moments_of(const float *x, int n)
{
    struct gpu_moments a = {0, 0, 0};
    for (int i = 0; i < n; i++) a = gpu_moments_add(a, x[i]);
    return a;
}

/* Values about 1e4 with a standard deviation of about 1: a sum of squares in float fails. */
static void test_moments(void **state)
{
    (void)state;
    enum { N = 1000 };
    float x[N];
    struct prng g = {5};
    for (int i = 0; i < N; i++) x[i] = (float)(1e4 + prng_range(&g, -1.7, 1.7));
    double mean = 0, m2 = 0;
    for (int i = 0; i < N; i++) mean += x[i];
    mean /= N;
    for (int i = 0; i < N; i++) m2 += (x[i] - mean) * (x[i] - mean);
    double var = m2 / N;
    struct gpu_moments a = moments_of(x, N);
    assert_true(a.n == N);
    double got[2] = {a.mean, gpu_moments_var(a)}, want[2] = {mean, var};
    check_close("welford mean", got, want, 1, 0, 1e-6);
    check_close("welford variance", got + 1, want + 1, 1, 0, 1e-3);
    /* Uneven pieces (one empty) merged as a sequence and as a tree. */
    const int cut[] = {0, 0, 1, 8, 72, 372, 1000};
    struct gpu_moments p[6], seq = {0, 0, 0};
    for (int k = 0; k < 6; k++) {
        p[k] = moments_of(x + cut[k], cut[k + 1] - cut[k]);
        seq = gpu_moments_merge(seq, p[k]);
    }
    struct gpu_moments tree = gpu_moments_merge(
        gpu_moments_merge(gpu_moments_merge(p[0], p[1]), gpu_moments_merge(p[2], p[3])),
        gpu_moments_merge(p[4], p[5]));
    assert_true(seq.n == N && tree.n == N);
    double gs[2] = {seq.mean, gpu_moments_var(seq)}, gt[2] = {tree.mean, gpu_moments_var(tree)};
    check_close("merged mean (sequence)", gs, want, 1, 0, 1e-6);
    check_close("merged variance (sequence)", gs + 1, want + 1, 1, 0, 1e-3);
    check_close("merged mean (tree)", gt, want, 1, 0, 1e-6);
    check_close("merged variance (tree)", gt + 1, want + 1, 1, 0, 1e-3);
    struct gpu_moments none = {0, 0, 0};
    assert_true(gpu_moments_var(gpu_moments_merge(none, none)) == 0);
}

#define BN 3
#define BC 2
#define BHW 5
#define BM (BN * BHW)
#define BT (BN * BC * BHW)

/* Forward and backward of one channel layout (N, C, HW) with gpu_math's elements, in float. */
static void bn_float(const double *x, const double *dy, const double *gamma, const double *beta,
                     double eps, double *y, double *dx, double *dgamma, double *dbeta,
                     float *mean, float *var)
{
    for (int c = 0; c < BC; c++) {
        float xs[BM], gs[BM];
        for (int n = 0; n < BN; n++)
            for (int i = 0; i < BHW; i++) {
                xs[n * BHW + i] = (float)x[(n * BC + c) * BHW + i];
                gs[n * BHW + i] = (float)dy[(n * BC + c) * BHW + i];
            }
        struct gpu_moments a = moments_of(xs, BM);
        mean[c] = a.mean;
        var[c] = gpu_moments_var(a);
        float is = gpu_bn_invstd(var[c], eps), sc = is * (float)gamma[c];
        float sg = 0, sgx = 0;
        for (int j = 0; j < BM; j++) {
            sg += gs[j];
            sgx += gs[j] * gpu_bn_xhat(xs[j], mean[c], is);
        }
        dbeta[c] = sg;
        dgamma[c] = sgx;
        for (int n = 0; n < BN; n++)
            for (int i = 0; i < BHW; i++) {
                int j = n * BHW + i, at = (n * BC + c) * BHW + i;
                y[at] = gpu_bn_y(xs[j], mean[c], sc, (float)beta[c]);
                dx[at] = gpu_bn_dx(gs[j], gpu_bn_xhat(xs[j], mean[c], is), sc, sg / BM, sgx / BM);
            }
    }
}

static void test_bn(void **state)
{
    (void)state;
    struct prng g = {11};
    double x[BT], dy[BT], gamma[BC] = {1.5, -0.7}, beta[BC] = {0.2, -0.4}, eps = 0.01;
    for (int i = 0; i < BT; i++) {
        x[i] = prng_range(&g, -2, 2) + 3;
        dy[i] = prng_range(&g, -1, 1);
    }
    for (int i = 0; i < BT; i++) {
        x[i] = (float)x[i];
        dy[i] = (float)dy[i];
    }
    double y[BT], dx[BT], dgamma[BC], dbeta[BC];
    float mean[BC], var[BC];
    bn_float(x, dy, gamma, beta, eps, y, dx, dgamma, dbeta, mean, var);

    double ry[BT], rmean[BC], rvar[BC], rrm[BC] = {0.5, -1}, rrv[BC] = {2, 0.25};
    double rdx[BT], rdgamma[BC], rdbeta[BC];
    ref_batchnorm_forward_train(BN, BC, BHW, eps, 0.1, x, gamma, beta, ry, rmean, rvar, rrm, rrv);
    ref_batchnorm_backward(BN, BC, BHW, eps, x, dy, gamma, rmean, rvar, rdx, rdgamma, rdbeta);
    double gm[BC], gv[BC], grm[BC], grv[BC];
    for (int c = 0; c < BC; c++) {
        float rm = c == 0 ? 0.5f : -1.0f, rv = c == 0 ? 2.0f : 0.25f;
        gpu_bn_running(&rm, &rv, mean[c], var[c], BM, 0.1);
        gm[c] = mean[c];
        gv[c] = var[c];
        grm[c] = rm;
        grv[c] = rv;
    }
    check_close("bn batch mean", gm, rmean, BC, 1e-6, 1e-5);
    check_close("bn batch variance", gv, rvar, BC, 1e-6, 1e-5);
    check_close("bn running mean", grm, rrm, BC, 1e-6, 1e-5);
    check_close("bn running variance (unbiased)", grv, rrv, BC, 1e-6, 1e-5);
    check_close("bn forward", y, ry, BT, 1e-5, 1e-5);
    check_close("bn dgamma", dgamma, rdgamma, BC, 1e-5, 1e-4);
    check_close("bn dbeta", dbeta, rdbeta, BC, 1e-5, 1e-4);
    check_close("bn dx", dx, rdx, BT, 1e-5, 1e-4);

    /* The one-value batch: the running variance takes the biased one (0). */
    float rm = 1, rv = 1;
    gpu_bn_running(&rm, &rv, 3, 0, 1, 0.5);
    assert_true(rm == 2 && rv == 0.5f);

    /* Central differences of L = sum dy * y(x) through the batch statistics, in double. */
    double worst = 0;
    for (int i = 0; i < BT; i++) {
        double l[2], h = 1e-4;
        for (int s = 0; s < 2; s++) {
            double xp[BT], yp[BT], m[BC], v[BC], a[BC] = {0}, b[BC] = {1, 1};
            memcpy(xp, x, sizeof xp);
            xp[i] += s ? -h : h;
            ref_batchnorm_forward_train(BN, BC, BHW, eps, 0.1, xp, gamma, beta, yp, m, v, a, b);
            l[s] = 0;
            for (int j = 0; j < BT; j++) l[s] += dy[j] * yp[j];
        }
        double fd = (l[0] - l[1]) / (2 * h), err = fabs(fd - dx[i]) / fmax(1, fabs(fd));
        if (err > worst) worst = err;
        if (!(err <= 1e-4))
            fail_msg("bn backward element %d: gpu_bn_dx %.9g, finite difference %.9g", i, dx[i],
                     fd);
    }
    assert_true(worst < 1e-4);

    assert_true(gpu_relu_element(2) == 2 && gpu_relu_element(-2) == 0);
    assert_true(gpu_relu_element(INFINITY) == INFINITY && gpu_relu_element(-INFINITY) == 0);
    assert_true(isnan(gpu_relu_element(NAN)) && !signbit(gpu_relu_element(-0.0f)));
}

/* ---------------------------------------------------------------------------------------- */
/* Layouts */

static void test_pack_maps(void **state)
{
    (void)state;
    const int shapes[][4] = {{2, 3, 5, 8}, {1, 4, 6, 4}, {3, 1, 7, 8}, {2, 16, 1, 16}};
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
        int n = shapes[k][0], c = shapes[k][1], cpad = shapes[k][3];
        int64_t hw = shapes[k][2], packed = n * hw * cpad, plain = n * c * hw;
        int *seen = calloc((size_t)plain, sizeof *seen);
        assert_non_null(seen);
        int64_t pads = 0;
        for (int64_t i = 0; i < packed; i++) {
            int64_t j = gpu_pack_src(i, c, hw, cpad);
            if (j < 0) {
                pads++;
                if (i % cpad < c) fail_msg("element %lld of a real channel read as padding",
                                           (long long)i);
                continue;
            }
            assert_true(j < plain);
            seen[j]++;
            if (gpu_unpack_src(j, c, hw, cpad) != i)
                fail_msg("pack/unpack (%d, %d, %lld, pad %d): %lld -> %lld -> %lld", n, c,
                         (long long)hw, cpad, (long long)i, (long long)j,
                         (long long)gpu_unpack_src(j, c, hw, cpad));
        }
        assert_int_equal(pads, n * hw * (cpad - c));
        for (int64_t j = 0; j < plain; j++)
            if (seen[j] != 1) fail_msg("NCHW element %lld packed %d times", (long long)j, seen[j]);
        free(seen);
    }
    /* (n 1, c 2, pixel 3) of (2, 3, 5) padded to 8: NHWC (1 * 5 + 3) * 8 + 2, NCHW
     * (1 * 3 + 2) * 5 + 3. */
    assert_int_equal(gpu_pack_src(66, 3, 5, 8), 28);
    assert_int_equal(gpu_unpack_src(28, 3, 5, 8), 66);
    assert_int_equal(gpu_pack_src(67, 3, 5, 8), -1);
    /* Unpadded channels-last to PyTorch's order (dropout's draw, a spatial output's gradient):
     * the packing's source, and (n 1, pixel 3, c 2) of (2, 5, 3) at (1 * 3 + 2) * 5 + 3. */
    for (int64_t i = 0; i < 2 * 5 * 3; i++)
        assert_int_equal(gpu_torch_index(i, 3, 5), gpu_pack_src(i, 3, 5, 3));
    assert_int_equal(gpu_torch_index((1 * 5 + 3) * 3 + 2, 3, 5), 28);
    assert_int_equal(gpu_torch_index(7, 7, 1), 7);
    /* Beyond 2^31 elements. */
    int64_t big = (int64_t)40000 * 224 * 224 * 8 + 5 * 8 + 1;
    assert_int_equal(gpu_unpack_src(gpu_pack_src(big, 3, 224 * 224, 8), 3, 224 * 224, 8), big);
}

/* ---------------------------------------------------------------------------------------- */
/* 16-bit conversions */

/* Decoded by the definition: (-1)^s 2^(e - bias) (1 + m / 2^mbits), subnormal, inf, nan. */
static double decode16(uint16_t h, int ebits)
{
    int mbits = 15 - ebits, emax = (1 << ebits) - 1, bias = emax >> 1;
    int s = h >> 15, e = (h >> mbits) & emax, m = h & ((1 << mbits) - 1);
    double v = e == 0       ? ldexp(m, 1 - bias - mbits)
               : e == emax ? (m ? NAN : INFINITY)
                           : ldexp((1 << mbits) + m, e - bias - mbits);
    return s ? -v : v;
}

/* The nearest of the finite non-negative codes 0 .. top to |f|, ties to the even code;
 * from the midpoint between the largest value and the next power of two up: inf. */
static uint16_t oracle16(float f, const double *table, uint16_t top, double overflow)
{
    double a = fabs((double)f);
    uint16_t sign = signbit(f) ? 0x8000 : 0;
    if (isnan(f)) return 0xffff;
    if (a >= overflow) return sign | (uint16_t)(top + 1);
    uint32_t lo = 0, hi = top;
    while (lo < hi) {
        uint32_t mid = (lo + hi + 1) / 2;
        if (table[mid] <= a) lo = mid; else hi = mid - 1;
    }
    if (lo < top) {
        double dl = a - table[lo], du = table[lo + 1] - a;
        if (du < dl || (du == dl && (lo & 1))) lo++;
    }
    return sign | (uint16_t)lo;
}

struct fmt16 {
    const char *name;
    int ebits;
    uint16_t (*enc)(float);
    float (*dec)(uint16_t);
};

static void check_format(const struct fmt16 *fm)
{
    static double table[65536];
    int top = ((((1 << fm->ebits) - 1) << (15 - fm->ebits)) - 1); /* the largest finite */
    for (uint32_t h = 0; h < 65536; h++) {
        double want = decode16((uint16_t)h, fm->ebits);
        float got = fm->dec((uint16_t)h);
        table[h] = want;
        if (isnan(want)) {
            if (!isnan(got)) fail_msg("%s 0x%04x: decoded %g, not nan", fm->name, h, (double)got);
            uint16_t back = fm->enc(got);
            if (!isnan(fm->dec(back)) || (back & 0x8000) != (h & 0x8000))
                fail_msg("%s nan 0x%04x came back as 0x%04x", fm->name, h, back);
            continue;
        }
        if ((double)got != want || (signbit(got) != 0) != (h >> 15 != 0))
            fail_msg("%s 0x%04x: decoded %.9g, by definition %.9g", fm->name, h, (double)got, want);
        if (fm->enc(got) != h)
            fail_msg("%s 0x%04x: round trip gives 0x%04x", fm->name, h, fm->enc(got));
    }
    double overflow = table[top] + (ldexp(1, (1 << (fm->ebits - 1))) - table[top]) / 2;
    /* Every midpoint between neighbours, and a float either side of it, both signs. */
    for (int h = 0; h < top; h++) {
        float mid = (float)((table[h] + table[h + 1]) / 2);
        assert_true((double)mid == (table[h] + table[h + 1]) / 2);
        float probes[3] = {mid, nextafterf(mid, 0), nextafterf(mid, INFINITY)};
        for (int p = 0; p < 6; p++) {
            float f = p < 3 ? probes[p] : -probes[p - 3];
            uint16_t want = oracle16(f, table, (uint16_t)top, overflow), got = fm->enc(f);
            if (got != want)
                fail_msg("%s of %.9g (0x%08x, near the midpoint of 0x%04x and 0x%04x): 0x%04x, "
                         "nearest even 0x%04x",
                         fm->name, (double)f, f32_bits(f), h, h + 1, got, want);
        }
    }
    /* A sweep of float bit patterns (every 4093rd), nan included. */
    for (uint64_t b = 0; b < 0x100000000ull; b += 4093) {
        float f = bits_f32((uint32_t)b);
        uint16_t got = fm->enc(f);
        if (isnan(f)) {
            if (!isnan(fm->dec(got)))
                fail_msg("%s of nan 0x%08x: 0x%04x", fm->name, (uint32_t)b, got);
            continue;
        }
        uint16_t want = oracle16(f, table, (uint16_t)top, overflow);
        if (got != want)
            fail_msg("%s of %.9g (0x%08x): 0x%04x, nearest even 0x%04x", fm->name, (double)f,
                     (uint32_t)b, got, want);
    }
    assert_int_equal(fm->enc(INFINITY), top + 1);
    assert_int_equal(fm->enc(-INFINITY), 0x8000 | (top + 1));
    assert_int_equal(fm->enc(FLT_MAX), top + 1);
    assert_int_equal(fm->enc(-0.0f), 0x8000);
}

static void test_bf16(void **state)
{
    (void)state;
    const struct fmt16 fm = {"bf16", 8, st_f32_to_bf16, st_bf16_to_f32};
    check_format(&fm);
    assert_int_equal(st_f32_to_bf16(1.0f), 0x3f80);
    assert_int_equal(st_f32_to_bf16(1.0f + 0x1.0p-8f), 0x3f80);       /* tie: even */
    assert_int_equal(st_f32_to_bf16(1.0f + 3 * 0x1.0p-8f), 0x3f82);   /* tie: even, up */
    assert_int_equal(st_f32_to_bf16(1.0f + 0x1.02p-8f), 0x3f81);      /* above the tie */
    assert_int_equal(st_f32_to_bf16(0x1.fep127f), 0x7f7f); /* the largest finite */
    assert_int_equal(st_f32_to_bf16(0x1.fefffep127f), 0x7f7f);
    assert_int_equal(st_f32_to_bf16(0x1.ffp127f), 0x7f80); /* the midpoint to 2^128: inf */
    assert_true(isnan(st_bf16_to_f32(st_f32_to_bf16(NAN))));
}

static void test_f16(void **state)
{
    (void)state;
    const struct fmt16 fm = {"fp16", 5, st_f32_to_f16, st_f16_to_f32};
    check_format(&fm);
    assert_int_equal(st_f32_to_f16(1.0f), 0x3c00);
    assert_int_equal(st_f32_to_f16(65504.0f), 0x7bff);
    assert_int_equal(st_f32_to_f16(65519.99f), 0x7bff);
    assert_int_equal(st_f32_to_f16(65520.0f), 0x7c00);
    assert_int_equal(st_f32_to_f16(1e10f), 0x7c00);
    assert_int_equal(st_f32_to_f16(0x1.0p-24f), 0x0001);
    assert_int_equal(st_f32_to_f16(0x1.0p-25f), 0x0000);             /* tie: even (0) */
    assert_int_equal(st_f32_to_f16(0x1.000002p-25f), 0x0001);
    assert_int_equal(st_f32_to_f16(3 * 0x1.0p-25f), 0x0002);         /* tie: even (2) */
    assert_int_equal(st_f32_to_f16(0x1.ffcp-15f), 0x0400); /* tie: even, the smallest normal */
    assert_int_equal(st_f32_to_f16(0x1.ff8p-15f), 0x03ff); /* the largest subnormal */
    assert_int_equal(st_f32_to_f16(1.0f + 0x1.0p-11f), 0x3c00);      /* tie: even */
    assert_int_equal(st_f32_to_f16(1.0f + 3 * 0x1.0p-11f), 0x3c02);
    assert_true(isnan(st_f16_to_f32(st_f32_to_f16(NAN))));
#ifdef __FLT16_MAX__
    /* The compiler's own conversion, where it has one. */
    for (uint64_t b = 0; b < 0x100000000ull; b += 65537) {
        float f = bits_f32((uint32_t)b);
        if (isnan(f)) continue;
        __extension__ _Float16 h = (__extension__(_Float16) f); /* ISO C has it from C23 */
        uint16_t u;
        memcpy(&u, &h, sizeof u);
        if (st_f32_to_f16(f) != u)
            fail_msg("fp16 of %.9g: 0x%04x, the compiler's 0x%04x", (double)f,
                     st_f32_to_f16(f), u);
    }
#endif
}

/* ---------------------------------------------------------------------------------------- */
/* Dropout */

static void test_dropout_threshold(void **state)
{
    (void)state;
    const uint64_t key = 0x1234567ull ^ (7 * 0x9E3779B97F4A7C15ull);
    /* Draws below 1/2 (a finer float grid than the draws') and above. */
    uint64_t lo = 0, hi = 0;
    while (rng_uniform(key, lo) >= 0.25) lo++;
    while (rng_uniform(key, hi) < 0.75) hi++;
    assert_true(gpu_dropout_threshold(0) == 0);
    assert_true(gpu_dropout_threshold(1) == (uint64_t)1 << 53);
    double ps[] = {0, 1e-17, 0.1, 1.0 / 3, 0.5, 0.9, 1 - 0x1.0p-53, 1,
                   rng_uniform(key, lo), nextafter(rng_uniform(key, lo), 1),
                   rng_uniform(key, hi), nextafter(rng_uniform(key, hi), 0)};
    for (size_t k = 0; k < sizeof ps / sizeof ps[0]; k++) {
        uint64_t thr = gpu_dropout_threshold(ps[k]);
        int64_t kept = 0;
        for (int64_t i = 0; i < 20000; i++) {
            bool want = rng_uniform(key, (uint64_t)i) >= ps[k], got = gpu_dropout_keep(key, i, thr);
            if (got != want)
                fail_msg("dropout p %.17g element %lld: kept %d, rng_uniform says %d", ps[k],
                         (long long)i, got, want);
            kept += got;
        }
        if (fabs((double)kept / 20000 - (1 - ps[k])) > 0.02)
            fail_msg("dropout p %g kept %lld of 20000", ps[k], (long long)kept);
    }
    /* At the boundaries: a draw equal to p is kept, one just below is not. */
    for (int k = 0; k < 2; k++) {
        uint64_t i = k ? hi : lo;
        double u = rng_uniform(key, i);
        assert_true(gpu_dropout_keep(key, (int64_t)i, gpu_dropout_threshold(u)));
        assert_false(gpu_dropout_keep(key, (int64_t)i, gpu_dropout_threshold(nextafter(u, 1))));
        assert_true(gpu_dropout_keep(key, (int64_t)i, gpu_dropout_threshold(nextafter(u, 0))));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgd),
        cmocka_unit_test(test_adam),
        cmocka_unit_test(test_ema),
        cmocka_unit_test(test_skipped_updates),
        cmocka_unit_test(test_clip_factor),
        cmocka_unit_test(test_scaler),
        cmocka_unit_test(test_xent_row),
        cmocka_unit_test(test_argmax_merge),
        cmocka_unit_test(test_moments),
        cmocka_unit_test(test_bn),
        cmocka_unit_test(test_pack_maps),
        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_f16),
        cmocka_unit_test(test_dropout_threshold),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
