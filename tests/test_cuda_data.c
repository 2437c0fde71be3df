/*
 * test_cuda_data.c: the GPU's own data path and asynchronous steps, on a small network in
 * fp32 with deterministic algorithms (so equal inputs give equal bits):
 * - a resident batch (plan_set_dataset + plan_set_batch: the images augmented on the GPU by
 *   augment_gpu_run inside the captured step) trains exactly as the same batch augmented on
 *   the CPU by augment_image and uploaded (plan_set_input): the same loss, the same correct
 *   count, the same bits in every weight and optimizer slot; and as the CPU backend's
 *   resident path does, within fp32 tolerance;
 * - steps started two ahead (plan_step_start, then plan_step_wait) give the results and
 *   weights of whole steps run one at a time kernel by kernel, across batches of two epochs
 *   (other keys, the same captured graph);
 * - a padding row (image -1) is all zeros on both paths.
 * Exit 77 (skipped) without a usable GPU, unless RUNNER_REQUIRE_GPU=1.
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

#include "augment.h"
#include "augment_gpu.h"
#include "plan.h"
#include "plan_compare.h"
#include "rng.h"
#include "test_util.h"
#include "transforms.h"

#define BATCH 16
#define IMAGES 40
#define SEED 21

static const char *const NET = "input: [3, 32, 32]\n"
                               "graph:\n"
                               "  - {name: conv1, op: conv, out: 16, kernel: 3, stride: 2, pad: 1}\n"
                               "  - {name: bn1, op: batchnorm}\n"
                               "  - relu\n"
                               "  - {name: conv2, op: conv, out: 16, kernel: 3, pad: 1}\n"
                               "  - {name: bn2, op: batchnorm}\n"
                               "  - relu\n"
                               "  - global_avg_pool\n"
                               "  - {name: fc, op: linear, out: 10}\n";

struct fixture {
    struct arena a;
    struct graph *g;
    uint8_t *pixels;  /* IMAGES x 3072 */
    int32_t *labels;  /* IMAGES */
    struct spec_transform list[4];
    struct augment aug;
    struct augment_gpu_plan plan;
};

static struct fixture fx;

static int setup(void **state)
{
    (void)state;
    fx.g = graph_of_text(&fx.a, "net", NET);
    if (!fx.g) return -1;
    fx.pixels = malloc(IMAGES * 3072);
    fx.labels = malloc(IMAGES * sizeof *fx.labels);
    if (!fx.pixels || !fx.labels) return -1;
    for (int i = 0; i < IMAGES * 3072; i++) fx.pixels[i] = (uint8_t)(rng_bits(5, (uint64_t)i) >> 56);
    for (int i = 0; i < IMAGES; i++) fx.labels[i] = (int32_t)(rng_bits(6, (uint64_t)i) % 10);
    fx.list[0] = crop(32, 4, SPEC_FILL_REFLECT);
    fx.list[1] = flip(0.5);
    fx.list[2] = cut(8, 0.5);
    fx.list[3] = norm(0.4914, 0.4822, 0.4465, 0.2470, 0.2435, 0.2616);
    struct spec_list l = {fx.list, 4};
    struct diag d = {.out = stderr};
    char why[128];
    if (augment_init(&fx.aug, &l, 3, 32, 32, &d) ||
        !augment_compile_gpu(&fx.aug, &fx.plan, why, sizeof why))
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    graph_free(fx.g);
    arena_free(&fx.a);
    free(fx.pixels);
    free(fx.labels);
    return 0;
}

/* Batch b of epoch e: its images (the last row of batch 0 is padding), keys and labels. */
static void batch(int b, int e, int64_t *image, uint64_t *key, int32_t *labels)
{
    for (int i = 0; i < BATCH; i++) {
        image[i] = b == 0 && i == BATCH - 1 ? -1 : (int64_t)((b * 7 + i * 3 + e) % IMAGES);
        key[i] = image[i] < 0 ? 0 : augment_key(SEED, e, image[i]);
        labels[i] = image[i] < 0 ? 0 : fx.labels[image[i]];
    }
}

/* The same batch augmented on the CPU: (BATCH, 3, 32, 32) floats. */
static void host_batch(const int64_t *image, const uint64_t *key, float *x)
{
    float *scratch = malloc((fx.aug.scratch_floats + 1) * sizeof *scratch);
    for (int i = 0; i < BATCH; i++) {
        float *out = x + (size_t)i * 3072;
        if (image[i] < 0)
            memset(out, 0, 3072 * sizeof *out);
        else
            augment_image(&fx.aug, fx.pixels + image[i] * 3072, key[i], out, scratch);
    }
    free(scratch);
}

