/*
 * test_graph.c: the op table and every shape rule, graph expansion (blocks, stages, shortcuts,
 * names, $expressions, $classes), the shipped models against torchvision's state dicts and counts
 * (tests/ref/state_dict_*.txt, written by tests/ref/gen_state_dicts.py), counts that follow
 * edits of a model file, and the memory summary. Error positions are in tests/bad_yaml/.
 * Run from CTest with the project's source directory as its argument.
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

#include "graph.h"
#include "model.h"
#include "spec.h"
#include "summary.h"
#include "test_util.h"
#include "yaml_load.h"

/* --------------------------------------------------------------------------------------- */
/* Helpers */

struct built {
    struct arena a; /* the YAML tree and its source */
    struct graph *g;
    char *msgs;     /* what the build printed */
    int errors;
};

/* Expands a graph written as YAML text, for data of shape data (NULL: the graph's input) with
 * classes classes (0: none, through graph_build). */
static void build_text_for(struct built *b, const char *yaml, const struct shape *data,
                           int classes)
{
    memset(b, 0, sizeof *b);
    struct source *src = arena_alloc(&b->a, sizeof *src);
    *src = (struct source){"graph.yaml", ".", yaml, strlen(yaml)};
    size_t len;
    FILE *mem = open_memstream(&b->msgs, &len);
    struct diag d = {.out = mem};
    struct node *root = NULL;
    if (yaml_load_text(&b->a, &d, src, yaml, strlen(yaml), 1, 1, &root) == STATUS_OK &&
        (classes ? graph_build_for(root, data, classes, &d, &b->g)
                 : graph_build(root, data, &d, &b->g)) != STATUS_OK)
        assert_null(b->g);
    fclose(mem);
    b->errors = d.errors;
}

/* The same without a class count. */
static void build_text(struct built *b, const char *yaml, const struct shape *data)
{
    build_text_for(b, yaml, data, 0);
}

static void built_free(struct built *b)
{
    graph_free(b->g);
    arena_free(&b->a);
    free(b->msgs);
}

/* text with its only occurrence of from replaced by to (caller frees). */
static char *replace_once(const char *text, const char *from, const char *to)
{
    const char *p = strstr(text, from);
    assert_non_null(p);
    assert_null(strstr(p + 1, from));
    size_t n = strlen(text) - strlen(from) + strlen(to);
    char *s = malloc(n + 1);
    snprintf(s, n + 1, "%.*s%s%s", (int)(p - text), text, to, p + strlen(from));
    return s;
}

static const struct graph_layer *layer(const struct graph *g, const char *name)
{
    for (size_t i = 0; i < g->nlayers; i++)
        if (strcmp(g->layers[i].name, name) == 0) return &g->layers[i];
    fail_msg("no layer '%s'", name);
    return NULL;
}

static int layer_index(const struct graph *g, const char *name)
{
    return (int)(layer(g, name) - g->layers);
}

static void expect_shape(const struct shape *s, const char *want)
{
    char buf[SHAPE_TEXT];
    shape_format(s, buf, sizeof buf);
    if (strcmp(buf, want) != 0) fail_msg("shape %s, expected %s", buf, want);
}

/* Runs op k's shape rule on in[] with settings p; returns whether it fit. */
static bool infer(enum op_kind k, union op_params *p, const struct shape *in, struct shape *out,
                  char *why)
{
    memset(out, 0, sizeof *out);
    why[0] = '\0';
    return op_table[k]->infer(p, in, out, why, 256);
}

#define S3(c, h, w) ((struct shape){3, {c, h, w}})
#define S1(f) ((struct shape){1, {f}})

/* --------------------------------------------------------------------------------------- */
/* The op table */

static void test_op_table(void **state)
{
    (void)state;
    for (int k = 0; k < OP_KIND_COUNT; k++) {
        const struct op_def *op = op_table[k];
        assert_non_null(op);
        assert_non_null(op->params);
        assert_non_null(op->infer);
        assert_true(op->arity == 1 || op->arity == 2);
        assert_int_equal(op_find(op->name), k);
        for (int j = 0; j < k; j++) assert_string_not_equal(op_table[j]->name, op->name);
    }
    assert_int_equal(op_find("conv2d"), OP_KIND_COUNT);
    assert_int_equal(op_table[OP_KIND_ADD]->arity, 2);
}

/* --------------------------------------------------------------------------------------- */
/* Shape rules, tensors and MACs, op by op */

