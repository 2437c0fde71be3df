/*
 * test_optim_parity.c DIR: twelve optimizer steps of a linear layer 7 -> 5 against
 * torch.optim under torch's schedulers. tests/parity/optim_steps.py wrote one file per case
 * (DIR/index.txt names them): the initial weights, each step's gradients, torch's weights (and
 * EMA) after each step and each step's learning rate, with the case's optimizer and schedule
 * sections as metadata. For each case this loads an experiment made of those sections
 * (spec_load_text), then per step: the gradients set, lr = schedule_lr, step_update (the
 * trainer's optimizer code), and compares the learning rate (relative error <= 1e-12), the
 * clipped norm where torch reported one (<= 1e-6) and every tensor (relative error in the
 * 2-norm <= 1e-6), the EMA too. Prints each case's worst errors. Run by
 * tests/parity/optim_run.sh.
 */
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
#include "model.h"
#include "plan.h"
#include "safetensors.h"
#include "schedule.h"
#include "spec.h"
#include "step.h"

#define WEIGHT_TOL 1e-6 /* float32 against float32: rounding differences only */
#define LR_TOL 1e-12    /* double against double */
#define NORM_TOL 1e-6   /* torch's float32 norm against ours in double */

static const char *dir;

static const char *const names[] = {"fc.weight", "fc.bias"};

struct result {
    double weights, ema, lr, norm; /* the worst relative errors */
};

static double rel_error(const float *got, const float *want, int64_t n)
{
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)got[i] - (double)want[i];
        num += d * d;
        den += (double)want[i] * (double)want[i];
    }
    if (num == 0) return 0;
    return den > 0 ? sqrt(num / den) : INFINITY;
}

/* Tensor `prefix`.NAME of file f for graph tensor t into v. */
static void read_tensor(struct st_file *f, const char *prefix, const struct graph_tensor *t,
                        float *v)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", prefix, t->name);
    struct diag d = {.out = stderr};
    if (st_read_f32(f, key, t->t.rank, t->t.dim, v, &d)) fail_msg("no tensor %s", key);
}

/* The k-th number of a space-separated metadata list. */
static double meta_number(struct st_file *f, const char *key, int k)
{
    const char *s = st_metadata(f, key);
    if (!s) fail_msg("no metadata %s", key);
    char *end;
    double x = 0;
    for (int i = 0; i <= k; i++, s = end) {
        x = strtod(s, &end);
        if (end == s) fail_msg("metadata %s has fewer than %d numbers", key, k + 1);
    }
    return x;
}

/* The experiment of the file's sections, its graph and a plan for it. */
static struct spec *load_case(struct st_file *f, const char *file, struct graph **g,
                              struct plan **p)
{
    const char *opt = st_metadata(f, "optimizer"), *sch = st_metadata(f, "schedule"),
               *epochs = st_metadata(f, "epochs");
    if (!opt || !sch || !epochs) fail_msg("%s: the optimizer, schedule or epochs are missing", file);
    char text[2048];
    snprintf(text, sizeof text,
             "model: {graph: {input: [7, 1, 1], graph: [flatten, {name: fc, op: linear, out: 5}]}}\n"
             "train: {epochs: %s}\noptimizer: %s\nschedule: %s\n", epochs, opt, sch);
    struct diag d = {.out = stderr};
    struct spec *s;
    if (spec_load_text("optim_parity.yaml", text, strlen(text), NULL, 0, &d, &s))
        fail_msg("%s: the experiment does not load:\n%s", file, text);
    assert_int_equal(graph_build(s->model.graph.tree, NULL, &d, g), STATUS_OK);
    struct plan_options o = {.batch = 1, .optimizer_slots = model_optimizer_slots(s), .seed = 1};
    assert_int_equal(plan_create(*g, &backend_cpu, &o, &d, p), STATUS_OK);
    return s;
}

