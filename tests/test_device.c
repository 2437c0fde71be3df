/*
 * test_device.c: the device decisions that need no GPU: the precision `auto` gives at each
 * compute capability, bf16 refused below 8.0 at the precision key, --gpu's compute
 * capability syntax, what the CUDA runtime's answers mean (no driver: quiet; a driver that
 * cannot be used: a warning, with the versions), and device_choose on this machine.
 * Run from the project's root (its first argument): it loads experiments/quick.yaml.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_util.h"

/* experiments/quick.yaml with one override, e.g. "precision=bf16" (its value at column 11 of
 * the command line). */
static struct spec *quick(const char *override)
{
    struct spec *s;
    char *msgs = NULL;
    const char *ov[] = {override};
    enum status st = load_capture("experiments/quick.yaml", ov, override ? 1 : 0, &s, &msgs);
    if (st != STATUS_OK) fail_msg("experiments/quick.yaml %s: %s", override, msgs);
    free(msgs);
    return s;
}

/* device_precision's result for s at cc; its messages (caller frees) in *msgs. */
static enum status precision_at(const struct spec *s, int cc, enum plan_precision *p,
                                char **msgs)
{
    size_t len;
    FILE *mem = open_memstream(msgs, &len);
    struct diag d = {.out = mem};
    enum status st = device_precision(s, cc, cc ? "cuda:0 (Tesla T4)" : "the CPU", p, &d);
    fclose(mem);
    return st;
}

/* --------------------------------------------------------------------------------------- */

static void test_auto_precision(void **state)
{
    (void)state;
    assert_int_equal(device_auto_precision(75), PLAN_FP16);
    assert_false(device_cc_has_bf16(75));
    const int bf16[] = {80, 86, 87, 89, 90, 100, 103, 110, 120, 121};
    for (size_t i = 0; i < ARRAY_LEN(bf16); i++) {
        assert_int_equal(device_auto_precision(bf16[i]), PLAN_BF16);
        assert_true(device_cc_has_bf16(bf16[i]));
    }
    assert_int_equal(device_auto_precision(DEVICE_CC_DEFAULT), PLAN_BF16);
    assert_string_equal(device_precision_name(PLAN_FP32), "fp32");
    assert_string_equal(device_precision_name(PLAN_BF16), "bf16");
    assert_string_equal(device_precision_name(PLAN_FP16), "fp16");
}

static void test_cc_parse(void **state)
{
    (void)state;
    const struct {
        const char *text;
        int cc;
    } cases[] = {
        {"sm_75", 75},   {"7.5", 75},     {"sm_80", 80},   {"8.0", 80},     {"sm_86", 86},
        {"8.6", 86},     {"sm_89", 89},   {"sm_90", 90},   {"9.0", 90},     {"sm_100", 100},
        {"10.0", 100},   {"sm_110", 110}, {"11.0", 110},   {"sm_120", 120}, {"12.0", 120},
        {"sm_121", 121}, {"12.1", 121},
        /* not a compute capability, or one below 7.5 */
        {"bogus", -1},   {"", -1},        {"sm_", -1},     {"sm_7", -1},    {"sm_1200", -1},
        {"75", -1},      {"7.", -1},      {"7.55", -1},    {".5", -1},      {"sm_70", -1},
        {"7.0", -1},     {"6.1", -1},     {"sm_075", -1},  {"07.5", -1},    {"sm_90a", -1},
        {" 7.5", -1},    {"7.5 ", -1},    {"SM_75", -1},   {"compute_75", -1},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++)
        if (device_cc_parse(cases[i].text) != cases[i].cc)
            fail_msg("device_cc_parse(\"%s\") = %d, expected %d", cases[i].text,
                     device_cc_parse(cases[i].text), cases[i].cc);
}

