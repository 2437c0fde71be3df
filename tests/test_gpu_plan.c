/*
 * test_gpu_plan.c: the CUDA backend's host-side planning (gpu_plan.c) and its algorithm cache
 * (gpu_cache.c), on any machine: ResNet-50's kernels and fusions, the backward program's
 * gradient bookkeeping (every gradient read is complete, every contribution either writes a
 * fresh buffer or adds to a written one), buffers that are live together never sharing
 * memory, the device layouts of tensors, the memory a plan needs and the largest batch that
 * fits, and the cache file's round trip.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "gpu_cache.h"
#include "gpu_plan.h"
#include "plan.h"
#include "test_util.h"

struct net {
    struct arena a;
    struct graph *g;
    char *text;
};

static void net_load(struct net *n, const char *yaml)
{
    memset(n, 0, sizeof *n);
    n->text = strdup(yaml);
    n->g = graph_of_text(&n->a, "net.yaml", n->text);
    assert_non_null(n->g);
}

static void net_free(struct net *n)
{
    graph_free(n->g);
    arena_free(&n->a);
    free(n->text);
}

static void resnet50(struct net *n)
{
    char *yaml = slurp("experiments/models/resnet50.yaml");
    assert_non_null(yaml);
    net_load(n, yaml);
    free(yaml);
}

/* --------------------------------------------------------------------------------------- */
/* What each backward op reads and writes (buffers; weights' gradients are elsewhere). */

static void bwd_args(const struct gpu_step *s, int *reads, int *nr, int *writes, int *nw)
{
    *nr = *nw = 0;
#define R(i) reads[(*nr)++] = s->args[i]
#define W(i) writes[(*nw)++] = s->args[i]
    switch (s->op) {
    case GPU_OP_CONV_DGRAD: case GPU_OP_LINEAR_DGRAD: R(0); W(1); break;
    case GPU_OP_CONV_WGRAD: case GPU_OP_LINEAR_WGRAD: R(0); R(1); break;
    case GPU_OP_BN_BWD: R(0); R(1); R(2); R(5); R(6); W(3); W(4); break;
    case GPU_OP_RELU_BWD: R(0); R(1); W(2); break;
    case GPU_OP_COPY: R(0); W(1); break;
    case GPU_OP_ACCUM: R(0); R(1); W(1); break;
    case GPU_OP_POOL_BWD: R(0); R(1); R(2); W(3); break;
    case GPU_OP_GAP_BWD: R(0); W(1); break;
    case GPU_OP_DROPOUT_BWD: R(0); R(2); W(1); break;
    case GPU_OP_GRAD_PACK: R(0); W(1); break;
    default: fail_msg("op %s in the backward program", gpu_op_name(s->op));
    }
#undef R
#undef W
}

/* The backward program, run symbolically: a gradient buffer is read only once complete
 * (after its last contribution), and a contribution writes a fresh buffer or adds to a
 * written one. Forward buffers count as written. */