/* One case: every step compared; returns its worst errors. */
static struct result run_case(const char *file)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    struct diag d = {.out = stderr};
    struct st_file *f;
    assert_int_equal(st_open(path, &d, &f), STATUS_OK);
    struct graph *g;
    struct plan *p;
    struct spec *s = load_case(f, file, &g, &p);
    const struct graph_tensor *t[2] = {graph_find_tensor(g, names[0]),
                                       graph_find_tensor(g, names[1])};
    assert_non_null(t[0]);
    assert_non_null(t[1]);
    struct step_optimizer o;
    step_optimizer_init(&o, &s->optimizer);
    struct schedule sc;
    schedule_init(&sc, &s->schedule, s->optimizer.lr, s->train.epochs,
                  (int64_t)meta_number(f, "steps_per_epoch", 0));
    float v[64], want[64];
    for (int k = 0; k < 2; k++) {
        read_tensor(f, "init", t[k], v);
        plan_set_tensor(p, t[k], v);
    }
    struct result r = {0};
    bool clipped = st_metadata(f, "grad_norm") != NULL;
    for (int64_t step = 0; step < sc.total; step++) {
        char prefix[32];
        snprintf(prefix, sizeof prefix, "grad.%lld", (long long)step);
        for (int k = 0; k < 2; k++) {
            read_tensor(f, prefix, t[k], v);
            plan_set_grad(p, t[k], v);
        }
        double lr = schedule_lr(&sc, step), torch_lr = meta_number(f, "lr", (int)step);
        r.lr = fmax(r.lr, fabs(lr - torch_lr) / torch_lr);
        step_update(p, &o, lr);
        if (clipped) {
            double n = meta_number(f, "grad_norm", (int)step);
            r.norm = fmax(r.norm, fabs(o.grad_norm - n) / n);
        }
        for (int k = 0; k < 2; k++) {
            int64_t n = op_tensor_numel(&t[k]->t);
            snprintf(prefix, sizeof prefix, "step.%lld", (long long)step);
            read_tensor(f, prefix, t[k], want);
            plan_get_tensor(p, t[k], v);
            r.weights = fmax(r.weights, rel_error(v, want, n));
            if (o.ema_slot < 0) continue;
            snprintf(prefix, sizeof prefix, "ema.%lld", (long long)step);
            read_tensor(f, prefix, t[k], want);
            plan_get_state(p, t[k], o.ema_slot, v);
            r.ema = fmax(r.ema, rel_error(v, want, n));
        }
    }
    plan_free(p);
    graph_free(g);
    spec_free(s);
    st_close(f);
    return r;
}

static void test_cases(void **state)
{
    (void)state;
    char path[4200];
    snprintf(path, sizeof path, "%s/index.txt", dir);
    FILE *index = fopen(path, "r");
    if (!index) fail_msg("%s: cannot open (run optim_steps.py first)", path);
    char file[256];
    int cases = 0, failed = 0;
    struct result worst = {0};
    printf("%-4s %-42s %9s %9s %9s %9s\n", "", "case", "weights", "ema", "lr", "norm");
    while (fscanf(index, "%255s", file) == 1) {
        struct result r = run_case(file);
        bool ok = r.weights <= WEIGHT_TOL && r.ema <= WEIGHT_TOL && r.lr <= LR_TOL &&
                  r.norm <= NORM_TOL; /* false for NaN */
        printf("%-4s %-42.*s %9.2e %9.2e %9.2e %9.2e\n", ok ? "ok" : "FAIL",
               (int)(strlen(file) - strlen(".safetensors")), file, r.weights, r.ema, r.lr,
               r.norm);
        cases++;
        failed += !ok;
        worst.weights = fmax(worst.weights, r.weights);
        worst.ema = fmax(worst.ema, r.ema);
        worst.lr = fmax(worst.lr, r.lr);
        worst.norm = fmax(worst.norm, r.norm);
    }
    fclose(index);
    printf("%d cases of 12 steps, %d failed; worst relative errors: weights %.2e, EMA %.2e "
           "(limit %.0e), learning rate %.2e (limit %.0e), clipped norm %.2e (limit %.0e)\n",
           cases, failed, worst.weights, worst.ema, WEIGHT_TOL, worst.lr, LR_TOL, worst.norm,
           NORM_TOL);
    assert_true(cases > 0);
    assert_int_equal(failed, 0);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_optim_parity DIR\n");
        return 2;
    }
    dir = argv[1];
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_cases)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
