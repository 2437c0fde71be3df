/*
 * backend_cuda.c: the CUDA backend: a plan's device, library handles and arenas (one
 * allocation each, sized by gpu_plan.c's planning), tensors crossing the plan's edges in
 * PyTorch's layouts, the programs run kernel by kernel or replayed as CUDA graphs, and the
 * vtable. See cuda.h and plan.h. Covered by tests/test_ops_cuda.c and
 * tests/test_cuda_plan_step.c on a GPU.
 */
#include "cuda.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"

#define BLAS_WORKSPACE ((size_t)32 << 20) /* cuBLAS's own, fixed so graphs can capture it */
#define FP16_INITIAL_SCALE 65536.0f       /* torch.amp.GradScaler's defaults */
#define FP16_GROWTH_INTERVAL 2000

static struct cuda *impl(struct plan *p)
{
    return p->impl;
}

/* --------------------------------------------------------------------------------------- */
/* Errors */

/* A failed call. At plan time it goes to the plan's diagnostics; while capturing a graph it
 * is kept for the warning that the step runs kernel by kernel instead; while running, the
 * plan fails (plan_fail: the terminal and run.log say what), every entry returns
 * STATUS_RUNTIME from then on, and the caller stops, keeping its last checkpoint. Only the
 * first failure is reported: what follows from it explains nothing. */
static bool failed(struct cuda *c, const char *call, const char *what, const char *file, int line)
{
    const char *gpu = c->gpu_name[0] ? c->gpu_name : "GPU";
    if (c->capturing) {
        if (!c->capture_error[0])
            snprintf(c->capture_error, sizeof c->capture_error, "%s: %s", call, what);
        return false;
    }
    if (c->d) {
        if (!c->failed)
            diag_error(c->d, (struct mark){0}, "%s failed on cuda:%d (%s): %s (%s:%d)", call,
                       c->dev, gpu, what, file, line);
        c->failed = true;
        return false;
    }
    if (!c->failed) /* nothing on the device can be trusted any more */
        plan_fail(c->plan, "%s failed on cuda:%d (%s): %s (%s:%d)%s", call, c->dev, gpu, what,
                  file, line,
                  c->sync_debug ? "" : "; errors of CUDA kernels show up at a later call: "
                                       "RUNNER_SYNC_DEBUG=1 checks after every kernel to name "
                                       "the one that failed");
    c->failed = true;
    return false;
}

/* What a run-time entry returns. */
static enum status done(const struct cuda *c)
{
    return c->failed ? STATUS_RUNTIME : STATUS_OK;
}

bool cuda_check_rt(struct cuda *c, cudaError_t e, const char *call, const char *file, int line)
{
    return e == cudaSuccess || failed(c, call, cudaGetErrorString(e), file, line);
}

bool cuda_check_dnn(struct cuda *c, cudnnStatus_t e, const char *call, const char *file, int line)
{
    return e == CUDNN_STATUS_SUCCESS || failed(c, call, cudnnGetErrorString(e), file, line);
}

bool cuda_check_blas(struct cuda *c, cublasStatus_t e, const char *call, const char *file,
                     int line)
{
    return e == CUBLAS_STATUS_SUCCESS || failed(c, call, cublasGetStatusString(e), file, line);
}

/* --------------------------------------------------------------------------------------- */
/* Copies between host and device, on the plan's stream, finished on return */

static void upload(struct cuda *c, void *dst, const void *src, size_t bytes)
{
    CU(c, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->stream));
    CU(c, cudaStreamSynchronize(c->stream));
}

static void download(struct cuda *c, void *dst, const void *src, size_t bytes)
{
    CU(c, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, c->stream));
    CU(c, cudaStreamSynchronize(c->stream));
}

/* --------------------------------------------------------------------------------------- */
/* Creation */

static enum gpu_dtype dtype_of(enum plan_precision p)
{
    return p == PLAN_BF16 ? GPU_BF16 : p == PLAN_FP16 ? GPU_F16 : GPU_F32;
}

static bool cuda_supports(const struct graph *g, const struct graph_layer *l, char *why,
                          size_t size)
{
    return gpu_plan_supports(g, l, why, size);
}

static bool dev_alloc(struct cuda *c, void **p, size_t bytes)
{
    if (!bytes) bytes = 256;
    return CU(c, cudaMalloc(p, bytes)) && CU(c, cudaMemsetAsync(*p, 0, bytes, c->stream));
}

/* The plan's memory against what the device has free: a plan that cannot fit says what it
 * needs and the largest batch that would. */
static bool fits(struct cuda *c, struct gpu_memory *m)
{
    size_t free_b = 0, total = 0;
    if (!CU(c, cudaMemGetInfo(&free_b, &total))) return false;
    int slots = c->plan->opt.eval_only ? 0 : c->plan->opt.optimizer_slots;
    gpu_plan_memory(&c->gp, slots, c->work_bytes + BLAS_WORKSPACE, m);
    if (m->total <= free_b) return true;
    int64_t most = gpu_plan_largest_batch(&c->gp, slots, c->work_bytes + BLAS_WORKSPACE, free_b);
    diag_error(c->d, (struct mark){0},
               "the plan needs %.2f GiB of GPU memory at batch %lld (%.2f GiB weights and "
               "optimizer state, %.2f GiB activations, %.2f GiB workspace); cuda:%d (%s) has "
               "%.2f GiB free of %.2f GiB", (double)m->total / (1 << 30),
               (long long)c->plan->opt.batch, (double)m->fixed / (1 << 30),
               (double)m->activations / (1 << 30), (double)m->workspace / (1 << 30), c->dev,
               c->gpu_name, (double)free_b / (1 << 30), (double)total / (1 << 30));
    if (most > 0)
        diag_hint(c->d, "the largest batch that fits is about %lld: e.g. train.batch_size=%lld",
                  (long long)most, (long long)most);
    else
        diag_hint(c->d, "the weights and optimizer state alone do not fit: a smaller model, "
                        "or precision: bf16");
    c->failed = true;
    return false;
}

