/*
 * test_plan.c: the plan as a whole. Lifetime packing (no two live buffers overlap); a full
 * ResNet-50 training step (forward, loss, backward, SGD and Adam updates) through the CPU plan
 * with no allocation after planning, counted by wrapping malloc and its kin; the same seed and
 * thread count giving bit-identical weights; finite-difference checks of the gradients through
 * the plan, of a small plain network and of a residual one (projection and identity shortcuts,
 * adds feeding adds; parameters and input; Winograd and direct convolutions); and the
 * activation arena smaller than every buffer side by side.
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
#include "onednn.h"
#include "plan.h"
#include "test_net.h"
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

/* The plan of yaml for CIFAR-10's images at batch, with two optimizer slots, its parameters
 * initialized from seed. */
static void net_open(struct net *t, const char *yaml, int batch, uint64_t seed)
{
    struct shape data = {3, {3, 32, 32}};
    struct plan_options o = {.batch = batch, .optimizer_slots = 2, .seed = seed};
    net_open_text(t, yaml, &data, &o);
    plan_init_params(t->p, seed);
}

static void batch_of(size_t n, int batch, uint64_t seed, float *x, int32_t *labels)
{
    net_batch(n, seed, x);
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
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
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

/* --------------------------------------------------------------------------------------- */
/* Finite differences: gradients of the loss through the whole plan (fp32) */

/* A plan of an inline graph (input 3x8x8) after a training forward, loss and backward. */
struct fd {
    struct arena a;
    struct graph *g;
    struct plan *p;
    float *x; /* the batch (N, C, H, W), perturbed in place for the input's gradient */
    int32_t labels[4];
    double loss; /* at the unperturbed values */
    const char *what; /* the network and options, for messages */
    int checked, kinks; /* elements compared; those that needed the allowance for a kink */
};

static void fd_open(struct fd *f, const char *yaml, const struct plan_options *o,
                    const char *what)
{
    memset(f, 0, sizeof *f);
    struct source *src = arena_alloc(&f->a, sizeof *src);
    *src = (struct source){"fd.yaml", ".", yaml, strlen(yaml)};
    struct diag d = {.out = stderr};
    struct node *root;
    assert_int_equal(yaml_load_text(&f->a, &d, src, yaml, strlen(yaml), 1, 1, &root), STATUS_OK);
    assert_int_equal(graph_build(root, NULL, &d, &f->g), STATUS_OK);
    assert_int_equal(o->batch, 4);
    assert_int_equal(plan_create(f->g, &backend_cpu, o, &d, &f->p), STATUS_OK);
    plan_init_params(f->p, o->seed);
    size_t in_n = 4 * (size_t)shape_numel(&f->g->input);
    f->x = malloc(in_n * sizeof *f->x);
    batch_of(in_n, 4, 5, f->x, f->labels);
    plan_set_input(f->p, f->x, f->labels);
    plan_forward(f->p, true);
    f->loss = plan_loss(f->p, 0.0);
    plan_backward(f->p, NULL);
    f->what = what;
}

static void fd_close(struct fd *f)
{
    free(f->x);
    plan_free(f->p);
    graph_free(f->g);
    arena_free(&f->a);
}

/* Writes v into the plan: tensor t, or the input batch when t is NULL. */
static void fd_put(struct fd *f, const struct graph_tensor *t, const float *v)
{
    if (t)
        plan_set_tensor(f->p, t, v);
    else
        plan_set_input(f->p, v, f->labels);
}

/* The central difference of the training loss in element i of v (the values of tensor t, or
 * of the input when t is NULL) with step h; *spread: the right one-sided difference less the
 * left one, which a kink within h of the point (a ReLU input crossing zero) makes large. */
static double fd_diff(struct fd *f, const struct graph_tensor *t, float *v, size_t i, double h,
                      double *spread)
{
    float keep = v[i];
    double l[2];
    for (int s = 0; s < 2; s++) {
        v[i] = (float)(keep + (s ? -h : h));
        fd_put(f, t, v);
        plan_forward(f->p, true);
        l[s] = plan_loss(f->p, 0.0);
    }
    v[i] = keep;
    fd_put(f, t, v);
    *spread = (l[0] - f->loss) / h - (f->loss - l[1]) / h;
    return (l[0] - l[1]) / (2 * h);
}

/*
 * The gradient grad (n) of v (n), the values of tensor t (NULL: the input), against central
 * differences of the training loss, in about a dozen elements; tolerance 2e-3 + 3e-2
 * relative. Where a kink lies within the step the central difference is off by up to half
 * the spread of the one-sided ones: an element within the tolerance of that range counts as
 * a kink, and one outside it is tried again with a tenth of the step before it fails.
 */
static void fd_check(struct fd *f, const char *name, const struct graph_tensor *t, float *v,
                     const float *grad, size_t n)
{
    const double steps[] = {1e-3, 1e-4};
    for (size_t i = 0; i < n; i += 1 + n / 12) {
        double ana = grad[i], num = 0, spread = 0, excess = 0, h = 0;
        size_t k = 0;
        for (; k < ARRAY_LEN(steps); k++) {
            h = steps[k];
            num = fd_diff(f, t, v, i, h, &spread);
            excess = fabs(num - ana) - (2e-3 + 3e-2 * fmax(fabs(num), fabs(ana)));
            if (excess <= fabs(spread) / 2) break;
        }
        if (k == ARRAY_LEN(steps))
            fail_msg("%s: %s[%zu]: the plan's gradient %.6g, central difference %.6g (h %g; "
                     "one-sided differences %.3g apart; tolerance 2e-3 + 3e-2 relative)",
                     f->what, name, i, ana, num, h, spread);
        f->checked++;
        f->kinks += k > 0 || excess > 0;
    }
}

/* Every trained tensor's gradient and, with input_grad, the input's; at most one element in
 * ten near a kink. */
static void fd_check_all(struct fd *f)
{
    /* The backward's gradients, read before any other forward (which may reuse the memory of
     * the input's gradient). */
    size_t nt = f->g->ntensors, in_n = 4 * (size_t)shape_numel(&f->g->input);
    float **grads = calloc(nt, sizeof *grads), *dx = NULL;
    for (size_t k = 0; k < nt; k++) {
        const struct graph_tensor *t = &f->g->tensors[k];
        if (t->t.role != TENSOR_PARAM) continue;
        grads[k] = malloc((size_t)op_tensor_numel(&t->t) * sizeof **grads);
        plan_get_grad(f->p, t, grads[k]);
    }
    if (f->p->opt.input_grad) {
        dx = malloc(in_n * sizeof *dx);
        plan_get_input_grad(f->p, dx);
    }
    for (size_t k = 0; k < nt; k++) {
        const struct graph_tensor *t = &f->g->tensors[k];
        if (!grads[k]) continue;
        size_t n = (size_t)op_tensor_numel(&t->t);
        float *w = malloc(n * sizeof *w);
        plan_get_tensor(f->p, t, w);
        fd_check(f, t->name, t, w, grads[k], n);
        free(w);
        free(grads[k]);
    }
    if (dx) fd_check(f, "input", NULL, f->x, dx, in_n);
    free(dx);
    free(grads);
    if (f->kinks * 10 > f->checked)
        fail_msg("%s: %d of %d elements checked sat at kinks", f->what, f->kinks, f->checked);
}

/* A plain network: convolution with bias, batchnorm, relu, pooling, linear. */
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
    struct fd f;
    fd_open(&f, yaml, &(struct plan_options){.batch = 4, .seed = 3}, "plain network");
    fd_check_all(&f);
    fd_close(&f);
}

