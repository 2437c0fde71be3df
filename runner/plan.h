/*
 * plan.h: a graph compiled for one backend and batch size into an executable plan: arenas for
 * parameters, gradients, optimizer state, activations and workspace, allocated once, and the
 * kernels of a training step (forward, loss, backward, update) and of evaluation.
 *
 *     struct plan_options o = {.batch = 64, .optimizer_slots = 2, .seed = 1};
 *     struct plan *p;
 *     if (plan_create(graph, &backend_cpu, &o, &diag, &p)) return 2;
 *     plan_init_params(p, seed);                          // or plan_set_tensor(...)
 *     plan_set_input(p, images, labels);                  // (N, C, H, W), (N)
 *     plan_forward(p, true);
 *     double loss = plan_loss(p, 0.1);                    // label smoothing 0.1
 *     plan_backward(p);
 *     plan_adam_step(p, &adam, 1);                       // t: the update's number
 *     plan_free(p);
 *
 * Phases: the backend checks it supports every layer (an op it cannot run is an error at the
 * layer's YAML position), builds its kernels, sizes every buffer, then each arena is
 * allocated once; activation buffers share memory where their lifetimes (from the first write
 * to the last read in a training step) do not overlap. Execution never allocates.
 *
 * Tensors cross the plan's edges in PyTorch's layouts (NCHW, weights (K, C, R, S), linear
 * (OUT, IN)); inside, the backend keeps its own. Covered by tests/test_plan.c and
 * tests/test_ops_cpu.c.
 */
#ifndef RUNNER_PLAN_H
#define RUNNER_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "diag.h"
#include "graph.h"

struct plan_options {
    int64_t batch;
    int optimizer_slots; /* optimizer values per parameter: see plan_sgd, plan_adam, EMA */
    bool input_grad;     /* also compute the gradient of the input (tests) */
    uint64_t seed;       /* dropout masks: a function of (seed, step, element) */
    bool sizes_only;     /* build and size everything, allocate no arena (runner plan) */
    bool profile;        /* time every kernel (plan_timings) */
    bool eval_only;      /* only the evaluation forward: no gradients, no optimizer state */
    bool conv_direct;    /* direct convolution only (no Winograd): train.conv_algorithm */
    /* The GPU backend's (the CPU computes in fp32 and ignores them): */
    enum plan_precision { PLAN_FP32, PLAN_BF16, PLAN_FP16 } precision; /* compute type */
    bool tf32;           /* fp32 convolutions and matrix products may use TF32 tensor cores */
    bool deterministic;  /* deterministic algorithms only: the same bits on every run */
    bool no_graph;       /* run every kernel from the host instead of replaying CUDA graphs */
    int device;          /* cuda:N */
    const char *algo_cache; /* file of searched convolution algorithms; NULL: none kept */
    /* Where the backend's run-time warnings and its failure go, a line each without the
     * newline (error: the failure); NULL: standard error, as "runner: warning: ..." */
    void (*message)(void *ctx, bool error, const char *line);
    void *message_ctx;
};

struct plan_sizes {
    size_t params, grads, optimizer, activations, workspace; /* bytes */
};

/* The optimizers' settings (torch.optim's). Optimizer slots: SGD's momentum buffer is slot 0;
 * Adam's exp_avg, exp_avg_sq and, with amsgrad, max_exp_avg_sq are slots 0, 1, 2. */
struct plan_sgd {
    double lr, momentum, dampening, weight_decay;
    bool nesterov;
    bool no_decay_vectors; /* no weight decay on trained tensors of rank <= 1 (biases, BN) */
};

struct plan_adam {
    double lr, beta1, beta2, eps, weight_decay;
    bool decoupled;        /* AdamW */
    bool amsgrad;          /* the maximum of past second moments (slot 2) */
    bool no_decay_vectors; /* no weight decay on trained tensors of rank <= 1 (biases, BN) */
};

/* An optimizer as data: which one, and its settings. */
enum plan_optimizer_kind { PLAN_OPT_SGD, PLAN_OPT_ADAM };
struct plan_optimizer {
    enum plan_optimizer_kind kind;
    union {
        struct plan_sgd sgd;   /* PLAN_OPT_SGD */
        struct plan_adam adam; /* PLAN_OPT_ADAM (AdamW: decoupled) */
    } u;
};