static void check_gradients(const struct gpu_plan *gp)
{
    size_t n = gp->nbufs;
    int *written = calloc(n, sizeof *written), *last_write = calloc(n, sizeof *last_write);
    int *first_read = calloc(n, sizeof *first_read);
    for (size_t i = 0; i < n; i++) {
        last_write[i] = -1;
        first_read[i] = 1 << 30;
    }
    for (size_t i = 0; i < gp->nsteps[GPU_PROG_FWD_TRAIN]; i++)
        for (int a = 0; a < GPU_MAX_ARGS; a++)
            if (gp->steps[GPU_PROG_FWD_TRAIN][i].args[a] >= 0)
                written[gp->steps[GPU_PROG_FWD_TRAIN][i].args[a]] = -1; /* forward values */
    written[gp->dlogits] = 1;
    for (size_t i = 0; i < gp->nsteps[GPU_PROG_BWD]; i++) {
        const struct gpu_step *s = &gp->steps[GPU_PROG_BWD][i];
        int r[8], w[8], nr, nw;
        bwd_args(s, r, &nr, w, &nw);
        for (int k = 0; k < nr; k++) {
            if (r[k] < 0) continue;
            if (!written[r[k]])
                fail_msg("step %zu (%s) reads buffer %d, never written", i, gpu_op_name(s->op),
                         r[k]);
            if ((int)i < first_read[r[k]]) first_read[r[k]] = (int)i;
        }
        bool adds = s->op == GPU_OP_ACCUM || s->accumulate;
        for (int k = 0; k < nw; k++) {
            if (w[k] < 0) continue;
            if (adds && written[w[k]] != 1)
                fail_msg("step %zu (%s) adds to buffer %d, not written yet", i,
                         gpu_op_name(s->op), w[k]);
            if (!adds && written[w[k]] == 1)
                fail_msg("step %zu (%s) overwrites gradient buffer %d", i, gpu_op_name(s->op),
                         w[k]);
            written[w[k]] = 1;
            last_write[w[k]] = (int)i;
        }
    }
    /* a gradient is complete before it is read: no write after the first read (a buffer read
     * by the step that adds to it is that step's own input) */
    for (size_t i = 0; i < gp->nsteps[GPU_PROG_BWD]; i++) {
        const struct gpu_step *s = &gp->steps[GPU_PROG_BWD][i];
        int r[8], w[8], nr, nw;
        bwd_args(s, r, &nr, w, &nw);
        for (int k = 0; k < nw; k++)
            if (w[k] >= 0 && first_read[w[k]] < (int)i && s->op != GPU_OP_ACCUM)
                fail_msg("step %zu (%s) writes buffer %d after step %d read it", i,
                         gpu_op_name(s->op), w[k], first_read[w[k]]);
    }
    free(written);
    free(last_write);
    free(first_read);
}

/* Buffers live at a common time never share bytes. */
static void check_packing(const struct gpu_plan *gp)
{
    for (size_t i = 0; i < gp->nbufs; i++) {
        const struct gpu_buf *a = &gp->bufs[i];
        if (a->first < 0 || !a->bytes) continue;
        assert_int_equal(a->offset % 256, 0);
        assert_true(a->offset + a->bytes <= gp->act_bytes);
        for (size_t j = i + 1; j < gp->nbufs; j++) {
            const struct gpu_buf *b = &gp->bufs[j];
            if (b->first < 0 || !b->bytes || b->first > a->last || a->first > b->last) continue;
            if (a->offset < b->offset + b->bytes && b->offset < a->offset + a->bytes)
                fail_msg("buffers %zu [%d, %d] and %zu [%d, %d] overlap in memory", i, a->first,
                         a->last, j, b->first, b->last);
        }
    }
}

/* What cuDNN reads and writes for a convolution of the input is (N, H, W, in_cpad): the input
 * and its gradient hold that much. */
static void check_input_sizes(const struct gpu_plan *gp, const struct graph *g)
{
    const struct shape *in = &g->input;
    int64_t want = gp->cfg.batch * in->d[1] * in->d[2] * gp->in_cpad;
    assert_true(gp->bufs[gp->input].n >= want);
    for (int pr = 0; pr < GPU_PROGS; pr++)
        for (size_t i = 0; i < gp->nsteps[pr]; i++) {
            const struct gpu_step *s = &gp->steps[pr][i];
            if (s->op != GPU_OP_CONV_DGRAD || g->layers[s->layer].in[0] != GRAPH_INPUT) continue;
            if (gp->bufs[s->args[1]].n < want)
                fail_msg("the input's gradient holds %lld elements, cuDNN writes %lld",
                         (long long)gp->bufs[s->args[1]].n, (long long)want);
        }
    if (gp->input_grad >= 0) assert_true(gp->bufs[gp->input_grad].n >= want);
}

