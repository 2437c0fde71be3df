/*
 * test_ops_cpu.c: every op of the CPU backend, forward and backward, against the naive
 * reference kernels (tests/ref, double precision) on random inputs over many shapes, through
 * real one-op plans; also residual blocks, the loss, SGD and Adam steps, batchnorm's running
 * statistics and evaluation mode, and dropout. The cases are tests/ops_cases.h, shared with
 * tests/test_ops_cuda.c. Tolerance: 1e-4 of a tensor's largest magnitude (fp32 against double)
 * for every op, block and update. Also the check itself: a NaN or an infinity anywhere in a
 * result (or in a reference) fails, naming the element.
 */
#include "ops_cases.h"

static int setup(void **state)
{
    (void)state;
    ops_target_use(&(struct ops_target){.name = "cpu", .be = &backend_cpu, .bits = 24,
                                        .tol = 1e-4, .tol_block = 1e-4, .tol_update = 1e-4});
    return 0;
}

/* check_eval on crafted tensors: a NaN in the first element and an infinity in the middle fail
 * at that element, however small every other error is (a running maximum of |got - want|
 * would pass a NaN that a finite element follows); so does a reference that is not finite. */
static void test_check_not_finite(void **state)
{
    (void)state;
    tol = target.tol;
    enum { N = 9 };
    double want[N];
    float got[N];
    for (int i = 0; i < N; i++) want[i] = got[i] = (float)(0.25 * (i + 1));
    struct check_result r = check_eval(got, want, N);
    assert_true(r.ok);
    got[0] = NAN;
    r = check_eval(got, want, N);
    assert_false(r.ok);
    assert_int_equal(r.at, 0);
    assert_non_null(r.why);
    got[0] = (float)want[0];
    got[N / 2] = INFINITY;
    r = check_eval(got, want, N);
    assert_false(r.ok);
    assert_int_equal(r.at, N / 2);
    got[N / 2] = -INFINITY;
    assert_false(check_eval(got, want, N).ok);
    got[N / 2] = (float)want[N / 2];
    assert_true(check_eval(got, want, N).ok);
    want[N - 2] = NAN;
    r = check_eval(got, want, N);
    assert_false(r.ok);
    assert_int_equal(r.at, N - 2);
    assert_non_null(r.why);
}

int main(void)
{
    const struct CMUnitTest tests[] = {OPS_CASES, cmocka_unit_test(test_check_not_finite)};
    return cmocka_run_group_tests(tests, setup, NULL);
}