static size_t max_tensor(const struct cuda *c)
{
    int64_t most = c->plan->opt.batch * c->gp.classes;
    for (size_t i = 0; i < c->g->ntensors; i++)
        if (c->gp.tensors[i].numel > most) most = c->gp.tensors[i].numel;
    return (size_t)most;
}

static bool allocate(struct cuda *c)
{
    const struct plan_options *o = &c->plan->opt;
    bool train = !o->eval_only, half = c->t != GPU_F32;
    size_t tf = (size_t)c->gp.trained_floats, in = (size_t)(o->batch * shape_numel(&c->g->input));
    size_t f = (size_t)(o->batch * c->gp.classes);
    if (!dev_alloc(c, (void **)&c->act, c->gp.act_bytes) ||
        !dev_alloc(c, &c->work, c->work_bytes) ||
        !dev_alloc(c, &c->blas_work, BLAS_WORKSPACE) ||
        !dev_alloc(c, (void **)&c->params, tf * 4) ||
        !dev_alloc(c, (void **)&c->state, (size_t)c->gp.state_floats * 4) ||
        !dev_alloc(c, (void **)&c->input, in * 4) ||
        !dev_alloc(c, (void **)&c->labels, (size_t)o->batch * 4) ||
        !dev_alloc(c, (void **)&c->targets, f * 4) ||
        !dev_alloc(c, (void **)&c->tensor_tmp, max_tensor(c) * 4) ||
        !dev_alloc(c, (void **)&c->ranges, c->gp.nranges * sizeof *c->ranges) ||
        !dev_alloc(c, (void **)&c->chunks, c->gp.nchunks * sizeof *c->chunks) ||
        !dev_alloc(c, (void **)&c->d_in, sizeof *c->d_in) ||
        !dev_alloc(c, (void **)&c->d_out, sizeof *c->d_out) ||
        (half && !dev_alloc(c, &c->half_params, tf * 2)) ||
        (train && !dev_alloc(c, (void **)&c->grads, tf * 4)) ||
        (train && !dev_alloc(c, (void **)&c->slots, tf * 4 * (size_t)o->optimizer_slots)) ||
        (train && half && !dev_alloc(c, &c->half_grads, tf * 2)) ||
        (o->input_grad && !dev_alloc(c, (void **)&c->input_grad, in * 4)) ||
        (train && !dev_alloc(c, (void **)&c->keys, (size_t)o->batch * 8)) ||
        (train && !dev_alloc(c, (void **)&c->index, (size_t)o->batch * 4)) ||
        !CU(c, cudaMallocHost((void **)&c->h_ins, 2 * sizeof *c->h_ins)) ||
        !CU(c, cudaMallocHost((void **)&c->h_res, 2 * sizeof *c->h_res)) ||
        !CU(c, cudaMallocHost((void **)&c->h_x, 2 * in * 4)) ||
        !CU(c, cudaMallocHost((void **)&c->h_key, 2 * (size_t)o->batch * 8)) ||
        !CU(c, cudaMallocHost((void **)&c->h_index, 2 * (size_t)o->batch * 4)) ||
        !CU(c, cudaMallocHost((void **)&c->h_labels, 2 * (size_t)o->batch * 4)) ||
        !CU(c, cudaMallocHost((void **)&c->h_out, sizeof *c->h_out)) ||
        !CU(c, cudaEventCreateWithFlags(&c->done[0], cudaEventDisableTiming)) ||
        !CU(c, cudaEventCreateWithFlags(&c->done[1], cudaEventDisableTiming)))
        return false;
    c->h_in = &c->h_ins[0];
    c->counters = calloc(c->g->ntensors + 1, sizeof *c->counters);
    if (!c->counters) abort();
    *c->h_in = (struct gpu_step_in){.valid = (int32_t)o->batch};
    *c->h_out = (struct gpu_step_out){.loss_scale = c->t == GPU_F16 ? FP16_INITIAL_SCALE : 1,
                                      .grad_scale = 1,
                                      .grad_mult = 1};
    c->trained = (struct gpu_trained){c->params, c->grads, c->slots, c->half_params,
                                      c->half_grads, c->t, c->gp.trained_floats, c->ranges,
                                      c->chunks, (int)c->gp.nchunks};
    return BLAS(c, cublasSetWorkspace(c->blas, c->blas_work, BLAS_WORKSPACE)) &&
           CU(c, cudaMemcpyAsync(c->ranges, c->gp.ranges, c->gp.nranges * sizeof *c->ranges,
                                 cudaMemcpyHostToDevice, c->stream)) &&
           CU(c, cudaMemcpyAsync(c->chunks, c->gp.chunks, c->gp.nchunks * sizeof *c->chunks,
                                 cudaMemcpyHostToDevice, c->stream)) &&
           CU(c, cudaMemcpyAsync(c->d_in, c->h_in, sizeof *c->d_in, cudaMemcpyHostToDevice,
                                 c->stream)) &&
           CU(c, cudaMemcpyAsync(c->d_out, c->h_out, sizeof *c->d_out, cudaMemcpyHostToDevice,
                                 c->stream)) &&
           CU(c, cudaStreamSynchronize(c->stream));
}

