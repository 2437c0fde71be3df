/*
 * test_ops_cpu.c: every op of the CPU backend, forward and backward, against the naive
 * reference kernels (tests/ref, double precision) on random inputs over many shapes, through
 * real one-op plans; also residual blocks, the loss, SGD and Adam steps, batchnorm's running
 * statistics and evaluation mode, and dropout. The cases are tests/ops_cases.h, shared with
 * tests/test_ops_cuda.c. Tolerance: 1e-4 of a tensor's largest magnitude (fp32 against double)
 * for every op, block and update. Also the check itself: a NaN or an infinity anywhere in a
 * result (or in a reference) fails, naming the element; and the CUDA backend's bounds, which
 * follow from the compute type (test_ops_cuda.c), computed here for bf16 and fp16: a result
 * computed as the backend does passes, a sum accumulated in the compute type or an error of
 * 10% in bf16 (1% in fp16) fails.
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
 * would pass a NaN that a finite element follows); so does a reference that is not finite.
 * Both ways of checking: against tol (the CPU's) and element by element (the CUDA backend's). */
static void test_check_not_finite(void **state)
{
    (void)state;
    struct ops_target saved = target;
    tol = target.tol;
    for (int mode = 0; mode < 2; mode++) {
        target.bounds = mode == 1;
        const struct bound *b = mode ? &EXACT : NULL;
        enum { N = 9 };
        double want[N];
        float got[N];
        for (int i = 0; i < N; i++) want[i] = got[i] = (float)(0.25 * (i + 1));
        struct check_result r = check_eval(got, want, N, b);
        assert_true(r.ok);
        got[0] = NAN;
        r = check_eval(got, want, N, b);
        assert_false(r.ok);
        assert_int_equal(r.at, 0);
        assert_non_null(r.why);
        got[0] = (float)want[0];
        got[N / 2] = INFINITY;
        r = check_eval(got, want, N, b);
        assert_false(r.ok);
        assert_int_equal(r.at, N / 2);
        got[N / 2] = -INFINITY;
        assert_false(check_eval(got, want, N, b).ok);
        got[N / 2] = (float)want[N / 2];
        assert_true(check_eval(got, want, N, b).ok);
        want[N - 2] = NAN;
        r = check_eval(got, want, N, b);
        assert_false(r.ok);
        assert_int_equal(r.at, N - 2);
        assert_non_null(r.why);
    }
    target = saved;
}

/* A linear layer y = x w^T (N, IN) x (OUT, IN) of values exact in the target's type, summed
 * in fp32 in `parts` consecutive runs each rounded to the target's type first (1: none; more:
 * a split-K whose partial sums a library keeps in the output's type), the result rounded: what
 * the CUDA backend computes. acc16: every running sum rounded to the target's type instead (a
 * sum accumulated in the compute type, which the bounds must not let pass). */
static void linear_as(int N, int IN, int OUT, const double *x, const double *w, int parts,
                      bool acc16, float *y)
{
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OUT; o++) {
            float total = 0;
            for (int part = 0; part < parts; part++) {
                float acc = 0;
                for (int k = part * IN / parts; k < (part + 1) * IN / parts; k++) {
                    acc += (float)x[n * IN + k] * (float)w[o * IN + k];
                    if (acc16) acc = rnd(acc);
                }
                total += parts > 1 ? rnd(acc) : acc;
            }
            y[n * OUT + o] = rnd(total);
        }
}

/* Whether got, scaled by 1 + e (the whole tensor) or only at its largest element or at one
 * near a tenth of that, fails against want and b. */
static void expect_scaled_fail(const float *exact, const double *want, size_t n,
                               const struct bound *b, double e, float *got)
{
    size_t big = 0, small = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabs(want[i]) > fabs(want[big])) big = i;
        got[i] = rnd(want[i] * (1 + e));
    }
    assert_false(check_eval(got, want, n, b).ok);
    for (size_t i = 0; i < n; i++) {
        got[i] = rnd(want[i] * (1 - e));
        if (fabs(fabs(want[i]) - 0.1 * fabs(want[big])) <
            fabs(fabs(want[small]) - 0.1 * fabs(want[big])))
            small = i;
    }
    assert_false(check_eval(got, want, n, b).ok);
    memcpy(got, exact, n * sizeof *got);
    got[big] = rnd(want[big] * (1 + e));
    assert_false(check_eval(got, want, n, b).ok);
    memcpy(got, exact, n * sizeof *got);
    got[small] = rnd(want[small] * (1 + 5 * e));
    assert_false(check_eval(got, want, n, b).ok);
}

