/*
 * test_optim.c: the optimizer's features through step_update (the trainer's code) on a linear
 * layer 7 -> 5, against values computed here in double precision from torch.optim's formulas:
 * SGD with momentum, dampening and weight decay on every tensor or not on the bias
 * (decay_bn_bias), Adam with amsgrad and its max_exp_avg_sq, AdamW leaving the bias undecayed,
 * gradient clipping (the norm returned, the gradients scaled, the same bits on 1 and 2
 * threads) and the weights' EMA (a copy after the first update, then averaged; the slot it
 * lives in agrees with model_optimizer_slots). A second network (a biased convolution,
 * batchnorm, a convolution and a linear layer, in oneDNN's blocked layouts with padding)
 * checks the per-tensor weight decay where tensors of both kinds alternate in the arena.
 */
#include <math.h>
#include <omp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "checkpoint.h"
#include "graph.h"
#include "model.h"
#include "plan.h"
#include "test_util.h"
#include "fc_net.h"
#include "step.h"

#define STEPS 3
#define TOL 2e-6 /* |got - want| / max(1e-3, max |want|) over a tensor: float against double */

static const struct graph_tensor *tensor(const struct net *t, const char *name)
{
    const struct graph_tensor *x = graph_find_tensor(t->g, name);
    if (!x) fail_msg("no tensor %s", name);
    return x;
}

/* Sets fc's weights (w == NULL: weight0) from the vector of NP values. */
static void set_weights(struct net *t, const double *w)
{
    float f[NP];
    for (int i = 0; i < NP; i++) f[i] = (float)(w ? w[i] : weight0(i));
    net_set(t, f);
}

/* Sets fc's gradients to those of step s (1, 2, ...), g their values in double. */
static void set_grads(struct net *t, int s, double *g)
{
    float f[NP];
    for (int i = 0; i < NP; i++) {
        g[i] = grad_of(s, i);
        f[i] = (float)g[i];
    }
    net_set_grad(t, f);
}

/* Compares n values with want, relative to the largest of them. */
static void check(const char *what, const char *tensor_name, const float *got,
                  const double *want, int n)
{
    double scale = 1e-3, worst = 0;
    int at = 0;
    for (int i = 0; i < n; i++) scale = fmax(scale, fabs(want[i]));
    for (int i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]);
        if (!(e <= worst)) {
            worst = e;
            at = i;
        }
    }
    if (!(worst / scale <= TOL))
        fail_msg("%s: %s[%d] is %.9g, by hand %.9g (error %.2g of %.2g)", what, tensor_name, at,
                 (double)got[at], want[at], worst / scale, scale);
}

/* fc's weights (slot -1) or optimizer slot `slot` against the vector want. */
static void check_fc(struct net *t, const char *what, int slot, const double *want)
{
    float f[NP];
    net_get(t, slot, f);
    check(what, "fc.weight", f, want, NW);
    check(what, "fc.bias", f + NW, want + NW, OUT);
}

/* The weight decay of element i: the bias (rank 1) has none without decay_bn_bias. */
static double decay_of(const struct spec_optimizer *s, int i)
{
    return i >= NW && !s->decay_bn_bias ? 0 : s->weight_decay;
}

/* --------------------------------------------------------------------------------------- */
/* torch.optim's updates, element by element, in double */

static void hand_sgd(const struct spec_optimizer *s, double lr, int step, double *w,
                     const double *g, double *buf)
{
    for (int i = 0; i < NP; i++) {
        double d = g[i] + decay_of(s, i) * w[i];
        if (s->momentum != 0) {
            buf[i] = step == 1 ? d : s->momentum * buf[i] + (1 - s->dampening) * d;
            d = s->nesterov ? d + s->momentum * buf[i] : buf[i];
        }
        w[i] -= lr * d;
    }
}