/* Zeroes what the probe may have written. */
static bool clear(struct cuda *c)
{
    size_t tf = (size_t)c->gp.trained_floats;
    return CU(c, cudaMemsetAsync(c->act, 0, c->gp.act_bytes, c->stream)) &&
           CU(c, cudaMemsetAsync(c->params, 0, tf * 4, c->stream)) &&
           CU(c, cudaMemsetAsync(c->grads, 0, tf * 4, c->stream)) &&
           CU(c, cudaMemsetAsync(c->state, 0, (size_t)c->gp.state_floats * 4, c->stream)) &&
           CU(c, cudaStreamSynchronize(c->stream));
}

static void set_sizes(struct cuda *c)
{
    c->plan->sizes = (struct plan_sizes){.activations = c->gp.act_bytes,
                                         .workspace = c->work_bytes + BLAS_WORKSPACE};
    gpu_plan_fixed_sizes(&c->gp, c->plan->opt.optimizer_slots, &c->plan->sizes);
}

/* cuBLAS's math: TF32 only when asked (fp32), and never a reduction in 16 bits (split-K
 * partial sums are kept in fp32, as the compute type says). */
static cublasMath_t blas_math(enum gpu_dtype t, bool tf32)
{
    int m = t == GPU_F32 && tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH;
    return (cublasMath_t)(m | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION);
}

static enum status cuda_create(struct plan *p, struct diag *d)
{
    struct cuda *c = calloc(1, sizeof *c);
    if (!c) abort();
    p->impl = c;
    *c = (struct cuda){.plan = p, .g = p->g, .d = d, .dev = p->opt.device,
                       .t = dtype_of(p->opt.precision)};
    c->dt = c->t == GPU_BF16 ? CUDNN_DATA_BFLOAT16 : c->t == GPU_F16 ? CUDNN_DATA_HALF
                                                                    : CUDNN_DATA_FLOAT;
    const char *sd = getenv("RUNNER_SYNC_DEBUG");
    c->sync_debug = sd && strcmp(sd, "1") == 0;
    c->use_graphs = !p->opt.no_graph && !c->sync_debug && !p->opt.profile;
    struct cudaDeviceProp prop;
    if (!CU(c, cudaSetDevice(c->dev)) || !CU(c, cudaGetDeviceProperties(&prop, c->dev)))
        return STATUS_RUNTIME;
    snprintf(c->gpu_name, sizeof c->gpu_name, "%s", prop.name);
    c->cc = prop.major * 10 + prop.minor;
    cudaError_t image = gpu_kernels_loadable();
    if (image != cudaSuccess) {
        diag_error(d, (struct mark){0},
                   "this runner holds no GPU code that cuda:%d (%s, compute capability %d.%d) "
                   "can run (%s); it was built for %s", c->dev, c->gpu_name, prop.major,
                   prop.minor, cudaGetErrorString(image), RUNNER_CUDA_ARCHS);
        diag_hint(d, "rebuild with -DCMAKE_CUDA_ARCHITECTURES=%d (scripts/setup.sh passes "
                     "CMAKE_ARGS), or run on the CPU: device=cpu", c->cc);
        (void)cudaGetLastError();
        return STATUS_RUNTIME;
    }
    if (c->t == GPU_BF16 && prop.major < 8) {
        diag_error(d, (struct mark){0}, "cuda:%d (%s, compute capability %d.%d) has no bf16",
                   c->dev, c->gpu_name, prop.major, prop.minor);
        diag_hint(d, "precision: fp16 (with loss scaling) or fp32");
        return STATUS_RUNTIME;
    }
    gpu_plan_build(p->g, &(struct gpu_plan_config){.batch = p->opt.batch, .dtype = c->t,
                                                   .train = !p->opt.eval_only,
                                                   .input_grad = p->opt.input_grad},
                   &c->gp);
    c->layers = calloc(p->g->nlayers + 1, sizeof *c->layers);
    if (!c->layers) abort();
    if (!CU(c, cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking)) ||
        !DNN(c, cudnnCreate(&c->dnn)) || !DNN(c, cudnnSetStream(c->dnn, c->stream)) ||
        !BLAS(c, cublasCreate(&c->blas)) || !BLAS(c, cublasSetStream(c->blas, c->stream)) ||
        !BLAS(c, cublasSetMathMode(c->blas, blas_math(c->t, p->opt.tf32))) ||
        !cuda_describe(c))
        return STATUS_RUNTIME;
    gpu_plan_pack(&c->gp);
    set_sizes(c);
    struct gpu_memory m;
    if (p->opt.sizes_only) return STATUS_OK;
    if (!fits(c, &m) || !allocate(c)) return STATUS_RUNTIME;
    if (!p->opt.eval_only && (!cuda_probe_bn(c) || !clear(c))) return STATUS_RUNTIME;
    if (p->opt.profile)
        for (int pr = 0; pr < GPU_PROGS; pr++) {
            size_t n = c->gp.nsteps[pr] + 1;
            c->events[pr] = calloc(n, sizeof **c->events);
            c->step_seconds[pr] = calloc(n, sizeof **c->step_seconds);
            c->step_calls[pr] = calloc(n, sizeof **c->step_calls);
            if (!c->events[pr] || !c->step_seconds[pr] || !c->step_calls[pr]) abort();
            for (size_t i = 0; i < n; i++)
                if (!CU(c, cudaEventCreate(&c->events[pr][i]))) return STATUS_RUNTIME;
        }
    c->d = NULL; /* from here on, a failure fails the plan (plan_fail) */
    return STATUS_OK;
}

