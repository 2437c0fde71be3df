/*
 * test_cuda_backend.c: the CUDA backend's own behaviour around the ops (test_ops_cuda has the
 * ops, test_cuda_plan_step whole steps against the CPU):
 * - everywhere the backend builds (no GPU needed): which cuDNN statuses mean "not offered"
 *   (the batchnorm probe's fallback: cuDNN 9's codes are hierarchical);
 * - on a GPU: fp16 steps whose loss scale overflows are skipped and not counted (Adam's first
 *   applied update is number 1, the EMA is seeded with the weights there); fp16 gradients
 *   given by the host are kept unscaled (no overflow) and applied; the first training
 *   step runs kernel by kernel and the second is captured; a capture that fails warns once
 *   and the plan goes on kernel by kernel with the same results; a second training set drops
 *   the steps captured with the first; a CUDA library failure while running fails the plan
 *   (its status and message, no exit) and leaves the device usable for the next plan.
 * Without a usable GPU the GPU part is skipped (the host part still runs), unless
 * RUNNER_REQUIRE_GPU=1.
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

#include "cuda.h"
#include "plan.h"
#include "rng.h"
#include "test_util.h"

#define BATCH 8

static const char *const NET = "input: [3, 16, 16]\n"
                               "graph:\n"
                               "  - {name: conv1, op: conv, out: 8, kernel: 3, pad: 1}\n"
                               "  - {name: bn1, op: batchnorm}\n"
                               "  - relu\n"
                               "  - global_avg_pool\n"
                               "  - {name: fc, op: linear, out: 10}\n";

static struct arena arena;
static struct graph *g;
static char messages[4096]; /* the plans' warnings and failures, one per line */

static void on_message(void *ctx, bool error, const char *line)
{
    (void)ctx;
    size_t n = strlen(messages);
    snprintf(messages + n, sizeof messages - n, "%s: %s\n", error ? "error" : "warning", line);
}

static struct plan *open_plan(enum plan_precision pr, int slots, bool no_graph)
{
    struct plan_options o = {.batch = BATCH, .optimizer_slots = slots, .seed = 5,
                             .precision = pr, .no_graph = no_graph, .message = on_message};
    struct diag d = {.out = stderr};
    struct plan *p;
    assert_int_equal(plan_create(g, &backend_cuda, &o, &d, &p), STATUS_OK);
    plan_init_params(p, 11);
    return p;
}

static void batch(uint64_t seed, float *x, int32_t *labels)
{
    for (int i = 0; i < BATCH * 3 * 16 * 16; i++) x[i] = (float)rng_normal(seed, (uint64_t)i);
    for (int i = 0; i < BATCH; i++) labels[i] = (int32_t)(rng_bits(seed + 1, (uint64_t)i) % 10);
}

static const struct plan_adam ADAM = {.lr = 1e-2, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};

static struct plan_step adam_step(int64_t t, int ema_slot)
{
    return (struct plan_step){.opt = {PLAN_OPT_ADAM, .u.adam = ADAM}, .t = t,
                              .ema_slot = ema_slot, .ema_decay = 0.9};
}

/* --------------------------------------------------------------------------------------- */
/* Host */

static void test_dnn_declined(void **state)
{
    (void)state;
    assert_true(cuda_dnn_declined(CUDNN_STATUS_NOT_SUPPORTED));
    assert_true(cuda_dnn_declined((cudnnStatus_t)3003)); /* ..._NOT_SUPPORTED_DATA_TYPE */
    assert_true(cuda_dnn_declined((cudnnStatus_t)3004)); /* ..._NOT_SUPPORTED_LAYOUT */
    assert_true(cuda_dnn_declined(CUDNN_STATUS_BAD_PARAM));
    assert_true(cuda_dnn_declined((cudnnStatus_t)2002)); /* ..._BAD_PARAM_NULL_POINTER */
    assert_false(cuda_dnn_declined(CUDNN_STATUS_SUCCESS));
    assert_false(cuda_dnn_declined(CUDNN_STATUS_INTERNAL_ERROR));
    assert_false(cuda_dnn_declined(CUDNN_STATUS_EXECUTION_FAILED));
    assert_false(cuda_dnn_declined((cudnnStatus_t)1001));
}

