/*
 * cuda.h: the inside of the CUDA backend: backend_cuda.c (the plan's life: devices, handles,
 * arenas, tensors at the edges, CUDA graphs, the vtable) and cuda_exec.c (what the library
 * calls need: descriptors, the convolution algorithm search and its cache, the kernels of each
 * step). The planning is gpu_plan.c's and the ops' lowerings' (layers/<op>_cuda.c), in plain
 * C; the own kernels are gpu_kernels.cu's and optim_cuda.cu's.
 *
 * Every CUDA, cuDNN and cuBLAS call is checked: at plan time a failure goes to the plan's
 * diagnostics (the call's text, the library's error string, the device, file:line) and the
 * plan is not made; while running, a failure says the same through plan_fail and the plan
 * fails (no state on the GPU can be trusted after it): every entry returns STATUS_RUNTIME.
 * A failure while capturing a CUDA graph only makes the plan run kernel by kernel, with a
 * warning. RUNNER_SYNC_DEBUG=1 synchronizes after every kernel, so an asynchronous failure
 * is blamed on the step that caused it.
 */
#ifndef RUNNER_CUDA_H
#define RUNNER_CUDA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include "augment_gpu.h"
#include "gpu_cache.h"
#include "gpu_kernels.h"
#include "gpu_plan.h"
#include "plan.h"

/* A convolution's descriptors and the algorithms chosen for its three passes. */
struct cuda_conv {
    cudnnTensorDescriptor_t x, y;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t fwd, bwd_data, bwd_filter; /* each with its algorithm's math */
    cudnnConvolutionFwdAlgo_t fwd_algo;
    cudnnConvolutionBwdDataAlgo_t data_algo;
    cudnnConvolutionBwdFilterAlgo_t filter_algo;
    size_t fwd_ws, data_ws, filter_ws;
};

/* A batchnorm's: cuDNN's fused kernels when the probe found them, else our own. */
struct cuda_bn {
    cudnnTensorDescriptor_t x, param;
    cudnnActivationDescriptor_t act;
    bool cudnn;
    cudnnBatchNormOps_t ops;
    size_t fwd_ws, bwd_ws;
    int64_t m;
    int c;
};

struct cuda_pool {
    cudnnTensorDescriptor_t x, y;
    cudnnPoolingDescriptor_t desc;
};

struct cuda_layer {
    struct cuda_conv *conv;
    struct cuda_bn *bn;
    struct cuda_pool *pool;
};

struct cuda {
    struct plan *plan;
    const struct graph *g;
    struct diag *d;
    bool failed;
    bool capturing;          /* a graph is being captured: failures are the capture's */
    char capture_error[512]; /* its first */
    int dev;
    char gpu_name[256];
    int cc; /* compute capability, major * 10 + minor */
    struct gpu_plan gp;
    enum gpu_dtype t;
    cudnnDataType_t dt;
    bool sync_debug;
    bool use_graphs;

    struct gpu_cache cache; /* the convolution algorithms searched (opt.algo_cache's file) */
    cudaStream_t stream;
    cudnnHandle_t dnn;
    cublasHandle_t blas;
    struct cuda_layer *layers; /* per graph layer */

    /* Device memory: one allocation per arena. */
    char *act;          /* activations and their gradients (gp.bufs offsets) */
    void *work;         /* the workspace every step shares */
    size_t work_bytes;
    void *blas_work;
    float *params, *grads, *slots, *state;
    void *half_params, *half_grads;
    float *input;       /* the batch as set (N, C, H, W) f32 */
    float *input_grad;  /* (N, C, H, W) f32 */
    float *tensor_tmp;  /* one tensor's floats, for the edges */
    int32_t *labels;
    float *targets;
    struct gpu_range *ranges;
    struct gpu_chunk *chunks;
    struct gpu_step_in *d_in, *h_in;   /* h_*: pinned host copies (h_in: h_ins[next]) */
    struct gpu_step_out *d_out, *h_out;
    struct gpu_trained trained;

