/*
 * test_cuda_plan_step.c SOURCE_DIR: whole training steps on the CUDA backend, against the CPU
 * backend and against itself. Exit 77 (skipped) without a usable GPU; with
 * RUNNER_REQUIRE_GPU=1 that is a failure.
 *
 * - ResNet-50 (experiments/models/resnet50.yaml, CIFAR stem), batch 8 at 32x32, from the same
 *   weights and batch on both backends: random weights, random batchnorm parameters and
 *   statistics (as tests/parity/resnet50_step.py draws them) with every bottleneck's last
 *   batchnorm scaled by 0.2, nearer torchvision's zero_init_residual. (At full scale this
 *   network's gradients below the top layers move by 100% when the weights are merely
 *   rounded to bf16: no bf16 comparison could mean anything there. Scaled, they move by about
 *   25% -- what PyTorch's own bf16 autocast differs from its fp32 by.) Compared: the evaluation
 *   logits, the training logits and loss (label smoothing 0.1), every gradient, the changes of
 *   the running statistics by the step (their values would be mostly the start, which every
 *   side shares) and num_batches_tracked's, exactly; the update of every weight and the
 *   optimizer state by one SGD step (momentum, Nesterov, weight decay) and by one Adam step
 *   from the same given gradients; and the update of every weight by one whole
 *   plan_train_step. A reference that is all zero (or a counter that did not move) is a
 *   failure: nothing could fail against it.
 *   The error is relative in the 2-norm, |got - want| / |want| over a tensor. Its limit
 *   follows the tensor's conditioning, measured on the CPU: fp32 (TF32 off) allows
 *   max(1e-4, 4 x the difference between the CPU's direct and Winograd convolutions -- two
 *   correct fp32 computations), at most 0.1; bf16 allows max(2e-2, 4 x how far the CPU's fp32
 *   result moves when the weights and the batch are rounded to bf16), at most 0.8 (a tensor
 *   whose gradient were lost or unrelated would be off by 1 or more). Both backends get the
 *   weights and batch already rounded to the compute type. The optimizer steps from given
 *   gradients (rounded to the compute type, so both sides update from the same numbers): 1e-5,
 *   or, for an update read back as w - w0, 4 x 2^-24 |w0| / |update| where that is more (the
 *   fp32 rounding of w on each side).
 * - CUDA graphs: two plans with deterministic algorithms, one replaying the captured step and
 *   one running it kernel by kernel (no_graph), from the same weights, three plan_train_step
 *   calls each (Adam, a learning rate that changes every step, gradient clipping, an EMA,
 *   dropout, a new batch each step) in fp32, bf16 and fp16 (fp16 eight, its first ones may be
 *   skipped while the loss scale falls, its last two must be applied): losses, gradient norms,
 *   weights, buffers, optimizer state and evaluation logits equal bit for bit, and every weight
 *   moved by the steps.
 * - CUDA graphs without deterministic algorithms, so that cuDNN's fused batchnorm (taken only
 *   then) is replayed inside the graph: one plan replaying, two kernel by kernel, SGD steps
 *   from the same weights and batches; the replay against the first within 4 x the two
 *   kernel-by-kernel plans' own difference (the reductions' noise), at least 1e-4 in fp32 and
 *   5u in bf16 and fp16, at most 0.1: the losses, every weight's update, the running
 *   statistics' changes, the momentum and EMA and the evaluation logits.
 * - Checkpoints across backends (ResNet-8, fp32, TF32 off): two SGD steps on the CPU,
 *   checkpoint_save, checkpoint_resume into a CUDA plan (every tensor and optimizer value read
 *   back equal bit for bit, the update count and the count of training forwards carried), two
 *   more steps there; against four steps on the CPU: the updates of the last two steps within
 *   1e-3 relative, the running statistics' changes in them and the momentum within 1e-3,
 *   num_batches_tracked exact (and moved). Then the other direction, GPU to CPU, against four
 *   steps on the GPU.
 */
#ifndef RUNNER_HAVE_CUDA
#error "test_cuda_plan_step.c is built only with the CUDA backend (RUNNER_HAVE_CUDA)"
#endif

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

#include "checkpoint.h"
#include "graph.h"
#include "plan.h"
#include "rng.h"
#include "step.h"
#include "plan_compare.h"
#include "test_util.h"

#define BATCH 8

/* --------------------------------------------------------------------------------------- */
/* Networks, plans, tensors */

struct model {
    struct arena a;
    struct graph *g;
    char *yaml;
};

/* The graph file at path; with dropout, a dropout layer (p 0.2) after its global_avg_pool. */
static void model_open(struct model *m, const char *path, bool dropout)
{
    memset(m, 0, sizeof *m);
    char *text = slurp(path);
    if (!text) fail_msg("cannot read %s", path);
    if (dropout) {
        char *at = strstr(text, "global_avg_pool");
        assert_non_null(at);
        at = strchr(at, '\n') + 1;
        const char *line = "  - {name: drop, op: dropout, p: 0.2}\n";
        size_t n = strlen(text) + strlen(line) + 1;
        m->yaml = malloc(n);
        snprintf(m->yaml, n, "%.*s%s%s", (int)(at - text), text, line, at);
        free(text);
    } else {
        m->yaml = text;
    }
    m->g = graph_of_text(&m->a, path, m->yaml);
    assert_non_null(m->g);
}

static void model_close(struct model *m)
{
    graph_free(m->g);
    arena_free(&m->a);
    free(m->yaml);
}