static void cuda_destroy(struct plan *p)
{
    struct cuda *c = impl(p);
    if (!c) return;
    c->d = NULL;
    c->failed = true; /* errors while tearing down are not worth reporting */
    if (c->stream) cudaStreamSynchronize(c->stream);
    for (int k = 0; k < 4; k++)
        if (c->step_graph[k]) cudaGraphExecDestroy(c->step_graph[k]);
    for (int k = 0; k < 2; k++)
        if (c->done[k]) cudaEventDestroy(c->done[k]);
    if (c->eval_graph) cudaGraphExecDestroy(c->eval_graph);
    for (int pr = 0; pr < GPU_PROGS; pr++) {
        if (c->events[pr])
            for (size_t i = 0; i <= c->gp.nsteps[pr]; i++)
                if (c->events[pr][i]) cudaEventDestroy(c->events[pr][i]);
        free(c->events[pr]);
        free(c->step_seconds[pr]);
        free(c->step_calls[pr]);
    }
    cuda_release(c);
    void *dev[] = {c->act, c->work, c->blas_work, c->params, c->grads, c->slots, c->state,
                   c->half_params, c->half_grads, c->input, c->input_grad, c->tensor_tmp,
                   c->labels, c->targets, c->ranges, c->chunks, c->d_in, c->d_out,
                   c->keys, c->index, c->images};
    for (size_t i = 0; i < sizeof dev / sizeof *dev; i++) cudaFree(dev[i]);
    void *host[] = {c->h_ins, c->h_res, c->h_x, c->h_key, c->h_index, c->h_labels, c->h_out};
    for (size_t i = 0; i < sizeof host / sizeof *host; i++) cudaFreeHost(host[i]);
    if (c->blas) cublasDestroy(c->blas);
    if (c->dnn) cudnnDestroy(c->dnn);
    if (c->stream) cudaStreamDestroy(c->stream);
    gpu_plan_free(&c->gp);
    free(c->layers);
    free(c->counters);
    free(c);
    p->impl = NULL;
}

/* --------------------------------------------------------------------------------------- */
/* Tensors at the edges */

static const struct gpu_tensor *dev_tensor(struct cuda *c, const struct graph_tensor *t,
                                           size_t *ti)
{
    *ti = (size_t)(t - c->g->tensors);
    return &c->gp.tensors[*ti];
}

/* The floats of a tensor in its device layout: where they live for (grad, slot); slot -1:
 * the tensor itself. NULL for a half gradient (in T: converted through tensor_tmp). */
static float *floats(struct cuda *c, const struct gpu_tensor *t, bool grad, int slot)
{
    if (slot >= 0) return c->slots + (int64_t)slot * c->gp.trained_floats + t->offset;
    if (!t->trained) return c->state + t->offset;
    if (grad) return t->half ? NULL : c->grads + t->offset;
    return c->params + t->offset;
}

/* What the gradients on the device are multiplied by: in fp16 the scale of the loss that
 * made them (1 for given ones), else 1. */
static float grad_scale(struct cuda *c)
{
    if (c->t != GPU_F16) return 1;
    download(c, c->h_out, c->d_out, sizeof *c->h_out);
    return c->h_out->grad_scale;
}

/* The gradients from here on are given at scale 1 (a given dy, set_grad): those in the
 * arenas are brought to it first, so a gradient set beside others keeps their meaning, and
 * nothing is scaled into fp16's overflow. */
static void grads_unscaled(struct cuda *c)
{
    float s = grad_scale(c);
    if (s == 1) return;
    CU(c, gpu_scale_grads(&c->trained, 1 / s, c->stream));
    c->h_out->grad_scale = 1;
    upload(c, c->d_out, c->h_out, sizeof *c->h_out);
}

static enum status put(struct cuda *c, const struct graph_tensor *gt, bool grad, int slot,
                       const float *src)
{
    size_t ti;
    const struct gpu_tensor *t = dev_tensor(c, gt, &ti);
    if (t->offset < 0) { /* a counter */
        memcpy(&c->counters[ti], src, sizeof *c->counters);
        return STATUS_OK;
    }
    float *host = malloc((size_t)t->numel * sizeof *host);
    if (!host) abort();
    gpu_tensor_to_device(t, src, host);
    if (grad) grads_unscaled(c);
    float *dst = floats(c, t, grad, slot);
    if (dst) {
        upload(c, dst, host, (size_t)t->numel * 4);
    } else {
        upload(c, c->tensor_tmp, host, (size_t)t->numel * 4);
        CU(c, gpu_convert(c->t, (char *)c->half_grads + t->offset * 2, GPU_F32, c->tensor_tmp,
                          t->numel, c->stream));
    }
    free(host);
    if (!grad && slot < 0 && t->trained) c->half_stale = true;
    if (grad) c->checked = false;
    return done(c);
}

static enum status get(struct cuda *c, const struct graph_tensor *gt, bool grad, int slot,
                       float *dst)
{
    size_t ti;
    const struct gpu_tensor *t = dev_tensor(c, gt, &ti);
    if (t->offset < 0) {
        memcpy(dst, &c->counters[ti], sizeof *c->counters);
        return STATUS_OK;
    }
    float *host = malloc((size_t)t->numel * sizeof *host);
    if (!host) abort();
    const float *src = floats(c, t, grad, slot);
    if (!src) {
        CU(c, gpu_convert(GPU_F32, c->tensor_tmp, c->t, (char *)c->half_grads + t->offset * 2,
                          t->numel, c->stream));
        src = c->tensor_tmp;
    }
    download(c, host, src, (size_t)t->numel * 4);
    if (grad) {
        float scale = grad_scale(c);
        for (int64_t i = 0; i < t->numel; i++) host[i] /= scale;
    }
    gpu_tensor_from_device(t, host, dst);
    free(host);
    return done(c);
}

