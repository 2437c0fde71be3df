/*
 * test_parity.c DIR SOURCE_DIR: one training step of ResNet-50 (CIFAR stem) against PyTorch.
 * tests/parity/resnet50_step.py wrote DIR/init.safetensors (random weights and batchnorm
 * statistics), DIR/batch.safetensors and PyTorch's results in DIR/expect.safetensors; this
 * runs the same step through the runner's plan (loaded with weights_load) and compares every
 * tensor: evaluation-mode logits, training logits and loss, every parameter's gradient, the
 * batchnorm buffers after the step; then every parameter after one SGD step and after one
 * Adam step (step_update, the trainer's optimizer code) from PyTorch's gradients, so the
 * optimizers are checked apart from the gradients' rounding. It writes
 * DIR/runner_sgd.safetensors for the script's strict-load check. Run by tests/parity/run.sh.
 *
 * Error measure: relative in the 2-norm, |a - b| / |b| over the whole tensor, printed for
 * each tensor with its largest elementwise difference. A tensor passes at 1e-4, or within
 * a few times PyTorch's own float32 error where that is larger (floor.NAME, measured
 * against float64 by the script): gradients below the top layers, whose ReLUs flip on
 * rounding-sized differences, differ that much between any two correct float32 steps
 * (PyTorch's own: up to about 1e-2 here). 4x for direct convolutions; 10x with Winograd,
 * whose forward rounding error is a few times larger.
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
#include "onednn.h"
#include "plan.h"
#include "safetensors.h"
#include "step.h"
#include "test_util.h"
#include "weights.h"
#include "yaml_load.h"

#define TOLERANCE 1e-4

static const char *dir, *source_dir;
static bool direct;        /* conv_algorithm direct, else auto (Winograd where it applies) */
static double floor_factor; /* of PyTorch's own float32 error that a tensor may have */

struct fixture {
    struct arena a;
    struct graph *g;
    struct st_file *init, *batch, *expect;
    char path[3][4096];
    float *x;
    int32_t *y;
    int64_t n;
    double worst;
    int compared, failed, conditioned;
};

static struct st_file *open_in_dir(struct fixture *t, int k, const char *name)
{
    snprintf(t->path[k], sizeof t->path[k], "%s/%s", dir, name);
    struct diag d = {.out = stderr};
    struct st_file *f;
    assert_int_equal(st_open(t->path[k], &d, &f), STATUS_OK);
    return f;
}

static double setting(struct fixture *t, const char *key)
{
    const char *v = st_metadata(t->batch, key);
    if (!v) fail_msg("batch.safetensors has no setting '%s'", key);
    return strtod(v, NULL);
}

/* Compares got with the expected tensor called name (its shape checked by the reader). */
static void compare(struct fixture *t, const char *name, const float *got, int64_t n)
{
    const struct st_tensor *e = st_find(t->expect, name);
    if (!e) fail_msg("expect.safetensors has no tensor '%s'", name);
    assert_int_equal(e->numel, n);
    float *want = malloc((size_t)n * sizeof *want + 1);
    struct diag d = {.out = stderr};
    assert_int_equal(st_read_f32(t->expect, name, e->rank, e->shape, want, &d), STATUS_OK);
    double num = 0, den = 0, maxdiff = 0;
    for (int64_t i = 0; i < n; i++) {
        double diff = (double)got[i] - (double)want[i];
        num += diff * diff;
        den += (double)want[i] * (double)want[i];
        if (fabs(diff) > maxdiff || isnan(diff)) maxdiff = fabs(diff);
    }
    double rel = sqrt(num) / (den > 0 ? sqrt(den) : 1e-30);
    if (den == 0 && num == 0) rel = 0;
    /* PyTorch's own float32 error against float64 for this tensor */
    char fname[600];
    snprintf(fname, sizeof fname, "floor.%s", name);
    float floor = 0;
    assert_int_equal(st_read_f32(t->expect, fname, 0, NULL, &floor, &d), STATUS_OK);
    double limit = fmax(TOLERANCE, floor_factor * floor);
    bool ok = rel <= limit; /* false for NaN */
    printf("%-4s %-46s %.2e (PyTorch's own %.2e; limit %.1e), largest difference %.2e\n",
           ok ? "ok" : "FAIL", name, rel, floor, limit, maxdiff);
    if (floor > TOLERANCE / floor_factor) t->conditioned++;
    t->compared++;
    t->failed += !ok;
    if (rel > t->worst || isnan(rel)) t->worst = rel;
    free(want);
}