/* Options of a plan at batch 8 (the CPU ignores the GPU's fields). */
static struct plan_options options(enum plan_precision pr, int slots)
{
    return (struct plan_options){.batch = BATCH, .optimizer_slots = slots, .seed = 11,
                                 .precision = pr, .tf32 = false, .device = 0};
}

static struct plan *plan_open(const struct graph *g, const struct backend *be,
                              struct plan_options o)
{
    struct diag d = {.out = stderr};
    struct plan *p;
    assert_int_equal(plan_create(g, be, &o, &d, &p), STATUS_OK);
    return p;
}

static size_t numel(const struct graph_tensor *t)
{
    return (size_t)op_tensor_numel(&t->t);
}

static size_t bytes(const struct graph_tensor *t)
{
    return numel(t) * (t->t.dtype == TENSOR_I64 ? 8 : 4);
}

/* Every tensor of p (parameters and buffers) in PyTorch's layout, one buffer each. */
static void **snap_take(struct plan *p)
{
    const struct graph *g = p->g;
    void **v = calloc(g->ntensors, sizeof *v);
    for (size_t i = 0; i < g->ntensors; i++) {
        v[i] = malloc(bytes(&g->tensors[i]));
        plan_get_tensor(p, &g->tensors[i], v[i]);
    }
    return v;
}

static void snap_put(struct plan *p, void **v)
{
    for (size_t i = 0; i < p->g->ntensors; i++) plan_set_tensor(p, &p->g->tensors[i], v[i]);
}

/* A copy of v with its floats rounded to bits significand bits. */
static void **snap_rounded(const struct graph *g, void **v, int bits)
{
    void **r = calloc(g->ntensors, sizeof *r);
    for (size_t i = 0; i < g->ntensors; i++) {
        const struct graph_tensor *t = &g->tensors[i];
        r[i] = malloc(bytes(t));
        memcpy(r[i], v[i], bytes(t));
        if (t->t.dtype == TENSOR_F32)
            for (size_t j = 0; j < numel(t); j++)
                ((float *)r[i])[j] = round_bits(((float *)r[i])[j], bits);
    }
    return r;
}

static void snap_free(const struct graph *g, void **v)
{
    for (size_t i = 0; i < g->ntensors; i++) free(v[i]);
    free(v);
}

/* Every optimizer value of p set to 0. */
static void zero_states(struct plan *p)
{
    const struct graph *g = p->g;
    for (size_t i = 0; i < g->ntensors; i++) {
        const struct graph_tensor *t = &g->tensors[i];
        if (t->t.role != TENSOR_PARAM) continue;
        float *z = calloc(numel(t), sizeof *z);
        for (int k = 0; k < p->opt.optimizer_slots; k++) plan_set_state(p, t, k, z);
        free(z);
    }
}

/* Random batchnorm parameters and statistics (tests/parity/resnet50_step.py's draws), each
 * bottleneck's last batchnorm weight scaled by bn3_scale. */
static void randomize_bn(struct plan *p, uint64_t seed, double bn3_scale)
{
    const struct graph *g = p->g;
    for (size_t li = 0; li < g->nlayers; li++) {
        const struct graph_layer *l = &g->layers[li];
        if (l->op != OP_KIND_BATCHNORM) continue;
        size_t len = strlen(l->name);
        bool bn3 = len >= 4 && strcmp(l->name + len - 4, ".bn3") == 0;
        for (size_t i = l->tensor0; i < l->tensor0 + l->ntensors; i++) {
            const struct graph_tensor *t = &g->tensors[i];
            uint64_t key = rng_bits(seed, i);
            const char *s = t->t.suffix;
            if (t->t.dtype == TENSOR_I64) {
                int64_t count = (int64_t)(rng_bits(key, 0) % 1000);
                plan_set_tensor(p, t, &count);
                continue;
            }
            float *v = malloc(numel(t) * sizeof *v);
            for (size_t j = 0; j < numel(t); j++) {
                double u = rng_uniform(key, j), z = rng_normal(key, j);
                if (strcmp(s, "weight") == 0)
                    v[j] = (float)((0.75 + 0.5 * u) * (bn3 ? bn3_scale : 1));
                else if (strcmp(s, "running_var") == 0)
                    v[j] = (float)(0.75 + 0.5 * u);
                else /* bias, running_mean */
                    v[j] = (float)(0.1 * z);
            }
            plan_set_tensor(p, t, v);
            free(v);
        }
    }
}

/* A batch of standard normal images (rounded to bits) and labels, a function of seed. */
static void batch_of(const struct graph *g, uint64_t seed, int bits, float *x, int32_t *labels)
{
    size_t n = (size_t)BATCH * (size_t)shape_numel(&g->input);
    uint64_t key = rng_bits(seed, 0xBA7C);
    for (size_t i = 0; i < n; i++) x[i] = round_bits(rng_normal(key, i), bits);
    for (int i = 0; i < BATCH; i++) labels[i] = (int32_t)(rng_bits(key + 1, (uint64_t)i) % 10);
}

/* --------------------------------------------------------------------------------------- */
/* Comparing */

/* |a - b| / |b| in the 2-norm (0 when both are 0; infinite with a NaN). */
static double rel_err(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * (double)b[i];
    }
    if (isnan(num)) return INFINITY;
    if (num == 0) return 0;
    return den > 0 ? sqrt(num / den) : INFINITY;
}

