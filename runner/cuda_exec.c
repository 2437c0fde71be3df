/*
 * cuda_exec.c: the CUDA backend's library side: cuDNN descriptors for every layer, the
 * convolution algorithms (searched once per shape with cudnnFind, kept in gpu_cache's file),
 * the probe of cuDNN's fused batchnorm + add + relu, and the kernels of each step of a
 * program. See cuda.h. Covered by tests/test_ops_cuda.c and tests/test_cuda_plan_step.c on a
 * GPU; the planning it follows by tests/test_gpu_plan.c everywhere.
 */
#include "cuda.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"

#define MAX_SEARCH_WORKSPACE ((size_t)1 << 30) /* an algorithm needing more is not taken */

void *cuda_buf(struct cuda *c, int i)
{
    return i < 0 ? NULL : c->act + c->gp.bufs[i].offset;
}

void cuda_nchw(const struct cuda *c, const struct shape *s, int64_t cpad, int d[4])
{
    d[0] = (int)c->plan->opt.batch;
    d[1] = (int)(cpad ? cpad : s->rank ? s->d[0] : 1);
    d[2] = s->rank == 3 ? (int)s->d[1] : 1;
    d[3] = s->rank == 3 ? (int)s->d[2] : 1;
}

static bool tensor_desc(struct cuda *c, cudnnTensorDescriptor_t *t, const int d[4])
{
    return DNN(c, cudnnCreateTensorDescriptor(t)) &&
           DNN(c, cudnnSetTensor4dDescriptor(*t, CUDNN_TENSOR_NHWC, c->dt, d[0], d[1], d[2], d[3]));
}

/* Channels as stored of layer l's input i. */
static int64_t in_cpad(const struct cuda *c, const struct graph_layer *l, int i)
{
    return l->in[i] == GRAPH_INPUT ? c->gp.in_cpad : 0;
}

/* --------------------------------------------------------------------------------------- */
/* Convolution algorithms */

static void conv_key(const struct cuda *c, const char *pass, const int x[4], const int w[4],
                     const struct conv_params *p, char *key, size_t size)
{
    const struct plan_options *o = &c->plan->opt;
    snprintf(key, size,
             "%s|sm%d|cudnn%zu|%s|%s|n%d c%d h%d w%d|k%d r%d s%d|p%lld %lld|u%lld %lld|"
             "d%lld %lld|g%lld|%s%s", c->gpu_name, c->cc, cudnnGetVersion(), pass,
             gpu_dtype_name(c->t), x[0], x[1], x[2], x[3], w[0], w[2], w[3], p->pad[0],
             p->pad[1], p->stride[0], p->stride[1], p->dilation[0], p->dilation[1], p->groups,
             o->tf32 ? "tf32" : "fast", o->deterministic ? " det" : "");
}

/* What a search says of one algorithm, whichever pass it was for. */
struct algo_perf {
    int algo;
    cudnnStatus_t status;
    size_t memory;
    cudnnDeterminism_t determinism;
    cudnnMathType_t math;
};

#define AS_PERF(r) \
    ((struct algo_perf){(int)(r).algo, (r).status, (r).memory, (r).determinism, (r).mathType})

/* The first usable result of a search (they come fastest first): succeeded, within the
 * workspace limit, and deterministic when asked; NULL when none is. */
static const struct algo_perf *pick(const struct algo_perf *perf, int n, bool det)
{
    for (int i = 0; i < n; i++)
        if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= MAX_SEARCH_WORKSPACE &&
            (!det || perf[i].determinism == CUDNN_DETERMINISTIC))
            return &perf[i];
    return NULL;
}