/* --------------------------------------------------------------------------------------- */
/* GPU */

/* The median of |after - before| / lr over fc.weight. */
static double median_move(const float *before, const float *after, int n, double lr)
{
    double *m = malloc((size_t)n * sizeof *m);
    for (int i = 0; i < n; i++) m[i] = fabs((double)after[i] - (double)before[i]) / lr;
    for (int i = 1; i < n; i++) /* insertion sort: n is small */
        for (int k = i; k > 0 && m[k] < m[k - 1]; k--) {
            double t = m[k];
            m[k] = m[k - 1];
            m[k - 1] = t;
        }
    double r = m[n / 2];
    free(m);
    return r;
}

static void test_skipped_fp16_steps(void **state)
{
    (void)state;
    struct plan *p = open_plan(PLAN_FP16, 3, false);
    struct cuda *c = p->impl;
    /* a loss scale no gradient survives: the steps are skipped until it has halved enough */
    float huge = 0x1p40f;
    assert_int_equal(cudaMemcpy(&c->d_out->loss_scale, &huge, sizeof huge,
                                cudaMemcpyHostToDevice), cudaSuccess);
    const struct graph_tensor *w = graph_find_tensor(g, "fc.weight");
    int n = (int)op_tensor_numel(&w->t);
    float *before = malloc((size_t)n * 4), *after = malloc((size_t)n * 4),
          *ema = malloc((size_t)n * 4);
    float x[BATCH * 3 * 16 * 16];
    int32_t labels[BATCH];
    int skipped = 0;
    struct plan_step_result r = {0};
    for (int s = 1; s <= 64; s++) {
        batch((uint64_t)s, x, labels);
        plan_set_input(p, x, labels);
        plan_get_tensor(p, w, before);
        struct plan_step st = adam_step(s, 2);
        plan_train_step(p, &st, &r);
        assert_int_equal(plan_status(p), STATUS_OK);
        if (!r.skipped) break;
        skipped++;
        assert_int_equal(r.updates, 0);
    }
    assert_true(skipped >= 2);
    assert_false(r.skipped);
    assert_int_equal(r.updates, 1); /* the first applied update is number 1 */
    plan_get_tensor(p, w, after);
    plan_get_state(p, w, 2, ema);
    assert_memory_equal(ema, after, (size_t)n * 4); /* the EMA seeded with the weights */
    /* Adam's first update moves each weight by about lr (m / sqrt(v) = sign(g) at t 1); a
     * bias correction of a later t would give about 0.64 lr after two skipped steps */
    double moved = median_move(before, after, n, ADAM.lr);
    if (moved < 0.9 || moved > 1.1)
        fail_msg("the first applied Adam update moved fc.weight by %.3f lr (median)", moved);
    /* and the count goes on from there */
    batch(99, x, labels);
    plan_set_input(p, x, labels);
    struct plan_step st = adam_step(skipped + 2, 2);
    plan_train_step(p, &st, &r);
    assert_false(r.skipped);
    assert_int_equal(r.updates, 2);
    free(before);
    free(after);
    free(ema);
    plan_free(p);
}

/* fp16 gradients given by the host (plan_set_grad) are kept at scale 1, not multiplied by
 * the loss scale into fp16's overflow: values of 2 read back as 2 and are applied. */