static int count(const struct gpu_plan *gp, enum gpu_prog pr, enum gpu_op op, int relu, int add)
{
    int n = 0;
    for (size_t i = 0; i < gp->nsteps[pr]; i++) {
        const struct gpu_step *s = &gp->steps[pr][i];
        if (s->op == op && (relu < 0 || s->relu == relu) && (add < 0 || s->add == add)) n++;
    }
    return n;
}

/* --------------------------------------------------------------------------------------- */

static void test_resnet50_program(void **state)
{
    (void)state;
    struct net n;
    resnet50(&n);
    struct gpu_plan gp;
    gpu_plan_build(n.g, &(struct gpu_plan_config){.batch = 8, .dtype = GPU_BF16, .train = true,
                                                  .input_grad = true}, &gp);
    gpu_plan_pack(&gp);
    /* every batchnorm is one kernel: 16 with the block's add and relu, 33 with a relu (the
     * stem's and two per block), 4 alone (the projection shortcuts) */
    for (int pr = GPU_PROG_FWD_TRAIN; pr <= GPU_PROG_FWD_EVAL; pr++) {
        enum gpu_op bn = pr == GPU_PROG_FWD_TRAIN ? GPU_OP_BN_TRAIN : GPU_OP_BN_EVAL;
        assert_int_equal(count(&gp, pr, bn, 1, 1), 16);
        assert_int_equal(count(&gp, pr, bn, 1, 0), 33);
        assert_int_equal(count(&gp, pr, bn, 0, 0), 4);
        assert_int_equal(count(&gp, pr, GPU_OP_RELU, -1, -1), 0);
        assert_int_equal(count(&gp, pr, GPU_OP_ADD, -1, -1), 0);
        assert_int_equal(count(&gp, pr, GPU_OP_CONV, -1, -1), 53);
        assert_int_equal(count(&gp, pr, GPU_OP_GAP, -1, -1), 1);
        assert_int_equal(count(&gp, pr, GPU_OP_LINEAR, -1, -1), 1);
    }
    assert_int_equal(count(&gp, GPU_PROG_BWD, GPU_OP_BN_BWD, -1, -1), 53);
    assert_int_equal(count(&gp, GPU_PROG_BWD, GPU_OP_CONV_WGRAD, -1, -1), 53);
    assert_int_equal(count(&gp, GPU_PROG_BWD, GPU_OP_CONV_DGRAD, -1, -1), 53); /* input too */
    /* the identity shortcuts' gradients: the fused kernel writes dz first, conv1 adds */
    assert_int_equal(count(&gp, GPU_PROG_BWD, GPU_OP_ACCUM, -1, -1), 0);
    assert_int_equal(count(&gp, GPU_PROG_BWD, GPU_OP_COPY, -1, -1), 0);
    int acc = 0;
    for (size_t i = 0; i < gp.nsteps[GPU_PROG_BWD]; i++)
        acc += gp.steps[GPU_PROG_BWD][i].accumulate;
    assert_int_equal(acc, 16); /* every block's input feeds conv1 and the shortcut */
    check_gradients(&gp);
    check_packing(&gp);
    check_input_sizes(&gp, n.g);
    /* input padded to 8 channels for the tensor cores; the stem's filter with it */
    assert_int_equal(gp.in_cpad, 8);
    const struct gpu_tensor *w = &gp.tensors[graph_find_tensor(n.g, "conv1.weight") - n.g->tensors];
    assert_int_equal(w->layout, GPU_LAYOUT_KRSC);
    assert_int_equal(w->cpad, 8);
    assert_int_equal(w->numel, 64 * 3 * 3 * 8);
    assert_true(w->half);
    const struct gpu_tensor *fc = &gp.tensors[graph_find_tensor(n.g, "fc.weight") - n.g->tensors];
    assert_int_equal(fc->layout, GPU_LAYOUT_PLAIN); /* after a global pool: 1x1 */
    const struct gpu_tensor *g1 = &gp.tensors[graph_find_tensor(n.g, "bn1.weight") - n.g->tensors];
    assert_false(g1->half);
    assert_true(g1->trained);
    /* ranges and chunks cover each trained tensor once */
    int64_t covered = 0;
    for (size_t i = 0; i < gp.nchunks; i++) {
        assert_true(gp.chunks[i].end - gp.chunks[i].begin <= GPU_CHUNK);
        covered += gp.chunks[i].end - gp.chunks[i].begin;
    }
    int64_t want = 0;
    for (size_t i = 0; i < gp.nranges; i++) want += gp.ranges[i].end - gp.ranges[i].begin;
    assert_int_equal(covered, want);
    assert_int_equal(gp.nranges, n.g->nparam_tensors);
    assert_true(gp.input_grad >= 0);
    gpu_plan_free(&gp);
    net_free(&n);
}