/* One whole training step: forward (training mode), loss, backward, gradient clipping, the
 * optimizer's update and the weights' EMA, as step.c runs it. A backend may run it in one go
 * (the CUDA backend replays it as one CUDA graph). */
struct plan_step {
    double smoothing;      /* label smoothing */
    struct plan_optimizer opt;
    int64_t t;             /* the update's number if it is applied: 1 + the updates applied
                              before it (a backend that skips updates keeps its own count while
                              steps are in flight: plan_step_result.updates) */
    double clip_grad_norm; /* 0: off */
    int ema_slot;          /* -1: no EMA */
    double ema_decay;
};

struct plan_step_result {
    double loss;      /* mean over the batch */
    int64_t correct;  /* rows whose largest output is their label (soft targets: the same) */
    double grad_norm; /* before clipping (clip_grad_norm > 0) */
    bool skipped;     /* fp16: gradients overflowed, the update was skipped, the scale lowered */
    int64_t updates;  /* updates applied so far, this step's included (skipped ones are not:
                         PyTorch's state['step']) */
};

/* A training set for plan_set_dataset: images as bytes and their per-image transforms. */
struct augment_gpu_plan;
struct plan_dataset {
    const uint8_t *pixels; /* (count, aug->c, aug->in_h, aug->in_w) bytes */
    int64_t count;
    const struct augment_gpu_plan *aug; /* copied; its output is the graph's input */
};

/* Where a plan spends its time (profile on): one kernel of the plan, accumulated. */
enum plan_pass { PLAN_FORWARD, PLAN_LOSS, PLAN_BACKWARD, PLAN_UPDATE, PLAN_EVAL, PLAN_PASSES };

struct plan_timing {
    const struct graph_layer *layer; /* NULL: the plan's own (loss, optimizer, edges) */
    const char *what;                /* the kernel: the op's name, "reorder", "gradient sum" */
    enum plan_pass pass;
    double seconds; /* in total over calls */
    int64_t calls;
};

typedef void (*plan_timing_fn)(void *ctx, const struct plan_timing *t);

struct plan;

/* A backend: what it can run and how it builds a plan (backend_cpu.c, backend_cuda.c).
 *
 * The run-time entries return STATUS_OK, or STATUS_RUNTIME when the device failed: the backend
 * has said what failed (plan_fail) and its state can no longer be trusted, so plan.c calls
 * nothing more but destroy (plan_status). */
struct backend {
    const char *name;
    /* Whether the backend runs this layer of g; why says what it lacks. */
    bool (*supports)(const struct graph *g, const struct graph_layer *l, char *why, size_t size);
    /* On failure (an error in d), plan_create calls destroy on what it made. */
    MUST_CHECK enum status (*create)(struct plan *p, struct diag *d);
    void (*destroy)(struct plan *p);
    enum status (*set_tensor)(struct plan *p, const struct graph_tensor *t, bool grad,
                              const void *src);
    enum status (*get_tensor)(struct plan *p, const struct graph_tensor *t, bool grad, void *dst);
    enum status (*set_input)(struct plan *p, const float *x, const int32_t *labels);
    enum status (*set_targets)(struct plan *p, const float *q);
    enum status (*forward)(struct plan *p, bool train);
    enum status (*loss)(struct plan *p, double smoothing, double *loss);
    enum status (*backward)(struct plan *p, const float *dy);
    enum status (*get_output)(struct plan *p, float *y);
    enum status (*get_input_grad)(struct plan *p, float *dx);
    /* Optimizer value `slot` of a trained tensor, in PyTorch's layout (checkpoints). */
    enum status (*get_state)(struct plan *p, const struct graph_tensor *t, int slot, float *dst);
    enum status (*set_state)(struct plan *p, const struct graph_tensor *t, int slot,
                             const float *src);
    /* One optimizer update from the gradients in the plan; t: the update's number (1, 2, ...:
     * Adam's bias corrections, SGD's first momentum step). */
    enum status (*update)(struct plan *p, const struct plan_optimizer *o, int64_t t);
    enum status (*clip_grad_norm)(struct plan *p, double max_norm, double *norm);
    enum status (*ema_update)(struct plan *p, int slot, double decay, bool first);
    /* Calls fn for every kernel timed so far (profile on); with fn NULL, zeroes the times. */
    void (*timings)(struct plan *p, plan_timing_fn fn, void *ctx);
    /* The whole step in one go, asynchronously: step_start enqueues it (a batch set before),
     * step_wait returns the oldest started step's result; at most two steps are started and
     * not waited for. NULL: plan.c runs the entries above in turn. */
    enum status (*step_start)(struct plan *p, const struct plan_step *st);
    enum status (*step_wait)(struct plan *p, struct plan_step_result *r);
    /* The training set kept by the backend, augmented where it runs (plan_set_dataset); NULL:
     * plan.c augments each batch on the host and calls set_input. false, with why: no room
     * (or the device failed: plan_status then says so). */
    MUST_CHECK bool (*set_dataset)(struct plan *p, const struct plan_dataset *ds, char *why,
                                   size_t size);
    enum status (*set_batch)(struct plan *p, const int64_t *image, const uint64_t *key,
                             const int32_t *labels);
};