static void test_precision_on_a_gpu(void **state)
{
    (void)state;
    const struct {
        const char *override;
        int cc;
        enum plan_precision want;
    } ok[] = {
        {"precision=auto", 75, PLAN_FP16},  {"precision=auto", 80, PLAN_BF16},
        {"precision=auto", 120, PLAN_BF16}, {"precision=fp32", 75, PLAN_FP32},
        {"precision=fp16", 75, PLAN_FP16},  {"precision=fp16", 90, PLAN_FP16},
        {"precision=bf16", 80, PLAN_BF16},  {"precision=bf16", 120, PLAN_BF16},
    };
    for (size_t i = 0; i < ARRAY_LEN(ok); i++) {
        struct spec *s = quick(ok[i].override);
        enum plan_precision p;
        char *msgs;
        if (precision_at(s, ok[i].cc, &p, &msgs) != STATUS_OK || p != ok[i].want)
            fail_msg("%s at compute capability %d: precision %s, expected %s; %s",
                     ok[i].override, ok[i].cc, device_precision_name(p),
                     device_precision_name(ok[i].want), msgs);
        assert_string_equal(msgs, "");
        free(msgs);
        spec_free(s);
    }
    /* bf16 below 8.0: a configuration error at the precision key, naming the GPU. */
    struct spec *s = quick("precision=bf16");
    enum plan_precision p;
    char *msgs;
    assert_int_equal(precision_at(s, 75, &p, &msgs), STATUS_CONFIG);
    if (!strstr(msgs, "<command line>:1:11: error: precision bf16 needs a GPU of compute "
                      "capability 8.0 or newer; cuda:0 (Tesla T4) has compute capability 7.5, "
                      "without bf16 tensor cores") ||
        !strstr(msgs, "hint: precision: fp16 (with loss scaling) or auto (fp16 there)"))
        fail_msg("bf16 at 7.5:\n%s", msgs);
    free(msgs);
    spec_free(s);
}

static void test_precision_on_the_cpu(void **state)
{
    (void)state;
    const char *ok[] = {"precision=auto", "precision=fp32"};
    for (size_t i = 0; i < ARRAY_LEN(ok); i++) {
        struct spec *s = quick(ok[i]);
        enum plan_precision p;
        char *msgs;
        assert_int_equal(precision_at(s, 0, &p, &msgs), STATUS_OK);
        assert_int_equal(p, PLAN_FP32);
        free(msgs);
        spec_free(s);
    }
    const char *bad[] = {"precision=bf16", "precision=fp16"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        struct spec *s = quick(bad[i]);
        enum plan_precision p;
        char *msgs, want[120];
        assert_int_equal(precision_at(s, 0, &p, &msgs), STATUS_CONFIG);
        snprintf(want, sizeof want, "<command line>:1:11: error: precision %s needs a GPU; the "
                 "CPU computes in fp32", bad[i] + 10);
        if (!strstr(msgs, want)) fail_msg("%s on the CPU:\n%s", bad[i], msgs);
        free(msgs);
        spec_free(s);
    }
}

/* --------------------------------------------------------------------------------------- */