static struct plan *open_plan(const struct backend *be, bool no_graph)
{
    struct plan_options o = {.batch = BATCH, .optimizer_slots = 1, .seed = 3,
                             .precision = PLAN_FP32, .deterministic = true,
                             .no_graph = no_graph};
    struct diag d = {.out = stderr};
    struct plan *p;
    assert_int_equal(plan_create(fx.g, be, &o, &d, &p), STATUS_OK);
    plan_init_params(p, 9);
    return p;
}

static void keep_dataset(struct plan *p)
{
    struct plan_dataset ds = {.pixels = fx.pixels, .count = IMAGES, .aug = &fx.plan};
    char why[200] = "";
    if (!plan_set_dataset(p, &ds, why, sizeof why)) fail_msg("plan_set_dataset: %s", why);
}

static struct plan_step sgd_step(int64_t t)
{
    return (struct plan_step){
        .smoothing = 0.1,
        .opt = {PLAN_OPT_SGD, .u.sgd = {.lr = 0.05, .momentum = 0.9, .weight_decay = 5e-4}},
        .t = t, .ema_slot = -1};
}

static void test_resident_equals_uploaded(void **state)
{
    (void)state;
    struct plan *res = open_plan(&backend_cuda, false), *up = open_plan(&backend_cuda, false);
    struct plan *cpu = open_plan(&backend_cpu, false);
    keep_dataset(res);
    keep_dataset(cpu);
    int64_t image[BATCH];
    uint64_t key[BATCH];
    int32_t labels[BATCH];
    float *x = malloc((size_t)BATCH * 3072 * sizeof *x);
    for (int b = 0; b < 3; b++) {
        batch(b, 0, image, key, labels);
        host_batch(image, key, x);
        plan_set_batch(res, image, key, labels);
        plan_set_batch(cpu, image, key, labels);
        plan_set_input(up, x, labels);
        struct plan_step st = sgd_step(b + 1);
        struct plan_step_result a, u, c;
        plan_train_step(res, &st, &a);
        plan_train_step(up, &st, &u);
        plan_train_step(cpu, &st, &c);
        if (a.loss != u.loss || a.correct != u.correct)
            fail_msg("step %d: resident loss %.9g (%lld right), uploaded %.9g (%lld right)", b,
                     a.loss, (long long)a.correct, u.loss, (long long)u.correct);
        if (fabs(a.loss - c.loss) > 1e-4 * fabs(c.loss))
            fail_msg("step %d: GPU loss %.9g, CPU %.9g", b, a.loss, c.loss);
        expect_same_bits(res, up, "resident against uploaded");
    }
    free(x);
    plan_free(res);
    plan_free(up);
    plan_free(cpu);
}

static void test_started_equals_whole(void **state)
{
    (void)state;
    struct plan *async = open_plan(&backend_cuda, false), *sync = open_plan(&backend_cuda, true);
    keep_dataset(async);
    keep_dataset(sync);
    int64_t image[BATCH];
    uint64_t key[BATCH];
    int32_t labels[BATCH];
    struct plan_step_result want[6], got[6];
    for (int k = 0; k < 6; k++) { /* three batches of epoch 0, three of epoch 1 */
        batch(k % 3, k / 3, image, key, labels);
        plan_set_batch(sync, image, key, labels);
        struct plan_step st = sgd_step(k + 1);
        plan_train_step(sync, &st, &want[k]);
    }
    for (int k = 0; k < 6; k++) {
        batch(k % 3, k / 3, image, key, labels);
        plan_set_batch(async, image, key, labels);
        struct plan_step st = sgd_step(k + 1);
        plan_step_start(async, &st);
        assert_true(plan_steps_pending(async) <= 2);
        if (k > 0) plan_step_wait(async, &got[k - 1]);
    }
    plan_step_wait(async, &got[5]);
    assert_int_equal(plan_steps_pending(async), 0);
    for (int k = 0; k < 6; k++)
        if (got[k].loss != want[k].loss || got[k].correct != want[k].correct)
            fail_msg("step %d: started %.9g (%lld right), whole %.9g (%lld right)", k,
                     got[k].loss, (long long)got[k].correct, want[k].loss,
                     (long long)want[k].correct);
    expect_same_bits(async, sync, "started two ahead against whole steps");
    plan_free(async);
    plan_free(sync);
}

int main(void)
{
    int gate = gpu_test_gate();
    if (gate) return gate;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resident_equals_uploaded),
        cmocka_unit_test(test_started_equals_whole),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