static void test_conv(void **state)
{
    (void)state;
    union op_params p = {.conv = {.out = 32, .kernel = {3, 3}, .stride = {2, 2}, .pad = {1, 1},
                                  .dilation = {1, 1}, .groups = 1}};
    struct shape in = S3(16, 32, 32), out;
    char why[256];
    assert_true(infer(OP_KIND_CONV, &p, &in, &out, why));
    expect_shape(&out, "32x16x16");
    assert_int_equal(op_conv.macs(&p, &in, &out), 32ull * 16 * 16 * 16 * 9);
    struct op_tensor t[OP_MAX_TENSORS];
    assert_int_equal(op_conv.tensors(&p, &in, &out, t), 1);
    assert_string_equal(t[0].suffix, "weight");
    assert_int_equal(t[0].rank, 4);
    assert_int_equal(t[0].dim[0], 32);
    assert_int_equal(t[0].dim[1], 16);
    assert_int_equal(t[0].dim[2], 3);
    assert_int_equal(t[0].fan_out, 32 * 9);

    /* Odd sizes round down: (33 + 2 - 3) / 2 + 1 = 17. */
    in = S3(16, 33, 31);
    assert_true(infer(OP_KIND_CONV, &p, &in, &out, why));
    expect_shape(&out, "32x17x16");

    /* Dilation 2 widens a 3x3 kernel to 5x5: pad 2 keeps the size. */
    p.conv.stride[0] = p.conv.stride[1] = 1;
    p.conv.pad[0] = p.conv.pad[1] = 2;
    p.conv.dilation[0] = p.conv.dilation[1] = 2;
    in = S3(16, 32, 32);
    assert_true(infer(OP_KIND_CONV, &p, &in, &out, why));
    expect_shape(&out, "32x32x32");

    /* A 1x7 kernel with pad [0, 3], groups and bias. */
    p.conv = (struct conv_params){.out = 8, .kernel = {1, 7}, .stride = {1, 1}, .pad = {0, 3},
                                  .dilation = {1, 1}, .groups = 4, .bias = true};
    assert_true(infer(OP_KIND_CONV, &p, &in, &out, why));
    expect_shape(&out, "8x32x32");
    assert_int_equal(op_conv.tensors(&p, &in, &out, t), 2);
    assert_int_equal(t[0].dim[1], 4); /* 16 / 4 input channels per group */
    assert_int_equal(t[0].dim[3], 7);
    assert_string_equal(t[1].suffix, "bias");
    assert_int_equal(t[1].dim[0], 8);
    assert_int_equal(op_conv.macs(&p, &in, &out), 8ull * 32 * 32 * 4 * 7);

    /* Misfits. */
    p.conv.groups = 3;
    assert_false(infer(OP_KIND_CONV, &p, &in, &out, why));
    assert_non_null(strstr(why, "groups 3 must divide"));
    p.conv = (struct conv_params){.out = 8, .kernel = {5, 5}, .stride = {1, 1}, .pad = {0, 0},
                                  .dilation = {1, 1}, .groups = 1};
    in = S3(4, 3, 3);
    assert_false(infer(OP_KIND_CONV, &p, &in, &out, why));
    assert_string_equal(why, "kernel 5x5 is larger than its padded input 3x3");
    p.conv.pad[0] = p.conv.pad[1] = 1; /* 5x5 fits 5x5 exactly */
    assert_true(infer(OP_KIND_CONV, &p, &in, &out, why));
    expect_shape(&out, "8x1x1");
    p.conv.kernel[0] = p.conv.kernel[1] = 3;
    p.conv.pad[0] = p.conv.pad[1] = 0;
    p.conv.dilation[0] = p.conv.dilation[1] = 2;
    assert_false(infer(OP_KIND_CONV, &p, &in, &out, why));
    assert_string_equal(why, "kernel 3x3, dilated to 5x5, is larger than its padded input 3x3");
    in = S1(10);
    assert_false(infer(OP_KIND_CONV, &p, &in, &out, why));
    assert_string_equal(why, "conv needs a CxHxW input, got 10");
}

