/*
 * test_plan.c: the plan as a whole. Lifetime packing (no two live buffers overlap); a full
 * ResNet-50 training step (forward, loss, backward, SGD and Adam updates) through the CPU plan
 * with no allocation after planning, counted by wrapping malloc and its kin; the same seed and
 * thread count giving bit-identical weights; a finite-difference check of a small network's
 * gradients through the plan; and the activation arena smaller than every buffer side by side.
 * Run from CTest with the project's source directory as its argument.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "graph.h"
#include "plan.h"
#include "test_util.h"
#include "yaml_load.h"

/* --------------------------------------------------------------------------------------- */
/* Counting allocations: malloc and its kin, wrapped (not under the sanitizers, which own them) */

#if defined(__SANITIZE_ADDRESS__)
#define COUNTING 0
#else
#define COUNTING 1
/*
 * Allocations while counting, by who asked: this program (the runner's code is linked into
 * it) or a library. oneDNN's C API allocates a little bookkeeping in every execute call (its
 * argument map); that is counted apart, and must stay small.
 */
static int counting;
static __thread int inside;
static long ours, theirs;
static size_t largest;
static void *self_base;
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void *__libc_memalign(size_t align, size_t n);
extern void __libc_free(void *p);

static void count(size_t n, void *caller)
{
    if (!__atomic_load_n(&counting, __ATOMIC_RELAXED) || inside) return;
    inside = 1;
    Dl_info info;
    if (dladdr(caller, &info) && info.dli_fbase == self_base) {
        __atomic_add_fetch(&ours, 1, __ATOMIC_RELAXED);
    } else {
        __atomic_add_fetch(&theirs, 1, __ATOMIC_RELAXED);
        if (n > largest) largest = n;
    }
    inside = 0;
}

void *malloc(size_t n)
{
    count(n, __builtin_return_address(0));
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
    count(n * size, __builtin_return_address(0));
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
    count(n, __builtin_return_address(0));
    return __libc_realloc(p, n);
}

void *aligned_alloc(size_t align, size_t n)
{
    count(n, __builtin_return_address(0));
    return __libc_memalign(align, n);
}

void *memalign(size_t align, size_t n)
{
    count(n, __builtin_return_address(0));
    return __libc_memalign(align, n);
}

int posix_memalign(void **p, size_t align, size_t n)
{
    count(n, __builtin_return_address(0));
    *p = __libc_memalign(align, n);
    return *p ? 0 : 12;
}

void free(void *p)
{
    __libc_free(p);
}
#endif

/* --------------------------------------------------------------------------------------- */
/* Helpers */

struct net {
    struct arena a;
    struct graph *g;
    struct plan *p;
    size_t in_n;
};

static void net_open(struct net *t, const char *yaml, int batch, uint64_t seed)
{
    memset(t, 0, sizeof *t);
    struct source *src = arena_alloc(&t->a, sizeof *src);
    *src = (struct source){"net.yaml", ".", yaml, strlen(yaml)};
    struct diag d = {.out = stderr};
    struct node *root;
    struct shape data = {3, {3, 32, 32}};
    assert_int_equal(yaml_load_text(&t->a, &d, src, yaml, strlen(yaml), 1, 1, &root), STATUS_OK);
    assert_int_equal(graph_build(root, &data, &d, &t->g), STATUS_OK);
    struct plan_options o = {.batch = batch, .optimizer_slots = 2, .seed = seed};
    assert_int_equal(plan_create(t->g, &backend_cpu, &o, &d, &t->p), STATUS_OK);
    plan_init_params(t->p, seed);
    t->in_n = (size_t)batch * (size_t)shape_numel(&t->g->input);
}

static void net_close(struct net *t)
{
    plan_free(t->p);
    graph_free(t->g);
    arena_free(&t->a);
}

static void batch_of(size_t n, int batch, uint64_t seed, float *x, int32_t *labels)
{
    uint64_t s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        x[i] = (float)((double)(s >> 11) * 0x1.0p-53 * 2 - 1);
    }
    for (int i = 0; i < batch; i++) labels[i] = (int32_t)((i * 7 + seed) % 10);
}

/* --------------------------------------------------------------------------------------- */

static void test_pack(void **state)
{
    (void)state;
    /* Three buffers: a and c never live together and share memory; b meets both. */
    size_t size[] = {100, 50, 100}, off[3];
    int first[] = {0, 0, 2}, last[] = {1, 3, 3};
    size_t total = plan_pack(3, size, first, last, 64, off);
    assert_int_equal(total, 128 + 64);
    assert_int_equal(off[0], off[2]);
    /* Random lifetimes: no two buffers live at one step overlap. */
    enum { N = 300 };
    size_t sz[N], of[N], sum = 0;
    int fi[N], la[N];
    uint64_t s = 99;
    for (int i = 0; i < N; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        sz[i] = 1 + s % 5000;
        fi[i] = (int)(s >> 20) % 100;
        la[i] = fi[i] + (int)(s >> 40) % 20;
        sum += (sz[i] + 63) / 64 * 64;
    }
    total = plan_pack(N, sz, fi, la, 64, of);
    assert_true(total < sum);
    for (int i = 0; i < N; i++) {
        assert_int_equal(of[i] % 64, 0);
        assert_true(of[i] + sz[i] <= total);
        for (int j = 0; j < i; j++) {
            bool live = fi[i] <= la[j] && fi[j] <= la[i];
            bool overlap = of[i] < of[j] + sz[j] && of[j] < of[i] + sz[i];
            if (live && overlap) fail_msg("buffers %d and %d live together and overlap", i, j);
        }
    }
}