/* Lifetimes: ResNet-50's activations share memory; an evaluation-only plan needs far less. */
static void test_memory(void **state)
{
    (void)state;
    struct net n;
    resnet50(&n);
    struct gpu_plan gp, ev;
    gpu_plan_build(n.g, &(struct gpu_plan_config){.batch = 64, .dtype = GPU_BF16, .train = true}, &gp);
    gpu_plan_build(n.g, &(struct gpu_plan_config){.batch = 64, .dtype = GPU_BF16}, &ev);
    size_t outputs = 0;
    for (size_t i = 0; i < n.g->nlayers; i++) outputs += (size_t)shape_numel(&n.g->layers[i].out);
    outputs *= 64 * 2;
    size_t act = gpu_plan_pack(&gp), eact = gpu_plan_pack(&ev);
    assert_true(act < outputs);
    assert_true(eact * 8 < act);
    assert_int_equal(ev.nsteps[GPU_PROG_BWD], 0);
    check_packing(&ev);
    /* fp32 doubles the activations */
    struct gpu_plan f32;
    gpu_plan_build(n.g, &(struct gpu_plan_config){.batch = 64, .dtype = GPU_F32, .train = true}, &f32);
    size_t act32 = gpu_plan_pack(&f32);
    assert_true(act32 > act * 19 / 10 && act32 < act * 21 / 10);
    assert_int_equal(f32.in_cpad, 4);
    /* the largest batch: exactly this one when the memory is what it needs */
    struct gpu_memory m;
    gpu_plan_memory(&gp, 2, 1 << 20, &m);
    assert_int_equal(m.total, m.fixed + m.activations + m.workspace);
    assert_int_equal(gpu_plan_largest_batch(&gp, 2, 1 << 20, m.total), 64);
    assert_int_equal(gpu_plan_largest_batch(&gp, 2, 1 << 20, m.total + m.activations), 128);
    assert_int_equal(gpu_plan_largest_batch(&gp, 2, 1 << 20, m.fixed), 0);
    gpu_plan_free(&gp);
    gpu_plan_free(&ev);
    gpu_plan_free(&f32);
    net_free(&n);
}

/* A small network with everything else: pools, dropout, a linear layer after a flatten of a
 * 2x2 map (its weight's columns reordered for NHWC), unfused relu and add, a tensor read
 * twice by unfused layers, and the input's gradient through a pool. */