extern const struct backend backend_cpu;
#ifdef RUNNER_HAVE_CUDA
extern const struct backend backend_cuda;
#endif

struct plan {
    const struct backend *be;
    const struct graph *g;
    struct plan_options opt;
    struct plan_sizes sizes;
    int64_t steps; /* training forwards run (dropout masks differ per step) */
    double pass_seconds[PLAN_PASSES]; /* wall time in each pass so far */
    int64_t pass_calls[PLAN_PASSES];
    /* plan.c's own: the labels set last, the output read back to count correct rows, and
     * the results of steps run synchronously and not yet waited for */
    int32_t *labels;
    float *output;
    struct plan_step_result done[2];
    int ndone, started;
    /* the dataset when the backend keeps none (a copy of the plan, the caller's bytes) */
    struct augment_gpu_plan *data_aug;
    const uint8_t *data_pixels;
    int64_t data_count;
    float *data_x;
    void *impl;    /* the backend's */
    enum status status; /* STATUS_RUNTIME from the backend's first run-time failure on */
    char error[1024];   /* what failed */
};

/* STATUS_OK while the plan works; STATUS_RUNTIME from its backend's first run-time failure on
 * (a CUDA error: the device's state is lost). After a failure every plan call returns at
 * once, leaving outputs zero, and the plan can only be freed; plan_error says what failed
 * ("" while none has). Callers check it where a result matters: after a step, an evaluation,
 * before saving. */
enum status plan_status(const struct plan *p);
const char *plan_error(const struct plan *p);
/* For backends: a run-time failure (the first one is kept and goes to the plan's message
 * sink; the backend returns STATUS_RUNTIME), and a warning (to the sink). */
void plan_fail(struct plan *p, const char *fmt, ...) PRINTF_LIKE(2, 3);
void plan_warn(struct plan *p, const char *fmt, ...) PRINTF_LIKE(2, 3);

/* Compiles g for backend be; errors (an unsupported layer, a library failure) go to d. */
MUST_CHECK enum status plan_create(const struct graph *g, const struct backend *be,
                                   const struct plan_options *o, struct diag *d,
                                   struct plan **out);
void plan_free(struct plan *p);

/* Parameters and buffers by graph tensor, in PyTorch's layout (f32, or i64 counters). */
void plan_set_tensor(struct plan *p, const struct graph_tensor *t, const void *src);
void plan_get_tensor(struct plan *p, const struct graph_tensor *t, void *dst);
void plan_get_grad(struct plan *p, const struct graph_tensor *t, float *dst);
/* Sets a parameter's gradient (an optimizer step from given gradients; tests). */
void plan_set_grad(struct plan *p, const struct graph_tensor *t, const float *src);
/* Optimizer value `slot` (< optimizer_slots) of a trained tensor (role TENSOR_PARAM), in the
 * tensor's PyTorch layout: momentum (SGD), first and second moments (Adam). */
void plan_get_state(struct plan *p, const struct graph_tensor *t, int slot, float *dst);
void plan_set_state(struct plan *p, const struct graph_tensor *t, int slot, const float *src);
/* Every tensor initialized as torchvision's ResNets do (graph tensor init), from seed. */
void plan_init_params(struct plan *p, uint64_t seed);

/* x (N, C, H, W) f32; labels (N) or NULL. */
void plan_set_input(struct plan *p, const float *x, const int32_t *labels);
/* Soft targets q (N, F), each row a distribution (mixup, cutmix), for the loss until the next
 * plan_set_input; NULL: the labels again. */
