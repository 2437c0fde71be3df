/*
 * test_ops_cpu.c: every op of the CPU backend, forward and backward, against the naive
 * reference kernels (tests/ref, double precision) on random inputs over many shapes, through
 * real one-op plans; also residual blocks, the loss, SGD and Adam steps, batchnorm's running
 * statistics and evaluation mode, and dropout. The cases are tests/ops_cases.h, shared with
 * tests/test_ops_cuda.c. Tolerance: 1e-4 of a tensor's largest magnitude (fp32 against double)
 * for every op, block and update.
 */
#include "ops_cases.h"

static int setup(void **state)
{
    (void)state;
    ops_target_use(&(struct ops_target){.name = "cpu", .be = &backend_cpu, .bits = 24,
                                        .tol = 1e-4, .tol_block = 1e-4, .tol_update = 1e-4});
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {OPS_CASES};
    return cmocka_run_group_tests(tests, setup, NULL);
}