static void test_explain(void **state)
{
    (void)state;
    char why[400];
    const char *insufficient = "CUDA driver version is insufficient for CUDA runtime version";
    /* No driver (the runtime then says the driver is insufficient, too): quiet. */
    struct device_cuda_probe none = {.driver = 0, .runtime = 13000, .error = 35,
                                     .error_text = insufficient};
    assert_false(device_cuda_explain(&none, why, sizeof why));
    assert_string_equal(why, "no NVIDIA driver");
    /* Usable GPUs. */
    struct device_cuda_probe two = {.driver = 13000, .runtime = 13000, .count = 2};
    assert_false(device_cuda_explain(&two, why, sizeof why));
    assert_string_equal(why, "2 GPUs");
    /* A driver older than the runtime. */
    struct device_cuda_probe old = {.driver = 12020, .runtime = 13000, .error = 35,
                                    .error_text = insufficient};
    assert_true(device_cuda_explain(&old, why, sizeof why));
    assert_non_null(strstr(why, "the NVIDIA driver supports CUDA up to 12.2, older than this "
                                "runner's CUDA 13.0 runtime (cudaGetDeviceCount: CUDA driver "
                                "version is insufficient"));
    /* A driver, but no GPU visible: CUDA_VISIBLE_DEVICES named when it is set. */
    const char *was = getenv("CUDA_VISIBLE_DEVICES");
    char *saved = was ? strdup(was) : NULL;
    struct device_cuda_probe hidden = {.driver = 13000, .runtime = 13000, .error = 100,
                                       .error_text = "no CUDA-capable device is detected"};
    unsetenv("CUDA_VISIBLE_DEVICES");
    assert_true(device_cuda_explain(&hidden, why, sizeof why));
    assert_string_equal(why, "the NVIDIA driver (CUDA 13.0; runtime 13.0) is installed, but no "
                             "GPU is visible");
    setenv("CUDA_VISIBLE_DEVICES", "", 1);
    assert_true(device_cuda_explain(&hidden, why, sizeof why));
    assert_non_null(strstr(why, "no GPU is visible (CUDA_VISIBLE_DEVICES=\"\")"));
    if (saved)
        setenv("CUDA_VISIBLE_DEVICES", saved, 1);
    else
        unsetenv("CUDA_VISIBLE_DEVICES");
    free(saved);
    struct device_cuda_probe zero = {.driver = 13000, .runtime = 13000};
    assert_true(device_cuda_explain(&zero, why, sizeof why));
    assert_non_null(strstr(why, "no GPU is visible"));
    /* Any other error. */
    struct device_cuda_probe other = {.driver = 12080, .runtime = 13000, .error = 999,
                                      .error_text = "unknown error"};
    assert_true(device_cuda_explain(&other, why, sizeof why));
    assert_string_equal(why, "the NVIDIA driver (CUDA 12.8; runtime 13.0) is installed, but "
                             "cudaGetDeviceCount failed: unknown error");
}

/* device: auto on this machine: a GPU with the precision auto gives at its capability, or
 * the CPU in fp32, with a warning exactly when a driver is installed but unusable. */
static void test_choose_here(void **state)
{
    (void)state;
    char why[400], broken[400];
    int n = device_cuda_count(why, sizeof why);
    bool bad = device_cuda_broken(broken, sizeof broken);
    struct spec *s = quick("device=auto");
    struct device_choice c;
    char *msgs;
    size_t len;
    FILE *mem = open_memstream(&msgs, &len);
    struct diag d = {.out = mem};
    enum status st = device_choose(s, &c, &d);
    fclose(mem);
    assert_int_equal(st, STATUS_OK);
    if (n > 0) {
        assert_false(bad);
        assert_true(c.cc >= DEVICE_CC_MIN);
        assert_string_equal(c.precision, device_precision_name(device_auto_precision(c.cc)));
        assert_string_equal(c.warning, "");
        assert_string_equal(msgs, "");
    } else {
        assert_ptr_equal(c.be, &backend_cpu);
        assert_string_equal(c.precision, "fp32");
        assert_int_equal(c.cc, 0);
        if (bad) {
            char want[500];
            snprintf(want, sizeof want, "runner: warning: %s; running on the CPU\n", broken);
            assert_string_equal(msgs, want);
            assert_non_null(strstr(c.warning, broken));
        } else {
            assert_string_equal(c.warning, "");
            assert_string_equal(msgs, "");
#ifdef RUNNER_HAVE_CUDA
            assert_string_equal(why, "no NVIDIA driver");
#endif
        }
    }
    printf("this machine: %d GPU%s (%s)%s%s\n", n, n == 1 ? "" : "s", why,
           bad ? "; unusable driver: " : "", bad ? broken : "");
    free(msgs);
    spec_free(s);
}

int main(int argc, char **argv)
{
    if (argc > 1 && chdir(argv[1]) != 0) {
        fprintf(stderr, "usage: test_device SOURCE_DIR\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auto_precision),     cmocka_unit_test(test_cc_parse),
        cmocka_unit_test(test_precision_on_a_gpu), cmocka_unit_test(test_precision_on_the_cpu),
        cmocka_unit_test(test_explain),            cmocka_unit_test(test_choose_here),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