/* One full ResNet-50 step through the plan; a second one allocates nothing. */
static void test_resnet50_step_allocates_nothing(void **state)
{
    (void)state;
    char *yaml = slurp("experiments/models/resnet50.yaml");
    assert_non_null(yaml);
    struct net t;
    const int batch = 2;
    net_open(&t, yaml, batch, 1);
    float *x = malloc(t.in_n * sizeof *x);
    int32_t labels[2];
    batch_of(t.in_n, batch, 1, x, labels);
    struct plan_sgd sgd = {.lr = 0.01, .momentum = 0.9, .weight_decay = 5e-4, .nesterov = true};
    struct plan_adam adam = {.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
    double loss[3];
    for (int step = 0; step < 3; step++) {
#if COUNTING
        if (step == 2) __atomic_store_n(&counting, 1, __ATOMIC_RELAXED);
#endif
        plan_set_input(t.p, x, labels);
        plan_forward(t.p, true);
        loss[step] = plan_loss(t.p, 0.1);
        plan_backward(t.p, NULL);
        if (step == 1)
            plan_sgd_step(t.p, &sgd, true);
        else
            plan_adam_step(t.p, &adam, step + 1);
        plan_forward(t.p, false);
#if COUNTING
        __atomic_store_n(&counting, 0, __ATOMIC_RELAXED);
#endif
    }
    for (int i = 0; i < 3; i++) assert_true(isfinite(loss[i]) && loss[i] > 0);
#if COUNTING
    if (ours) fail_msg("a planned ResNet-50 step allocated %ld times in the runner's code", ours);
    print_message("a ResNet-50 step: 0 allocations by the runner; %ld small ones inside "
                  "oneDNN's execute calls (largest %zu bytes)\n", theirs, largest);
    /* Bookkeeping only: nothing the size of a tensor or of the workspace (a ResNet-50 batch
     * of 2 has tensors of 32 KiB to 4 MiB and a 0.5 MiB workspace; oneDNN 2.6 allocates one
     * 72 KiB buffer inside an execute call). */
    if (largest > 128 * 1024) fail_msg("oneDNN allocated %zu bytes during a step", largest);
#endif
    free(x);
    free(yaml);
    net_close(&t);
}

/* The same seed and threads: bit-identical weights after three steps with dropout. */
static void test_determinism(void **state)
{
    (void)state;
    char *base = slurp("experiments/models/resnet8.yaml");
    assert_non_null(base);
    const char *from = "  - global_avg_pool\n";
    char *at = strstr(base, from);
    assert_non_null(at);
    size_t n = strlen(base) + 64;
    char *yaml = malloc(n);
    snprintf(yaml, n, "%.*s%s  - {name: drop, op: dropout, p: 0.3}\n%s", (int)(at - base), base,
             from, at + strlen(from));
    float *w[3] = {0};
    size_t nw = 0;
    for (int run = 0; run < 3; run++) {
        struct net t;
        net_open(&t, yaml, 8, run == 2 ? 2 : 1);
        float *x = malloc(t.in_n * sizeof *x);
        int32_t labels[8];
        struct plan_sgd sgd = {.lr = 0.05, .momentum = 0.9};
        for (int step = 0; step < 3; step++) {
            batch_of(t.in_n, 8, (uint64_t)step, x, labels);
            plan_set_input(t.p, x, labels);
            plan_forward(t.p, true);
            (void)plan_loss(t.p, 0.0);
            plan_backward(t.p, NULL);
            plan_sgd_step(t.p, &sgd, step == 0);
        }
        const struct graph_tensor *fc = graph_find_tensor(t.g, "fc.weight");
        nw = (size_t)op_tensor_numel(&fc->t);
        w[run] = malloc(nw * sizeof(float));
        plan_get_tensor(t.p, fc, w[run]);
        free(x);
        net_close(&t);
    }
    assert_memory_equal(w[0], w[1], nw * sizeof(float));
    assert_memory_not_equal(w[0], w[2], nw * sizeof(float)); /* another seed, another run */
    for (int i = 0; i < 3; i++) free(w[i]);
    free(yaml);
    free(base);
}

/* Gradients of the loss through the whole plan against central differences (fp32). */
static void test_finite_differences(void **state)
{
    (void)state;
    const char *yaml = "input: [3, 8, 8]\n"
                       "graph:\n"
                       "  - {name: c1, op: conv, out: 6, kernel: 3, pad: 1, bias: true}\n"
                       "  - {name: bn, op: batchnorm}\n"
                       "  - relu\n"
                       "  - {name: pool, op: avgpool, kernel: 2}\n"
                       "  - {name: c2, op: conv, out: 5, kernel: 3, stride: 2, pad: 1}\n"
                       "  - global_avg_pool\n"
                       "  - {name: fc, op: linear, out: 10}\n";
    struct arena a = {0};
    struct source src = {"fd.yaml", ".", yaml, strlen(yaml)};
    struct diag d = {.out = stderr};
    struct node *root;
    struct graph *g;
    struct plan *p;
    assert_int_equal(yaml_load_text(&a, &d, &src, yaml, strlen(yaml), 1, 1, &root), STATUS_OK);
    assert_int_equal(graph_build(root, NULL, &d, &g), STATUS_OK);
    struct plan_options o = {.batch = 4, .seed = 3};
    assert_int_equal(plan_create(g, &backend_cpu, &o, &d, &p), STATUS_OK);
    plan_init_params(p, 3);
    size_t in_n = 4 * 3 * 8 * 8;
    float *x = malloc(in_n * sizeof *x);
    int32_t labels[4];
    batch_of(in_n, 4, 5, x, labels);
    plan_set_input(p, x, labels);
    plan_forward(p, true);
    (void)plan_loss(p, 0.0);
    plan_backward(p, NULL);

    const char *names[] = {"c1.weight", "c1.bias", "bn.weight", "bn.bias", "c2.weight", "fc.weight",
                           "fc.bias"};
    const double h = 1e-3;
    for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
        const struct graph_tensor *t = graph_find_tensor(g, names[k]);
        size_t n = (size_t)op_tensor_numel(&t->t);
        float *w = malloc(n * sizeof *w), *grad = malloc(n * sizeof *grad);
        plan_get_tensor(p, t, w);
        plan_get_grad(p, t, grad);
        for (size_t i = 0; i < n; i += 1 + n / 12) {
            float keep = w[i];
            double l[2];
            for (int s = 0; s < 2; s++) {
                w[i] = (float)(keep + (s ? -h : h));
                plan_set_tensor(p, t, w);
                plan_forward(p, true);
                l[s] = plan_loss(p, 0.0);
            }
            w[i] = keep;
            plan_set_tensor(p, t, w);
            double num = (l[0] - l[1]) / (2 * h), ana = grad[i];
            if (fabs(num - ana) > 2e-3 + 3e-2 * fmax(fabs(num), fabs(ana)))
                fail_msg("%s[%zu]: the plan's gradient %.6g, central difference %.6g (h %g; "
                         "tolerance 2e-3 + 3e-2 relative)", names[k], i, ana, num, h);
        }
        free(w);
        free(grad);
    }
    free(x);
    plan_free(p);
    graph_free(g);
    arena_free(&a);
}