static void test_other_ops(void **state)
{
    (void)state;
    struct net n;
    net_load(&n, "input: [3, 8, 8]\n"
                 "blocks:\n"
                 "  res:\n"
                 "    params: []\n"
                 "    body:\n"
                 "      - {name: c2, op: conv, out: 16, kernel: 3, pad: 1}\n"
                 "    join: [add, relu]\n"
                 "graph:\n"
                 "  - {name: pool0, op: maxpool, kernel: 2}\n"
                 "  - {name: c1, op: conv, out: 16, kernel: 3, pad: 1}\n"
                 "  - relu\n"
                 "  - {name: b, block: res}\n"
                 "  - {name: pool, op: avgpool, kernel: 2}\n"
                 "  - flatten\n"
                 "  - {name: drop, op: dropout, p: 0.5}\n"
                 "  - {name: fc, op: linear, out: 5}\n");
    struct gpu_plan gp;
    gpu_plan_build(n.g, &(struct gpu_plan_config){.batch = 3, .dtype = GPU_F16, .train = true,
                                                  .input_grad = true}, &gp);
    gpu_plan_pack(&gp);
    assert_int_equal(gp.in_cpad, 3); /* a pool reads the input: no padding */
    assert_int_equal(count(&gp, GPU_PROG_FWD_TRAIN, GPU_OP_RELU, -1, -1), 2);
    assert_int_equal(count(&gp, GPU_PROG_FWD_TRAIN, GPU_OP_ADD, -1, -1), 1);
    assert_int_equal(count(&gp, GPU_PROG_FWD_TRAIN, GPU_OP_POOL, -1, -1), 2);
    assert_int_equal(count(&gp, GPU_PROG_FWD_TRAIN, GPU_OP_DROPOUT, -1, -1), 1);
    assert_int_equal(count(&gp, GPU_PROG_FWD_EVAL, GPU_OP_COPY, -1, -1), 1);
    assert_int_equal(count(&gp, GPU_PROG_BWD, GPU_OP_POOL_BWD, -1, -1), 2);
    /* the add hands its gradient to c2 as is, and a copy to the relu that c2 then adds to */
    assert_int_equal(count(&gp, GPU_PROG_BWD, GPU_OP_COPY, -1, -1), 1);
    check_gradients(&gp);
    check_packing(&gp);
    /* the dropout's masks are drawn by PyTorch's index of the flattened 16x2x2 map */
    for (size_t i = 0; i < gp.nsteps[GPU_PROG_FWD_TRAIN]; i++) {
        const struct gpu_step *s = &gp.steps[GPU_PROG_FWD_TRAIN][i];
        if (s->op != GPU_OP_DROPOUT) continue;
        assert_int_equal(s->ch, 16);
        assert_int_equal(s->hw, 4);
    }
    const struct gpu_tensor *fc = &gp.tensors[graph_find_tensor(n.g, "fc.weight") - n.g->tensors];
    assert_int_equal(fc->layout, GPU_LAYOUT_HWC_IN);
    /* torch's fc.weight[o][c][h][w] sits at device [o][h][w][c] */
    int64_t numel = 5 * 16 * 2 * 2;
    float *src = malloc(numel * sizeof *src), *dev = malloc(numel * sizeof *dev);
    float *back = malloc(numel * sizeof *back);
    for (int64_t i = 0; i < numel; i++) src[i] = (float)i;
    gpu_tensor_to_device(fc, src, dev);
    int o = 3, c = 7, h = 1, w = 0;
    assert_true(dev[((o * 2 + h) * 2 + w) * 16 + c] == src[((o * 16 + c) * 2 + h) * 2 + w]);
    gpu_tensor_from_device(fc, dev, back);
    assert_memory_equal(src, back, numel * sizeof *src);
    free(src);
    free(dev);
    free(back);
    gpu_plan_free(&gp);
    net_free(&n);
}

/* A graph whose output is a map: the output step unpacks it into PyTorch's (N, C*H*W), the
 * backward program packs the gradient back first; the input's gradient has room for the
 * padding channels cuDNN writes (3 channels stored as 8 in bf16, 4 in fp32). */