void plan_set_targets(struct plan *p, const float *q);
/* train: batch statistics (updating the running ones) and dropout; else running statistics. */
void plan_forward(struct plan *p, bool train);
/* Mean softmax cross-entropy of the output against the labels; seeds the backward pass. */
double plan_loss(struct plan *p, double smoothing);
/* Backward from the loss (dy NULL) or from a given output gradient dy (N, F). */
void plan_backward(struct plan *p, const float *dy);
void plan_get_output(struct plan *p, float *y);     /* (N, F) */
/* (N, C, H, W); needs input_grad; valid after plan_backward until the next forward. */
void plan_get_input_grad(struct plan *p, float *dx);
/* One update of optimizer o; t: the update's number, 1, 2, ... */
void plan_optimizer_step(struct plan *p, const struct plan_optimizer *o, int64_t t);
/* The same for SGD (first: t 1) and Adam. */
void plan_sgd_step(struct plan *p, const struct plan_sgd *o, bool first);
void plan_adam_step(struct plan *p, const struct plan_adam *o, int64_t t);
/* torch.nn.utils.clip_grad_norm_: the L2 norm of all the gradients together (summed in double
 * in a fixed order: the same bits on every run); when above max_norm, every gradient is scaled
 * by max_norm / (norm + 1e-6). Returns the norm before scaling. */
double plan_clip_grad_norm(struct plan *p, double max_norm);
/* The weights' exponential moving average in optimizer slot `slot`: ema = w on the first
 * update, then ema = decay * ema + (1 - decay) * w (trained tensors only). */
void plan_ema_update(struct plan *p, int slot, double decay, bool first);

/* One training step on the input set: forward, loss, backward, clipping, update, EMA. */
void plan_train_step(struct plan *p, const struct plan_step *st, struct plan_step_result *r);
/* The same split in two, so the host can prepare the next batch while the device computes:
 * plan_step_start begins a step on the batch set last (a backend may return at once),
 * plan_step_wait gives the oldest started step's result. Start at most two steps ahead of
 * the waits; every other plan call waits for the started steps first. */
void plan_step_start(struct plan *p, const struct plan_step *st);
void plan_step_wait(struct plan *p, struct plan_step_result *r);
/* Steps started and not yet waited for. */
int plan_steps_pending(const struct plan *p);
/* Whether plan_step_start returns before the step is done (the GPU); else it runs the step. */
bool plan_steps_async(const struct plan *p);

/* Keeps a training set in the plan (the GPU backend: in device memory, augmented there by
 * its kernel; the CPU: the caller's bytes, augmented on the calling thread), so a batch is
 * named by its images: plan_set_batch instead of plan_set_input. The caller's bytes must
 * outlive the plan. false, with the reason in why, when the backend has no room for it. */
MUST_CHECK bool plan_set_dataset(struct plan *p, const struct plan_dataset *ds, char *why,
                                 size_t size);
/* The batch: dataset images image[i] (< 0: an all-zero row), each with its transforms' key
 * (augment_key(seed, epoch, image[i])), and labels; N of each. */
void plan_set_batch(struct plan *p, const int64_t *image, const uint64_t *key,
                    const int32_t *labels);
/* The update part of st from the gradients in p (clipping, optimizer, EMA); returns the
 * gradients' norm before clipping (0 when clipping is off). */
double plan_update(struct plan *p, const struct plan_step *st);

/* The key of this step's dropout masks (rng_uniform(key, element)): a function of the seed and
 * the training forwards run, the same on every backend. */
uint64_t plan_dropout_key(const struct plan *p);

/* Seconds on a monotonic clock, for timings. */
double plan_clock(void);

/* Calls fn for every kernel the backend timed (plan_options.profile), then for the loss and
 * the optimizer update; each with its total time and number of calls. */
void plan_timings(struct plan *p, plan_timing_fn fn, void *ctx);
/* Starts the timings (and pass_seconds) afresh, e.g. after warm-up steps. */
void plan_timings_reset(struct plan *p);

/*
 * Offsets for buffers that share one arena by lifetime: buffer i of size[i] bytes is live
 * over steps [first[i], last[i]]; buffers live at a common step never overlap. Offsets are
 * multiples of align. Returns the arena's size. (Greedy: largest first, lowest free offset.)
 */
size_t plan_pack(size_t n, const size_t *size, const int *first, const int *last,
                 size_t align, size_t *offset);

#endif
