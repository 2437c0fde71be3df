/*
 * cpu.h: the inside of the CPU backend (backend_cpu.c), shared with the ops' CPU halves in
 * layers/<op>_cpu.c. A plan is three programs of steps: the training forward, the evaluation
 * forward and the backward pass. A step runs a oneDNN primitive created at plan time (with a
 * user-managed scratchpad in the workspace arena) or a plain C kernel; its arguments name
 * buffers, not pointers, so the activation arena can be packed by lifetime first and every
 * oneDNN memory object bound once afterwards.
 *
 * An op's forward builder reads its inputs' layouts (cpu_in_md), chooses its output's
 * (usually oneDNN's preferred blocked layout), declares its tensors' layouts, and appends
 * steps; its backward builder appends the steps that turn its output's gradient into its
 * inputs' (cpu_grad_begin / cpu_grad_finish add up gradients of tensors used twice) and its
 * parameters'. Covered by tests/test_ops_cpu.c and tests/test_plan.c.
 */
#ifndef RUNNER_CPU_H
#define RUNNER_CPU_H

#include <stdbool.h>
#include <stddef.h>

#include "onednn.h"
#include "plan.h"

enum cpu_phase { CPU_FWD_TRAIN, CPU_FWD_EVAL, CPU_BWD, CPU_PHASES };

enum cpu_where {
    CPU_ACT,   /* a buffer in the activation arena (id: buffer) */
    CPU_PARAM, /* a tensor in the parameter arena (id: graph tensor) */
    CPU_GRAD,  /* its gradient in the gradient arena */
};

#define CPU_MAX_ARGS 10

struct cpu;
struct cpu_step;
typedef void (*cpu_kernel_fn)(struct cpu *c, const struct cpu_step *s);

struct cpu_arg {
    int dnnl_arg; /* DNNL_ARG_*; for a C kernel, its own numbering */
    enum cpu_where where;
    int id;
    dnnl_memory_desc_t md;
    dnnl_memory_t mem; /* bound after allocation (primitives only) */
    void *ptr;         /* resolved after allocation */
};

struct cpu_step {
    dnnl_primitive_t prim; /* NULL: kernel */
    cpu_kernel_fn kernel;
    const struct graph_layer *layer;
    const char *what; /* for profiles: NULL (the layer's op), "reorder", "gradient sum", ... */
    int time; /* position in the training program; -1 in the evaluation program */
    int nargs;
    struct cpu_arg args[CPU_MAX_ARGS];
    dnnl_exec_arg_t exec[CPU_MAX_ARGS + 1];
    dnnl_memory_desc_t scratch_md;
    dnnl_memory_t scratch;
    int64_t n;   /* kernel scalars */
    double f;
    double seconds; /* profile: time spent in this step so far, over `calls` runs */
    int64_t calls;
};

struct cpu_layer {
    dnnl_memory_desc_t md; /* its output's layout */
    int out;               /* buffer of its output */
    int grad;              /* buffer of its output's gradient; -1 until a consumer writes it */
    int aux[4];            /* op-specific buffers (batch statistics, pooling workspace, mask) */
    const_dnnl_primitive_desc_t fwd_pd; /* hint for backward primitives */
    enum { CPU_UNFUSED, CPU_FUSED, CPU_FUSED_FORWARD } fused; /* a relu done by its producer:
                              batchnorm (both passes), add (the forward only) */
};

/* A primitive descriptor for op (with the user-managed scratchpad), or NULL with the failure
 * recorded. hint: the forward's, for backward primitives. */
dnnl_primitive_desc_t cpu_pd(struct cpu *c, const struct onednn_op *op,
                             const_dnnl_primitive_desc_t hint, const struct graph_layer *l,
                             const char *what);
/* The same with a relu applied to the output (a oneDNN post-op). */
dnnl_primitive_desc_t cpu_pd_relu(struct cpu *c, const struct onednn_op *op,
                                  const struct graph_layer *l, const char *what);
/* The same, or NULL with nothing recorded (for a fallback: a kernel this machine lacks). */
dnnl_primitive_desc_t cpu_pd_try(struct cpu *c, const struct onednn_op *op,
                                 const_dnnl_primitive_desc_t hint);
/* Keeps pd as layer li's forward descriptor (the hint of its backward primitives). */
void cpu_keep_pd(struct cpu *c, size_t li, dnnl_primitive_desc_t pd);

/* The forward of an op with weights (tensor0) and maybe a bias (tensor0 + 1), conv and
 * linear: keeps pd, takes its output and weight layouts, appends the training and evaluation
 * steps. */
void cpu_weighted_forward(struct cpu *c, size_t li, dnnl_primitive_desc_t pd, bool bias);

/* Appends a oneDNN primitive step created from pd to phase; pd is destroyed unless kept. */
struct cpu_step *cpu_prim(struct cpu *c, enum cpu_phase ph, dnnl_primitive_desc_t pd,
                          const struct graph_layer *l);
/* Appends a C kernel step. */
struct cpu_step *cpu_kernel(struct cpu *c, enum cpu_phase ph, cpu_kernel_fn fn,
                            const struct graph_layer *l);
/* Arguments: a buffer viewed with md; a tensor (or its gradient) in its arena layout. */
void cpu_act(struct cpu *c, struct cpu_step *s, int dnnl_arg, int buf, const dnnl_memory_desc_t *md);
void cpu_tensor_arg(struct cpu *c, struct cpu_step *s, int dnnl_arg, size_t tensor, bool grad);