static void test_given_fp16_grads(void **state)
{
    (void)state;
    struct plan *p = open_plan(PLAN_FP16, 2, true);
    float x[BATCH * 3 * 16 * 16];
    int32_t labels[BATCH];
    batch(17, x, labels);
    plan_set_input(p, x, labels); /* a backward first: the arenas hold scaled gradients */
    plan_forward(p, true);
    plan_loss(p, 0);
    plan_backward(p, NULL);
    const struct graph_tensor *w = graph_find_tensor(g, "conv1.weight");
    int n = (int)op_tensor_numel(&w->t);
    float *grad = malloc((size_t)n * 4), *back = malloc((size_t)n * 4);
    float *before = malloc((size_t)n * 4), *after = malloc((size_t)n * 4);
    for (int i = 0; i < n; i++) grad[i] = i % 2 ? 2.0f : -2.0f;
    plan_set_grad(p, w, grad);
    plan_get_grad(p, w, back);
    assert_memory_equal(grad, back, (size_t)n * 4);
    plan_get_tensor(p, w, before);
    plan_adam_step(p, &ADAM, 1);
    plan_get_tensor(p, w, after);
    assert_int_equal(plan_status(p), STATUS_OK);
    double moved = median_move(before, after, n, ADAM.lr);
    if (moved < 0.9 || moved > 1.1) fail_msg("the given gradients moved it by %.3f lr", moved);
    free(grad);
    free(back);
    free(before);
    free(after);
    plan_free(p);
}

/* The first step kernel by kernel, the second captured, the same bits as a plan that never
 * captures. */
static void test_capture_from_second_step(void **state)
{
    (void)state;
    struct plan *a = open_plan(PLAN_FP32, 1, false), *b = open_plan(PLAN_FP32, 1, true);
    struct cuda *c = a->impl;
    float x[BATCH * 3 * 16 * 16];
    int32_t labels[BATCH];
    for (int s = 1; s <= 3; s++) {
        batch((uint64_t)s + 7, x, labels);
        plan_set_input(a, x, labels);
        plan_set_input(b, x, labels);
        struct plan_step st = {.opt = {PLAN_OPT_SGD, .u.sgd = {.lr = 0.1, .momentum = 0.9}},
                               .t = s, .ema_slot = -1};
        struct plan_step_result ra, rb;
        plan_train_step(a, &st, &ra);
        plan_train_step(b, &st, &rb);
        if (s == 1) assert_null(c->step_graph[0]);
        if (s >= 2) assert_non_null(c->step_graph[0]);
        assert_true(ra.loss == rb.loss);
    }
    plan_free(a);
    plan_free(b);
}

/* What a test enqueues instead of a step: a call that may not be made while capturing. */
static void bad_enqueue(struct cuda *c, const void *arg)
{
    (void)arg;
    CU(c, cudaStreamSynchronize(c->stream));
}

static void test_failed_capture(void **state)
{
    (void)state;
    messages[0] = 0;
    struct plan *p = open_plan(PLAN_FP32, 1, false);
    struct cuda *c = p->impl;
    cudaGraphExec_t exec = NULL;
    assert_false(cuda_capture(c, &exec, bad_enqueue, NULL, "a test's step"));
    assert_null(exec);
    assert_false(c->use_graphs);
    assert_int_equal(plan_status(p), STATUS_OK); /* a warning, not a failure */
    if (!strstr(messages, "warning: cuda:0: capturing a test's step as a CUDA graph failed"))
        fail_msg("the warning: %s", messages);
    /* the plan goes on, kernel by kernel */
    float x[BATCH * 3 * 16 * 16];
    int32_t labels[BATCH];
    batch(3, x, labels);
    plan_set_input(p, x, labels);
    struct plan_step st = adam_step(1, -1);
    struct plan_step_result r;
    plan_train_step(p, &st, &r);
    plan_train_step(p, &st, &r);
    assert_int_equal(plan_status(p), STATUS_OK);
    assert_true(isfinite(r.loss) && r.loss > 0);
    assert_null(c->step_graph[0]);
    plan_free(p);
}

