/*
 * test_schedule.c: every learning-rate schedule against values worked out by hand from its
 * definition (schedule.h) on a run of 5 epochs of 10 steps; the cosine and one-cycle values
 * are the ones PyTorch's CosineAnnealingLR and OneCycleLR give for the same run.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "schedule.h"

#define EPOCHS 5
#define SPE 10 /* steps per epoch */

static void expect_lr(const struct spec_schedule *s, int64_t t, double want)
{
    struct schedule sc;
    schedule_init(&sc, s, 0.1, EPOCHS, SPE);
    assert_int_equal(sc.total, EPOCHS * SPE);
    double got = schedule_lr(&sc, t);
    if (fabs(got - want) > 1e-12 * fmax(1, fabs(want)))
        fail_msg("schedule type %d, step %lld: lr %.17g, expected %.17g", (int)s->type,
                 (long long)t, got, want);
}

static void test_constant_and_warmup(void **state)
{
    (void)state;
    struct spec_schedule s = {.type = SPEC_SCHEDULE_CONSTANT};
    for (int t = 0; t < EPOCHS * SPE; t++) expect_lr(&s, t, 0.1);
    s.warmup_epochs = 1; /* 10 steps from 0 up to 0.1 */
    expect_lr(&s, 0, 0.0);
    expect_lr(&s, 5, 0.05);
    expect_lr(&s, 9, 0.09);
    expect_lr(&s, 10, 0.1);
    s.warmup_epochs = 0.5;
    s.warmup_start_factor = 0.2; /* 5 steps from 0.02 */
    expect_lr(&s, 0, 0.02);
    expect_lr(&s, 1, 0.02 + 0.08 / 5);
    expect_lr(&s, 5, 0.1);
}

static void test_step_multistep_exponential(void **state)
{
    (void)state;
    struct spec_schedule s = {.type = SPEC_SCHEDULE_STEP, .step_epochs = 2, .gamma = 0.1};
    expect_lr(&s, 19, 0.1);
    expect_lr(&s, 20, 0.01);
    expect_lr(&s, 39, 0.01);
    expect_lr(&s, 40, 0.001);
    long long ms[] = {1, 3};
    s = (struct spec_schedule){.type = SPEC_SCHEDULE_MULTISTEP, .gamma = 0.5,
                               .milestones = {ms, 2}};
    expect_lr(&s, 9, 0.1);
    expect_lr(&s, 10, 0.05);
    expect_lr(&s, 29, 0.05);
    expect_lr(&s, 30, 0.025);
    expect_lr(&s, 49, 0.025);
    s = (struct spec_schedule){.type = SPEC_SCHEDULE_EXPONENTIAL, .gamma = 0.5};
    expect_lr(&s, 0, 0.1);
    expect_lr(&s, 5, 0.1 * sqrt(0.5));
    expect_lr(&s, 10, 0.05);
    expect_lr(&s, 20, 0.025);
}

static void test_cosine(void **state)
{
    (void)state;
    struct spec_schedule s = {.type = SPEC_SCHEDULE_COSINE, .min_lr = 0.001};
    expect_lr(&s, 0, 0.1);
    expect_lr(&s, 25, 0.0505);
    expect_lr(&s, 49, 0.0010976769428005578);
    s.warmup_epochs = 1; /* then 40 steps of cosine */
    expect_lr(&s, 5, 0.05);
    expect_lr(&s, 10, 0.1);
    expect_lr(&s, 30, 0.0505);
}

static void test_onecycle(void **state)
{
    (void)state;
    struct spec_schedule s = {.type = SPEC_SCHEDULE_ONECYCLE, .pct_start = 0.3,
                              .div_factor = 25, .final_div_factor = 1e4};
    expect_lr(&s, 0, 0.004);
    expect_lr(&s, 7, 0.052);
    expect_lr(&s, 14, 0.1);
    expect_lr(&s, 30, 0.05671183644422961);
    expect_lr(&s, 49, 4e-7);
    s.anneal = SPEC_ANNEAL_LINEAR;
    expect_lr(&s, 3, 0.004 + 0.096 * 3 / 14);
    expect_lr(&s, 14, 0.1);
    expect_lr(&s, 49, 4e-7);
    expect_lr(&s, 14 + 7, 0.1 + (4e-7 - 0.1) * 7 / 35);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_constant_and_warmup),
        cmocka_unit_test(test_step_multistep_exponential),
        cmocka_unit_test(test_cosine),
        cmocka_unit_test(test_onecycle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