/* m, v, vmax: exp_avg, exp_avg_sq, max_exp_avg_sq. */
static void hand_adam(const struct spec_optimizer *s, double lr, int step, double *w,
                      const double *g, double *m, double *v, double *vmax)
{
    double b1 = s->betas[0], b2 = s->betas[1];
    double c1 = 1 - pow(b1, step), c2 = 1 - pow(b2, step);
    for (int i = 0; i < NP; i++) {
        double d = g[i];
        if (s->type == SPEC_OPTIMIZER_ADAMW)
            w[i] *= 1 - lr * decay_of(s, i);
        else
            d += decay_of(s, i) * w[i];
        m[i] = b1 * m[i] + (1 - b1) * d;
        v[i] = b2 * v[i] + (1 - b2) * d * d;
        vmax[i] = fmax(vmax[i], v[i]);
        double second = s->amsgrad ? vmax[i] : v[i];
        w[i] -= lr / c1 * m[i] / (sqrt(second) / sqrt(c2) + s->eps);
    }
}

/* --------------------------------------------------------------------------------------- */
/* Tests */

/* SGD, momentum 0.9, dampening 0.1 (and Nesterov), weight decay 0.05 on all or on the weight
 * only: three updates at changing rates, weights and momentum buffers. */
static void test_sgd(void **state)
{
    (void)state;
    for (int c = 0; c < 3; c++) {
        struct spec_optimizer s = {.type = SPEC_OPTIMIZER_SGD, .lr = 0.1, .momentum = 0.9,
                                   .dampening = c == 2 ? 0 : 0.1, .nesterov = c == 2,
                                   .weight_decay = 0.05, .decay_bn_bias = c == 0};
        const char *what[] = {"sgd decay on all", "sgd decay_bn_bias false",
                              "sgd nesterov decay_bn_bias false"};
        struct net t;
        net_open(&t, fc_yaml, 1);
        struct step_optimizer o;
        step_optimizer_init(&o, &s);
        assert_int_equal(o.ema_slot, -1);
        set_weights(&t, NULL);
        double w[NP], g[NP], buf[NP] = {0};
        for (int i = 0; i < NP; i++) w[i] = weight0(i);
        for (int step = 1; step <= STEPS; step++) {
            double lr = 0.1 / step;
            set_grads(&t, step, g);
            step_update(t.p, &o, lr);
            hand_sgd(&s, lr, step, w, g, buf);
            check_fc(&t, what[c], -1, w);
            check_fc(&t, what[c], 0, buf);
        }
        net_close(&t);
    }
}

/* Without decay_bn_bias the bias moves exactly as with no weight decay at all. */
static void test_bias_undecayed(void **state)
{
    (void)state;
    for (int type = 0; type < 3; type++) {
        float bias[2][OUT];
        for (int run = 0; run < 2; run++) {
            struct spec_optimizer s = {.type = (enum spec_optimizer_type)type, .lr = 0.01,
                                       .momentum = 0.9, .betas = {0.9, 0.999}, .eps = 1e-8,
                                       .weight_decay = run ? 0.3 : 0, .decay_bn_bias = false};
            struct net t;
            net_open(&t, fc_yaml, 2);
            struct step_optimizer o;
            step_optimizer_init(&o, &s);
            set_weights(&t, NULL);
            double g[NP];
            for (int step = 1; step <= STEPS; step++) {
                set_grads(&t, step, g);
                step_update(t.p, &o, 0.01);
            }
            plan_get_tensor(t.p, tensor(&t, "fc.bias"), bias[run]);
            net_close(&t);
        }
        if (memcmp(bias[0], bias[1], sizeof bias[0]))
            fail_msg("optimizer %d: weight decay changed the bias with decay_bn_bias false",
                     type);
    }
}

/* Adam (L2 weight decay, not on the bias) with amsgrad; AdamW (decoupled, not on the bias) with
 * and without amsgrad: weights and every slot after each of three updates. */