/* A second training set: the steps captured reading the first are dropped. */
static void test_second_dataset(void **state)
{
    (void)state;
    struct plan *p = open_plan(PLAN_FP32, 1, false);
    struct cuda *c = p->impl;
    /* no transforms: the bytes as they are */
    struct augment_gpu_plan aug = {.c = 3, .in_h = 16, .in_w = 16, .out_h = 16, .out_w = 16};
    uint8_t *pixels = malloc(4 * 3 * 16 * 16);
    for (int i = 0; i < 4 * 3 * 16 * 16; i++) pixels[i] = (uint8_t)(i * 7);
    struct plan_dataset ds = {.pixels = pixels, .count = 4, .aug = &aug};
    char why[256];
    assert_true(plan_set_dataset(p, &ds, why, sizeof why));
    int64_t image[BATCH];
    uint64_t key[BATCH];
    int32_t labels[BATCH];
    for (int i = 0; i < BATCH; i++) {
        image[i] = i % 4;
        key[i] = (uint64_t)i;
        labels[i] = i % 10;
    }
    struct plan_step st = adam_step(1, -1);
    struct plan_step_result r;
    for (int s = 0; s < 2; s++) {
        plan_set_batch(p, image, key, labels);
        plan_train_step(p, &st, &r);
    }
    assert_non_null(c->step_graph[2]);
    assert_true(plan_set_dataset(p, &ds, why, sizeof why));
    assert_null(c->step_graph[2]);
    assert_false(c->step_warm[2]);
    plan_set_batch(p, image, key, labels);
    plan_train_step(p, &st, &r);
    assert_int_equal(plan_status(p), STATUS_OK);
    free(pixels);
    plan_free(p);
}

/* A library call that fails while running (an algorithm cuDNN does not have): the plan
 * fails with the call in its message, every later call returns at once, nothing exits, and
 * a new plan on the device works. */
static void test_runtime_failure(void **state)
{
    (void)state;
    messages[0] = 0;
    struct plan *p = open_plan(PLAN_FP32, 1, true);
    struct cuda *c = p->impl;
    size_t conv = 0;
    while (g->layers[conv].op != OP_KIND_CONV) conv++;
    c->layers[conv].conv->fwd_algo = (cudnnConvolutionFwdAlgo_t)1000;
    float x[BATCH * 3 * 16 * 16], y[BATCH * 10];
    int32_t labels[BATCH];
    batch(5, x, labels);
    plan_set_input(p, x, labels);
    plan_forward(p, false);
    assert_int_equal(plan_status(p), STATUS_RUNTIME);
    if (!strstr(plan_error(p), "cudnnConvolutionForward") || !strstr(messages, "error: "))
        fail_msg("the failure: %s / %s", plan_error(p), messages);
    memset(y, 0x7f, sizeof y);
    plan_get_output(p, y);
    for (int i = 0; i < BATCH * 10; i++) assert_true(y[i] == 0);
    struct plan_step st = adam_step(1, -1);
    struct plan_step_result r;
    plan_train_step(p, &st, &r);
    assert_true(r.loss == 0);
    plan_free(p);
    struct plan *q = open_plan(PLAN_FP32, 1, true);
    plan_set_input(q, x, labels);
    plan_forward(q, false);
    assert_int_equal(plan_status(q), STATUS_OK);
    plan_free(q);
}

int main(void)
{
    const struct CMUnitTest host[] = {cmocka_unit_test(test_dnn_declined)};
    int failed = cmocka_run_group_tests_name("host", host, NULL, NULL);
    int gate = gpu_test_gate();
    if (gate == 77) return failed; /* the GPU part skipped; said by the gate */
    if (gate) return 1;
    g = graph_of_text(&arena, "net", NET);
    if (!g) return 1;
    const struct CMUnitTest gpu[] = {
        cmocka_unit_test(test_skipped_fp16_steps),
        cmocka_unit_test(test_given_fp16_grads),
        cmocka_unit_test(test_capture_from_second_step),
        cmocka_unit_test(test_failed_capture),
        cmocka_unit_test(test_second_dataset),
        cmocka_unit_test(test_runtime_failure),
    };
    failed += cmocka_run_group_tests_name("gpu", gpu, NULL, NULL);
    graph_free(g);
    arena_free(&arena);
    return failed;
}