/* How a group of tensors compared: failures are printed at once, the worst in a summary. */
struct tally {
    const char *what;
    int compared, failed;
    double worst, worst_err, worst_limit; /* worst: the largest error / limit */
    char worst_name[320];
};

static void tally_add(struct tally *t, const char *name, double err, double floor, double limit)
{
    bool ok = err <= limit;
    if (!ok && floor > 0)
        print_error("FAIL %s: %s: relative error %.3e, limit %.2e (the reference's own "
                    "difference %.2e)\n", t->what, name, err, limit, floor);
    else if (!ok)
        print_error("FAIL %s: %s: relative error %.3e, limit %.2e\n", t->what, name, err,
                    limit);
    t->compared++;
    t->failed += !ok;
    if (t->compared == 1 || !(err / limit <= t->worst)) {
        t->worst = err / limit;
        t->worst_err = err;
        t->worst_limit = limit;
        snprintf(t->worst_name, sizeof t->worst_name, "%s", name);
    }
}

/* A comparison that could not fail: the reference is all zero (or has nothing in it), so
 * any result within a relative limit of it passes. Counted as a failure. */
static void tally_vacuous(struct tally *t, const char *name)
{
    print_error("FAIL %s: %s: the reference is all zero, nothing to compare\n", t->what, name);
    t->compared++;
    t->failed++;
}

static bool all_zero(const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] != 0) return false;
    return true;
}

static int tally_end(const struct tally *t)
{
    print_message("%-44s %4d compared, %d failed; worst %s: %.2e (limit %.1e)\n", t->what,
                  t->compared, t->failed, t->worst_name, t->worst_err, t->worst_limit);
    return t->failed;
}

/* Limits of a comparison against the CPU: from the CPU's own difference `floor` between two
 * results (see the top of this file). */
struct limits {
    double base, factor, cap, given; /* given: optimizer steps from the same gradients */
};

static const struct limits LIMITS_FP32 = {1e-4, 4, 0.1, 1e-5};
/* bf16: at most 30% of a tensor's norm, whatever the CPU's own difference: a result half
 * wrong is wrong, even where bf16's rounding of the inputs alone moves a tensor by 10%. */
static const struct limits LIMITS_BF16 = {2e-2, 4, 0.3, 1e-5};

/* got (GPU) against want (the CPU's reference), with floor = the CPU's alt against want. */
static void compare3(struct tally *t, const struct limits *lim, const char *name,
                     const float *got, const float *want, const float *alt, size_t n)
{
    if (all_zero(want, n)) {
        tally_vacuous(t, name);
        return;
    }
    double floor = rel_err(alt, want, n);
    double limit = fmin(lim->cap, fmax(lim->base, lim->factor * floor));
    tally_add(t, name, rel_err(got, want, n), floor, limit);
}

/* --------------------------------------------------------------------------------------- */
/* ResNet-50: one step on the GPU against the CPU */

enum { REF, ALT, GPU }; /* the CPU's reference, the CPU's other computation, the GPU */

/* Every trained tensor's gradient (or value, or the change of its value from start) in the
 * three plans, compared. */
static void compare_params(struct tally *t, const struct limits *lim, struct plan *const *p,
                           const char *prefix, bool grad, void **const *start)
{
    const struct graph *g = p[REF]->g;
    for (size_t i = 0; i < g->ntensors; i++) {
        const struct graph_tensor *gt = &g->tensors[i];
        if (gt->t.role != TENSOR_PARAM) continue;
        size_t n = numel(gt);
        float *v[3];
        for (int k = 0; k < 3; k++) {
            v[k] = malloc(n * sizeof *v[k]);
            if (grad)
                plan_get_grad(p[k], gt, v[k]);
            else
                plan_get_tensor(p[k], gt, v[k]);
            if (start)
                for (size_t j = 0; j < n; j++) v[k][j] -= ((const float *)start[k][i])[j];
        }
        char name[320];
        snprintf(name, sizeof name, "%s%s", prefix, gt->name);
        compare3(t, lim, name, v[GPU], v[REF], v[ALT], n);
        for (int k = 0; k < 3; k++) free(v[k]);
    }
}

/* The running statistics' changes from start (each plan's own): compared as values they
 * would be mostly the start, the same on every side, and a backend that left them alone would
 * pass. The counters exactly, and they must have moved. */
static void compare_buffers(struct tally *t, const struct limits *lim, struct plan *const *p,
                            void **const *start)
{
    const struct graph *g = p[REF]->g;
    for (size_t i = 0; i < g->ntensors; i++) {
        const struct graph_tensor *gt = &g->tensors[i];
        if (gt->t.role != TENSOR_BUFFER) continue;
        char name[320];
        snprintf(name, sizeof name, "change of %s", gt->name);
        if (gt->t.dtype == TENSOR_I64) {
            int64_t a, b;
            plan_get_tensor(p[GPU], gt, &a);
            plan_get_tensor(p[REF], gt, &b);
            a -= *(const int64_t *)start[GPU][i];
            b -= *(const int64_t *)start[REF][i];
            if (b == 0)
                tally_vacuous(t, name);
            else
                tally_add(t, name, a == b ? 0 : INFINITY, 0, lim->base);
            continue;
        }
        size_t n = numel(gt);
        float *v[3];
        for (int k = 0; k < 3; k++) {
            v[k] = malloc(n * sizeof *v[k]);
            plan_get_tensor(p[k], gt, v[k]);
            for (size_t j = 0; j < n; j++) v[k][j] -= ((const float *)start[k][i])[j];
        }
        compare3(t, lim, name, v[GPU], v[REF], v[ALT], n);
        for (int k = 0; k < 3; k++) free(v[k]);
    }
}