static void test_adam(void **state)
{
    (void)state;
    for (int c = 0; c < 3; c++) {
        struct spec_optimizer s = {.type = c ? SPEC_OPTIMIZER_ADAMW : SPEC_OPTIMIZER_ADAM,
                                   .lr = 0.01, .betas = {0.8, 0.5}, .eps = 1e-8,
                                   .weight_decay = c ? 0.5 : 0.02, .decay_bn_bias = false,
                                   .amsgrad = c != 2};
        const char *what[] = {"adam amsgrad decay_bn_bias false",
                              "adamw amsgrad decay_bn_bias false", "adamw decay_bn_bias false"};
        struct net t;
        net_open(&t, fc_yaml, 2 + s.amsgrad);
        struct step_optimizer o;
        step_optimizer_init(&o, &s);
        set_weights(&t, NULL);
        double w[NP], g[NP], m[NP] = {0}, v[NP] = {0}, vmax[NP] = {0};
        for (int i = 0; i < NP; i++) w[i] = weight0(i);
        bool shrank = false; /* the second moment fell below its maximum somewhere */
        for (int step = 1; step <= STEPS; step++) {
            double lr = 0.01 * (1 + step);
            set_grads(&t, step, g);
            step_update(t.p, &o, lr);
            hand_adam(&s, lr, step, w, g, m, v, vmax);
            check_fc(&t, what[c], -1, w);
            check_fc(&t, what[c], 0, m);
            check_fc(&t, what[c], 1, v);
            if (s.amsgrad) check_fc(&t, what[c], 2, vmax);
            for (int i = 0; i < NP; i++) shrank |= v[i] < 0.75 * vmax[i];
        }
        assert_true(shrank);
        net_close(&t);
    }
}

/* clip_grad_norm: the norm over both tensors; gradients scaled when above the limit, left
 * alone below it; the update uses the clipped gradients. */
static void test_clip(void **state)
{
    (void)state;
    for (int c = 0; c < 2; c++) {
        double g[NP], sum = 0;
        for (int i = 0; i < NP; i++) sum += (double)grad_of(1, i) * grad_of(1, i);
        double norm = sqrt(sum), max_norm = c ? 10 * norm : 0.25 * norm;
        struct spec_optimizer s = {.type = SPEC_OPTIMIZER_SGD, .lr = 0.5,
                                   .clip_grad_norm = max_norm, .decay_bn_bias = true};
        struct net t;
        net_open(&t, fc_yaml, 0);
        struct step_optimizer o;
        step_optimizer_init(&o, &s);
        set_weights(&t, NULL);
        set_grads(&t, 1, g);
        step_update(t.p, &o, 0.5);
        if (fabs(o.grad_norm - norm) > 1e-12 * norm)
            fail_msg("clip_grad_norm: norm %.17g, by hand %.17g", o.grad_norm, norm);
        double coef = max_norm / (norm + 1e-6), w[NP], gs[NP];
        if (coef > 1) coef = 1;
        for (int i = 0; i < NP; i++) {
            gs[i] = g[i] * coef;
            w[i] = weight0(i) - 0.5 * gs[i];
        }
        float f[NP];
        plan_get_grad(t.p, tensor(&t, "fc.weight"), f);
        plan_get_grad(t.p, tensor(&t, "fc.bias"), f + NW);
        check("clip_grad_norm", "gradient", f, gs, NP);
        check_fc(&t, "clip_grad_norm", -1, w);
        net_close(&t);
    }
}

/* The norm's sum has a fixed order: the same bits on one thread and two. */
static void test_clip_deterministic(void **state)
{
    (void)state;
    const char *yaml = "input: [3, 16, 16]\n"
                       "graph:\n"
                       "  - {name: c1, op: conv, out: 40, kernel: 3, pad: 1}\n"
                       "  - global_avg_pool\n"
                       "  - {name: fc, op: linear, out: 300}\n";
    struct net t;
    net_open(&t, yaml, 0);
    const char *names[] = {"c1.weight", "fc.weight", "fc.bias"};
    for (int k = 0; k < 3; k++) {
        const struct graph_tensor *x = tensor(&t, names[k]);
        int64_t n = op_tensor_numel(&x->t);
        float *f = malloc((size_t)n * sizeof *f);
        for (int64_t i = 0; i < n; i++) f[i] = (float)sin(0.37 * (double)i + k);
        plan_set_grad(t.p, x, f);
        free(f);
    }
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    double one = plan_clip_grad_norm(t.p, 1e30);
    omp_set_num_threads(2);
    double two = plan_clip_grad_norm(t.p, 1e30);
    omp_set_num_threads(threads);
    if (memcmp(&one, &two, sizeof one))
        fail_msg("the gradients' norm is %.17g on one thread, %.17g on two", one, two);
    net_close(&t);
}