static int setup(void **state)
{
    struct fixture *t = calloc(1, sizeof *t);
    *state = t;
    t->init = open_in_dir(t, 0, "init.safetensors");
    t->batch = open_in_dir(t, 1, "batch.safetensors");
    t->expect = open_in_dir(t, 2, "expect.safetensors");

    char path[4096];
    snprintf(path, sizeof path, "%s/experiments/models/resnet50.yaml", source_dir);
    char *yaml = slurp(path);
    assert_non_null(yaml);
    struct source *src = arena_alloc(&t->a, sizeof *src);
    *src = (struct source){"resnet50.yaml", ".", yaml, strlen(yaml)};
    struct diag d = {.out = stderr};
    struct node *root;
    assert_int_equal(yaml_load_text(&t->a, &d, src, yaml, strlen(yaml), 1, 1, &root), STATUS_OK);
    assert_int_equal(graph_build_for(root, NULL, TEST_CLASSES, &d, &t->g), STATUS_OK);
    free(yaml);

    const struct st_tensor *x = st_find(t->batch, "x"), *y = st_find(t->batch, "y");
    assert_non_null(x);
    assert_non_null(y);
    t->n = y->shape[0];
    t->x = malloc((size_t)x->numel * sizeof *t->x);
    int64_t *y64 = malloc((size_t)t->n * sizeof *y64);
    t->y = malloc((size_t)t->n * sizeof *t->y);
    assert_int_equal(st_read_f32(t->batch, "x", x->rank, x->shape, t->x, &d), STATUS_OK);
    assert_int_equal(st_read_i64(t->batch, "y", 1, &t->n, y64, &d), STATUS_OK);
    for (int64_t i = 0; i < t->n; i++) t->y[i] = (int32_t)y64[i];
    free(y64);
    return 0;
}

static int teardown(void **state)
{
    struct fixture *t = *state;
    printf("%d tensors compared, %d failed; worst relative error %.2e; %d tensors limited by "
           "%g x PyTorch's own float32 error, not %.0e\n", t->compared, t->failed, t->worst,
           t->conditioned, floor_factor, TOLERANCE);
    st_close(t->init);
    st_close(t->batch);
    st_close(t->expect);
    graph_free(t->g);
    arena_free(&t->a);
    free(t->x);
    free(t->y);
    free(t);
    return 0;
}

/* A plan of the network at the batch's size, loaded with the initial weights. */
static struct plan *loaded_plan(struct fixture *t, int slots)
{
    struct plan_options o = {.batch = t->n, .optimizer_slots = slots, .seed = 1,
                             .conv_direct = direct};
    struct diag d = {.out = stderr};
    struct plan *p;
    assert_int_equal(plan_create(t->g, &backend_cpu, &o, &d, &p), STATUS_OK);
    assert_int_equal(weights_load(p, t->init, t->path[0], &d), STATUS_OK);
    plan_set_input(p, t->x, t->y);
    return p;
}

/* Compares every parameter (prefix "sgd.", "adam.", or "grad." for the gradients). */
static void compare_params(struct fixture *t, struct plan *p, const char *prefix, bool grads)
{
    const struct graph *g = t->g;
    for (size_t i = 0; i < g->ntensors; i++) {
        const struct graph_tensor *gt = &g->tensors[i];
        if (gt->t.role != TENSOR_PARAM) continue;
        int64_t n = op_tensor_numel(&gt->t);
        float *v = malloc((size_t)n * sizeof *v);
        if (grads)
            plan_get_grad(p, gt, v);
        else
            plan_get_tensor(p, gt, v);
        char name[512];
        snprintf(name, sizeof name, "%s%s", prefix, gt->name);
        compare(t, name, v, n);
        free(v);
    }
}

/* Sets every parameter's gradient to PyTorch's. */
static void set_torch_grads(struct fixture *t, struct plan *p)
{
    const struct graph *g = t->g;
    struct diag d = {.out = stderr};
    for (size_t i = 0; i < g->ntensors; i++) {
        const struct graph_tensor *gt = &g->tensors[i];
        if (gt->t.role != TENSOR_PARAM) continue;
        float *v = malloc((size_t)op_tensor_numel(&gt->t) * sizeof *v);
        char name[512];
        snprintf(name, sizeof name, "grad.%s", gt->name);
        assert_int_equal(st_read_f32(t->expect, name, gt->t.rank, gt->t.dim, v, &d), STATUS_OK);
        plan_set_grad(p, gt, v);
        free(v);
    }
}