/*
 * Residual blocks, where add hands its output's gradient to both inputs, sharing buffers where
 * it can (runner/backend_cpu.c, cpu_grad_alias): bottlenecks with a projection shortcut
 * (channels, then stride 2) and with the identity (the add's second input is also read by the
 * next block's first convolution); blocks joined by add alone, so one add feeds the next
 * directly; and a block inside a block, whose add is the body of the outer add, with the same
 * input reaching a convolution and both adds. With the input's gradient, Winograd and direct
 * convolutions. The batchnorm before the pooling keeps the logits near 1: without it the sums
 * of the last blocks make the loss so curved and kinked that central differences with steps
 * that fp32 can resolve no longer converge.
 */
static void test_finite_differences_residual(void **state)
{
    (void)state;
    const char *yaml = "input: [3, 8, 8]\n"
                       "blocks:\n"
                       "  bottleneck:\n"
                       "    params: [width, out, stride]\n"
                       "    body:\n"
                       "      - {name: conv1, op: conv, out: $width, kernel: 1}\n"
                       "      - {name: bn1, op: batchnorm}\n"
                       "      - relu\n"
                       "      - {name: conv2, op: conv, out: $width, kernel: 3, stride: $stride, "
                       "pad: 1}\n"
                       "      - {name: bn2, op: batchnorm}\n"
                       "      - relu\n"
                       "      - {name: conv3, op: conv, out: $out, kernel: 1}\n"
                       "      - {name: bn3, op: batchnorm}\n"
                       "    shortcut:\n"
                       "      - {name: downsample.0, op: conv, out: $out, kernel: 1, stride: "
                       "$stride}\n"
                       "      - {name: downsample.1, op: batchnorm}\n"
                       "    join: [add, relu]\n"
                       "  plain:\n"
                       "    params: [width]\n"
                       "    body:\n"
                       "      - {name: conv1, op: conv, out: $width, kernel: 3, pad: 1}\n"
                       "    join: [add]\n"
                       "  nested:\n"
                       "    params: [width]\n"
                       "    body:\n"
                       "      - {name: inner, block: plain, width: $width}\n"
                       "    join: [add]\n"
                       "graph:\n"
                       "  - {name: conv1, op: conv, out: 4, kernel: 3, pad: 1}\n"
                       "  - {name: bn1, op: batchnorm}\n"
                       "  - relu\n"
                       "  - {name: layer1, stage: bottleneck, repeat: 2, width: 4, out: 8, "
                       "stride: 1}\n"
                       "  - {name: layer2, stage: bottleneck, repeat: 1, width: 4, out: 8, "
                       "stride: 2}\n"
                       "  - {name: layer3, stage: plain, repeat: 2, width: 8}\n"
                       "  - {name: layer4, block: nested, width: 8}\n"
                       "  - {name: bn_out, op: batchnorm}\n"
                       "  - global_avg_pool\n"
                       "  - {name: fc, op: linear, out: 10}\n";
    for (int direct = 0; direct < 2; direct++) {
        if (!direct && !onednn_winograd()) { /* auto is direct: the next pass */
            print_message("residual network, Winograd convolutions: skipped: oneDNN %d.x has "
                          "none\n", DNNL_VERSION_MAJOR);
            continue;
        }
        struct fd f;
        struct plan_options o = {.batch = 4, .seed = 9, .input_grad = true, .conv_direct = direct};
        fd_open(&f, yaml, &o, direct ? "residual network, direct convolutions"
                                     : "residual network");
        /* The shapes the test is about: projections, and adds reading adds. */
        assert_non_null(graph_find_tensor(f.g, "layer1.0.downsample.0.weight"));
        assert_non_null(graph_find_tensor(f.g, "layer2.0.downsample.1.weight"));
        assert_null(graph_find_tensor(f.g, "layer1.1.downsample.0.weight"));
        int adds = 0, add_of_add = 0;
        for (size_t i = 0; i < f.g->nlayers; i++) {
            const struct graph_layer *l = &f.g->layers[i];
            if (l->op != OP_KIND_ADD) continue;
            adds++;
            for (int j = 0; j < l->nin; j++)
                add_of_add += l->in[j] >= 0 && f.g->layers[l->in[j]].op == OP_KIND_ADD;
        }
        assert_int_equal(adds, 7);
        /* layer3.1's shortcut; layer4's input to both its adds; layer4's body */
        assert_int_equal(add_of_add, 4);
        fd_check_all(&f);
        print_message("%s: %d gradient elements checked, %d of them near a kink\n", f.what,
                      f.checked, f.kinks);
        fd_close(&f);
    }
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
    assert_int_equal(graph_build_for(root, NULL, TEST_CLASSES, &d, &g), STATUS_OK);
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
    if (dladdr(&largest, &info)) self_base = info.dli_fbase; /* an object of this program */
#endif
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pack),
        cmocka_unit_test(test_resnet50_step_allocates_nothing),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_finite_differences),
        cmocka_unit_test(test_finite_differences_residual),
        cmocka_unit_test(test_activation_arena),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