/* The EMA: a copy of the weights after the first update, then decay * ema + (1 - decay) * w;
 * in the slot after the optimizer's, as model_optimizer_slots counts them. */
static void test_ema(void **state)
{
    (void)state;
    struct {
        enum spec_optimizer_type type;
        double momentum;
        bool amsgrad;
        int slot;
    } cases[] = {{SPEC_OPTIMIZER_SGD, 0, false, 0}, {SPEC_OPTIMIZER_SGD, 0.9, false, 1},
                 {SPEC_OPTIMIZER_ADAM, 0, false, 2}, {SPEC_OPTIMIZER_ADAMW, 0, true, 3}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct spec spec = {0};
        spec.optimizer = (struct spec_optimizer){
            .type = cases[c].type, .lr = 0.1, .momentum = cases[c].momentum,
            .betas = {0.9, 0.99}, .eps = 1e-8, .amsgrad = cases[c].amsgrad,
            .ema_decay = 0.75, .decay_bn_bias = true};
        const struct spec_optimizer *s = &spec.optimizer;
        struct step_optimizer o;
        step_optimizer_init(&o, s);
        assert_int_equal(o.ema_slot, cases[c].slot);
        assert_int_equal(model_optimizer_slots(&spec), o.ema_slot + 1);
        if (c > 0) continue; /* the values: plain SGD is enough */

        struct net t;
        net_open(&t, fc_yaml, model_optimizer_slots(&spec));
        set_weights(&t, NULL);
        double w[NP], g[NP], ema[NP];
        for (int i = 0; i < NP; i++) w[i] = weight0(i);
        for (int step = 1; step <= STEPS; step++) {
            set_grads(&t, step, g);
            step_update(t.p, &o, 0.1);
            hand_sgd(s, 0.1, step, w, g, NULL);
            for (int i = 0; i < NP; i++)
                ema[i] = step == 1 ? w[i] : 0.75 * ema[i] + 0.25 * w[i];
            if (step == 1 || step == STEPS) {
                check_fc(&t, "ema", -1, w); /* the trained weights stay the raw ones */
                check_fc(&t, "ema", o.ema_slot, ema);
            }
        }
        net_close(&t);
    }
}

/* A network whose trained tensors alternate between rank >= 2 and rank <= 1 in the arena, in
 * oneDNN's blocked layouts (channel counts padded): SGD with weight decay on the weights
 * only, every gradient 1, one update; then the gradients' norm counts no padding. */