/* The 2-norm of v (n). */
static double norm2(const float *v, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)v[i] * (double)v[i];
    return sqrt(s);
}

/* The update of every weight (from w0, where both plans started) and optimizer slots
 * 0 .. slots-1 (from 0) of the GPU plan against the CPU's after a step from the same
 * gradients. As values the weights would be mostly w0, and a step that changed nothing (or
 * the wrong amount) could pass; the update read back as w - w0 carries the fp32 rounding of
 * w, at most 2^-24 |w| per element on each side, so its limit is the larger of given and
 * 4 x 2^-24 |w0| / |update| in the 2-norm. */
static void compare_updated(struct tally *t, const struct limits *lim, struct plan *gpu,
                            struct plan *cpu, const char *prefix, int slots, void **w0)
{
    const struct graph *g = cpu->g;
    for (size_t i = 0; i < g->ntensors; i++) {
        const struct graph_tensor *gt = &g->tensors[i];
        if (gt->t.role != TENSOR_PARAM) continue;
        size_t n = numel(gt);
        float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
        const float *w = w0[i];
        for (int k = -1; k < slots; k++) {
            char name[320];
            double limit = lim->given;
            if (k < 0) {
                plan_get_tensor(gpu, gt, a);
                plan_get_tensor(cpu, gt, b);
                for (size_t j = 0; j < n; j++) {
                    a[j] -= w[j];
                    b[j] -= w[j];
                }
                snprintf(name, sizeof name, "%supdate of %s", prefix, gt->name);
                limit = fmax(limit, 4 * 0x1p-24 * norm2(w, n) / norm2(b, n));
            } else {
                plan_get_state(gpu, gt, k, a);
                plan_get_state(cpu, gt, k, b);
                snprintf(name, sizeof name, "%sslot %d of %s", prefix, k, gt->name);
            }
            if (all_zero(b, n))
                tally_vacuous(t, name);
            else
                tally_add(t, name, rel_err(a, b, n), 0, limit);
        }
        free(a);
        free(b);
    }
}

static void step_vs_cpu(enum plan_precision pr)
{
    const int bits = pr == PLAN_BF16 ? 8 : 24;
    const struct limits *lim = pr == PLAN_BF16 ? &LIMITS_BF16 : &LIMITS_FP32;
    struct model m;
    model_open(&m, "experiments/models/resnet50.yaml", false);
    const struct graph *g = m.g;
    struct plan_options ref = options(PLAN_FP32, 2), alt = ref;
    ref.conv_direct = true;
    alt.conv_direct = pr != PLAN_FP32; /* fp32: Winograd, the other correct computation */
    struct plan *p[3] = {plan_open(g, &backend_cpu, ref), plan_open(g, &backend_cpu, alt),
                         plan_open(g, &backend_cuda, options(pr, 2))};
    plan_init_params(p[REF], 1);
    randomize_bn(p[REF], 2, 0.2);
    /* bf16: both backends start from weights and a batch exact in bf16; the CPU's other
     * computation from the unrounded ones (how far rounding alone moves each result). */
    void **init = snap_take(p[REF]), **rounded = snap_rounded(g, init, bits);
    void **const start[3] = {rounded, pr == PLAN_FP32 ? rounded : init, rounded};
    size_t in_n = (size_t)BATCH * (size_t)shape_numel(&g->input);
    size_t out_n = (size_t)BATCH * (size_t)shape_numel(&g->layers[g->output].out);
    float *x = malloc(in_n * sizeof *x), *xr = malloc(in_n * sizeof *xr);
    int32_t labels[BATCH];
    batch_of(g, 7, 24, x, labels);
    batch_of(g, 7, bits, xr, labels);
    const float *xs[3] = {xr, pr == PLAN_FP32 ? xr : x, xr};
    for (int k = 0; k < 3; k++) {
        snap_put(p[k], start[k]);
        zero_states(p[k]);
        plan_set_input(p[k], xs[k], labels);
    }
    int failed = 0;
    float *out[3], loss[3];
    for (int k = 0; k < 3; k++) out[k] = malloc(out_n * sizeof *out[k]);

    /* Evaluation (running statistics), then the training forward, loss and backward. */
    struct tally t = {.what = "logits and loss"};
    for (int k = 0; k < 3; k++) {
        plan_forward(p[k], false);
        plan_get_output(p[k], out[k]);
    }
    compare3(&t, lim, "evaluation logits", out[GPU], out[REF], out[ALT], out_n);
    for (int k = 0; k < 3; k++) {
        plan_forward(p[k], true);
        loss[k] = (float)plan_loss(p[k], 0.1);
        plan_backward(p[k], NULL);
        plan_get_output(p[k], out[k]);
    }
    compare3(&t, lim, "training logits", out[GPU], out[REF], out[ALT], out_n);
    compare3(&t, lim, "loss", &loss[GPU], &loss[REF], &loss[ALT], 1);
    failed += tally_end(&t);
    t = (struct tally){.what = "gradients"};
    compare_params(&t, lim, p, "gradient of ", true, NULL);
    failed += tally_end(&t);
    t = (struct tally){.what = "buffers after the step"};
    compare_buffers(&t, lim, p, start);
    failed += tally_end(&t);

    /* One SGD and one Adam step from the same gradients (the CPU's, in the compute type). */
    void **grads = calloc(g->ntensors, sizeof *grads);
    for (size_t i = 0; i < g->ntensors; i++) {
        const struct graph_tensor *gt = &g->tensors[i];
        if (gt->t.role != TENSOR_PARAM) continue;
        float *v = grads[i] = malloc(numel(gt) * sizeof *v);
        plan_get_grad(p[REF], gt, v);
        for (size_t j = 0; j < numel(gt); j++) v[j] = round_bits(v[j], bits);
    }
    struct plan_sgd sgd = {.lr = 0.1, .momentum = 0.9, .weight_decay = 5e-4, .nesterov = true};
    struct plan_adam adam = {.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
                             .weight_decay = 1e-4};
    for (int opt = 0; opt < 2; opt++) {
        for (int j = 0; j < 2; j++) {
            int k = j ? GPU : REF;
            snap_put(p[k], rounded);
            zero_states(p[k]);
            for (size_t i = 0; i < g->ntensors; i++)
                if (grads[i]) plan_set_grad(p[k], &g->tensors[i], grads[i]);
            if (opt == 0)
                plan_sgd_step(p[k], &sgd, true);
            else
                plan_adam_step(p[k], &adam, 1);
        }
        t = (struct tally){.what = opt ? "Adam step from given gradients"
                                       : "SGD step from given gradients"};
        compare_updated(&t, lim, p[GPU], p[REF], opt ? "adam: " : "sgd: ", opt ? 2 : 1,
                        rounded);
        failed += tally_end(&t);
    }
    snap_free(g, grads);

    /* One whole step (plan_train_step: a CUDA graph on the GPU): the loss and every update. */
    struct plan_step st = {.smoothing = 0.1, .opt = {PLAN_OPT_SGD, .u.sgd = sgd}, .t = 1,
                           .ema_slot = -1};
    struct plan_step_result r[3];
    for (int k = 0; k < 3; k++) {
        snap_put(p[k], start[k]);
        zero_states(p[k]);
        plan_set_input(p[k], xs[k], labels);
        plan_train_step(p[k], &st, &r[k]);
        loss[k] = (float)r[k].loss;
    }
    t = (struct tally){.what = "plan_train_step (SGD)"};
    compare3(&t, lim, "loss", &loss[GPU], &loss[REF], &loss[ALT], 1);
    compare_params(&t, lim, p, "update of ", false, start);
    compare_buffers(&t, lim, p, start);
    failed += tally_end(&t);

    for (int k = 0; k < 3; k++) {
        free(out[k]);
        plan_free(p[k]);
    }
    snap_free(g, init);
    snap_free(g, rounded);
    free(x);
    free(xr);
    model_close(&m);
    if (failed) fail_msg("%d tensors of the CUDA backend (%s) differ from the CPU's", failed,
                         pr == PLAN_BF16 ? "bf16" : "fp32, TF32 off");
}