static enum status cuda_set_tensor(struct plan *p, const struct graph_tensor *t, bool grad,
                                   const void *src)
{
    return put(impl(p), t, grad, -1, src);
}

static enum status cuda_get_tensor(struct plan *p, const struct graph_tensor *t, bool grad,
                                   void *dst)
{
    return get(impl(p), t, grad, -1, dst);
}

static enum status cuda_set_state(struct plan *p, const struct graph_tensor *t, int slot,
                                  const float *src)
{
    return put(impl(p), t, false, slot, src);
}

static enum status cuda_get_state(struct plan *p, const struct graph_tensor *t, int slot,
                                  float *dst)
{
    return get(impl(p), t, false, slot, dst);
}

/* Before writing slot `next`'s pinned memory: a copy staged from it earlier (a batch set
 * twice before a step) must have finished. */
static void slot_write(struct cuda *c)
{
    if (c->staged) CU(c, cudaStreamSynchronize(c->stream));
    c->staged = false;
}

/* Copies bytes from slot memory to the device, after the steps already started. */
static void stage(struct cuda *c, void *dst, const void *src, size_t bytes)
{
    CU(c, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->stream));
    c->staged = true;
}

static enum status cuda_set_input(struct plan *p, const float *x, const int32_t *labels)
{
    struct cuda *c = impl(p);
    int64_t n = p->opt.batch;
    size_t in = (size_t)(n * shape_numel(&p->g->input));
    float *hx = c->h_x + (size_t)c->next * in;
    int32_t *hl = c->h_labels + (size_t)c->next * (size_t)n;
    slot_write(c);
    memcpy(hx, x, in * 4);
    stage(c, c->input, hx, in * 4);
    if (labels) {
        memcpy(hl, labels, (size_t)n * 4);
        stage(c, c->labels, hl, (size_t)n * 4);
    }
    c->soft = false;
    c->from_dataset = false;
    return done(c);
}

static bool cuda_set_dataset(struct plan *p, const struct plan_dataset *ds, char *why,
                             size_t size)
{
    struct cuda *c = impl(p);
    const struct augment_gpu_plan *a = ds->aug;
    const struct shape *in = &p->g->input;
    if (in->rank != 3 || a->c != in->d[0] || a->out_h != in->d[1] || a->out_w != in->d[2] ||
        a->c > c->gp.in_cpad) {
        char shape[64];
        snprintf(why, size, "the transforms make %dx%dx%d images, the network takes %s",
                 a->c, a->out_h, a->out_w, shape_format(in, shape, sizeof shape));
        return false;
    }
    size_t bytes = (size_t)ds->count * (size_t)a->c * (size_t)a->in_h * (size_t)a->in_w;
    size_t free_b = 0, total = 0;
    CU(c, cudaMemGetInfo(&free_b, &total));
    if (bytes + ((size_t)256 << 20) > free_b) {
        snprintf(why, size, "the training set needs %.0f MiB; cuda:%d has %.0f MiB free",
                 (double)bytes / (1 << 20), c->dev, (double)free_b / (1 << 20));
        return false;
    }
    /* Steps captured with the old images would read freed memory: capture them afresh. */
    for (int k = 2; k < 4; k++) {
        if (c->step_graph[k]) CU(c, cudaGraphExecDestroy(c->step_graph[k]));
        c->step_graph[k] = NULL;
        c->step_warm[k] = false;
    }
    if (c->images) CU(c, cudaFree(c->images)); /* after the steps in flight: it synchronizes */
    c->images = NULL;
    cudaError_t e = cudaMalloc((void **)&c->images, bytes ? bytes : 1);
    if (e == cudaErrorMemoryAllocation) { /* no room after all (fragmentation): not a failure */
        (void)cudaGetLastError();
        c->images = NULL;
        snprintf(why, size, "the training set needs %.0f MiB, which cuda:%d could not allocate",
                 (double)bytes / (1 << 20), c->dev);
        return false;
    }
    if (!CU(c, e)) {
        c->images = NULL;
        snprintf(why, size, "%s", plan_error(p));
        return false;
    }
    upload(c, c->images, ds->pixels, bytes);
    c->image_count = ds->count;
    c->aug = *a;
    if (c->failed) snprintf(why, size, "%s", plan_error(p));
    return !c->failed;
}

static enum status cuda_set_batch(struct plan *p, const int64_t *image, const uint64_t *key,
                                  const int32_t *labels)
{
    struct cuda *c = impl(p);
    size_t n = (size_t)p->opt.batch, at = (size_t)c->next * n;
    if (!c->images) abort(); /* plan_set_dataset first */
    slot_write(c);
    for (size_t i = 0; i < n; i++) {
        if (image[i] >= c->image_count) abort();
        c->h_index[at + i] = image[i] < 0 ? -1 : (int32_t)image[i];
        c->h_key[at + i] = key[i];
        c->h_labels[at + i] = labels[i];
    }
    stage(c, c->index, c->h_index + at, n * 4);
    stage(c, c->keys, c->h_key + at, n * 8);
    stage(c, c->labels, c->h_labels + at, n * 4);
    c->soft = false;
    c->from_dataset = true;
    return done(c);
}