/* A new activation-arena buffer. */
int cpu_buffer(struct cpu *c, size_t bytes);
/* Layer li's output: its layout and a buffer for it. */
void cpu_output(struct cpu *c, size_t li, const dnnl_memory_desc_t *md);
/* The arena layout of graph tensor t (its PyTorch layout reorders into it). */
void cpu_tensor_md(struct cpu *c, size_t t, const dnnl_memory_desc_t *md);

/* Input i of layer l: its producer's layout and buffer (the graph input's for GRAPH_INPUT). */
const dnnl_memory_desc_t *cpu_in_md(struct cpu *c, const struct graph_layer *l, int i);
int cpu_in_buf(struct cpu *c, const struct graph_layer *l, int i);
struct cpu_layer *cpu_layer(struct cpu *c, const struct graph_layer *l);
const struct graph *cpu_graph(struct cpu *c);
int64_t cpu_batch(struct cpu *c);

/* Floats [begin, end) of the trained tensors' arena: tensors of rank <= 1 (vector) or not. */
struct cpu_range {
    int64_t begin, end;
    bool vector;
};

/* The trained tensors' arenas, for the optimizer kernels (optim_cpu.c): parameters and
 * gradients (param_bytes each), optimizer slots (param_bytes each), and the ranges by kind. */
struct cpu_trained {
    float *params, *grads;
    char *optim;
    size_t param_bytes;
    const struct cpu_range *ranges;
    size_t nranges;
};
void cpu_trained(struct cpu *c, struct cpu_trained *t);

/* The optimizer kernels (the backend's vtable entries; optim_cpu.c). */
enum status cpu_update(struct plan *p, const struct plan_optimizer *o, int64_t t);
enum status cpu_clip_grad_norm(struct plan *p, double max_norm, double *norm);
enum status cpu_ema_update(struct plan *p, int slot, double decay, bool first);
uint64_t cpu_seed(struct cpu *c);
const struct plan_options *cpu_options(struct cpu *c);

/*
 * The buffer a backward step writes the gradient of input i of l into, or -1 when no
 * gradient is wanted (the graph input, unless asked for). When another consumer wrote it
 * already, a temporary; cpu_grad_finish then appends the step that adds it in.
 */
int cpu_grad_begin(struct cpu *c, const struct graph_layer *l, int i);
void cpu_grad_finish(struct cpu *c, const struct graph_layer *l, int i, int buf);
/* The only layer that reads layer li's output, or -1 (none, several, or the graph's output). */
int cpu_sole_consumer(struct cpu *c, size_t li);

/* The gradient buffer of l's output (written by its consumers or the loss). */
int cpu_grad_out(struct cpu *c, const struct graph_layer *l);
/*
 * Makes buffer buf (l's output gradient, same layout) the gradient of input i of l without a
 * copy, where that is safe: no consumer has written that gradient yet, buf is not shared
 * already, and others (the producers in others[0 .. n)) whose gradient buf also is are not
 * affected: gradients of a producer's other consumers are added into buf in place, so they
 * must all come after (in the backward pass) the reads of the others. Returns whether it did.
 */
bool cpu_grad_alias(struct cpu *c, const struct graph_layer *l, int i, int buf,
                    const int *others, int n);

/* Appends a step copying buffer src into dst, both laid out as md. */
void cpu_copy_step(struct cpu *c, enum cpu_phase ph, const struct graph_layer *l, int src,
                   int dst, const dnnl_memory_desc_t *md);

/* Appends a reorder step from layout smd to dmd; the caller adds DNNL_ARG_FROM and _TO. */
struct cpu_step *cpu_reorder(struct cpu *c, enum cpu_phase ph, const struct graph_layer *l,
                             const dnnl_memory_desc_t *smd, const dnnl_memory_desc_t *dmd);
/* Appends a step reordering buffer src (laid out as smd) into dst (as dmd). */
void cpu_reorder_step(struct cpu *c, enum cpu_phase ph, const struct graph_layer *l, int src,
                      const dnnl_memory_desc_t *smd, int dst, const dnnl_memory_desc_t *dmd);

/* Records a failed oneDNN call (at the layer's YAML position); false on failure. */
bool cpu_ok(struct cpu *c, dnnl_status_t st, const struct graph_layer *l, const char *what);

/* Memory descriptors (float; valid as long as the plan: see onednn.h). */
dnnl_memory_desc_t cpu_md(struct cpu *c, int ndims, const int64_t *dims, dnnl_format_tag_t tag);
/* A plain (row-major) layout with md's dims: PyTorch's, at the plan's edges. */
dnnl_memory_desc_t cpu_plain_md(struct cpu *c, const dnnl_memory_desc_t *md);
/* The layout oneDNN chose for argument `what` (dnnl_query_src_md, ...) of pd (it outlives
 * pd); the zero descriptor where pd has none. */
dnnl_memory_desc_t cpu_query(struct cpu *c, const_dnnl_primitive_desc_t pd, dnnl_query_t what,
                             int index);
/* Dimension i of md. */
int64_t cpu_md_dim(const dnnl_memory_desc_t *md, int i);
/* The layer's output dims (N, C, H, W), or (N, F) for vectors. */
int cpu_dims(struct cpu *c, const struct shape *s, int64_t *dims);

/* An op's CPU half: what it needs beyond the graph, and its builders (layers/<op>_cpu.c). */
struct cpu_op {
    bool (*supports)(const struct graph *g, const struct graph_layer *l, char *why, size_t size);
    void (*forward)(struct cpu *c, size_t li);
    void (*backward)(struct cpu *c, size_t li);
};

extern const struct cpu_op conv_cpu, batchnorm_cpu, relu_cpu, add_cpu, maxpool_cpu, avgpool_cpu,
    global_avg_pool_cpu, flatten_cpu, linear_cpu, dropout_cpu, identity_cpu;

#endif