static void test_resnet50_step_fp32(void **state)
{
    (void)state;
    step_vs_cpu(PLAN_FP32);
}

/* bf16 needs compute capability 8.0: below, the plans refuse it (and the test says so). */
static bool has_bf16(void)
{
    if (device_cc_has_bf16(device_cuda_capability(0))) return true;
    printf("skipped: cuda:0 has compute capability %d.%d, below bf16's 8.0\n",
           device_cuda_capability(0) / 10, device_cuda_capability(0) % 10);
    return false;
}

static void test_resnet50_step_bf16(void **state)
{
    (void)state;
    if (has_bf16()) step_vs_cpu(PLAN_BF16);
}

/* --------------------------------------------------------------------------------------- */
/* CUDA graphs against kernel by kernel */

/* Steps of a graph test: fp16 gets more, as its first ones may be skipped while the loss scale
 * falls from 65536 (ResNet-50's gradients overflow fp16 there); its last two must be applied.
 * The other types never skip. */
static int graph_steps(enum plan_precision pr)
{
    return pr == PLAN_FP16 ? 8 : 3;
}

/* Fails unless step t of n (from 1) was applied where it must be: every step in fp32 and
 * bf16, the last two in fp16. */
static void expect_applied(enum plan_precision pr, const char *what, int64_t t, int n,
                           const struct plan_step_result *r)
{
    if (r->skipped && (pr != PLAN_FP16 || t > n - 2))
        fail_msg("%s, step %lld of %d: skipped (gradients not finite)%s", what, (long long)t, n,
                 pr == PLAN_FP16 ? ", though the loss scale had room to fall" : "");
}

/* Fails unless every trained tensor of p differs from its value in init somewhere: the
 * steps compared did update every weight. */
static void expect_all_moved(struct plan *p, void **init, const char *what)
{
    const struct graph *g = p->g;
    for (size_t i = 0; i < g->ntensors; i++) {
        const struct graph_tensor *gt = &g->tensors[i];
        if (gt->t.role != TENSOR_PARAM) continue;
        float *w = malloc(bytes(gt));
        plan_get_tensor(p, gt, w);
        bool same = !memcmp(w, init[i], bytes(gt));
        free(w);
        if (same) fail_msg("%s: %s did not change in the steps", what, gt->name);
    }
}