/* Lifetimes let ResNet-50's activations share memory. */
static void test_activation_arena(void **state)
{
    (void)state;
    char *yaml = slurp("experiments/models/resnet50.yaml");
    struct arena a = {0};
    struct source src = {"r50.yaml", ".", yaml, strlen(yaml)};
    struct diag d = {.out = stderr};
    struct node *root;
    struct graph *g;
    struct plan *p;
    assert_int_equal(yaml_load_text(&a, &d, &src, yaml, strlen(yaml), 1, 1, &root), STATUS_OK);
    assert_int_equal(graph_build(root, NULL, &d, &g), STATUS_OK);
    struct plan_options o = {.batch = 64, .optimizer_slots = 2, .sizes_only = true};
    assert_int_equal(plan_create(g, &backend_cpu, &o, &d, &p), STATUS_OK);
    size_t outputs = 0;
    for (size_t i = 0; i < g->nlayers; i++) outputs += (size_t)shape_numel(&g->layers[i].out);
    outputs *= 64 * sizeof(float);
    /* Outputs, their gradients and the rest would take more than twice the outputs. */
    assert_true(p->sizes.activations < outputs * 3 / 5);
    assert_int_equal(p->sizes.optimizer, 2 * p->sizes.grads);
    assert_true(p->sizes.grads >= (size_t)g->nparams * 4);
    plan_free(p);
    graph_free(g);
    arena_free(&a);
    free(yaml);
}

int main(int argc, char **argv)
{
    if (argc > 1 && chdir(argv[1]) != 0) return 1;
#if COUNTING
    Dl_info info;
    if (dladdr((void *)main, &info)) self_base = info.dli_fbase;
#endif
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pack),
        cmocka_unit_test(test_resnet50_step_allocates_nothing),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_finite_differences),
        cmocka_unit_test(test_activation_arena),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
