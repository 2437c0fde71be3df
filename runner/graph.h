/*
 * graph.h: a network graph file (YAML) expanded into a flat list of layers with their shapes,
 * tensors and names. C knows ops (op.h); blocks, stages and ResNets are written in YAML:
 *
 *     input: [3, 32, 32]                  # C, H, W; optional when the data decides it
 *     blocks:
 *       basic:
 *         params: [width, stride]         # or {width: 64, stride: 1} with defaults
 *         body:
 *           - {name: conv1, op: conv, out: $width, kernel: 3, stride: $stride, pad: 1}
 *           - {name: bn1, op: batchnorm}
 *           - relu
 *           - {name: conv2, op: conv, out: $width, kernel: 3, pad: 1}
 *           - {name: bn2, op: batchnorm}
 *         shortcut:                       # used where the body changes the shape
 *           - {name: downsample.0, op: conv, out: $width, kernel: 1, stride: $stride}
 *           - {name: downsample.1, op: batchnorm}
 *         join: [add, relu]               # add(body, shortcut or identity), then relu
 *     graph:
 *       - {name: conv1, op: conv, out: 64, kernel: 3, pad: 1}
 *       - {name: layer1, stage: basic, repeat: 2, width: 64, stride: 1}
 *       - global_avg_pool
 *       - {name: fc, op: linear, out: $classes}
 *
 * A stage repeats a block; its `stride` goes to the first block only (the others get 1), its
 * other arguments to every block. `{name: x, block: basic, ...}` is one block. Names nest:
 * stage layer1's second block's conv2 is layer1.1.conv2, and its weight
 * layer1.1.conv2.weight (torchvision's state-dict names). A layer without a name is called
 * OP_N (relu_1, relu_2, ...) within its block. Arguments and settings may be arithmetic on
 * parameters: `$width * 4`, `($width + 1) // 2` (+ - * / // %, parentheses; integers stay
 * integers, `/` gives a number when it does not divide). `$classes`, the data's class count,
 * may be used everywhere: at the top level, in blocks' layers and arguments, and in
 * parameters' defaults. A block parameter cannot be called `classes` (an error at its name),
 * so `$classes` means the same in every block.
 *
 *     struct graph *g;
 *     struct shape data = {3, {3, 32, 32}};
 *     if (graph_build_for(spec->model.graph.tree, &data, 10, &diag, &g)) return 2;
 *     printf("%lld parameters\n", (long long)g->nparams);
 *     graph_free(g);
 *
 * Every error (an unknown op, a bad setting, an undefined $name, shapes that do not fit an
 * add, a kernel larger than its padded input, a duplicate name) is reported at the position
 * where the layer is written, with the name of the instance that failed; an error in a block
 * is reported once however often the block is used. The graph keeps pointers into the YAML
 * tree's sources: free it before the spec. Covered by tests/test_graph.c and
 * tests/bad_yaml/ (graph cases).
 */
#ifndef RUNNER_GRAPH_H
#define RUNNER_GRAPH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "arena.h"
#include "common.h"
#include "diag.h"
#include "node.h"
#include "op.h"

#define GRAPH_INPUT (-1) /* the producer index of the graph's input */
#define GRAPH_MAX_DEPTH 16 /* blocks inside blocks */
#define GRAPH_MAX_LAYERS 100000

struct graph_layer {
    const char *name; /* hierarchical: "layer1.0.conv2", "layer1.0.relu_1" */
    enum op_kind op;
    union op_params p;
    int in[OP_MAX_INPUTS]; /* producing layers, in order (body, shortcut for add) */
    int nin;
    struct shape out;      /* one image's output */
    uint64_t macs;         /* multiply-adds per image */
    size_t tensor0, ntensors; /* its tensors: graph.tensors[tensor0 .. tensor0 + ntensors) */
    struct mark mark;      /* where the layer is written */
};

struct graph_tensor {
    const char *name; /* layer name + "." + suffix: "layer1.0.bn1.running_var" */
    struct op_tensor t;
    int layer;
};

struct graph {
    struct arena arena; /* names and expanded settings */
    struct shape input; /* one image */
    struct graph_layer *layers;
    size_t nlayers;
    struct graph_tensor *tensors; /* in layer order, then the op's order */
    size_t ntensors;
    int output; /* the layer whose output is the class scores */

    int64_t nparams;     /* trainable values */
    int64_t nbuffers;    /* buffer values (running statistics, counters) */
    size_t nparam_tensors, nbuffer_tensors;
    uint64_t macs;       /* per image */
};

/*
 * Expands tree (a graph file's mapping) for data of classes classes. data_input is the image
 * shape the data gives (C, H, W), or NULL; the graph's own `input`, when written, must agree
 * with it, and is needed without it. classes > 0 is what `$classes` stands for; 0 (or less):
 * no data decides it, and a `$classes` is an error at its position (graph files checked on
 * their own have none). Errors go to d; on failure *out is NULL, STATUS_CONFIG (STATUS_RUNTIME
 * out of memory).
 */
MUST_CHECK enum status graph_build_for(const struct node *tree, const struct shape *data_input,
                                       int classes, struct diag *d, struct graph **out);

/* graph_build_for without a class count (classes 0): for graphs that do not use $classes. */
MUST_CHECK enum status graph_build(const struct node *tree, const struct shape *data_input,
                                   struct diag *d, struct graph **out);
void graph_free(struct graph *g);

/* The layer's input shapes (the graph input's for GRAPH_INPUT). */
const struct shape *graph_input_shape(const struct graph *g, const struct graph_layer *l, int i);

/* Writes the reference of graph files and of every op as Markdown (part of `runner schema`). */
void graph_write_markdown(FILE *out);

/* The tensor called name, or NULL. */
const struct graph_tensor *graph_find_tensor(const struct graph *g, const char *name);

#endif