/* Fails unless every tensor, optimizer value and the evaluation logits of a and b are equal. */
static void graph_vs_eager(enum plan_precision pr, const char *what)
{
    struct model m;
    model_open(&m, "experiments/models/resnet50.yaml", true);
    const struct graph *g = m.g;
    struct plan_options o = options(pr, 3);
    o.deterministic = true;
    struct plan *a = plan_open(g, &backend_cuda, o);
    o.no_graph = true;
    struct plan *b = plan_open(g, &backend_cuda, o);
    plan_init_params(a, 3);
    void **init = snap_take(a);
    snap_put(b, init);
    zero_states(a);
    zero_states(b);
    size_t in_n = (size_t)BATCH * (size_t)shape_numel(&g->input);
    float *x = malloc(in_n * sizeof *x);
    int32_t labels[BATCH];
    int skipped = 0, n = graph_steps(pr);
    for (int64_t t = 1; t <= n; t++) {
        batch_of(g, (uint64_t)t, 24, x, labels);
        plan_set_input(a, x, labels);
        plan_set_input(b, x, labels);
        struct plan_step st = {.smoothing = 0.1, .t = t, .clip_grad_norm = 1.0, .ema_slot = 2,
                               .ema_decay = 0.9,
                               .opt = {PLAN_OPT_ADAM,
                                       .u.adam = {.lr = 1e-3 / (double)t, .beta1 = 0.9,
                                                  .beta2 = 0.999, .eps = 1e-8,
                                                  .weight_decay = 1e-4}}};
        struct plan_step_result ra, rb;
        plan_train_step(a, &st, &ra);
        plan_train_step(b, &st, &rb);
        if (memcmp(&ra.loss, &rb.loss, sizeof ra.loss) ||
            memcmp(&ra.grad_norm, &rb.grad_norm, sizeof ra.grad_norm) || ra.skipped != rb.skipped)
            fail_msg("%s, step %lld: the graph gives loss %.9g, norm %.9g%s; kernel by kernel "
                     "%.9g, %.9g%s", what, (long long)t, ra.loss, ra.grad_norm,
                     ra.skipped ? " (skipped)" : "", rb.loss, rb.grad_norm,
                     rb.skipped ? " (skipped)" : "");
        assert_true(isfinite(ra.loss));
        expect_applied(pr, what, t, n, &ra);
        skipped += ra.skipped;
    }
    assert_int_equal(a->steps, b->steps);
    expect_same_bits(a, b, what);
    expect_all_moved(a, init, what);
    size_t out_n = (size_t)BATCH * (size_t)shape_numel(&g->layers[g->output].out);
    float *ya = malloc(out_n * sizeof *ya), *yb = malloc(out_n * sizeof *yb);
    plan_forward(a, false);
    plan_forward(b, false);
    plan_get_output(a, ya);
    plan_get_output(b, yb);
    if (memcmp(ya, yb, out_n * sizeof *ya))
        fail_msg("%s: the evaluation logits differ between the two plans", what);
    print_message("%s: %d steps (%d skipped by fp16's loss scaling) equal bit for bit\n", what, n,
                  skipped);
    free(ya);
    free(yb);
    free(x);
    snap_free(g, init);
    plan_free(a);
    plan_free(b);
    model_close(&m);
}

static void test_graph_fp32(void **state)
{
    (void)state;
    graph_vs_eager(PLAN_FP32, "CUDA graph against kernel by kernel, fp32");
}

static void test_graph_bf16(void **state)
{
    (void)state;
    if (has_bf16()) graph_vs_eager(PLAN_BF16, "CUDA graph against kernel by kernel, bf16");
}

static void test_graph_fp16(void **state)
{
    (void)state;
    graph_vs_eager(PLAN_FP16, "CUDA graph against kernel by kernel, fp16");
}

/*
 * The same without deterministic algorithms, so that cuDNN's fused batchnorm (+ add + relu),
 * which the backend takes only then, runs inside the captured graph; non-deterministic
 * reductions (its persistent kernels', and the convolutions' atomics) mean no two runs are
 * equal bit for bit. Three plans from the same weights (ResNet-50's, each bottleneck's last
 * batchnorm scaled by 0.2 as against the CPU, for conditioning), the same batches and steps
 * (SGD with Nesterov momentum, whose update is linear in the gradient, so the gradients' noise
 * is not amplified as Adam's first steps amplify it near 0; clipping, an EMA, dropout): a
 * replaying the graph, b and c kernel by kernel. b against c measures the noise itself, the
 * floor; a against b must be within max(base, 4 x floor), at most 0.1 (a replay that lost a
 * tensor, or read a stale one, is off by about 1), relative in the 2-norm: the losses, the
 * updates of every weight, the changes of the running statistics, the momentum and EMA slots
 * and the evaluation logits. base: 1e-4 in fp32 (as against the CPU), else 5 units of the
 * compute type's roundoff (bf16 2e-2, fp16 2.4e-3: every tensor stored once more or less).
 */
