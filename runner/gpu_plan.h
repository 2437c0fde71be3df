/*
 * gpu_plan.h: the host-side planning of the CUDA backend, in plain C with no CUDA in it, so
 * that every decision can be tested on any machine (tests/test_gpu_plan.c): which kernels a
 * graph becomes, in which order, on which buffers; where batch normalization, an add and a
 * relu fuse into one kernel; which gradient contributions write and which add; the buffers'
 * lifetimes and their packing into one arena; the device layout of every tensor (NHWC, input
 * channels padded for the tensor cores) and the conversions from and to PyTorch's layouts;
 * the trained arena's ranges and chunks for the fused optimizer update; and the memory a plan
 * needs at a batch size, with the largest batch that fits.
 *
 *     struct gpu_plan gp;
 *     gpu_plan_build(graph, &(struct gpu_plan_config){.batch = 256, .dtype = GPU_BF16,
 *                                                     .train = true}, &gp);
 *     ... the backend fills gp.bufs[i].bytes where only the library knows (reserve space)
 *     size_t act_bytes = gpu_plan_pack(&gp);
 *     for each step of gp.steps[GPU_PROG_FWD_TRAIN] ... (cuda_exec.c runs them)
 *     gpu_plan_free(&gp);
 *
 * Activations are NHWC in the compute type T; batchnorm's statistics, the loss and the
 * master weights are fp32.
 */
#ifndef RUNNER_GPU_PLAN_H
#define RUNNER_GPU_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gpu_math.h"
#include "graph.h"

/* The kernels of a GPU plan. Arguments are buffer ids (-1: none), in the order listed. */
enum gpu_op {
    GPU_OP_INPUT,       /* the f32 NCHW batch, uploaded, into x: (out) */
    GPU_OP_CONV,        /* (x, y): y = conv(x, w) + bias */
    GPU_OP_CONV_DGRAD,  /* (dy, dx): dx = or += (accumulate) the input's gradient */
    GPU_OP_CONV_WGRAD,  /* (x, dy): the weight's (and bias's) gradient */
    GPU_OP_BN_TRAIN,    /* (x, z, y, mean, invstd, reserve): y = bn(x) (+ z) (relu) */
    GPU_OP_BN_EVAL,     /* (x, z, y): with the running statistics */
    GPU_OP_BN_BWD,      /* (x, y, dy, dx, dz, mean, invstd, reserve) */
    GPU_OP_RELU,        /* (x, y) */
    GPU_OP_RELU_BWD,    /* (y, dy, dx) */
    GPU_OP_ADD,         /* (a, b, y) */
    GPU_OP_COPY,        /* (src, dst) */
    GPU_OP_ACCUM,       /* (src, dst): dst += src */
    GPU_OP_POOL,        /* (x, y): maxpool or avgpool (the layer's op) */
    GPU_OP_POOL_BWD,    /* (x, y, dy, dx) */
    GPU_OP_GAP,         /* (x, y) */
    GPU_OP_GAP_BWD,     /* (dy, dx) */
    GPU_OP_LINEAR,      /* (x, y): y = x w^T + b */
    GPU_OP_LINEAR_DGRAD, /* (dy, dx) */
    GPU_OP_LINEAR_WGRAD, /* (x, dy) */
    GPU_OP_DROPOUT,     /* (x, y, mask) */
    GPU_OP_DROPOUT_BWD, /* (dy, dx, mask) */
    GPU_OP_OUTPUT,      /* (y, logits): the output layer's T values as f32, in PyTorch's order */
    GPU_OP_GRAD_PACK,   /* (dlogits, dy): the output's gradient, (N, C*H*W) as PyTorch orders
                           it, into the output's NHWC layout (a spatial output only) */
    GPU_OP_COUNT
};

enum gpu_prog { GPU_PROG_FWD_TRAIN, GPU_PROG_FWD_EVAL, GPU_PROG_BWD, GPU_PROGS };

#define GPU_MAX_ARGS 8

struct gpu_step {
    enum gpu_op op;
    int layer;      /* the graph layer (the fused group's batchnorm); -1: the plan's own */
    int args[GPU_MAX_ARGS];
    bool relu;      /* batchnorm: a relu fused after it */
    bool add;       /* batchnorm: an add fused after it (z, and dz in the backward) */
    bool accumulate; /* the gradient written adds to what is there (conv and linear dgrad) */
    int64_t n;      /* elements (pointwise ops) */
    /* The layout of the tensor of an output, gradient-pack or dropout step: NHWC, ch channels
     * at hw pixels per image (hw 1: the same order as PyTorch's) */
    int64_t ch, hw;
};

enum gpu_buf_kind {
    GPU_BUF_ACT,    /* T: an activation or its gradient (elements: n) */
    GPU_BUF_STAT,   /* f32: per-channel statistics */
    GPU_BUF_MASK,   /* bytes: dropout masks */
    GPU_BUF_BYTES,  /* bytes the library asks for (cuDNN's reserve space) */
    GPU_BUF_F32,    /* f32: the logits */
};

struct gpu_buf {
    enum gpu_buf_kind kind;
    int64_t n;      /* elements */
    size_t bytes;   /* set by gpu_plan_build from n and the type; for GPU_BUF_BYTES, by the
                       backend before gpu_plan_pack */
    int first, last; /* steps (in the training timeline) that use it: written first, read last */
    size_t offset;  /* in the activation arena (gpu_plan_pack) */
};