static enum status cuda_set_targets(struct plan *p, const float *q)
{
    struct cuda *c = impl(p);
    c->soft = q != NULL;
    if (q) upload(c, c->targets, q, (size_t)(p->opt.batch * c->gp.classes) * 4);
    return done(c);
}

static enum status cuda_get_output(struct plan *p, float *y)
{
    struct cuda *c = impl(p);
    download(c, y, cuda_buf(c, c->gp.logits), (size_t)(p->opt.batch * c->gp.classes) * 4);
    return done(c);
}

static enum status cuda_get_input_grad(struct plan *p, float *dx)
{
    struct cuda *c = impl(p);
    const struct shape *in = &p->g->input;
    size_t n = (size_t)(p->opt.batch * shape_numel(in));
    if (c->gp.input_grad < 0) { /* nothing reaches the input */
        memset(dx, 0, n * sizeof *dx);
        return STATUS_OK;
    }
    int d[4];
    cuda_nchw(c, in, 0, d);
    CU(c, gpu_unpack_nhwc(c->input_grad, c->t, cuda_buf(c, c->gp.input_grad), p->opt.batch,
                          d[1], d[2], d[3], (int)c->gp.in_cpad, c->stream));
    download(c, dx, c->input_grad, n * 4);
    float scale = grad_scale(c);
    if (scale != 1)
        for (size_t i = 0; i < n; i++) dx[i] /= scale;
    return done(c);
}

/* --------------------------------------------------------------------------------------- */
/* Programs */

/* Enqueues program pr, step by step: with RUNNER_SYNC_DEBUG=1 waiting for each and naming it
 * on failure; with profiling, timing each with events. */
static void run(struct cuda *c, enum gpu_prog pr)
{
    const struct gpu_step *steps = c->gp.steps[pr];
    cudaEvent_t *ev = c->events[pr];
    if (ev) CU(c, cudaEventRecord(ev[0], c->stream));
    for (size_t i = 0; i < c->gp.nsteps[pr]; i++) {
        cuda_run_step(c, &steps[i]);
        if (ev) CU(c, cudaEventRecord(ev[i + 1], c->stream));
        if (c->sync_debug) {
            cudaError_t e = cudaStreamSynchronize(c->stream);
            if (e == cudaSuccess) e = cudaGetLastError();
            char what[256];
            snprintf(what, sizeof what, "%s of layer %s", gpu_op_name(steps[i].op),
                     steps[i].layer >= 0 ? c->g->layers[steps[i].layer].name : "-");
            cuda_check_rt(c, e, what, __FILE__, __LINE__);
        }
    }
    if (!ev) return;
    CU(c, cudaEventSynchronize(ev[c->gp.nsteps[pr]]));
    for (size_t i = 0; i < c->gp.nsteps[pr]; i++) {
        float ms = 0;
        CU(c, cudaEventElapsedTime(&ms, ev[i], ev[i + 1]));
        c->step_seconds[pr][i] += ms / 1000.0;
        c->step_calls[pr][i]++;
    }
}

/* Before a forward pass: the T weights current, the step's inputs on the device, the
 * batchnorms' counters. */
static void prepare(struct cuda *c, bool train)
{
    struct plan *p = c->plan;
    if (c->half_stale) {
        CU(c, gpu_refresh_half(&c->trained, c->stream));
        c->half_stale = false;
    }
    c->h_in->valid = (int32_t)p->opt.batch;
    c->h_in->dropout_key = plan_dropout_key(p);
    CU(c, cudaMemcpyAsync(c->d_in, c->h_in, sizeof *c->d_in, cudaMemcpyHostToDevice, c->stream));
    if (!train) return;
    for (size_t li = 0; li < c->g->nlayers; li++)
        if (c->g->layers[li].op == OP_KIND_BATCHNORM) c->counters[c->g->layers[li].tensor0 + 4]++;
}

/*
 * Captures what enqueue(c, arg) enqueues as a graph (`what`, for the warning). A program is
 * captured only once it has run kernel by kernel (cuda_warm), so that lazy module loading and
 * the libraries' first-use set-up are done outside the capture. false when the capture or its
 * instantiation fails: one warning, and the plan runs kernel by kernel from then on.
 */
bool cuda_capture(struct cuda *c, cudaGraphExec_t *exec,
                  void (*enqueue)(struct cuda *, const void *), const void *arg, const char *what)
{
    cudaGraph_t graph = NULL;
    c->capturing = true;
    c->capture_error[0] = 0;
    /* not capturing, enqueue would run the program for real: the caller runs it again */
    if (CU(c, cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal))) {
        enqueue(c, arg);
        CU(c, cudaStreamEndCapture(c->stream, &graph));
    }
    if (!c->capture_error[0]) CU(c, cudaGraphInstantiate(exec, graph, 0));
    if (graph) cudaGraphDestroy(graph);
    c->capturing = false;
    if (!c->capture_error[0]) return true;
    *exec = NULL;
    (void)cudaGetLastError(); /* the capture's error is not the next call's */
    c->use_graphs = false;
    plan_warn(c->plan, "cuda:%d: capturing %s as a CUDA graph failed (%s); running it kernel "
              "by kernel from now on (slower)", c->dev, what, c->capture_error);
    return false;
}

static void enqueue_eval(struct cuda *c, const void *arg)
{
    (void)arg;
    run(c, GPU_PROG_FWD_EVAL);
}