static void test_spatial_output(void **state)
{
    (void)state;
    const char *nets[] = {
        "input: [3, 6, 5]\n"
        "graph:\n"
        "  - {name: c1, op: conv, out: 4, kernel: 3, pad: 1}\n"
        "  - relu\n"
        "  - flatten\n",
        "input: [3, 6, 5]\n"
        "graph:\n"
        "  - {name: c1, op: conv, out: 4, kernel: 3, pad: 1}\n"
        "  - flatten\n"
        "  - {name: drop, op: dropout, p: 0.5}\n"};
    enum gpu_dtype types[] = {GPU_F32, GPU_BF16, GPU_F16};
    for (size_t k = 0; k < 2; k++)
        for (size_t t = 0; t < 3; t++) {
            struct net n;
            net_load(&n, nets[k]);
            struct gpu_plan gp;
            gpu_plan_build(n.g, &(struct gpu_plan_config){.batch = 2, .dtype = types[t],
                                                          .train = true, .input_grad = true},
                           &gp);
            gpu_plan_pack(&gp);
            assert_int_equal(gp.classes, 4 * 6 * 5);
            for (int pr = GPU_PROG_FWD_TRAIN; pr <= GPU_PROG_FWD_EVAL; pr++) {
                const struct gpu_step *o = &gp.steps[pr][gp.nsteps[pr] - 1];
                assert_int_equal(o->op, GPU_OP_OUTPUT);
                assert_int_equal(o->ch, 4);
                assert_int_equal(o->hw, 30);
            }
            const struct gpu_step *b = &gp.steps[GPU_PROG_BWD][0];
            assert_int_equal(b->op, GPU_OP_GRAD_PACK);
            assert_int_equal(b->args[0], gp.dlogits);
            assert_int_not_equal(b->args[1], gp.dlogits);
            assert_int_equal(b->ch, 4);
            assert_int_equal(b->hw, 30);
            assert_int_equal(gp.layers[n.g->output].grad, b->args[1]);
            check_gradients(&gp);
            check_packing(&gp);
            check_input_sizes(&gp, n.g);
            assert_int_equal(gp.in_cpad, types[t] == GPU_F32 ? 4 : 8);
            assert_int_equal(gp.bufs[gp.input_grad].n, 2 * 6 * 5 * gp.in_cpad);
            gpu_plan_free(&gp);
            net_free(&n);
        }
    /* a vector output (after a global pool) needs neither */
    struct net n;
    resnet50(&n);
    struct gpu_plan gp;
    gpu_plan_build(n.g, &(struct gpu_plan_config){.batch = 2, .dtype = GPU_BF16, .train = true},
                   &gp);
    assert_int_equal(gp.steps[GPU_PROG_FWD_EVAL][gp.nsteps[GPU_PROG_FWD_EVAL] - 1].hw, 1);
    assert_int_equal(count(&gp, GPU_PROG_BWD, GPU_OP_GRAD_PACK, -1, -1), 0);
    assert_int_equal(gp.layers[n.g->output].grad, gp.dlogits);
    gpu_plan_free(&gp);
    net_free(&n);
}

/* Layers the device layouts cannot serve are refused before planning, with the reason. */
static void test_layout_refusals(void **state)
{
    (void)state;
    const char *nets[] = {
        "input: [3, 4, 4]\n"
        "graph:\n"
        "  - {name: c1, op: conv, out: 2, kernel: 3, pad: 1}\n"
        "  - flatten\n"
        "  - {name: bn, op: batchnorm}\n"
        "  - {name: fc, op: linear, out: 5}\n",
        "input: [3, 4, 4]\n"
        "blocks:\n"
        "  mix:\n"
        "    params: []\n"
        "    body:\n"
        "      - {name: fc, op: linear, out: 32}\n"
        "    join: [add]\n"
        "graph:\n"
        "  - {name: c1, op: conv, out: 2, kernel: 3, pad: 1}\n"
        "  - flatten\n"
        "  - {name: m, block: mix}\n"
        "  - {name: fc2, op: linear, out: 5}\n"};
    for (size_t k = 0; k < 2; k++) {
        struct net n;
        net_load(&n, nets[k]);
        int refused = 0;
        for (size_t li = 0; li < n.g->nlayers; li++) {
            const struct graph_layer *l = &n.g->layers[li];
            char why[256] = "";
            bool ok = gpu_plan_supports(n.g, l, why, sizeof why);
            bool want = l->op != OP_KIND_BATCHNORM && l->op != OP_KIND_ADD;
            if (ok != want) fail_msg("layer %s: %s", l->name, ok ? "accepted" : why);
            if (!ok) assert_non_null(strstr(why, "GPU"));
            refused += !ok;
        }
        assert_int_equal(refused, 1);
        net_free(&n);
    }
    /* an add of two flattened maps laid out alike is channels-last too: the linear after it
     * takes its weight as (OUT, H*W*C) */
    struct net n;
    net_load(&n, "input: [3, 4, 4]\n"
                 "blocks:\n"
                 "  mix:\n"
                 "    params: []\n"
                 "    body:\n"
                 "      - {name: c2, op: conv, out: 2, kernel: 3, pad: 1}\n"
                 "      - flatten\n"
                 "    shortcut:\n"
                 "      - flatten\n"
                 "    join: [add]\n"
                 "graph:\n"
                 "  - {name: c1, op: conv, out: 2, kernel: 3, pad: 1}\n"
                 "  - {name: m, block: mix}\n"
                 "  - {name: fc, op: linear, out: 5}\n");
    char why[256] = "";
    for (size_t li = 0; li < n.g->nlayers; li++)
        if (!gpu_plan_supports(n.g, &n.g->layers[li], why, sizeof why))
            fail_msg("layer %s: %s", n.g->layers[li].name, why);
    struct gpu_plan gp;
    gpu_plan_build(n.g, &(struct gpu_plan_config){.batch = 2, .dtype = GPU_BF16, .train = true},
                   &gp);
    const struct gpu_tensor *fc = &gp.tensors[graph_find_tensor(n.g, "fc.weight") - n.g->tensors];
    assert_int_equal(fc->layout, GPU_LAYOUT_HWC_IN);
    gpu_plan_free(&gp);
    net_free(&n);
}