static void test_pools(void **state)
{
    (void)state;
    char why[256];
    struct shape in = S3(64, 112, 112), out;
    /* torchvision's stem max-pool: 3x3/2 pad 1, 112 -> 56. */
    union op_params p = {.pool = {.kernel = {3, 3}, .stride = {2, 2}, .pad = {1, 1}}};
    assert_true(infer(OP_KIND_MAXPOOL, &p, &in, &out, why));
    expect_shape(&out, "64x56x56");
    assert_null(op_maxpool.tensors);
    /* Unset stride: the kernel. */
    p = (union op_params){.pool = {.kernel = {2, 2}}};
    in = S3(8, 9, 9);
    assert_true(infer(OP_KIND_AVGPOOL, &p, &in, &out, why));
    expect_shape(&out, "8x4x4");
    assert_int_equal(p.pool.stride[0], 2);
    /* ceil_mode: 6 -> ceil(3 / 2) + 1 = 3 with 3x3/2 ... */
    p = (union op_params){.pool = {.kernel = {3, 3}, .stride = {2, 2}, .ceil_mode = true}};
    in = S3(1, 6, 6);
    assert_true(infer(OP_KIND_MAXPOOL, &p, &in, &out, why));
    expect_shape(&out, "1x3x3");
    p.pool.ceil_mode = false;
    assert_true(infer(OP_KIND_MAXPOOL, &p, &in, &out, why));
    expect_shape(&out, "1x2x2");
    /* ... but a last window starting in the right pad is dropped (PyTorch): 5, 2/2 pad 1 -> 3. */
    p = (union op_params){.pool = {.kernel = {2, 2}, .stride = {2, 2}, .pad = {1, 1},
                                   .ceil_mode = true}};
    in = S3(1, 5, 5);
    assert_true(infer(OP_KIND_AVGPOOL, &p, &in, &out, why));
    expect_shape(&out, "1x3x3");
    /* Misfits. */
    p = (union op_params){.pool = {.kernel = {3, 3}, .stride = {1, 1}, .pad = {2, 2}}};
    assert_false(infer(OP_KIND_MAXPOOL, &p, &in, &out, why));
    assert_string_equal(why, "pad 2 is more than half the kernel 3x3");
    p = (union op_params){.pool = {.kernel = {7, 7}}};
    assert_false(infer(OP_KIND_AVGPOOL, &p, &in, &out, why));
    assert_string_equal(why, "kernel 7x7 is larger than its padded input 5x5");

    in = S3(2048, 7, 7);
    assert_true(infer(OP_KIND_GLOBAL_AVG_POOL, &p, &in, &out, why));
    expect_shape(&out, "2048");
    in = S1(2048);
    assert_false(infer(OP_KIND_GLOBAL_AVG_POOL, &p, &in, &out, why));
    assert_string_equal(why, "global_avg_pool needs a CxHxW input, got 2048");
}