static enum status cuda_forward(struct plan *p, bool train)
{
    struct cuda *c = impl(p);
    prepare(c, train);
    bool graph = !train && c->use_graphs && !c->from_dataset;
    if (graph && !c->eval_graph && c->eval_warm)
        cuda_capture(c, &c->eval_graph, enqueue_eval, NULL, "the evaluation");
    if (graph) c->eval_warm = true;
    if (train)
        run(c, GPU_PROG_FWD_TRAIN);
    else if (c->use_graphs && c->eval_graph)
        CU(c, cudaGraphLaunch(c->eval_graph, c->stream));
    else
        run(c, GPU_PROG_FWD_EVAL);
    c->checked = false;
    CU(c, cudaStreamSynchronize(c->stream)); /* done on return, as the CPU's */
    return done(c);
}

static void enqueue_loss(struct cuda *c, double smoothing)
{
    CU(c, gpu_softmax_xent(cuda_buf(c, c->gp.logits), c->plan->opt.batch, (int)c->gp.classes,
                           c->labels, c->soft ? c->targets : NULL, smoothing, c->t,
                           cuda_buf(c, c->gp.dlogits), c->d_in, c->d_out, c->stream));
}

static enum status cuda_loss(struct plan *p, double smoothing, double *loss)
{
    struct cuda *c = impl(p);
    enqueue_loss(c, smoothing);
    download(c, c->h_out, c->d_out, sizeof *c->h_out);
    *loss = (double)c->h_out->loss_sum / (double)p->opt.batch;
    return done(c);
}

static enum status cuda_backward(struct plan *p, const float *dy)
{
    struct cuda *c = impl(p);
    if (dy) {
        /* A given output gradient goes in unscaled (scaling could overflow fp16): the
         * gradients it makes are at scale 1, and the loss scale stays as it is. */
        size_t n = (size_t)(p->opt.batch * c->gp.classes);
        grads_unscaled(c);
        upload(c, c->tensor_tmp, dy, n * 4);
        CU(c, gpu_convert(c->t, cuda_buf(c, c->gp.dlogits), GPU_F32, c->tensor_tmp, (int64_t)n,
                          c->stream));
    }
    run(c, GPU_PROG_BWD);
    c->checked = false;
    CU(c, cudaStreamSynchronize(c->stream));
    return done(c);
}

/* --------------------------------------------------------------------------------------- */
/* Updates */

/* The gradients' check before an update (norm, overflow, the multiplier); clipping when
 * max_norm > 0. Only fp16's loss scaling skips an update on overflow: in bf16 and fp32 a
 * non-finite gradient is applied, as PyTorch does, and the loss shows it. */
static void enqueue_check(struct cuda *c, double max_norm)
{
    CU(c, gpu_grad_check(&c->trained, max_norm, c->d_out, c->work, c->stream));
    if (c->t != GPU_F16)
        CU(c, cudaMemsetAsync(&c->d_out->found_inf, 0, sizeof c->d_out->found_inf, c->stream));
}

static void enqueue_update(struct cuda *c, const struct plan_step *st)
{
    const struct plan_optimizer *o = &st->opt;
    if (o->kind == PLAN_OPT_SGD) {
        const struct plan_sgd *g = &o->u.sgd;
        CU(c, gpu_sgd(&c->trained, g->momentum, g->dampening, g->weight_decay, g->nesterov,
                      g->no_decay_vectors, c->d_in, c->d_out, c->stream));
    } else {
        const struct plan_adam *a = &o->u.adam;
        CU(c, gpu_adam(&c->trained, a->beta1, a->beta2, a->eps, a->weight_decay, a->decoupled,
                       a->amsgrad, a->no_decay_vectors, c->d_in, c->d_out, c->stream));
    }
    if (st->ema_slot >= 0)
        CU(c, gpu_ema(&c->trained, st->ema_slot, st->ema_decay, c->d_in, c->d_out, c->stream));
    CU(c, gpu_update_finish(c->d_out, c->d_in, c->t == GPU_F16, FP16_GROWTH_INTERVAL, c->stream));
}

static double lr_of(const struct plan_optimizer *o)
{
    return o->kind == PLAN_OPT_SGD ? o->u.sgd.lr : o->u.adam.lr;
}

/* The update's values into h_in (the caller copies h_in to the device): the learning rate,
 * and, when the host knows it (`known`), the count of updates applied before this one; else
 * the device's count goes on (steps in flight may have skipped theirs). */
static void step_inputs(struct cuda *c, const struct plan_step *st, bool known)
{
    c->h_in->lr = (float)lr_of(&st->opt);
    c->h_in->set_updates = known;
    c->h_in->updates = (int32_t)(st->t - 1);
}

/* The eager entries (plan_update calls them in turn): update t is number t. */
static enum status cuda_update(struct plan *p, const struct plan_optimizer *o, int64_t t)
{
    struct cuda *c = impl(p);
    struct plan_step st = {.opt = *o, .t = t, .ema_slot = -1};
    step_inputs(c, &st, true);
    CU(c, cudaMemcpyAsync(c->d_in, c->h_in, sizeof *c->d_in, cudaMemcpyHostToDevice, c->stream));
    if (!c->checked) enqueue_check(c, 0);
    enqueue_update(c, &st);
    c->checked = false;
    CU(c, cudaStreamSynchronize(c->stream));
    return done(c);
}

static enum status cuda_clip_grad_norm(struct plan *p, double max_norm, double *norm)
{
    struct cuda *c = impl(p);
    enqueue_check(c, max_norm);
    c->checked = true;
    download(c, c->h_out, c->d_out, sizeof *c->h_out);
    *norm = c->h_out->grad_norm;
    return done(c);
}