/* A captured step replays another with the same settings, whatever its padding bytes hold and
 * whatever its learning rate and update number; a setting changed needs a new capture. */
static void test_same_step(void **state)
{
    (void)state;
    struct plan_step a, b;
    memset(&a, 0x5a, sizeof a);
    memset(&b, 0xa5, sizeof b);
    struct plan_step base = {.smoothing = 0.1, .t = 3, .clip_grad_norm = 1, .ema_slot = 2,
                             .ema_decay = 0.99,
                             .opt = {PLAN_OPT_ADAM, .u.adam = {.lr = 1e-3, .beta1 = 0.9,
                                                               .beta2 = 0.999, .eps = 1e-8}}};
    /* field by field, leaving the padding as memset left it */
    a.smoothing = b.smoothing = base.smoothing;
    a.clip_grad_norm = b.clip_grad_norm = base.clip_grad_norm;
    a.ema_slot = b.ema_slot = base.ema_slot;
    a.ema_decay = b.ema_decay = base.ema_decay;
    a.opt.kind = b.opt.kind = PLAN_OPT_ADAM;
    a.opt.u.adam = b.opt.u.adam = base.opt.u.adam;
    a.t = 3;
    b.t = 9;
    b.opt.u.adam.lr = 5e-4;
    assert_true(gpu_same_step(&a, &b));
    b.opt.u.adam.weight_decay = 1e-4;
    assert_false(gpu_same_step(&a, &b));
    b.opt.u.adam.weight_decay = a.opt.u.adam.weight_decay;
    b.ema_slot = -1;
    assert_false(gpu_same_step(&a, &b));
    struct plan_step s1 = {.opt = {PLAN_OPT_SGD, .u.sgd = {.lr = 0.1, .momentum = 0.9}}};
    struct plan_step s2 = s1;
    s2.opt.u.sgd.lr = 0.01;
    assert_true(gpu_same_step(&s1, &s2));
    s2.opt.u.sgd.nesterov = true;
    assert_false(gpu_same_step(&s1, &s2));
    assert_false(gpu_same_step(&s1, &base));
}