/* Evaluation logits, then a training step's logits, loss, gradients and buffers. */
static void test_step(void **state)
{
    struct fixture *t = *state;
    struct plan *p = loaded_plan(t, 0);
    int64_t k = shape_numel(&t->g->layers[t->g->output].out);
    float *logits = malloc((size_t)(t->n * k) * sizeof *logits);
    plan_forward(p, false);
    plan_get_output(p, logits);
    compare(t, "eval_logits", logits, t->n * k);

    plan_forward(p, true);
    float loss = (float)plan_loss(p, setting(t, "label_smoothing"));
    plan_backward(p, NULL);
    plan_get_output(p, logits);
    compare(t, "logits", logits, t->n * k);
    compare(t, "loss", &loss, 1);
    free(logits);
    compare_params(t, p, "grad.", true);
    const struct graph *g = t->g;
    for (size_t i = 0; i < g->ntensors; i++) { /* running statistics, counters */
        const struct graph_tensor *gt = &g->tensors[i];
        if (gt->t.role != TENSOR_BUFFER) continue;
        if (gt->t.dtype == TENSOR_I64) {
            int64_t got, want;
            struct diag d = {.out = stderr};
            plan_get_tensor(p, gt, &got);
            assert_int_equal(st_read_i64(t->expect, gt->name, 0, NULL, &want, &d), STATUS_OK);
            if (got != want)
                fail_msg("%s: %lld, PyTorch has %lld", gt->name, (long long)got, (long long)want);
            continue;
        }
        int64_t n = op_tensor_numel(&gt->t);
        float *v = malloc((size_t)n * sizeof *v);
        plan_get_tensor(p, gt, v);
        compare(t, gt->name, v, n);
        free(v);
    }
    plan_free(p);
    assert_int_equal(t->failed, 0);
}

/* One SGD step (momentum, Nesterov, weight decay) from PyTorch's gradients, through the
 * trainer's optimizer code; the weights saved for the strict-load check. */
static void test_sgd_update(void **state)
{
    struct fixture *t = *state;
    struct plan *p = loaded_plan(t, 1);
    set_torch_grads(t, p);
    struct spec_optimizer so = {.type = SPEC_OPTIMIZER_SGD, .decay_bn_bias = true,
                                .lr = setting(t, "sgd_lr"),
                                .momentum = setting(t, "sgd_momentum"),
                                .weight_decay = setting(t, "sgd_weight_decay"),
                                .nesterov = setting(t, "sgd_nesterov") != 0};
    struct step_optimizer o;
    step_optimizer_init(&o, &so);
    step_update(p, &o, so.lr);
    compare_params(t, p, "sgd.", false);

    char out[4200];
    snprintf(out, sizeof out, "%s/runner_sgd.safetensors", dir);
    struct diag d = {.out = stderr};
    assert_int_equal(weights_save(p, out, ST_F32, &d), STATUS_OK);
    plan_free(p);
    assert_int_equal(t->failed, 0);
}

/* One Adam step (weight decay, bias correction) from PyTorch's gradients. */
static void test_adam_update(void **state)
{
    struct fixture *t = *state;
    struct plan *p = loaded_plan(t, 2);
    set_torch_grads(t, p);
    struct spec_optimizer so = {.type = SPEC_OPTIMIZER_ADAM, .decay_bn_bias = true,
                                .lr = setting(t, "adam_lr"),
                                .betas = {setting(t, "adam_beta1"), setting(t, "adam_beta2")},
                                .eps = setting(t, "adam_eps"),
                                .weight_decay = setting(t, "adam_weight_decay")};
    struct step_optimizer o;
    step_optimizer_init(&o, &so);
    step_update(p, &o, so.lr);
    compare_params(t, p, "adam.", false);
    plan_free(p);
    assert_int_equal(t->failed, 0);
}

int main(int argc, char **argv)
{
    if (argc < 4 || (strcmp(argv[3], "direct") && strcmp(argv[3], "auto"))) {
        fprintf(stderr, "usage: test_parity DIR SOURCE_DIR direct|auto\n");
        return 2;
    }
    dir = argv[1];
    source_dir = argv[2];
    direct = strcmp(argv[3], "direct") == 0;
    floor_factor = direct ? 4 : 10;
    if (!direct && !onednn_winograd()) { /* auto is direct: tested already */
        printf("convolutions: auto: skipped: oneDNN %d.x has no Winograd convolution\n",
               DNNL_VERSION_MAJOR);
        return 0;
    }
    printf("convolutions: %s\n", direct ? "direct" : "auto (Winograd for 3x3 stride 1)");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_step),
        cmocka_unit_test(test_sgd_update),
        cmocka_unit_test(test_adam_update),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