/*
 * The CUDA backend's bounds (ops_cases.h, "Error bounds"), computed here for bf16 and fp16 on
 * ResNet-50's classifier (a linear layer of 2048 inputs, batch 8) and on a 3x3 convolution of
 * 32 channels: the result as the backend computes it passes (fp32 sums, also with partial sums
 * rounded to the compute type); a sum accumulated in the compute type fails; so does an error
 * of 10% in bf16 (1% in fp16) of the whole tensor, of its largest element, or of 50% (5%) of an
 * element a tenth of that size (which a tolerance of 8u of the tensor's largest magnitude, the
 * former one, let pass).
 */
static void test_bounds_tight(void **state)
{
    (void)state;
    struct ops_target saved = target;
    for (int type = 0; type < 2; type++) {
        target.bits = type ? 11 : 8;
        target.bounds = true;
        const double e = type ? 0.01 : 0.1;

        enum { N = 8, IN = 2048, OUT = 10 };
        double *xd, *wd, y[N * OUT];
        float *x = rand_f(N * IN, &xd), *w = rand_f(OUT * IN, &wd), got[N * OUT],
              exact[N * OUT];
        ref_linear_forward(N, IN, OUT, xd, wd, NULL, y);
        struct lin_geom lg = {N, IN, OUT};
        struct bound b;
        bound_bilinear(f_lin_fwd, &lg, (struct operand){xd, N * IN, NULL, false},
                       (struct operand){wd, OUT * IN, NULL, false}, N * OUT, IN, &b, 0, 0, NULL);
        linear_as(N, IN, OUT, xd, wd, 1, false, exact);
        assert_true(check_eval(exact, y, N * OUT, &b).ok);
        linear_as(N, IN, OUT, xd, wd, 16, false, got);
        assert_true(check_eval(got, y, N * OUT, &b).ok);
        linear_as(N, IN, OUT, xd, wd, 1, true, got);
        assert_false(check_eval(got, y, N * OUT, &b).ok);
        expect_scaled_fail(exact, y, N * OUT, &b, e, got);
        bound_free(&b);
        free(x);
        free(w);
        free(xd);
        free(wd);

        struct ref_conv c = {2, 32, 8, 8, 32, 3, 3, 8, 8, 1, 1, 1, 1, 1, 1, 1};
        const size_t nx = 2 * 32 * 64, nw = 32 * 32 * 9, ny = nx;
        double *cx, *cw, *cy = zeros(ny);
        float *fx = rand_f(nx, &cx), *fw = rand_f(nw, &cw), *cg = malloc(ny * sizeof *cg),
              *ce = malloc(ny * sizeof *ce);
        ref_conv_forward(&c, cx, cw, NULL, cy);
        bound_bilinear(f_conv_fwd, &c, (struct operand){cx, nx, NULL, false},
                       (struct operand){cw, nw, NULL, false}, ny, conv_k(&c, 0), &b, 0, 0,
                       NULL);
        for (size_t i = 0; i < ny; i++) ce[i] = rnd(cy[i]);
        assert_true(check_eval(ce, cy, ny, &b).ok);
        expect_scaled_fail(ce, cy, ny, &b, e, cg);
        bound_free(&b);
        free(fx);
        free(fw);
        free(cx);
        free(cw);
        free(cy);
        free(cg);
        free(ce);
    }
    target = saved;
}

int main(void)
{
    const struct CMUnitTest tests[] = {OPS_CASES, cmocka_unit_test(test_check_not_finite),
                                       cmocka_unit_test(test_bounds_tight)};
    return cmocka_run_group_tests(tests, setup, NULL);
}
