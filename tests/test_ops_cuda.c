/*
 * test_ops_cuda.c: every op of the CUDA backend, forward and backward, against the naive
 * reference kernels (tests/ref, double precision), through real one-op plans: the cases of
 * tests/ops_cases.h (shared with tests/test_ops_cpu.c: convolutions of many shapes, pools,
 * batchnorm with its running statistics and evaluation mode, relu, identity, flatten, linear,
 * residual blocks with add + relu and with batchnorm + add + relu, dropout, the loss with
 * label smoothing and soft targets, SGD, Adam and AdamW), each with the input's gradient, run
 * three times: fp32 (TF32 off), bf16 and fp16. Exit 77 (skipped) without a usable GPU; with
 * RUNNER_REQUIRE_GPU=1 that is a failure.
 *
 * Tolerances, as max |got - want| / max |want| over a tensor:
 * - fp32, TF32 off: 1e-4, as the CPU backend (fp32 sums of at most a few thousand terms).
 * - bf16 (8 significand bits, unit roundoff u = 2^-8) and fp16 (11 bits, u = 2^-11): every
 *   input, weight and output gradient given to the plan is exact in the compute type, and
 *   convolutions, matrix products, batchnorm and pooling sum in fp32 (cuDNN's and cuBLAS's
 *   compute type), so an output differs from the reference only by the roundings of the
 *   tensors the backend stores in 16 bits (outputs, intermediate activations, gradients),
 *   each at most u of its value, plus the fp32 sums' L 2^-24 <= 1.2e-4 for the longest
 *   reduction here (L = 2048, the linear layer) -- it does not grow with the reduction length
 *   as a 16-bit accumulation would (about sqrt(L) u). One op: 8u (bf16 3.1e-2, fp16 3.9e-3);
 *   a residual block, whose chain rounds about twice as often (conv, bn, relu, conv, bn, add,
 *   relu and back): 16u (bf16 6.3e-2, fp16 7.8e-3). The loss: relative 1e-5 (fp32 on exact
 *   logits). Weights after optimizer steps from the plan's own gradients: 1e-4 in every
 *   precision (fp32 master weights and optimizer state). Dropout: each element within
 *   max(1e-6, 2u |want|).
 */
#ifndef RUNNER_HAVE_CUDA
#error "test_ops_cuda.c is built only with the CUDA backend (RUNNER_HAVE_CUDA)"
#endif

#include "ops_cases.h"

/* The CUDA backend on device 0 with precision pr and bits significand bits. */
static void use(const char *name, enum plan_precision pr, int bits)
{
    double u = ldexp(1.0, -bits);
    struct ops_target t = {.name = name, .be = &backend_cuda,
                           .opt = {.precision = pr, .tf32 = false, .device = 0}, .bits = bits,
                           .tol = 8 * u, .tol_block = 16 * u, .tol_update = 1e-4};
    if (pr == PLAN_FP32) t.tol = t.tol_block = 1e-4;
    ops_target_use(&t);
}

static int setup_fp32(void **state)
{
    (void)state;
    use("cuda fp32", PLAN_FP32, 24);
    return 0;
}

static int setup_bf16(void **state)
{
    (void)state;
    use("cuda bf16", PLAN_BF16, 8);
    return 0;
}

static int setup_fp16(void **state)
{
    (void)state;
    use("cuda fp16", PLAN_FP16, 11);
    return 0;
}

int main(void)
{
    int gate = gpu_test_gate();
    if (gate) return gate;
    const struct CMUnitTest tests[] = {OPS_CASES};
    int failed = cmocka_run_group_tests_name("cuda fp32", tests, setup_fp32, NULL);
    failed += cmocka_run_group_tests_name("cuda bf16", tests, setup_bf16, NULL);
    failed += cmocka_run_group_tests_name("cuda fp16", tests, setup_fp16, NULL);
    return failed ? 1 : 0;
}