static void test_pointwise_and_vectors(void **state)
{
    (void)state;
    char why[256];
    union op_params p = {0};
    struct shape in = S3(64, 8, 8), out;
    const enum op_kind same[] = {OP_KIND_RELU, OP_KIND_IDENTITY, OP_KIND_DROPOUT,
                                 OP_KIND_BATCHNORM};
    for (size_t i = 0; i < ARRAY_LEN(same); i++) {
        assert_true(infer(same[i], &p, &in, &out, why));
        expect_shape(&out, "64x8x8");
    }
    struct shape two[2] = {S3(64, 8, 8), S3(64, 8, 8)};
    assert_true(infer(OP_KIND_ADD, &p, two, &out, why));
    expect_shape(&out, "64x8x8");
    two[1] = S3(64, 4, 4);
    assert_false(infer(OP_KIND_ADD, &p, two, &out, why));
    assert_string_equal(why, "cannot add 64x8x8 and 64x4x4: the shapes differ");

    assert_true(infer(OP_KIND_FLATTEN, &p, &in, &out, why));
    expect_shape(&out, "4096");
    in = S1(4096);
    assert_true(infer(OP_KIND_FLATTEN, &p, &in, &out, why));
    expect_shape(&out, "4096");

    p.linear = (struct linear_params){.out = 10, .bias = true};
    assert_true(infer(OP_KIND_LINEAR, &p, &in, &out, why));
    expect_shape(&out, "10");
    struct op_tensor t[OP_MAX_TENSORS];
    assert_int_equal(op_linear.tensors(&p, &in, &out, t), 2);
    assert_int_equal(t[0].dim[0], 10);
    assert_int_equal(t[0].dim[1], 4096);
    assert_int_equal(t[0].init, TENSOR_INIT_UNIFORM_FAN_IN);
    assert_int_equal(t[0].fan_in, 4096);
    assert_int_equal(op_linear.macs(&p, &in, &out), 40960);
    p.linear.bias = false;
    assert_int_equal(op_linear.tensors(&p, &in, &out, t), 1);
    in = S3(16, 2, 2);
    assert_false(infer(OP_KIND_LINEAR, &p, &in, &out, why));
    assert_non_null(strstr(why, "linear needs a vector input, got 16x2x2"));

    /* Batchnorm: two parameters, three buffers (num_batches_tracked a scalar int64). */
    p.batchnorm = (struct batchnorm_params){.eps = 1e-5, .momentum = 0.1, .zero_init = true};
    in = S3(256, 4, 4);
    assert_true(infer(OP_KIND_BATCHNORM, &p, &in, &out, why));
    assert_int_equal(op_batchnorm.tensors(&p, &in, &out, t), 5);
    const char *names[] = {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"};
    for (int i = 0; i < 5; i++) {
        assert_string_equal(t[i].suffix, names[i]);
        assert_int_equal(t[i].role, i < 2 ? TENSOR_PARAM : TENSOR_BUFFER);
        assert_int_equal(t[i].dtype, i == 4 ? TENSOR_I64 : TENSOR_F32);
        assert_int_equal(t[i].rank, i == 4 ? 0 : 1);
        assert_int_equal(op_tensor_numel(&t[i]), i == 4 ? 1 : 256);
    }
    assert_int_equal(t[0].init, TENSOR_INIT_ZERO); /* zero_init: gamma 0 */
    assert_int_equal(t[3].init, TENSOR_INIT_ONE);
}

/* --------------------------------------------------------------------------------------- */
/* Expansion */

static const char *const tiny_resnet =
    "input: [3, 16, 16]\n"
    "blocks:\n"
    "  basic:\n"
    "    params: {width: 8, stride: 1}\n"
    "    body:\n"
    "      - {name: conv1, op: conv, out: $width, kernel: 3, stride: $stride, pad: 1}\n"
    "      - {name: bn1, op: batchnorm}\n"
    "      - relu\n"
    "      - {name: conv2, op: conv, out: $width, kernel: 3, pad: 1}\n"
    "      - {name: bn2, op: batchnorm, zero_init: true}\n"
    "    shortcut:\n"
    "      - {name: downsample.0, op: conv, out: $width, kernel: 1, stride: $stride}\n"
    "      - {name: downsample.1, op: batchnorm}\n"
    "    join: [add, relu]\n"
    "graph:\n"
    "  - {name: conv1, op: conv, out: 8, kernel: 3, pad: 1}\n"
    "  - relu\n"
    "  - {name: layer1, stage: basic, repeat: 2}\n"
    "  - {name: layer2, stage: basic, repeat: 3, width: 16, stride: 2}\n"
    "  - {name: extra, block: basic, width: 16}\n"
    "  - global_avg_pool\n"
    "  - {name: drop, op: dropout, p: 0.2}\n"
    "  - {name: fc, op: linear, out: 10}\n";

static void test_expand_names_and_shortcuts(void **state)
{
    (void)state;
    struct built b;
    build_text(&b, tiny_resnet, NULL);
    if (!b.g) fail_msg("%s", b.msgs);
    const struct graph *g = b.g;
    /* Stem (2) + 6 blocks of 6 layers (conv1 bn1 relu_1 conv2 bn2 add_1 relu_2: 7) + the
     * shortcut of layer2.0 (2) + head (3). */
    assert_int_equal(g->nlayers, 2 + 6 * 7 + 2 + 3);
    assert_string_equal(g->layers[1].name, "relu_1");
    assert_string_equal(g->layers[2].name, "layer1.0.conv1");
    assert_string_equal(g->layers[4].name, "layer1.0.relu_1");
    /* layer1 keeps the shape (8x16x16): identity shortcuts, add fed by the block's input. */
    const struct graph_layer *add = layer(g, "layer1.0.add_1");
    assert_int_equal(add->nin, 2);
    assert_int_equal(add->in[0], layer_index(g, "layer1.0.bn2"));
    assert_int_equal(add->in[1], layer_index(g, "relu_1"));
    assert_null(graph_find_tensor(g, "layer1.0.downsample.0.weight"));
    /* layer2's first block halves the size and doubles the width: its shortcut is used. */
    expect_shape(&layer(g, "layer2.0.conv1")->out, "16x8x8");
    assert_int_equal(layer(g, "layer2.0.conv1")->p.conv.stride[0], 2);
    add = layer(g, "layer2.0.add_1");
    assert_int_equal(add->in[1], layer_index(g, "layer2.0.downsample.1"));
    assert_int_equal(layer(g, "layer2.0.downsample.0")->p.conv.stride[0], 2);
    assert_int_equal(layer(g, "layer2.0.downsample.0")->in[0],
                     layer_index(g, "layer1.1.relu_2"));
    /* Its other blocks get stride 1 and no shortcut. */
    assert_int_equal(layer(g, "layer2.1.conv1")->p.conv.stride[0], 1);
    assert_int_equal(layer(g, "layer2.2.conv1")->p.conv.stride[0], 1);
    assert_null(graph_find_tensor(g, "layer2.1.downsample.0.weight"));
    expect_shape(&layer(g, "layer2.2.relu_2")->out, "16x8x8");
    /* A single block: names without an index; defaults fill what is not given. */
    expect_shape(&layer(g, "extra.conv1")->out, "16x8x8");
    assert_true(layer(g, "layer2.0.bn2")->p.batchnorm.zero_init);
    assert_true(layer(g, "drop")->p.dropout.p == 0.2);
    /* Tensors in layer order with full names; the output is fc. */
    assert_string_equal(g->tensors[0].name, "conv1.weight");
    const struct graph_tensor *t = graph_find_tensor(g, "layer2.0.downsample.1.running_var");
    assert_non_null(t);
    assert_int_equal(t->t.dim[0], 16);
    assert_int_equal(g->output, layer_index(g, "fc"));
    assert_string_equal(g->tensors[g->ntensors - 1].name, "fc.bias");
    /* Parameters: stem 216, layer1 2 x (576 + 16 + 576 + 16), layer2.0 1152 + 32 + 2304 +
     * 32 + 128 + 32, layer2.1-2 and extra 3 x (2304 + 32 + 2304 + 32), fc 170. */
    assert_int_equal(g->nparams, 216 + 2 * 1184 + 3680 + 3 * 4672 + 170);
    built_free(&b);
}

static void test_expressions(void **state)
{
    (void)state;
    const char *yaml =
        "input: [3, 8, 8]\n"
        "blocks:\n"
        "  b:\n"
        "    params: [w, k]\n"
        "    body:\n"
        "      - {name: a, op: conv, out: $w * 4, kernel: $k}\n"
        "      - {name: b, op: conv, out: ($w + 1) // 2, kernel: [1, $k], pad: [0, $k // 2]}\n"
        "      - {name: c, op: conv, out: -$w + 20 - 7 % 3 + 1, kernel: 1}\n"
        "      - {name: d, op: conv, out: 12 / 4 * $w, kernel: 1, groups: $w}\n"
        "      - {name: e, op: dropout, p: $w / 10}\n"
        "graph:\n"
        "  - {name: x, block: b, w: 5, k: 3}\n"
        "  - global_avg_pool\n"
        "  - {name: fc, op: linear, out: 10}\n";
    struct built b;
    build_text(&b, yaml, NULL);
    if (!b.g) fail_msg("%s", b.msgs);
    assert_int_equal(layer(b.g, "x.a")->p.conv.out, 20);
    assert_int_equal(layer(b.g, "x.a")->p.conv.kernel[1], 3);
    assert_int_equal(layer(b.g, "x.b")->p.conv.out, 3);
    assert_int_equal(layer(b.g, "x.b")->p.conv.kernel[0], 1);
    assert_int_equal(layer(b.g, "x.b")->p.conv.pad[1], 1);
    assert_int_equal(layer(b.g, "x.c")->p.conv.out, 15);
    assert_int_equal(layer(b.g, "x.d")->p.conv.out, 15);
    assert_int_equal(layer(b.g, "x.d")->p.conv.groups, 5);
    assert_true(layer(b.g, "x.e")->p.dropout.p == 0.5);
    built_free(&b);

    /* `/` that does not divide gives a number, which an integer setting rejects. */
    char *bad = replace_once(yaml, "out: $w * 4", "out: $w / 2");
    build_text(&b, bad, NULL);
    assert_null(b.g);
    assert_int_equal(b.errors, 1);
    assert_non_null(strstr(b.msgs, "graph.yaml:6:34: error: 'x.a.out' must be an integer >= 1, "
                                   "got 2.5"));
    built_free(&b);
    free(bad);

    /* After a first error the rest of an expression is not computed (no division by 0). */
    bad = replace_once(yaml, "out: $w * 4", "out: $nope // 0 % 0");
    build_text(&b, bad, NULL);
    assert_null(b.g);
    assert_int_equal(b.errors, 1);
    assert_non_null(strstr(b.msgs, "'$nope' is not a parameter of this block"));
    built_free(&b);
    free(bad);
}

/* $classes: the data's class count at the top level, in blocks, in expressions and defaults. */
static void test_classes(void **state)
{
    (void)state;
    const char *yaml =
        "input: [3, 8, 8]\n"
        "blocks:\n"
        "  head:\n"
        "    params: {width: 4, out: $classes + 1}\n"
        "    body:\n"
        "      - {name: wide, op: conv, out: $classes * 2, kernel: 1}\n"
        "      - {name: narrow, op: conv, out: $width, kernel: 1}\n"
        "      - {name: last, op: conv, out: $out, kernel: 1}\n"
        "graph:\n"
        "  - {name: stem, op: conv, out: $classes, kernel: 1}\n"
        "  - {name: s, stage: head, repeat: $classes // 7}\n"
        "  - global_avg_pool\n"
        "  - {name: fc, op: linear, out: $classes}\n";
    struct built b;
    build_text_for(&b, yaml, NULL, 7);
    if (!b.g) fail_msg("%s", b.msgs);
    assert_int_equal(layer(b.g, "stem")->p.conv.out, 7);
    assert_int_equal(layer(b.g, "s.0.wide")->p.conv.out, 14);
    assert_int_equal(layer(b.g, "s.0.narrow")->p.conv.out, 4);
    assert_int_equal(layer(b.g, "s.0.last")->p.conv.out, 8);
    assert_int_equal(layer(b.g, "fc")->p.linear.out, 7);
    assert_null(graph_find_tensor(b.g, "s.1.wide.weight")); /* repeat 7 // 7 */
    expect_shape(&b.g->layers[b.g->output].out, "7");
    built_free(&b);
    build_text_for(&b, yaml, NULL, 100);
    if (!b.g) fail_msg("%s", b.msgs);
    assert_int_equal(layer(b.g, "s.13.wide")->p.conv.out, 200);
    assert_int_equal(layer(b.g, "s.13.last")->p.conv.out, 101);
    expect_shape(&b.g->layers[b.g->output].out, "100");
    built_free(&b);

    /* Without a class count (graph_build): an error where it is used; in a block, once
     * (where the block is defined). */
    const char *top = "input: [3, 8, 8]\n"
                      "graph:\n"
                      "  - {name: stem, op: conv, out: 8, kernel: 1}\n"
                      "  - global_avg_pool\n"
                      "  - {name: fc, op: linear, out: $classes}\n";
    build_text(&b, top, NULL);
    assert_null(b.g);
    assert_int_equal(b.errors, 1);
    assert_non_null(strstr(b.msgs, "graph.yaml:5:33: error: '$classes' has no value: it is the "
                                   "class count of the experiment's data, and a graph file "
                                   "checked on its own has no $classes"));
    built_free(&b);
    build_text(&b, yaml, NULL);
    assert_null(b.g);
    assert_int_equal(b.errors, 2);
    assert_non_null(strstr(b.msgs, "graph.yaml:4:29: error: '$classes' has no value"));
    assert_non_null(strstr(b.msgs, "graph.yaml:6:37: error: '$classes' has no value"));
    built_free(&b);

    /* A block parameter cannot be called classes (it would change what $classes means). */
    char *shadow = replace_once(yaml, "{width: 4, out: $classes + 1}",
                                "{width: 4, out: 1, classes: 3}");
    build_text_for(&b, shadow, NULL, 7);
    assert_null(b.g);
    assert_int_equal(b.errors, 1);
    assert_non_null(strstr(b.msgs, "graph.yaml:4:32: error: 'classes' cannot be a parameter "
                                   "name: $classes is the data's class count in every block"));
    built_free(&b);
    free(shadow);

    /* A misspelt $classes: the hint names it, at the top level and in a block. */
    char *typo = replace_once(top, "out: $classes}", "out: $clases}");
    build_text_for(&b, typo, NULL, 7);
    assert_null(b.g);
    assert_non_null(strstr(b.msgs, "graph.yaml:5:33: error: '$clases' is not defined"));
    assert_non_null(strstr(b.msgs, "did you mean '$classes'?"));
    built_free(&b);
    free(typo);
    typo = replace_once(yaml, "out: $classes * 2", "out: $clases * 2");
    build_text_for(&b, typo, NULL, 7);
    assert_null(b.g);
    assert_non_null(strstr(b.msgs, "graph.yaml:6:37: error: '$clases' is not a parameter of "
                                   "this block"));
    assert_non_null(strstr(b.msgs, "did you mean '$classes'?"));
    built_free(&b);
    free(typo);
}

static void test_block_error_reported_once(void **state)
{
    (void)state;
    /* A bad setting in a block used by 3 x 4 instances: one error. */
    const char *yaml = "input: [3, 8, 8]\n"
                       "blocks:\n"
                       "  b:\n"
                       "    body:\n"
                       "      - {op: conv, out: 4, kernel: 1, stride: 0}\n"
                       "graph:\n"
                       "  - {name: s1, stage: b, repeat: 4}\n"
                       "  - {name: s2, stage: b, repeat: 4}\n"
                       "  - {name: s3, stage: b, repeat: 4}\n"
                       "  - global_avg_pool\n"
                       "  - {name: fc, op: linear, out: 10}\n";
    struct built b;
    build_text(&b, yaml, NULL);
    assert_null(b.g);
    assert_int_equal(b.errors, 1);
    assert_non_null(strstr(b.msgs, "graph.yaml:5:47: error: 's1.0.conv_1.stride' must be"));
    built_free(&b);

    /* Two independent mistakes: both reported, nothing else. */
    char *two = replace_once(yaml, "  - {name: s3, stage: b, repeat: 4}\n",
                             "  - {name: s3, stage: b, repeat: 4}\n  - {op: relu6}\n");
    build_text(&b, two, NULL);
    assert_int_equal(b.errors, 2);
    assert_non_null(strstr(b.msgs, "unknown op 'relu6'"));
    built_free(&b);
    free(two);
}

static void test_input_from_data(void **state)
{
    (void)state;
    /* Without `input`, the data's shape; with it, they must agree. */
    const char *yaml = "graph:\n"
                       "  - {name: conv1, op: conv, out: 8, kernel: 7, stride: 2, pad: 3}\n"
                       "  - {name: pool, op: maxpool, kernel: 3, stride: 2, pad: 1}\n"
                       "  - global_avg_pool\n"
                       "  - {name: fc, op: linear, out: 10}\n";
    struct shape big = S3(3, 224, 224), small = S3(3, 32, 32);
    struct built b;
    build_text(&b, yaml, &big);
    assert_non_null(b.g);
    expect_shape(&layer(b.g, "pool")->out, "8x56x56");
    built_free(&b);
    build_text(&b, yaml, &small);
    assert_non_null(b.g);
    expect_shape(&layer(b.g, "pool")->out, "8x8x8");
    built_free(&b);
    build_text(&b, yaml, NULL);
    assert_null(b.g);
    assert_non_null(strstr(b.msgs, "missing required key 'input' in the graph file"));
    built_free(&b);
}

/* --------------------------------------------------------------------------------------- */
/* The shipped models against torchvision */

static void check_model(const char *model)
{
    char path[256], ref[256];
    snprintf(path, sizeof path, "experiments/models/%s.yaml", model);
    snprintf(ref, sizeof ref, "tests/ref/state_dict_%s.txt", model);
    char *yaml = slurp(path), *want = slurp(ref);
    assert_non_null(yaml);
    assert_non_null(want);
    struct shape data = S3(3, 32, 32);
    struct built b;
    build_text_for(&b, yaml, &data, TEST_CLASSES);
    if (!b.g) fail_msg("%s: %s", model, b.msgs);
    const struct graph *g = b.g;

    long long params = 0, macs = 0;
    const char *p = strstr(want, "# params ");
    assert_non_null(p);
    assert_int_equal(sscanf(p, "# params %lld macs %lld", &params, &macs), 2);
    if (g->nparams != params || (long long)g->macs != macs)
        fail_msg("%s: %lld parameters and %llu MACs; torchvision: %lld and %lld", model,
                 (long long)g->nparams, (unsigned long long)g->macs, params, macs);

    /* Every state-dict entry, in order: name, dtype, shape. */
    size_t i = 0;
    for (char *line = strtok(want, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#') continue;
        char name[256], dtype[8], dims[64];
        dims[0] = '\0';
        assert_true(sscanf(line, "%255s %7s %63s", name, dtype, dims) >= 2);
        if (i >= g->ntensors) fail_msg("%s: torchvision has more tensors, from %s", model, name);
        const struct graph_tensor *t = &g->tensors[i++];
        char got[64] = "";
        size_t used = 0;
        for (int d = 0; d < t->t.rank; d++)
            used += (size_t)snprintf(got + used, sizeof got - used, "%s%lld", d ? "," : "",
                                     (long long)t->t.dim[d]);
        const char *gd = t->t.dtype == TENSOR_I64 ? "i64" : "f32";
        if (strcmp(t->name, name) || strcmp(gd, dtype) || strcmp(got, dims))
            fail_msg("%s: tensor %zu is %s %s [%s]; torchvision: %s %s [%s]", model, i - 1,
                     t->name, gd, got, name, dtype, dims);
    }
    if (i != g->ntensors) fail_msg("%s: %zu tensors, torchvision %zu", model, g->ntensors, i);
    built_free(&b);
    free(yaml);
    free(want);
}

static void test_resnet50(void **state)
{
    (void)state;
    check_model("resnet50");
}

static void test_resnet50_imagenet_stem(void **state)
{
    (void)state;
    check_model("resnet50_imagenet_stem");
}

static void test_resnet18(void **state)
{
    (void)state;
    check_model("resnet18");
}

static void test_resnet101(void **state)
{
    (void)state;
    check_model("resnet101");
}

/* The counts named in the documentation, once more, through the experiment files. */
static void test_known_counts(void **state)
{
    (void)state;
    struct {
        const char *model;
        long long params, macs;
    } known[] = {
        {"models/resnet50.yaml", 23520842, 1297829888},
        {"models/resnet50_imagenet_stem.yaml", 23528522, -1},
        {"models/resnet18.yaml", 11173962, -1},
    };
    for (size_t i = 0; i < ARRAY_LEN(known); i++) {
        char ov[128];
        snprintf(ov, sizeof ov, "model=%s", known[i].model);
        const char *ovs[] = {ov};
        struct diag d = {.out = stderr};
        struct spec *s;
        assert_int_equal(spec_load("experiments/resnet50_adam.yaml", ovs, 1, &d, &s), STATUS_OK);
        struct graph *g;
        assert_int_equal(model_build(s, &d, &g), STATUS_OK);
        assert_int_equal(g->nparams, known[i].params);
        if (known[i].macs >= 0) assert_int_equal(g->macs, known[i].macs);
        graph_free(g);
        spec_free(s);
    }
}

/* --------------------------------------------------------------------------------------- */
/* Edits of a model file: the counts follow (expected values from torchvision with the same
 * change: tests/ref/gen_state_dicts.py's models with layer3 of 2 blocks, layer4 of width 256). */

static void test_counts_follow_edits(void **state)
{
    (void)state;
    struct shape data = S3(3, 32, 32);
    char *r50 = slurp("experiments/models/resnet50.yaml");
    assert_non_null(r50);
    char *fewer = replace_once(r50, "repeat: 6, width: 256", "repeat: 2, width: 256");
    struct built b;
    build_text_for(&b, fewer, &data, TEST_CLASSES);
    assert_non_null(b.g);
    /* 4 bottlenecks of width 256 fewer: 4 x (17 w^2 + 12 w) parameters, 4 x 17 w^2 x 8 x 8 MACs. */
    assert_int_equal(b.g->nparams, 23520842 - 4 * (17 * 256 * 256 + 12 * 256));
    assert_int_equal(b.g->nparams, 19052106);
    assert_int_equal(b.g->macs, 1012617216);
    assert_null(graph_find_tensor(b.g, "layer3.2.conv1.weight"));
    assert_non_null(graph_find_tensor(b.g, "layer3.1.conv1.weight"));
    built_free(&b);
    free(fewer);
    free(r50);

    char *r18 = slurp("experiments/models/resnet18.yaml");
    assert_non_null(r18);
    char *narrow = replace_once(r18, "width: 512", "width: 256");
    build_text_for(&b, narrow, &data, TEST_CLASSES);
    assert_non_null(b.g);
    assert_int_equal(b.g->nparams, 5205066);
    assert_int_equal(b.g->macs, 459999744);
    assert_int_equal(graph_find_tensor(b.g, "fc.weight")->t.dim[1], 256);
    built_free(&b);
    free(narrow);
    free(r18);
}

/* --------------------------------------------------------------------------------------- */
/* Memory of one training step */

static void test_memory(void **state)
{
    (void)state;
    const char *ovs[] = {"train.batch_size=64", "optimizer={type: sgd, lr: 0.1, momentum: 0}"};
    for (int sgd = 0; sgd < 2; sgd++) {
        struct diag d = {.out = stderr};
        struct spec *s;
        assert_int_equal(spec_load("experiments/resnet50_adam.yaml", ovs, sgd ? 2 : 1, &d, &s),
                         STATUS_OK);
        struct graph *g;
        assert_int_equal(model_build(s, &d, &g), STATUS_OK);
        struct summary_memory m = summary_memory(s, g, false);
        size_t np = 23520842, nb = 53173;
        assert_string_equal(m.precision, "fp32");
        assert_int_equal(m.params, 4 * (np + nb));
        assert_int_equal(m.grads, 4 * np);
        assert_int_equal(m.state_per_param, sgd ? 0 : 2);
        assert_int_equal(m.optimizer, sgd ? 0 : 8 * np);
        size_t per_image = 3 * 32 * 32;
        for (size_t i = 0; i < g->nlayers; i++) per_image += (size_t)shape_numel(&g->layers[i].out);
        assert_int_equal(m.activations, per_image * 4 * 64);
        assert_int_equal(m.total, m.params + m.grads + m.optimizer + m.activations);
        /* On a GPU, bf16 activations and a 16-bit copy of the parameters. */
        struct summary_memory c = summary_memory(s, g, true);
        assert_string_equal(c.precision, "bf16");
        assert_int_equal(c.activations, m.activations / 2);
        assert_int_equal(c.params, m.params + 2 * np);
        graph_free(g);
        spec_free(s);
    }
}

int main(int argc, char **argv)
{
    if (argc > 1 && chdir(argv[1]) != 0) {
        fprintf(stderr, "usage: test_graph SOURCE_DIR\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_op_table),
        cmocka_unit_test(test_conv),
        cmocka_unit_test(test_pools),
        cmocka_unit_test(test_pointwise_and_vectors),
        cmocka_unit_test(test_expand_names_and_shortcuts),
        cmocka_unit_test(test_expressions),
        cmocka_unit_test(test_classes),
        cmocka_unit_test(test_block_error_reported_once),
        cmocka_unit_test(test_input_from_data),
        cmocka_unit_test(test_resnet50),
        cmocka_unit_test(test_resnet50_imagenet_stem),
        cmocka_unit_test(test_resnet18),
        cmocka_unit_test(test_resnet101),
        cmocka_unit_test(test_known_counts),
        cmocka_unit_test(test_counts_follow_edits),
        cmocka_unit_test(test_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