static enum status cuda_ema_update(struct plan *p, int slot, double decay, bool first)
{
    struct cuda *c = impl(p);
    c->h_in->set_updates = 1; /* the EMA's first update copies: none applied before */
    c->h_in->updates = first ? 0 : 1;
    CU(c, cudaMemcpyAsync(c->d_in, c->h_in, sizeof *c->d_in, cudaMemcpyHostToDevice, c->stream));
    CU(c, gpu_ema(&c->trained, slot, decay, c->d_in, c->d_out, c->stream));
    CU(c, cudaStreamSynchronize(c->stream));
    return done(c);
}

/* The whole step, as one CUDA graph replay (or kernel by kernel). */
static void enqueue_step(struct cuda *c, const void *arg)
{
    const struct plan_step *st = arg;
    run(c, GPU_PROG_FWD_TRAIN);
    enqueue_loss(c, st->smoothing);
    run(c, GPU_PROG_BWD);
    enqueue_check(c, st->clip_grad_norm);
    enqueue_update(c, st);
}


/*
 * A step on slot `next`: its values copied from the slot's pinned memory, the graph replayed
 * (or the kernels enqueued), the result copied back into the slot, the slot's event recorded.
 * Then the other slot is made free for the next step's batch: its step (the one before) must
 * be done, which it nearly always is by the time this one is enqueued. The device is never
 * left idle while the host prepares the next batch.
 */
static enum status cuda_step_start(struct plan *p, const struct plan_step *st)
{
    struct cuda *c = impl(p);
    int s = c->next;
    step_inputs(c, st, c->inflight == 0);
    prepare(c, true); /* h_in to the device, the update's values with it */
    int k = c->soft + 2 * c->from_dataset;
    if (c->use_graphs) {
        if (c->step_graph[k] && !gpu_same_step(&c->step_key[k], st)) {
            CU(c, cudaGraphExecDestroy(c->step_graph[k]));
            c->step_graph[k] = NULL;
        }
        /* the first step of each kind runs kernel by kernel; the second is captured */
        if (!c->step_graph[k] && c->step_warm[k] &&
            cuda_capture(c, &c->step_graph[k], enqueue_step, st, "the training step"))
            c->step_key[k] = *st;
        c->step_warm[k] = true;
    }
    if (c->use_graphs && c->step_graph[k])
        CU(c, cudaGraphLaunch(c->step_graph[k], c->stream));
    else
        enqueue_step(c, st);
    CU(c, cudaMemcpyAsync(&c->h_res[s], c->d_out, sizeof *c->h_res, cudaMemcpyDeviceToHost,
                          c->stream));
    CU(c, cudaEventRecord(c->done[s], c->stream));
    c->recorded[s] = true;
    if (!c->inflight++) c->oldest = s;
    c->checked = false;
    c->staged = false;
    c->next = s ^ 1;
    if (c->recorded[c->next]) CU(c, cudaEventSynchronize(c->done[c->next]));
    c->h_ins[c->next] = c->h_ins[s];
    c->h_in = &c->h_ins[c->next];
    return done(c);
}

static enum status cuda_step_wait(struct plan *p, struct plan_step_result *r)
{
    struct cuda *c = impl(p);
    if (!c->inflight) abort();
    int s = c->oldest;
    CU(c, cudaEventSynchronize(c->done[s]));
    const struct gpu_step_out *o = &c->h_res[s];
    r->loss = (double)o->loss_sum / (double)p->opt.batch;
    r->correct = o->correct;
    r->grad_norm = o->grad_norm;
    r->skipped = c->t == GPU_F16 && o->found_inf;
    r->updates = o->updates;
    c->oldest = s ^ 1;
    c->inflight--;
    return done(c);
}

static void cuda_timings(struct plan *p, plan_timing_fn fn, void *ctx)
{
    struct cuda *c = impl(p);
    static const enum plan_pass pass[GPU_PROGS] = {PLAN_FORWARD, PLAN_EVAL, PLAN_BACKWARD};
    for (int pr = 0; pr < GPU_PROGS; pr++) {
        if (!c->step_seconds[pr]) continue;
        for (size_t i = 0; i < c->gp.nsteps[pr]; i++) {
            const struct gpu_step *s = &c->gp.steps[pr][i];
            if (!fn) {
                c->step_seconds[pr][i] = 0;
                c->step_calls[pr][i] = 0;
                continue;
            }
            if (!c->step_calls[pr][i]) continue;
            struct plan_timing t = {.layer = s->layer >= 0 ? &p->g->layers[s->layer] : NULL,
                                    .what = gpu_op_name(s->op), .pass = pass[pr],
                                    .seconds = c->step_seconds[pr][i],
                                    .calls = c->step_calls[pr][i]};
            fn(ctx, &t);
        }
    }
}

const struct backend backend_cuda = {
    .name = "cuda",
    .supports = cuda_supports,
    .create = cuda_create,
    .destroy = cuda_destroy,
    .set_tensor = cuda_set_tensor,
    .get_tensor = cuda_get_tensor,
    .set_input = cuda_set_input,
    .set_targets = cuda_set_targets,
    .forward = cuda_forward,
    .loss = cuda_loss,
    .backward = cuda_backward,
    .get_output = cuda_get_output,
    .get_input_grad = cuda_get_input_grad,
    .get_state = cuda_get_state,
    .set_state = cuda_set_state,
    .update = cuda_update,
    .clip_grad_norm = cuda_clip_grad_norm,
    .ema_update = cuda_ema_update,
    .timings = cuda_timings,
    .step_start = cuda_step_start,
    .step_wait = cuda_step_wait,
    .set_dataset = cuda_set_dataset,
    .set_batch = cuda_set_batch,
};