static void graph_vs_eager_fused(enum plan_precision pr, const char *what)
{
    const double u = ldexp(1.0, pr == PLAN_BF16 ? -8 : pr == PLAN_FP16 ? -11 : -24);
    const struct limits lim = {pr == PLAN_FP32 ? 1e-4 : 5 * u, 4, 0.1, 0}; /* given: unused */
    struct model m;
    model_open(&m, "experiments/models/resnet50.yaml", true);
    const struct graph *g = m.g;
    struct plan_options o = options(pr, 2);
    o.deterministic = false;
    enum { A, B, C };
    struct plan *p[3];
    p[A] = plan_open(g, &backend_cuda, o);
    o.no_graph = true;
    p[B] = plan_open(g, &backend_cuda, o);
    p[C] = plan_open(g, &backend_cuda, o);
    plan_init_params(p[A], 5);
    randomize_bn(p[A], 6, 0.2);
    void **init = snap_take(p[A]);
    for (int k = 0; k < 3; k++) {
        snap_put(p[k], init);
        zero_states(p[k]);
    }
    size_t in_n = (size_t)BATCH * (size_t)shape_numel(&g->input);
    float *x = malloc(in_n * sizeof *x);
    int32_t labels[BATCH];
    int n = graph_steps(pr);
    struct tally t = {.what = what};
    for (int64_t s = 1; s <= n; s++) {
        batch_of(g, (uint64_t)(20 + s), 24, x, labels);
        struct plan_step st = {.smoothing = 0.1, .t = s, .clip_grad_norm = 1.0, .ema_slot = 1,
                               .ema_decay = 0.9,
                               .opt = {PLAN_OPT_SGD,
                                       .u.sgd = {.lr = 0.05 / (double)s, .momentum = 0.9,
                                                 .weight_decay = 5e-4, .nesterov = true}}};
        struct plan_step_result r[3];
        float loss[3];
        for (int k = 0; k < 3; k++) {
            plan_set_input(p[k], x, labels);
            plan_train_step(p[k], &st, &r[k]);
            assert_true(isfinite(r[k].loss));
            loss[k] = (float)r[k].loss;
        }
        if (r[A].skipped != r[B].skipped)
            fail_msg("%s, step %lld: the graph %s the update, kernel by kernel %s", what,
                     (long long)s, r[A].skipped ? "skipped" : "applied",
                     r[B].skipped ? "skipped" : "applied");
        expect_applied(pr, what, s, n, &r[A]);
        char name[64];
        snprintf(name, sizeof name, "loss of step %lld", (long long)s);
        compare3(&t, &lim, name, &loss[A], &loss[B], &loss[C], 1);
    }
    expect_all_moved(p[A], init, what);
    void **const start[3] = {init, init, init};
    for (size_t i = 0; i < g->ntensors; i++) {
        const struct graph_tensor *gt = &g->tensors[i];
        if (gt->t.role != TENSOR_PARAM) continue;
        size_t nel = numel(gt);
        float *v[3];
        for (int slot = -1; slot < 2; slot++) {
            for (int k = 0; k < 3; k++) {
                v[k] = malloc(nel * sizeof *v[k]);
                if (slot < 0)
                    plan_get_tensor(p[k], gt, v[k]);
                else
                    plan_get_state(p[k], gt, slot, v[k]);
                if (slot != 0) /* the weights and their EMA: the change from the start */
                    for (size_t j = 0; j < nel; j++) v[k][j] -= ((const float *)init[i])[j];
            }
            char nm[320];
            const char *what_of = slot < 0 ? "update of " : slot ? "change of the EMA of "
                                                                 : "momentum of ";
            snprintf(nm, sizeof nm, "%s%s", what_of, gt->name);
            compare3(&t, &lim, nm, v[A], v[B], v[C], nel);
            for (int k = 0; k < 3; k++) free(v[k]);
        }
    }
    struct plan *q[3] = {[REF] = p[B], [ALT] = p[C], [GPU] = p[A]};
    compare_buffers(&t, &lim, q, start);
    size_t out_n = (size_t)BATCH * (size_t)shape_numel(&g->layers[g->output].out);
    float *y[3];
    for (int k = 0; k < 3; k++) {
        y[k] = malloc(out_n * sizeof *y[k]);
        plan_forward(p[k], false);
        plan_get_output(p[k], y[k]);
    }
    compare3(&t, &lim, "evaluation logits", y[A], y[B], y[C], out_n);
    int failed = tally_end(&t);
    for (int k = 0; k < 3; k++) {
        free(y[k]);
        plan_free(p[k]);
    }
    free(x);
    snap_free(g, init);
    model_close(&m);
    if (failed) fail_msg("%s: %d comparisons failed", what, failed);
}

static void test_graph_fused_fp32(void **state)
{
    (void)state;
    graph_vs_eager_fused(PLAN_FP32, "CUDA graph against kernel by kernel, fused batchnorm, fp32");
}

static void test_graph_fused_bf16(void **state)
{
    (void)state;
    if (has_bf16())
        graph_vs_eager_fused(PLAN_BF16,
                             "CUDA graph against kernel by kernel, fused batchnorm, bf16");
}

static void test_graph_fused_fp16(void **state)
{
    (void)state;
    graph_vs_eager_fused(PLAN_FP16, "CUDA graph against kernel by kernel, fused batchnorm, fp16");
}

/* --------------------------------------------------------------------------------------- */
/* Checkpoints across backends */

#define RESUME_LR 0.05
#define RESUME_LIMIT 1e-3

static const struct spec_optimizer resume_sgd = {
    .type = SPEC_OPTIMIZER_SGD, .lr = RESUME_LR, .momentum = 0.9, .nesterov = true,
    .weight_decay = 5e-4, .decay_bn_bias = true};

/* Training steps from .. to - 1 of the resume test (batch `step` each). */
static void train_steps(struct plan *p, struct step_optimizer *o, int from, int to)
{
    size_t in_n = (size_t)BATCH * (size_t)shape_numel(&p->g->input);
    float *x = malloc(in_n * sizeof *x);
    int32_t labels[BATCH];
    for (int s = from; s < to; s++) {
        batch_of(p->g, (uint64_t)(100 + s), 24, x, labels);
        plan_set_input(p, x, labels);
        double loss = step_train(p, o, RESUME_LR, 0.1);
        assert_true(isfinite(loss));
    }
    free(x);
}