    /* Steps started and not yet waited for (plan_step_start): each uses one of two pinned
     * slots for its inputs (step values, batch) and its result; done[s] is recorded after
     * the last copy touching slot s. The host writes only slot `next`, which is free. */
    struct gpu_step_in *h_ins;   /* [2] */
    struct gpu_step_out *h_res;  /* [2] the results read back */
    float *h_x;                  /* [2] a batch given as floats (set_input), staged */
    uint64_t *h_key;             /* [2][batch] a resident batch: keys, */
    int32_t *h_index, *h_labels; /* [2][batch] images and labels */
    cudaEvent_t done[2];
    bool recorded[2];
    int next, oldest, inflight;
    bool staged; /* a copy from slot next is enqueued and its step not started */

    /* The resident training set (plan_set_dataset) and the batch naming its images */
    uint8_t *images;
    int64_t image_count;
    struct augment_gpu_plan aug;
    uint64_t *keys;   /* (batch) on the device */
    int32_t *index;   /* (batch) on the device */
    bool from_dataset; /* the input step augments index/keys instead of packing input */

    int64_t *counters;  /* per graph tensor: num_batches_tracked (host) */
    bool soft;          /* the loss uses the soft targets */
    bool half_stale;    /* half_params need refreshing from params */
    bool checked;       /* gpu_grad_check ran since the backward pass */


    /* CUDA graphs: the training step (index: soft targets + 2 x from_dataset) and the
     * evaluation; NULL: not captured. */
    cudaGraphExec_t step_graph[4], eval_graph;
    struct plan_step step_key[4]; /* what a captured step was captured with */
    bool step_warm[4], eval_warm;  /* run once kernel by kernel: the next run is captured */

    /* --profile: an event after every step of the last program run */
    cudaEvent_t *events[GPU_PROGS];
    double *step_seconds[GPU_PROGS];
    int64_t *step_calls[GPU_PROGS];
};

/* Checks a call's result (false: it failed): at plan time into c->d; while capturing, into
 * c->capture_error; else the plan fails (plan_fail). */
bool cuda_check_rt(struct cuda *c, cudaError_t e, const char *call, const char *file, int line);
bool cuda_check_dnn(struct cuda *c, cudnnStatus_t e, const char *call, const char *file, int line);
bool cuda_check_blas(struct cuda *c, cublasStatus_t e, const char *call, const char *file,
                     int line);
#define CU(c, call) cuda_check_rt((c), (call), #call, __FILE__, __LINE__)
#define DNN(c, call) cuda_check_dnn((c), (call), #call, __FILE__, __LINE__)
#define BLAS(c, call) cuda_check_blas((c), (call), #call, __FILE__, __LINE__)

/* Whether cuDNN turned a call down for what it was asked (the NOT_SUPPORTED and BAD_PARAM
 * categories: cuDNN 9's codes are hierarchical, 3003 is NOT_SUPPORTED_DATA_TYPE), rather
 * than failed. */
static inline bool cuda_dnn_declined(cudnnStatus_t st)
{
    int category = CUDNN_STATUS_CATEGORY((int)st);
    return category == CUDNN_STATUS_NOT_SUPPORTED || category == CUDNN_STATUS_BAD_PARAM;
}

/* cuda_exec.c: descriptors and algorithms for every layer (before the arenas: the
 * workspace and reserve sizes), the probe of cuDNN's fused batchnorm (after them), the steps,
 * and the descriptors' release. */
bool cuda_describe(struct cuda *c);
bool cuda_probe_bn(struct cuda *c);
void cuda_run_step(struct cuda *c, const struct gpu_step *s);
void cuda_release(struct cuda *c);

/* backend_cuda.c: captures what enqueue enqueues as a CUDA graph into *exec; false (one
 * warning, graphs off for the plan) when the capture fails. */
bool cuda_capture(struct cuda *c, cudaGraphExec_t *exec,
                  void (*enqueue)(struct cuda *, const void *), const void *arg,
                  const char *what);

/* Device pointer of buffer i (NULL for -1). */
void *cuda_buf(struct cuda *c, int i);
/* (N, C, H, W) of a per-image shape s at the plan's batch into d, C being cpad when that is
 * not 0; vectors are (N, F, 1, 1). */
void cuda_nchw(const struct cuda *c, const struct shape *s, int64_t cpad, int d[4]);

#endif