/* How a graph tensor sits in the device arenas, against PyTorch's layout. */
enum gpu_layout {
    GPU_LAYOUT_PLAIN,  /* the same order (vectors, linear weights, buffers) */
    GPU_LAYOUT_KRSC,   /* conv weight (K, C, R, S) as (K, R, S, cpad): NHWC filters */
    GPU_LAYOUT_HWC_IN, /* linear weight (OUT, C*H*W) after a flatten of NHWC: (OUT, H*W*C) */
};

struct gpu_tensor {
    enum gpu_layout layout;
    int64_t dim[4];  /* K, C, R, S (conv); OUT, C, H, W (linear after flatten) */
    int64_t cpad;    /* KRSC: channels as stored */
    int64_t numel;   /* as stored (with padding) */
    int64_t offset;  /* floats into the trained arena (params) or the state arena (buffers) */
    bool trained;
    bool half;       /* its compute copy is T (conv and linear weights, 16-bit T) */
};

struct gpu_layer {
    int out;  /* buffer of its output (shared by a fused group), -1: none */
    int grad; /* buffer of its output's gradient, -1: not yet written */
};

struct gpu_plan_config {
    int64_t batch;
    enum gpu_dtype dtype;
    bool train;        /* also the backward program and the training forward */
    bool input_grad;   /* the gradient of the input too */
};

struct gpu_plan {
    const struct graph *g;
    struct gpu_plan_config cfg;
    struct gpu_step *steps[GPU_PROGS];
    size_t nsteps[GPU_PROGS];
    struct gpu_buf *bufs;
    size_t nbufs;
    struct gpu_layer *layers;
    struct gpu_tensor *tensors; /* per graph tensor */
    int64_t trained_floats;     /* the trained arena: params, grads, each slot */
    int64_t state_floats;       /* running statistics */
    struct gpu_range *ranges;   /* one per trained tensor */
    size_t nranges;
    struct gpu_chunk *chunks;
    size_t nchunks;
    int input;       /* buffer of the packed input */
    int input_grad;  /* its gradient (cfg.input_grad), else -1 */
    int logits;      /* f32 (N, F) */
    int dlogits;     /* T (N, F): the output's gradient in PyTorch's order, written by the loss
                        (or given); the output layer's gradient itself, unless the output is
                        spatial (then GPU_OP_GRAD_PACK makes that from it) */
    int64_t in_cpad; /* the input's channels as stored */
    int64_t classes;
    size_t act_bytes; /* gpu_plan_pack's */
};

/* Whether the GPU backend runs layer l of g (its op's lowering, layers/<op>_cuda.c, and
 * what that lowering refuses: a batchnorm of a flattened map, an add of tensors ordered
 * differently, pooling with ceil_mode); why says what it lacks. */
bool gpu_plan_supports(const struct graph *g, const struct graph_layer *l, char *why,
                       size_t size);

/* Builds the programs; allocation failure aborts (plans are small). */
void gpu_plan_build(const struct graph *g, const struct gpu_plan_config *cfg,
                    struct gpu_plan *gp);
void gpu_plan_free(struct gpu_plan *gp);
/* The kernel of layer li (of its fused group's batchnorm) in forward program pr, or NULL. */
const struct gpu_step *gpu_plan_step_of(const struct gpu_plan *gp, enum gpu_prog pr, int li);
/* Offsets for every buffer (256-byte aligned, sharing memory where lifetimes allow); returns
 * the activation arena's size. */
size_t gpu_plan_pack(struct gpu_plan *gp);

/* Bytes of one element of type t. */
size_t gpu_dtype_size(enum gpu_dtype t);
const char *gpu_dtype_name(enum gpu_dtype t);
/* Channels as stored for c channels entering a convolution in type t: a multiple of 8 for
 * 16-bit types, of 4 for fp32 (what cuDNN's tensor-core kernels take), when c is below. */
int64_t gpu_pad_channels(int64_t c, enum gpu_dtype t);

/* A tensor from PyTorch's layout into its device layout (padding zero), and back. */
void gpu_tensor_to_device(const struct gpu_tensor *t, const float *src, float *dst);
void gpu_tensor_from_device(const struct gpu_tensor *t, const float *src, float *dst);

/* The fixed arenas' bytes into s->params (fp32 weights, their T copy, the state), s->grads
 * (fp32 and T) and s->optimizer (the slots); grads and optimizer 0 for a plan that does not
 * train. The other fields of s are left as they are. */
struct plan_sizes;
void gpu_plan_fixed_sizes(const struct gpu_plan *gp, int optimizer_slots, struct plan_sizes *s);

/* Memory of a plan at its batch: fixed (weights, gradients, optimizer slots, state) and per
 * image (activations), given the workspace; and the largest batch that fits in `free`
 * bytes (0: none). */
struct gpu_memory {
    size_t fixed, activations, workspace, total;
};
void gpu_plan_memory(const struct gpu_plan *gp, int optimizer_slots, size_t workspace,
                     struct gpu_memory *m);
int64_t gpu_plan_largest_batch(const struct gpu_plan *gp, int optimizer_slots,
                               size_t workspace, size_t free);

/* The arenas of a training plan for g at batch on the GPU, as backend_cuda sizes them, less
 * what only the GPU's libraries can tell (their workspace and reserve space): `runner plan`
 * on a machine without one. */
void gpu_plan_sizes(const struct graph *g, int64_t batch, enum gpu_dtype t, int optimizer_slots,
                    struct plan_sizes *out);

/* Whether a step captured for a replays b: the same but for the learning rate and the update's
 * number (which the device reads at each replay). */
struct plan_step;
bool gpu_same_step(const struct plan_step *a, const struct plan_step *b);

/* The text of an op for errors and profiles. */
const char *gpu_op_name(enum gpu_op op);

#endif