/*
 * Two steps on `first`'s backend, a checkpoint, two more on `second`'s, against four on
 * `first`'s: the plan resumed reads back what was saved bit for bit; the last two steps'
 * updates, the running statistics and the momentum agree within RESUME_LIMIT.
 */
static void resume_across(const struct backend *first, const struct backend *second,
                          const char *what)
{
    struct model m;
    model_open(&m, "experiments/models/resnet8.yaml", false);
    const struct graph *g = m.g;
    struct plan_options o = options(PLAN_FP32, 1);
    o.conv_direct = true;

    /* Four steps on the first backend. */
    struct plan *ref = plan_open(g, first, o);
    struct step_optimizer oref;
    step_optimizer_init(&oref, &resume_sgd);
    plan_init_params(ref, 4);
    train_steps(ref, &oref, 0, 4);

    /* Two there, saved, resumed on the second. */
    struct plan *a = plan_open(g, first, o), *b = plan_open(g, second, o);
    struct step_optimizer oa, ob;
    step_optimizer_init(&oa, &resume_sgd);
    step_optimizer_init(&ob, &resume_sgd);
    plan_init_params(a, 4);
    train_steps(a, &oa, 0, 2);
    char dir[256], path[4200];
    assert_int_equal(tmpdir_make(dir, sizeof dir, "cuda_resume"), 0);
    struct checkpoint_state s = {.epoch = 0, .batch = 2, .step = 2}, back;
    struct diag d = {.out = stderr};
    assert_int_equal(checkpoint_save(a, &oa, &s, dir, 0, path, sizeof path, &d), STATUS_OK);
    assert_int_equal(checkpoint_resume(b, &ob, dir, &back, path, sizeof path, &d), STATUS_OK);
    assert_int_equal(back.step, 2);
    assert_int_equal(ob.updates, 2);
    assert_int_equal(b->steps, a->steps);
    expect_same_bits(b, a, what);
    void **w2 = snap_take(a);
    train_steps(b, &ob, 2, 4);

    struct tally t = {.what = what};
    for (size_t i = 0; i < g->ntensors; i++) {
        const struct graph_tensor *gt = &g->tensors[i];
        size_t n = numel(gt);
        if (gt->t.dtype == TENSOR_I64) { /* exactly, and moved by the last two steps */
            int64_t u, v;
            plan_get_tensor(b, gt, &u);
            plan_get_tensor(ref, gt, &v);
            if (v == *(const int64_t *)w2[i])
                tally_vacuous(&t, gt->name);
            else
                tally_add(&t, gt->name, u == v ? 0 : INFINITY, 0, RESUME_LIMIT);
            continue;
        }
        /* The last two steps' changes of the weights and the running statistics (their values
         * would be mostly what both sides share from the checkpoint), and the momentum. */
        float *u = malloc(n * sizeof *u), *v = malloc(n * sizeof *v);
        plan_get_tensor(b, gt, u);
        plan_get_tensor(ref, gt, v);
        for (size_t j = 0; j < n; j++) {
            u[j] -= ((float *)w2[i])[j];
            v[j] -= ((float *)w2[i])[j];
        }
        char name[320];
        snprintf(name, sizeof name, "%s%s", gt->t.role == TENSOR_PARAM ? "update of "
                                                                        : "change of ",
                 gt->name);
        if (all_zero(v, n))
            tally_vacuous(&t, name);
        else
            tally_add(&t, name, rel_err(u, v, n), 0, RESUME_LIMIT);
        if (gt->t.role == TENSOR_PARAM) {
            plan_get_state(b, gt, 0, u);
            plan_get_state(ref, gt, 0, v);
            snprintf(name, sizeof name, "momentum of %s", gt->name);
            if (all_zero(v, n))
                tally_vacuous(&t, name);
            else
                tally_add(&t, name, rel_err(u, v, n), 0, RESUME_LIMIT);
        }
        free(u);
        free(v);
    }
    int failed = tally_end(&t);
    snap_free(g, w2);
    plan_free(ref);
    plan_free(a);
    plan_free(b);
    assert_int_equal(tmpdir_remove(dir), 0);
    model_close(&m);
    if (failed) fail_msg("%s: %d tensors differ", what, failed);
}

static void test_resume_cpu_to_gpu(void **state)
{
    (void)state;
    resume_across(&backend_cpu, &backend_cuda, "resumed: 2 steps on the CPU, 2 on the GPU");
}

static void test_resume_gpu_to_cpu(void **state)
{
    (void)state;
    resume_across(&backend_cuda, &backend_cpu, "resumed: 2 steps on the GPU, 2 on the CPU");
}

int main(int argc, char **argv)
{
    if (argc < 2 || chdir(argv[1]) != 0) {
        fprintf(stderr, "usage: test_cuda_plan_step SOURCE_DIR\n");
        return 2;
    }
    int gate = gpu_test_gate();
    if (gate) return gate;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resnet50_step_fp32), cmocka_unit_test(test_resnet50_step_bf16),
        cmocka_unit_test(test_graph_fp32),         cmocka_unit_test(test_graph_bf16),
        cmocka_unit_test(test_graph_fp16),         cmocka_unit_test(test_graph_fused_fp32),
        cmocka_unit_test(test_graph_fused_bf16),   cmocka_unit_test(test_graph_fused_fp16),
        cmocka_unit_test(test_resume_cpu_to_gpu),  cmocka_unit_test(test_resume_gpu_to_cpu),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
