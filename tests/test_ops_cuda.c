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
 * Tolerances: every element within the bound that follows from the compute type, derived in
 * tests/ops_cases.h ("Error bounds"). Every input, weight and output gradient given to the
 * plan is exact in the compute type and the backend sums in fp32 (cuDNN's and cuBLAS's
 * compute type, TF32 off, cuBLAS kept from reducing in 16 bits), so element i of a result may
 * be off by u |want_i| (its own rounding; u = 2^-24 fp32, 2^-11 fp16, 2^-8 bf16), plus
 * 6 u sqrt(q_i) for the values stored in the compute type on its way (q_i: the sum of their
 * squares times their coefficients squared: the intermediate tensors of a chain and the
 * allowance for partial results a library keeps in the output's type; Hoeffding's
 * inequality), plus 6 sk 2^-23 s_i for the fp32 sums (s_i: the sum of |terms| through the
 * chain, sk: the sum of sqrt(K) over its reductions of K terms; Higham and Mary's
 * probabilistic bound), plus half fp16's smallest subnormal per rounding. The reduction
 * lengths: a conv's C/g R S (forward), K/g R S (data), N P Q (filter), a linear layer's IN,
 * OUT and N, batchnorm's N H W, a pool's k^2. A 10% error of a bf16 result fails
 * (test_ops_cpu's test_bounds_tight). The loss: relative 1e-5 (fp32 on exact logits). Weights
 * after optimizer steps from the plan's own gradients: 1e-4 of the tensor's largest
 * magnitude in every precision (fp32 master weights and optimizer state, as on the CPU).
 * Dropout: each element within max(1e-6, 2u |want|).
 */
#ifndef RUNNER_HAVE_CUDA
#error "test_ops_cuda.c is built only with the CUDA backend (RUNNER_HAVE_CUDA)"
#endif

#include "ops_cases.h"

/* The CUDA backend on device 0 with precision pr and bits significand bits: every op and
 * block checked element by element against its bound, the optimizer steps against 1e-4. */
static void use(const char *name, enum plan_precision pr, int bits)
{
    struct ops_target t = {.name = name, .be = &backend_cuda,
                           .opt = {.precision = pr, .tf32 = false, .device = 0}, .bits = bits,
                           .bounds = true, .tol_update = 1e-4};
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
    if (device_cc_has_bf16(device_cuda_capability(0)))
        failed += cmocka_run_group_tests_name("cuda bf16", tests, setup_bf16, NULL);
    else /* a T4 or older: no bf16, and the plans refuse it */
        printf("cuda bf16: skipped: cuda:0 has compute capability %d.%d, below 8.0\n",
               device_cuda_capability(0) / 10, device_cuda_capability(0) % 10);
    failed += cmocka_run_group_tests_name("cuda fp16", tests, setup_fp16, NULL);
    return failed ? 1 : 0;
}
