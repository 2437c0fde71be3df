/*
 * gpu_lower.h: how an op becomes the CUDA backend's kernels, op by op: the table entry each
 * layers/<op>_cuda.c defines (as layers/<op>_cpu.c defines its struct cpu_op), and the
 * builder it writes into (gpu_plan.c). Plain C, no CUDA: every lowering is tested on any
 * machine by tests/test_gpu_plan.c.
 *
 * A lowering's forward adds its kernels to a forward program, reading the buffers of its
 * inputs (gpu_in) and writing its output's (gpu_out); its backward adds the kernels that take
 * its output's gradient dy to its inputs' gradients, which gpu_grad_begin hands out (a fresh
 * buffer, the one to add to, or a temporary summed in by gpu_grad_finish) so that a gradient
 * is complete before its producer's backward reads it. A batchnorm that fuses with the relu,
 * or the add and relu, after it (gpu_plan.c finds which) lowers the whole group; the fused
 * layers' own lowerings are not called.
 */
#ifndef RUNNER_GPU_LOWER_H
#define RUNNER_GPU_LOWER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gpu_plan.h"

#define GPU_NO_Z (-2) /* a batchnorm fused with no add (-1 is the graph input) */

struct gpu_builder {
    struct gpu_plan *gp;
    const struct graph *g;
    int *consumers; /* per layer (index nlayers: the graph input): input slots reading it,
                       plus one for the graph's output */
    int *head;      /* per layer: the batchnorm whose kernel does it, or -1 */
    int *z;         /* per batchnorm fused with an add: the add's other input, else GPU_NO_Z */
    int *tail;      /* per fused batchnorm: the last layer of its group, else -1 */
};

struct gpu_lowering {
    /* Whether the GPU backend runs l (NULL: it does); why says what it lacks. */
    bool (*supports)(const struct graph *g, const struct graph_layer *l, char *why, size_t size);
    void (*forward)(struct gpu_builder *b, enum gpu_prog pr, int li);
    void (*backward)(struct gpu_builder *b, int li, int dy);
};

extern const struct gpu_lowering conv_cuda, batchnorm_cuda, relu_cuda, add_cuda, maxpool_cuda,
    avgpool_cuda, global_avg_pool_cuda, flatten_cuda, linear_cuda, dropout_cuda, identity_cuda;

/* A new kernel in program pr for layer li (-1: the plan's own), arguments -1. */
struct gpu_step *gpu_emit(struct gpu_builder *b, enum gpu_prog pr, enum gpu_op op, int li);
/* A new buffer of n elements of its kind. */
int gpu_new_buf(struct gpu_builder *b, enum gpu_buf_kind kind, int64_t n);
/* The buffer of layer li's input i; of its output (made on first use, shared by both forward
 * programs); the output given: an alias of another buffer (a view). */
int gpu_in(const struct gpu_builder *b, int li, int i);
int gpu_buf_of(const struct gpu_builder *b, int producer); /* a layer, or GRAPH_INPUT */
int gpu_out(struct gpu_builder *b, int li);
void gpu_set_out(struct gpu_builder *b, int li, int buf);
/* Elements of layer li's output, and of its input i, at the plan's batch. */
int64_t gpu_out_numel(const struct gpu_builder *b, int li);
int64_t gpu_in_numel(const struct gpu_builder *b, int li, int i);
/* The layout of producer p's output (GRAPH_INPUT: the input) on the device: ch channels at
 * hw pixels, channels-last (hw 1: PyTorch's order); the map's shape, or NULL for a vector. */
const struct shape *gpu_layout(const struct graph *g, int p, int64_t *ch, int64_t *hw);

/* The buffer to write the gradient of producer `in` (a layer's input) into, n elements; -1
 * when none is wanted (the graph input without input_grad). native: the kernel can add to
 * what is there (*accumulate is then set when it must); otherwise, when the gradient has a
 * contribution already, a temporary that gpu_grad_finish adds into *sum. */
int gpu_grad_begin(struct gpu_builder *b, int in, int64_t n, bool native, bool *accumulate,
                   int *sum);
void gpu_grad_finish(struct gpu_builder *b, int tmp, int sum, int64_t n);
/* Hands dy on to producer `in` unchanged (views, add): the same buffer when `in` has no other
 * reader, else a copy or a sum. */
void gpu_grad_pass(struct gpu_builder *b, int in, int dy, int64_t n);

/* The common shapes: one kernel (x, y) of layer li's input 0 and output; one backward kernel
 * op writing input 0's gradient, its nargs arguments args with the gradient's place at
 * args[dx] (filled in here; the kernel overwrites, so a gradient with other contributions
 * goes through a temporary); a weighted layer's backward (the weights' gradient from (x, dy),
 * the input's from dy); and a view's (flatten, identity: the input's buffer, the gradient
 * passed on). */
struct gpu_step *gpu_emit_unary(struct gpu_builder *b, enum gpu_prog pr, enum gpu_op op, int li);
void gpu_emit_grad(struct gpu_builder *b, int li, enum gpu_op op, const int *args, int nargs,
                   int dx);
void gpu_weighted_backward(struct gpu_builder *b, int li, int dy, enum gpu_op wgrad,
                           enum gpu_op dgrad);
void gpu_view_forward(struct gpu_builder *b, enum gpu_prog pr, int li);
void gpu_view_backward(struct gpu_builder *b, int li, int dy);

#endif