/* Conv filters (K, C, R, S) as (K, R, S, cpad): padding channels zero, the round trip exact. */
static void test_conv_layout(void **state)
{
    (void)state;
    struct gpu_tensor t = {.layout = GPU_LAYOUT_KRSC, .dim = {4, 3, 3, 2}, .cpad = 8,
                           .numel = 4 * 3 * 2 * 8};
    int64_t n = 4 * 3 * 3 * 2;
    float src[72], dev[4 * 3 * 2 * 8], back[72];
    for (int i = 0; i < n; i++) src[i] = (float)(i + 1);
    memset(dev, 0xff, sizeof dev);
    gpu_tensor_to_device(&t, src, dev);
    int zeros = 0;
    for (int i = 0; i < t.numel; i++) zeros += dev[i] == 0;
    assert_int_equal(zeros, t.numel - n);
    /* k 2, c 1, r 2, s 1 */
    assert_true(dev[((2 * 3 + 2) * 2 + 1) * 8 + 1] == src[((2 * 3 + 1) * 3 + 2) * 2 + 1]);
    gpu_tensor_from_device(&t, dev, back);
    assert_memory_equal(src, back, sizeof src);
    assert_int_equal(gpu_pad_channels(3, GPU_BF16), 8);
    assert_int_equal(gpu_pad_channels(3, GPU_F32), 4);
    assert_int_equal(gpu_pad_channels(12, GPU_F16), 16);
    assert_int_equal(gpu_pad_channels(64, GPU_F16), 64);
}

static void test_algo_cache(void **state)
{
    (void)state;
    char dir[256];
    assert_int_equal(tmpdir_make(dir, sizeof dir, "gpucache"), 0);
    char path[512];
    snprintf(path, sizeof path, "%s/deep/er/algos.txt", dir);
    struct gpu_cache c;
    gpu_cache_open(&c, path); /* missing: empty */
    assert_int_equal(c.n, 0);
    const char *k1 = "H100|sm90|cudnn91900|fwd|bf16|n256 c64 h32 w32|k64 r3 s3|p1 1|u1 1|d1 1|g1|fast";
    const char *k2 = "H100|sm90|cudnn91900|data|bf16|n256 c64 h32 w32|k64 r3 s3|p1 1|u1 1|d1 1|g1|fast det";
    assert_true(gpu_cache_put(&c, k1, 6, 1, 123456));
    assert_true(gpu_cache_put(&c, k2, 1, 2, 0));
    assert_true(gpu_cache_put(&c, k1, 7, 1, 99)); /* a later search wins */
    gpu_cache_close(&c);
    /* a torn line and junk are ignored */
    FILE *f = fopen(path, "a");
    fputs("garbage\nH100|x 1 2\nH100|sm90|fwd 1 2 -3\nH100|sm90|fwd 1 2", f);
    fclose(f);
    gpu_cache_open(&c, path);
    const struct gpu_cache_entry *e = gpu_cache_get(&c, k1);
    assert_non_null(e);
    assert_int_equal(e->algo, 7);
    assert_int_equal(e->workspace, 99);
    e = gpu_cache_get(&c, k2);
    assert_non_null(e);
    assert_int_equal(e->algo, 1);
    assert_int_equal(e->math, 2);
    assert_null(gpu_cache_get(&c, "H100|sm90|fwd"));
    assert_null(gpu_cache_get(&c, "H100|x"));
    assert_int_equal(c.n, 3);
    gpu_cache_close(&c);
    char buf[600];
    setenv("RUNNER_CACHE_DIR", dir, 1);
    assert_true(gpu_cache_default_path(buf, sizeof buf));
    assert_true(strncmp(buf, dir, strlen(dir)) == 0);
    unsetenv("RUNNER_CACHE_DIR");
    assert_int_equal(tmpdir_remove(dir), 0);
}

int main(int argc, char **argv)
{
    if (argc > 1 && chdir(argv[1]) != 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resnet50_program),
        cmocka_unit_test(test_memory),
        cmocka_unit_test(test_other_ops),
        cmocka_unit_test(test_conv_layout),
        cmocka_unit_test(test_spatial_output),
        cmocka_unit_test(test_layout_refusals),
        cmocka_unit_test(test_same_step),
        cmocka_unit_test(test_algo_cache),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