static void test_ranges(void **state)
{
    (void)state;
    const char *yaml = "input: [3, 6, 6]\n"
                       "graph:\n"
                       "  - {name: c1, op: conv, out: 6, kernel: 3, pad: 1, bias: true}\n"
                       "  - {name: bn, op: batchnorm}\n"
                       "  - relu\n"
                       "  - {name: c2, op: conv, out: 5, kernel: 3, stride: 2, pad: 1}\n"
                       "  - global_avg_pool\n"
                       "  - {name: fc, op: linear, out: 3}\n";
    struct spec_optimizer s = {.type = SPEC_OPTIMIZER_SGD, .lr = 0.5, .weight_decay = 0.1,
                               .decay_bn_bias = false};
    struct net t;
    net_open(&t, yaml, 0);
    struct step_optimizer o;
    step_optimizer_init(&o, &s);
    int64_t count = 0;
    for (size_t k = 0; k < t.g->ntensors; k++) {
        const struct graph_tensor *x = &t.g->tensors[k];
        if (x->t.role != TENSOR_PARAM) continue;
        int64_t n = op_tensor_numel(&x->t);
        float *f = malloc((size_t)n * sizeof *f);
        for (int64_t i = 0; i < n; i++) f[i] = (float)(0.25 + 0.5 * sin((double)(i + 3 * k)));
        plan_set_tensor(t.p, x, f);
        for (int64_t i = 0; i < n; i++) f[i] = 1;
        plan_set_grad(t.p, x, f);
        free(f);
        count += n;
    }
    step_update(t.p, &o, 0.5);
    for (size_t k = 0; k < t.g->ntensors; k++) {
        const struct graph_tensor *x = &t.g->tensors[k];
        if (x->t.role != TENSOR_PARAM) continue;
        int n = (int)op_tensor_numel(&x->t);
        float *f = malloc((size_t)n * sizeof *f);
        double *want = malloc((size_t)n * sizeof *want);
        double wd = x->t.rank <= 1 ? 0 : 0.1;
        for (int i = 0; i < n; i++) {
            double w0 = (double)(float)(0.25 + 0.5 * sin((double)(i + 3 * (int)k)));
            want[i] = w0 - 0.5 * (1 + wd * w0);
        }
        plan_get_tensor(t.p, x, f);
        check("per-tensor weight decay", x->name, f, want, n);
        free(f);
        free(want);
    }
    double norm = plan_clip_grad_norm(t.p, 1e30);
    if (norm != sqrt((double)count))
        fail_msg("the norm of %lld gradients of 1 is %.17g", (long long)count, norm);
    net_close(&t);
}

/* A checkpoint whose weights do not fit the network (a layer more) sets nothing, not even the
 * optimizer's values that would fit. */
static void test_checkpoint_unfit(void **state)
{
    (void)state;
    char dir[256], path[4200];
    assert_int_equal(tmpdir_make(dir, sizeof dir, "optim_checkpoint"), 0);
    struct spec_optimizer s = {.type = SPEC_OPTIMIZER_ADAM, .lr = 0.01, .betas = {0.9, 0.999},
                               .eps = 1e-8};
    struct step_optimizer o;
    step_optimizer_init(&o, &s);
    struct net a, b;
    net_open(&a, "input: [7, 1, 1]\n"
                 "graph: [flatten, {name: fc, op: linear, out: 5}, "
                 "{name: fc2, op: linear, out: 3}]\n", 2);
    set_weights(&a, NULL);
    double g[NP];
    set_grads(&a, 1, g);
    step_update(a.p, &o, 0.01);
    struct diag d = {.out = stderr};
    const struct checkpoint_state cs = {.step = 1};
    assert_int_equal(checkpoint_save(a.p, &o, &cs, dir, 0, path, sizeof path, &d), STATUS_OK);
    net_close(&a);

    net_open(&b, fc_yaml, 2);
    set_weights(&b, NULL);
    float before[NP], got[NP], zero[NP] = {0};
    net_get(&b, -1, before);
    struct checkpoint_state back;
    d = (struct diag){.out = stderr};
    assert_int_not_equal(checkpoint_resume(b.p, &o, dir, &back, path, sizeof path, &d),
                         STATUS_OK);
    assert_true(d.errors > 0);
    net_get(&b, -1, got);
    assert_memory_equal(got, before, sizeof got);
    for (int slot = 0; slot < 2; slot++) {
        net_get(&b, slot, got);
        assert_memory_equal(got, zero, sizeof got);
    }
    net_close(&b);
    assert_int_equal(tmpdir_remove(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgd),
        cmocka_unit_test(test_bias_undecayed),
        cmocka_unit_test(test_adam),
        cmocka_unit_test(test_clip),
        cmocka_unit_test(test_clip_deterministic),
        cmocka_unit_test(test_ema),
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_checkpoint_unfit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