/* One pass's search (k: 0 forward, 1 backward data, 2 backward filter) into perf. */
static bool search(struct cuda *c, struct cuda_conv *v, int k, struct algo_perf *perf, int *n)
{
    *n = 0;
    if (k == 0) {
        cudnnConvolutionFwdAlgoPerf_t r[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
        if (!DNN(c, cudnnFindConvolutionForwardAlgorithm(c->dnn, v->x, v->w, v->fwd, v->y,
                                                         CUDNN_CONVOLUTION_FWD_ALGO_COUNT, n,
                                                         r)))
            return false;
        for (int i = 0; i < *n; i++) perf[i] = AS_PERF(r[i]);
    } else if (k == 1) {
        cudnnConvolutionBwdDataAlgoPerf_t r[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
        if (!DNN(c, cudnnFindConvolutionBackwardDataAlgorithm(
                        c->dnn, v->w, v->y, v->bwd_data, v->x,
                        CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, n, r)))
            return false;
        for (int i = 0; i < *n; i++) perf[i] = AS_PERF(r[i]);
    } else {
        cudnnConvolutionBwdFilterAlgoPerf_t r[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
        if (!DNN(c, cudnnFindConvolutionBackwardFilterAlgorithm(
                        c->dnn, v->x, v->y, v->bwd_filter, v->w,
                        CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, n, r)))
            return false;
        for (int i = 0; i < *n; i++) perf[i] = AS_PERF(r[i]);
    }
    return true;
}

/* Searches (or finds in the cache) the three algorithms of convolution layer l. */
static bool conv_algorithms(struct cuda *c, const struct graph_layer *l, struct cuda_conv *v,
                            const int x[4], const int w[4])
{
    bool det = c->plan->opt.deterministic;
    const char *passes[3] = {"fwd", "data", "filter"};
    cudnnConvolutionDescriptor_t descs[3] = {v->fwd, v->bwd_data, v->bwd_filter};
    int n = c->plan->opt.eval_only ? 1 : 3;
    for (int k = 0; k < n; k++) {
        char key[640];
        conv_key(c, passes[k], x, w, &l->p.conv, key, sizeof key);
        const struct gpu_cache_entry *e = gpu_cache_get(&c->cache, key);
        struct algo_perf perf[16], found = {0};
        const struct algo_perf *best = NULL;
        int got = 0;
        if (e) {
            found = (struct algo_perf){e->algo, CUDNN_STATUS_SUCCESS, e->workspace,
                                       CUDNN_DETERMINISTIC, (cudnnMathType_t)e->math};
            best = &found;
        } else {
            if (!search(c, v, k, perf, &got)) return false;
            best = pick(perf, got, det);
        }
        if (!best) {
            diag_error(c->d, l->mark, "%s: cuDNN offers no %s%s algorithm for this convolution "
                       "(%s, input %dx%dx%dx%d) on cuda:%d", l->name,
                       det ? "deterministic " : "", passes[k], gpu_dtype_name(c->t), x[0], x[1],
                       x[2], x[3], c->dev);
            if (det) diag_hint(c->d, "set train.deterministic: false");
            return false;
        }
        if (!e && !gpu_cache_put(&c->cache, key, best->algo, (int)best->math, best->memory) &&
            c->cache.path)
            fprintf(stderr, "runner: warning: cannot write the algorithm cache %s\n",
                    c->cache.path);
        if (!DNN(c, cudnnSetConvolutionMathType(descs[k], best->math))) return false;
        if (k == 0) {
            v->fwd_algo = (cudnnConvolutionFwdAlgo_t)best->algo;
            v->fwd_ws = best->memory;
        } else if (k == 1) {
            v->data_algo = (cudnnConvolutionBwdDataAlgo_t)best->algo;
            v->data_ws = best->memory;
        } else {
            v->filter_algo = (cudnnConvolutionBwdFilterAlgo_t)best->algo;
            v->filter_ws = best->memory;
        }
    }
    return true;
}

static bool describe_conv(struct cuda *c, const struct graph_layer *l, struct cuda_conv *v)
{
    const struct conv_params *p = &l->p.conv;
    int x[4], y[4], w[4];
    cuda_nchw(c, graph_input_shape(c->g, l, 0), in_cpad(c, l, 0), x);
    cuda_nchw(c, &l->out, 0, y);
    w[0] = (int)p->out;
    w[1] = x[1] / (int)p->groups;
    w[2] = (int)p->kernel[0];
    w[3] = (int)p->kernel[1];
    cudnnDataType_t compute = CUDNN_DATA_FLOAT;
    cudnnMathType_t math = c->t != GPU_F32 ? CUDNN_TENSOR_OP_MATH
                           : c->plan->opt.tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
    if (!tensor_desc(c, &v->x, x) || !tensor_desc(c, &v->y, y) ||
        !DNN(c, cudnnCreateFilterDescriptor(&v->w)) ||
        !DNN(c, cudnnSetFilter4dDescriptor(v->w, c->dt, CUDNN_TENSOR_NHWC, w[0], w[1], w[2], w[3])))
        return false;
    cudnnConvolutionDescriptor_t *descs[3] = {&v->fwd, &v->bwd_data, &v->bwd_filter};
    for (int k = 0; k < 3; k++)
        if (!DNN(c, cudnnCreateConvolutionDescriptor(descs[k])) ||
            !DNN(c, cudnnSetConvolution2dDescriptor(*descs[k], (int)p->pad[0], (int)p->pad[1],
                                                    (int)p->stride[0], (int)p->stride[1],
                                                    (int)p->dilation[0], (int)p->dilation[1],
                                                    CUDNN_CROSS_CORRELATION, compute)) ||
            !DNN(c, cudnnSetConvolutionGroupCount(*descs[k], (int)p->groups)) ||
            !DNN(c, cudnnSetConvolutionMathType(*descs[k], math)))
            return false;
    /* cuDNN's output shape must be ours */
    int o[4];
    if (!DNN(c, cudnnGetConvolution2dForwardOutputDim(v->fwd, v->x, v->w, &o[0], &o[1], &o[2],
                                                      &o[3])))
        return false;
    if (memcmp(o, y, sizeof o)) {
        diag_error(c->d, l->mark, "%s: cuDNN computes a %dx%dx%dx%d output, the graph %dx%dx%dx%d",
                   l->name, o[0], o[1], o[2], o[3], y[0], y[1], y[2], y[3]);
        return false;
    }
    return conv_algorithms(c, l, v, x, w);
}

/* --------------------------------------------------------------------------------------- */
/* Batchnorm, pooling */

/* Layer li's kernel in the forward program of this plan (training, or evaluation only). */
static const struct gpu_step *fwd_step(const struct cuda *c, size_t li)
{
    enum gpu_prog pr = c->plan->opt.eval_only ? GPU_PROG_FWD_EVAL : GPU_PROG_FWD_TRAIN;
    return gpu_plan_step_of(&c->gp, pr, (int)li);
}

static bool describe_bn(struct cuda *c, size_t li, struct cuda_bn *v)
{
    const struct graph_layer *l = &c->g->layers[li];
    int x[4];
    cuda_nchw(c, &l->out, 0, x);
    v->m = (int64_t)x[0] * x[2] * x[3];
    v->c = x[1];
    const struct gpu_step *s = fwd_step(c, li);
    if (!tensor_desc(c, &v->x, x) || !DNN(c, cudnnCreateTensorDescriptor(&v->param)) ||
        !DNN(c, cudnnDeriveBNTensorDescriptor(v->param, v->x, CUDNN_BATCHNORM_SPATIAL)) ||
        !DNN(c, cudnnCreateActivationDescriptor(&v->act)) ||
        !DNN(c, cudnnSetActivationDescriptor(v->act, CUDNN_ACTIVATION_RELU,
                                             CUDNN_NOT_PROPAGATE_NAN, 0.0)))
        return false;
    /* cuDNN's fused kernel: training only, never in deterministic mode (its persistent
     * kernels reduce across blocks in no fixed order); the probe then decides. */
    v->cudnn = !c->plan->opt.eval_only && !c->plan->opt.deterministic && s &&
               s->op == GPU_OP_BN_TRAIN;
    if (!v->cudnn) return true;
    v->ops = s->add ? CUDNN_BATCHNORM_OPS_BN_ADD_ACTIVATION
             : s->relu ? CUDNN_BATCHNORM_OPS_BN_ACTIVATION : CUDNN_BATCHNORM_OPS_BN;
    cudnnActivationDescriptor_t act = s->relu ? v->act : NULL;
    cudnnTensorDescriptor_t z = s->add ? v->x : NULL;
    size_t reserve = 0;
    cudnnBatchNormMode_t mode = CUDNN_BATCHNORM_SPATIAL_PERSISTENT;
    if (cudnnGetBatchNormalizationForwardTrainingExWorkspaceSize(
            c->dnn, mode, v->ops, v->x, z, v->x, v->param, act, &v->fwd_ws) != CUDNN_STATUS_SUCCESS ||
        cudnnGetBatchNormalizationBackwardExWorkspaceSize(
            c->dnn, mode, v->ops, v->x, v->x, v->x, z, v->x, v->param, act, &v->bwd_ws) !=
            CUDNN_STATUS_SUCCESS ||
        cudnnGetBatchNormalizationTrainingExReserveSpaceSize(c->dnn, mode, v->ops, act, v->x,
                                                             &reserve) != CUDNN_STATUS_SUCCESS) {
        v->cudnn = false; /* not offered for this type and layout: our kernels */
        return true;
    }
    c->gp.bufs[s->args[5]].bytes = reserve;
    return true;
}

static bool describe_pool(struct cuda *c, const struct graph_layer *l, struct cuda_pool *v)
{
    const struct pool_params *p = &l->p.pool;
    int x[4], y[4], o[4];
    cuda_nchw(c, graph_input_shape(c->g, l, 0), in_cpad(c, l, 0), x);
    cuda_nchw(c, &l->out, 0, y);
    cudnnPoolingMode_t mode = l->op == OP_KIND_MAXPOOL ? CUDNN_POOLING_MAX_DETERMINISTIC
                              : p->count_include_pad ? CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING
                                                     : CUDNN_POOLING_AVERAGE_COUNT_EXCLUDE_PADDING;
    if (!tensor_desc(c, &v->x, x) || !tensor_desc(c, &v->y, y) ||
        !DNN(c, cudnnCreatePoolingDescriptor(&v->desc)) ||
        !DNN(c, cudnnSetPooling2dDescriptor(v->desc, mode, CUDNN_PROPAGATE_NAN, (int)p->kernel[0],
                                            (int)p->kernel[1], (int)p->pad[0], (int)p->pad[1],
                                            (int)p->stride[0], (int)p->stride[1])) ||
        !DNN(c, cudnnGetPooling2dForwardOutputDim(v->desc, v->x, &o[0], &o[1], &o[2], &o[3])))
        return false;
    if (memcmp(o, y, sizeof o)) {
        diag_error(c->d, l->mark, "%s: cuDNN pools to %dx%dx%dx%d, the graph to %dx%dx%dx%d",
                   l->name, o[0], o[1], o[2], o[3], y[0], y[1], y[2], y[3]);
        diag_hint(c->d, "ceil_mode: true is not offered on the GPU");
        return false;
    }
    return true;
}

static void need(size_t *ws, size_t bytes)
{
    if (bytes > *ws) *ws = bytes;
}

bool cuda_describe(struct cuda *c)
{
    char path[4096];
    const char *p = c->plan->opt.algo_cache;
    if (!p && gpu_cache_default_path(path, sizeof path)) p = path;
    gpu_cache_open(&c->cache, p);
    const struct graph *g = c->g;
    int64_t N = c->plan->opt.batch;
    size_t ws = gpu_grad_work_bytes((int)c->gp.nchunks);
    for (size_t li = 0; li < g->nlayers; li++) {
        const struct graph_layer *l = &g->layers[li];
        struct cuda_layer *cl = &c->layers[li];
        int64_t rows = N * (l->out.rank == 3 ? l->out.d[1] * l->out.d[2] : 1);
        int cols = (int)(l->out.rank ? l->out.d[0] : 1);
        switch (l->op) {
        case OP_KIND_CONV:
            cl->conv = calloc(1, sizeof *cl->conv);
            if (!cl->conv || !describe_conv(c, l, cl->conv)) return false;
            need(&ws, cl->conv->fwd_ws);
            need(&ws, cl->conv->data_ws);
            need(&ws, cl->conv->filter_ws);
            if (l->p.conv.bias) need(&ws, gpu_bias_work_bytes(rows, cols));
            break;
        case OP_KIND_BATCHNORM:
            cl->bn = calloc(1, sizeof *cl->bn);
            if (!cl->bn || !describe_bn(c, li, cl->bn)) return false;
            need(&ws, cl->bn->fwd_ws);
            need(&ws, cl->bn->bwd_ws);
            need(&ws, gpu_bn_work_bytes(cl->bn->m, cl->bn->c));
            break;
        case OP_KIND_MAXPOOL:
        case OP_KIND_AVGPOOL:
            cl->pool = calloc(1, sizeof *cl->pool);
            if (!cl->pool || !describe_pool(c, l, cl->pool)) return false;
            break;
        case OP_KIND_LINEAR:
            need(&ws, gpu_bias_work_bytes(N, cols));
            break;
        default:
            break;
        }
    }
    c->work_bytes = ws;
    return true;
}

/* --------------------------------------------------------------------------------------- */
/* Steps */

/* Pointers into the arenas: a trained tensor (its T copy when half and compute), its
 * gradient (the T copy's for half ranges), a state tensor. */
static void *weight(struct cuda *c, size_t ti)
{
    const struct gpu_tensor *t = &c->gp.tensors[ti];
    return t->half ? (char *)c->half_params + t->offset * 2 : (void *)(c->params + t->offset);
}

static void *weight_grad(struct cuda *c, size_t ti)
{
    const struct gpu_tensor *t = &c->gp.tensors[ti];
    return t->half ? (char *)c->half_grads + t->offset * 2 : (void *)(c->grads + t->offset);
}

static float *param(struct cuda *c, size_t ti)
{
    return c->params + c->gp.tensors[ti].offset;
}

static float *grad(struct cuda *c, size_t ti)
{
    return c->grads + c->gp.tensors[ti].offset;
}

static float *state(struct cuda *c, size_t ti)
{
    return c->state + c->gp.tensors[ti].offset;
}

static cudnnStatus_t bn_forward(struct cuda *c, const struct gpu_step *s)
{
    const struct graph_layer *l = &c->g->layers[s->layer];
    struct cuda_bn *v = c->layers[s->layer].bn;
    float one = 1, zero = 0;
    size_t t0 = l->tensor0;
    return cudnnBatchNormalizationForwardTrainingEx(
        c->dnn, CUDNN_BATCHNORM_SPATIAL_PERSISTENT, v->ops, &one, &zero, v->x,
        cuda_buf(c, s->args[0]), s->add ? v->x : NULL, cuda_buf(c, s->args[1]), v->x,
        cuda_buf(c, s->args[2]), v->param, param(c, t0), param(c, t0 + 1),
        l->p.batchnorm.momentum, state(c, t0 + 2), state(c, t0 + 3), l->p.batchnorm.eps,
        cuda_buf(c, s->args[3]), cuda_buf(c, s->args[4]), s->relu ? v->act : NULL, c->work,
        v->fwd_ws, cuda_buf(c, s->args[5]), c->gp.bufs[s->args[5]].bytes);
}

static cudnnStatus_t bn_backward(struct cuda *c, const struct gpu_step *s)
{
    const struct graph_layer *l = &c->g->layers[s->layer];
    struct cuda_bn *v = c->layers[s->layer].bn;
    float one = 1, zero = 0;
    size_t t0 = l->tensor0;
    return cudnnBatchNormalizationBackwardEx(
        c->dnn, CUDNN_BATCHNORM_SPATIAL_PERSISTENT, v->ops, &one, &zero, &one, &zero, v->x,
        cuda_buf(c, s->args[0]), v->x, cuda_buf(c, s->args[1]), v->x, cuda_buf(c, s->args[2]),
        s->add ? v->x : NULL, cuda_buf(c, s->args[4]), v->x, cuda_buf(c, s->args[3]), v->param,
        param(c, t0), param(c, t0 + 1), grad(c, t0), grad(c, t0 + 1), l->p.batchnorm.eps,
        cuda_buf(c, s->args[5]), cuda_buf(c, s->args[6]), s->relu ? v->act : NULL, c->work,
        v->bwd_ws, cuda_buf(c, s->args[7]), c->gp.bufs[s->args[7]].bytes);
}

/* Runs every fused cuDNN batchnorm of the training forward once, and its backward where it has
 * one, on the allocated (not yet meaningful) buffers: a layer whose kernels cuDNN turns down
 * (any status of the NOT_SUPPORTED or BAD_PARAM categories) falls back to ours. */
bool cuda_probe_bn(struct cuda *c)
{
    const struct gpu_plan *gp = &c->gp;
    for (size_t i = 0; i < gp->nsteps[GPU_PROG_FWD_TRAIN]; i++) {
        const struct gpu_step *f = &gp->steps[GPU_PROG_FWD_TRAIN][i];
        if (f->op != GPU_OP_BN_TRAIN || !c->layers[f->layer].bn->cudnn) continue;
        const struct gpu_step *b = NULL;
        for (size_t k = 0; k < gp->nsteps[GPU_PROG_BWD] && !b; k++)
            if (gp->steps[GPU_PROG_BWD][k].op == GPU_OP_BN_BWD &&
                gp->steps[GPU_PROG_BWD][k].layer == f->layer)
                b = &gp->steps[GPU_PROG_BWD][k];
        cudnnStatus_t st = bn_forward(c, f);
        if (st == CUDNN_STATUS_SUCCESS && b) st = bn_backward(c, b);
        if (cuda_dnn_declined(st)) {
            c->layers[f->layer].bn->cudnn = false;
            continue;
        }
        if (!DNN(c, st) || !CU(c, cudaStreamSynchronize(c->stream))) return false;
    }
    return true;
}

/* A launcher's result, with the step it ran for. */
static void launched(struct cuda *c, cudaError_t e, const struct gpu_step *s, const char *what)
{
    if (e == cudaSuccess) return;
    char call[256];
    snprintf(call, sizeof call, "%s (%s of layer %s)", what, gpu_op_name(s->op),
             s->layer >= 0 ? c->g->layers[s->layer].name : "-");
    cuda_check_rt(c, e, call, __FILE__, __LINE__);
}

static void run_conv(struct cuda *c, const struct gpu_step *s, const struct graph_layer *l)
{
    struct cuda_conv *v = c->layers[s->layer].conv;
    float one = 1, zero = 0, beta = s->accumulate ? 1 : 0;
    int64_t rows = c->plan->opt.batch * l->out.d[1] * l->out.d[2];
    switch (s->op) {
    case GPU_OP_CONV:
        DNN(c, cudnnConvolutionForward(c->dnn, &one, v->x, cuda_buf(c, s->args[0]), v->w,
                                       weight(c, l->tensor0), v->fwd, v->fwd_algo, c->work,
                                       v->fwd_ws, &zero, v->y, cuda_buf(c, s->args[1])));
        if (l->p.conv.bias)
            launched(c, gpu_bias_add(c->t, cuda_buf(c, s->args[1]), param(c, l->tensor0 + 1), rows,
                                     (int)l->out.d[0], c->stream), s, "gpu_bias_add");
        break;
    case GPU_OP_CONV_DGRAD:
        DNN(c, cudnnConvolutionBackwardData(c->dnn, &one, v->w, weight(c, l->tensor0), v->y,
                                            cuda_buf(c, s->args[0]), v->bwd_data, v->data_algo,
                                            c->work, v->data_ws, &beta, v->x,
                                            cuda_buf(c, s->args[1])));
        break;
    default: /* GPU_OP_CONV_WGRAD */
        DNN(c, cudnnConvolutionBackwardFilter(c->dnn, &one, v->x, cuda_buf(c, s->args[0]), v->y,
                                              cuda_buf(c, s->args[1]), v->bwd_filter,
                                              v->filter_algo, c->work, v->filter_ws, &zero, v->w,
                                              weight_grad(c, l->tensor0)));
        if (l->p.conv.bias)
            launched(c, gpu_bias_grad(c->t, cuda_buf(c, s->args[1]), rows, (int)l->out.d[0],
                                      grad(c, l->tensor0 + 1), c->work, c->stream),
                     s, "gpu_bias_grad");
        break;
    }
}

/* Linear layers through cuBLAS, row-major (N, IN) x (OUT, IN)^T seen column-major. */
static void run_linear(struct cuda *c, const struct gpu_step *s, const struct graph_layer *l)
{
    int n = (int)c->plan->opt.batch, in = (int)graph_input_shape(c->g, l, 0)->d[0];
    int out = (int)l->p.linear.out;
    const struct gpu_tensor *wt = &c->gp.tensors[l->tensor0];
    cudaDataType_t at = c->t == GPU_F32 ? CUDA_R_32F : c->t == GPU_BF16 ? CUDA_R_16BF : CUDA_R_16F;
    cudaDataType_t wgt = wt->half ? at : CUDA_R_32F;
    cublasComputeType_t ct = c->t == GPU_F32 && c->plan->opt.tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32
                                                                  : CUBLAS_COMPUTE_32F;
    float one = 1, zero = 0, beta = s->accumulate ? 1 : 0;
    switch (s->op) {
    case GPU_OP_LINEAR: /* y' (OUT x N) = W (OUT x IN) x' */
        BLAS(c, cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, &one,
                             weight(c, l->tensor0), wgt, in, cuda_buf(c, s->args[0]), at, in,
                             &zero, cuda_buf(c, s->args[1]), at, out, ct, CUBLAS_GEMM_DEFAULT));
        if (l->p.linear.bias)
            launched(c, gpu_bias_add(c->t, cuda_buf(c, s->args[1]), param(c, l->tensor0 + 1), n,
                                     out, c->stream), s, "gpu_bias_add");
        break;
    case GPU_OP_LINEAR_DGRAD: /* dx' (IN x N) = W^T dy' */
        BLAS(c, cublasGemmEx(c->blas, CUBLAS_OP_N, CUBLAS_OP_N, in, n, out, &one,
                             weight(c, l->tensor0), wgt, in, cuda_buf(c, s->args[0]), at, out,
                             &beta, cuda_buf(c, s->args[1]), at, in, ct, CUBLAS_GEMM_DEFAULT));
        break;
    default: /* GPU_OP_LINEAR_WGRAD: dW' (IN x OUT) = x' dy'^T */
        BLAS(c, cublasGemmEx(c->blas, CUBLAS_OP_N, CUBLAS_OP_T, in, out, n, &one,
                             cuda_buf(c, s->args[0]), at, in, cuda_buf(c, s->args[1]), at, out,
                             &zero, weight_grad(c, l->tensor0), wgt, in, ct,
                             CUBLAS_GEMM_DEFAULT));
        if (l->p.linear.bias)
            launched(c, gpu_bias_grad(c->t, cuda_buf(c, s->args[1]), n, out,
                                      grad(c, l->tensor0 + 1), c->work, c->stream),
                     s, "gpu_bias_grad");
        break;
    }
}

static void run_bn(struct cuda *c, const struct gpu_step *s, const struct graph_layer *l)
{
    struct cuda_bn *v = c->layers[s->layer].bn;
    size_t t0 = l->tensor0;
    const struct batchnorm_params *p = &l->p.batchnorm;
    void *x = cuda_buf(c, s->args[0]);
    if (s->op == GPU_OP_BN_EVAL) {
        launched(c, gpu_bn_apply_running(c->t, x, v->m, v->c, state(c, t0 + 2), state(c, t0 + 3),
                                         p->eps, param(c, t0), param(c, t0 + 1),
                                         cuda_buf(c, s->args[1]), s->relu,
                                         cuda_buf(c, s->args[2]), c->stream),
                 s, "gpu_bn_apply_running");
    } else if (s->op == GPU_OP_BN_TRAIN && v->cudnn) {
        DNN(c, bn_forward(c, s));
    } else if (s->op == GPU_OP_BN_TRAIN) {
        float *mean = cuda_buf(c, s->args[3]), *invstd = cuda_buf(c, s->args[4]);
        launched(c, gpu_bn_stats(c->t, x, v->m, v->c, p->eps, p->momentum, mean, invstd,
                                 state(c, t0 + 2), state(c, t0 + 3), c->work, c->stream),
                 s, "gpu_bn_stats");
        launched(c, gpu_bn_apply(c->t, x, v->m, v->c, mean, invstd, param(c, t0),
                                 param(c, t0 + 1), cuda_buf(c, s->args[1]), s->relu,
                                 cuda_buf(c, s->args[2]), c->stream), s, "gpu_bn_apply");
    } else if (v->cudnn) {
        DNN(c, bn_backward(c, s));
    } else {
        launched(c, gpu_bn_backward(c->t, x, cuda_buf(c, s->args[1]), cuda_buf(c, s->args[2]),
                                    v->m, v->c, cuda_buf(c, s->args[5]), cuda_buf(c, s->args[6]),
                                    param(c, t0), s->relu, grad(c, t0), grad(c, t0 + 1),
                                    cuda_buf(c, s->args[3]), cuda_buf(c, s->args[4]), c->work,
                                    c->stream), s, "gpu_bn_backward");
    }
}

void cuda_run_step(struct cuda *c, const struct gpu_step *s)
{
    const struct graph_layer *l = s->layer >= 0 ? &c->g->layers[s->layer] : NULL;
    const struct shape *in = &c->g->input;
    int64_t N = c->plan->opt.batch;
    float one = 1, beta = s->accumulate ? 1 : 0;
    void *a0 = cuda_buf(c, s->args[0]), *a1 = cuda_buf(c, s->args[1]);
    void *a2 = cuda_buf(c, s->args[2]);
    size_t elt = gpu_dtype_size(c->t);
    switch (s->op) {
    case GPU_OP_INPUT: {
        if (c->from_dataset) {
            launched(c, augment_gpu_run(&c->aug, c->images, c->index, c->keys, N, c->t, a0,
                                        (int)c->gp.in_cpad, c->stream),
                     s, "augment_gpu_run");
            break;
        }
        int x[4];
        cuda_nchw(c, in, 0, x);
        launched(c, gpu_pack_nchw(c->t, a0, c->input, N, x[1], x[2], x[3], (int)c->gp.in_cpad,
                                  c->stream), s, "gpu_pack_nchw");
        break;
    }
    case GPU_OP_OUTPUT: /* in PyTorch's order: a spatial output unpacked */
        if (s->hw > 1)
            launched(c, gpu_unpack_nhwc(a1, c->t, a0, N, (int)s->ch, (int)s->hw, 1, (int)s->ch,
                                        c->stream), s, "gpu_unpack_nhwc");
        else
            launched(c, gpu_convert(GPU_F32, a1, c->t, a0, s->n, c->stream), s, "gpu_convert");
        break;
    case GPU_OP_GRAD_PACK:
        launched(c, gpu_to_nhwc(c->t, a1, a0, N, s->ch, s->hw, c->stream), s, "gpu_to_nhwc");
        break;
    case GPU_OP_CONV:
    case GPU_OP_CONV_DGRAD:
    case GPU_OP_CONV_WGRAD:
        run_conv(c, s, l);
        break;
    case GPU_OP_LINEAR:
    case GPU_OP_LINEAR_DGRAD:
    case GPU_OP_LINEAR_WGRAD:
        run_linear(c, s, l);
        break;
    case GPU_OP_BN_TRAIN:
    case GPU_OP_BN_EVAL:
    case GPU_OP_BN_BWD:
        run_bn(c, s, l);
        break;
    case GPU_OP_RELU:
        launched(c, gpu_relu(c->t, a0, a1, s->n, c->stream), s, "gpu_relu");
        break;
    case GPU_OP_RELU_BWD:
        launched(c, gpu_relu_backward(c->t, a0, a1, a2, s->n, c->stream), s, "gpu_relu_backward");
        break;
    case GPU_OP_ADD:
        launched(c, gpu_add(c->t, a0, a1, a2, s->n, c->stream), s, "gpu_add");
        break;
    case GPU_OP_COPY:
        CU(c, cudaMemcpyAsync(a1, a0, (size_t)s->n * elt, cudaMemcpyDeviceToDevice, c->stream));
        break;
    case GPU_OP_ACCUM:
        launched(c, gpu_accumulate(c->t, a1, a0, s->n, c->stream), s, "gpu_accumulate");
        break;
    case GPU_OP_POOL: {
        struct cuda_pool *v = c->layers[s->layer].pool;
        float zero = 0;
        DNN(c, cudnnPoolingForward(c->dnn, v->desc, &one, v->x, a0, &zero, v->y, a1));
        break;
    }
    case GPU_OP_POOL_BWD: {
        struct cuda_pool *v = c->layers[s->layer].pool;
        DNN(c, cudnnPoolingBackward(c->dnn, v->desc, &one, v->y, a1, v->y, a2, v->x, a0, &beta,
                                    v->x, cuda_buf(c, s->args[3])));
        break;
    }
    case GPU_OP_GAP:
    case GPU_OP_GAP_BWD: {
        const struct shape *x = graph_input_shape(c->g, l, 0);
        int hw = (int)(x->d[1] * x->d[2]), ch = (int)x->d[0];
        if (s->op == GPU_OP_GAP)
            launched(c, gpu_gap(c->t, a0, a1, N, hw, ch, c->stream), s, "gpu_gap");
        else
            launched(c, gpu_gap_backward(c->t, a0, a1, N, hw, ch, c->stream), s,
                     "gpu_gap_backward");
        break;
    }
    case GPU_OP_DROPOUT:
        launched(c, gpu_dropout(c->t, a0, a1, a2, s->n, s->ch, s->hw, l->p.dropout.p, c->d_in,
                                c->stream), s, "gpu_dropout");
        break;
    case GPU_OP_DROPOUT_BWD:
        launched(c, gpu_dropout_backward(c->t, a0, a1, a2, s->n, l->p.dropout.p, c->stream), s,
                 "gpu_dropout_backward");
        break;
    default:
        abort();
    }
}

void cuda_release(struct cuda *c)
{
    gpu_cache_close(&c->cache);
    if (!c->layers) return;
    for (size_t li = 0; li < c->g->nlayers; li++) {
        struct cuda_layer *cl = &c->layers[li];
        if (cl->conv) {
            cudnnDestroyTensorDescriptor(cl->conv->x);
            cudnnDestroyTensorDescriptor(cl->conv->y);
            cudnnDestroyFilterDescriptor(cl->conv->w);
            cudnnDestroyConvolutionDescriptor(cl->conv->fwd);
            cudnnDestroyConvolutionDescriptor(cl->conv->bwd_data);
            cudnnDestroyConvolutionDescriptor(cl->conv->bwd_filter);
        }
        if (cl->bn) {
            cudnnDestroyTensorDescriptor(cl->bn->x);
            cudnnDestroyTensorDescriptor(cl->bn->param);
            cudnnDestroyActivationDescriptor(cl->bn->act);
        }
        if (cl->pool) {
            cudnnDestroyTensorDescriptor(cl->pool->x);
            cudnnDestroyTensorDescriptor(cl->pool->y);
            cudnnDestroyPoolingDescriptor(cl->pool->desc);
        }
        free(cl->conv);
        free(cl->bn);
        free(cl->pool);
    }
}
