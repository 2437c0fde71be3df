/*
 * gpu_kernels.h: the CUDA backend's own kernels, for what cuDNN and cuBLAS do not offer: the
 * edges of a plan (type and layout conversions), the loss, batch normalization's fallback
 * (with the add and relu after it fused in), pointwise ops, global average pooling, dropout,
 * bias sums, and one fused update of every trained tensor (SGD, Adam, AdamW, clipping, fp16
 * loss scaling, EMA). Every launcher enqueues on stream s and returns cudaGetLastError().
 *
 * Tensors are NHWC: an activation of N images is m = N * H * W rows of c channels, channels
 * fastest. T, the compute type, is enum gpu_dtype: fp32, bf16 or fp16; batchnorm's
 * statistics, scales and shifts, the loss, the master weights and the optimizer state are
 * always fp32. Every reduction sums in a fixed order (no atomics on floats), so results are
 * the same bits on every run.
 *
 * Values that change between replays of a captured step live in device memory: struct
 * gpu_step_in (written by the host before each step) and struct gpu_step_out (kept and
 * written by the kernels). Element math shared with the host is in gpu_math.h (tested on the
 * CPU by tests/test_gpu_math.c); the kernels are covered by tests/test_ops_cuda.c.
 */
#ifndef RUNNER_GPU_KERNELS_H
#define RUNNER_GPU_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "gpu_math.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Written by the host before each step (one copy of the whole struct). */
struct gpu_step_in {
    float lr;
    int32_t set_updates;  /* nonzero: `updates` replaces the device's count of applied updates
                             (the host knows it: nothing in flight, a resume, an eager update) */
    int32_t updates;
    int32_t valid;        /* rows of the batch the loss counts (the rest are padding) */
    uint64_t dropout_key; /* seed ^ step: rng_uniform(dropout_key, element) */
};

/* Kept on the device between steps, written by the kernels. */
struct gpu_step_out {
    float loss_scale;   /* fp16: the dynamic loss scale; 1 otherwise */
    int32_t good_steps; /* updates since the scale last changed */
    int32_t found_inf;  /* this step's gradients hold an inf or a nan: the update is skipped */
    int32_t correct;    /* rows whose largest logit is the label */
    float loss_sum;     /* sum of the rows' losses */
    float grad_norm;    /* L2 norm of all the (unscaled) gradients */
    float grad_mult;    /* what the update multiplies every gradient by: 1 / loss_scale,
                           times the clipping factor */
    int32_t skipped;    /* updates skipped so far (fp16 overflow) */
    float grad_scale;   /* what the gradients in the arenas are multiplied by: the loss scale
                           of the loss that made them, 1 for gradients given by the host */
    int32_t updates;    /* updates applied so far (PyTorch's state['step']): the next one is
                           number updates + 1 (Adam's bias corrections, SGD's first momentum
                           step), and the EMA is seeded with the weights at the first */
};

/* Whether this binary holds code the current device can run: cudaFuncGetAttributes of one of
 * its kernels (cudaErrorNoKernelImageForDevice when it was built for other GPUs). */
cudaError_t gpu_kernels_loadable(void);

/* Conversions. n elements of src (type from) into dst (type to); either may be fp32. */
cudaError_t gpu_convert(enum gpu_dtype to, void *dst, enum gpu_dtype from, const void *src,
                        int64_t n, cudaStream_t s);
/* x (n, c, h, w) fp32 into y (n, h, w, cpad) T; channels c .. cpad - 1 are zero. */
cudaError_t gpu_pack_nchw(enum gpu_dtype t, void *y, const float *x, int64_t n, int c, int h,
                          int w, int cpad, cudaStream_t s);
/* The reverse: x (n, h, w, cpad) T into y (n, c, h, w) fp32 (padding channels dropped). */
cudaError_t gpu_unpack_nhwc(float *y, enum gpu_dtype t, const void *x, int64_t n, int c, int h,
                            int w, int cpad, cudaStream_t s);
/* x (n, c, hw) T into y (n, hw, c) T: a gradient given in PyTorch's order, channels-last. */
cudaError_t gpu_to_nhwc(enum gpu_dtype t, void *y, const void *x, int64_t n, int64_t c,
                        int64_t hw, cudaStream_t s);

/*
 * Softmax cross-entropy of logits (n, classes) fp32 against labels (n) or, when targets is
 * not NULL, soft targets (n, classes) fp32, with label smoothing as PyTorch (q' = (1 - e) q +
 * e / classes). Only rows < in->valid count: out->loss_sum = the sum of their losses,
 * out->correct = how many have their label's logit largest (first maximum; soft targets: the
 * label still counts). dlogits (n, classes) T, when not NULL: (softmax - q') * loss_scale /
 * valid for counted rows, 0 for the others.
 */
cudaError_t gpu_softmax_xent(const float *logits, int64_t n, int classes, const int32_t *labels,
                             const float *targets, double smoothing, enum gpu_dtype t,
                             void *dlogits, const struct gpu_step_in *in,
                             struct gpu_step_out *out, cudaStream_t s);

/* Batch normalization over x (m, c) T, our own kernels (where cuDNN's fused one is absent).
 * work: gpu_bn_work_bytes(m, c) bytes of scratch. */
size_t gpu_bn_work_bytes(int64_t m, int c);
/* Batch statistics: save_mean, save_invstd = 1 / sqrt(var + eps) (biased variance); the
 * running ones move by momentum towards the mean and the unbiased variance. */
cudaError_t gpu_bn_stats(enum gpu_dtype t, const void *x, int64_t m, int c, double eps,
                         double momentum, float *save_mean, float *save_invstd,
                         float *run_mean, float *run_var, void *work, cudaStream_t s);
/* y = (x - mean) * invstd * gamma + beta, plus z (m, c) T when not NULL, then relu when
 * asked. */
cudaError_t gpu_bn_apply(enum gpu_dtype t, const void *x, int64_t m, int c, const float *mean,
                         const float *invstd, const float *gamma, const float *beta,
                         const void *z, bool relu, void *y, cudaStream_t s);
/* The same with the running statistics (evaluation): invstd = 1 / sqrt(run_var + eps). */
cudaError_t gpu_bn_apply_running(enum gpu_dtype t, const void *x, int64_t m, int c,
                                 const float *run_mean, const float *run_var, double eps,
                                 const float *gamma, const float *beta, const void *z,
                                 bool relu, void *y, cudaStream_t s);
/* Backward of gpu_bn_apply after gpu_bn_stats. g = dy, or with relu dy where y > 0; dz = g
 * (when dz is not NULL: the add's other input); dbeta = sum g, dgamma = sum g * xhat (fp32,
 * overwritten); dx = gamma * invstd * (g - dbeta / m - xhat * dgamma / m) with xhat = (x -
 * mean) * invstd. */
cudaError_t gpu_bn_backward(enum gpu_dtype t, const void *x, const void *y, const void *dy,
                            int64_t m, int c, const float *mean, const float *invstd,
                            const float *gamma, bool relu, float *dgamma, float *dbeta,
                            void *dx, void *dz, void *work, cudaStream_t s);
/* Pointwise. y = max(x, 0); dx = y > 0 ? dy : 0; y = a + b; y += x. */
cudaError_t gpu_relu(enum gpu_dtype t, const void *x, void *y, int64_t n, cudaStream_t s);
cudaError_t gpu_relu_backward(enum gpu_dtype t, const void *y, const void *dy, void *dx,
                              int64_t n, cudaStream_t s);
cudaError_t gpu_add(enum gpu_dtype t, const void *a, const void *b, void *y, int64_t n,
                    cudaStream_t s);
cudaError_t gpu_accumulate(enum gpu_dtype t, void *y, const void *x, int64_t n, cudaStream_t s);

/* Global average pooling: x (n, hw, c) T into y (n, c) T (mean in fp32); backward spreads
 * dy / hw over the hw positions. */
cudaError_t gpu_gap(enum gpu_dtype t, const void *x, void *y, int64_t n, int hw, int c,
                    cudaStream_t s);
cudaError_t gpu_gap_backward(enum gpu_dtype t, const void *dy, void *dx, int64_t n, int hw,
                             int c, cudaStream_t s);

/* Dropout over n elements of a tensor laid out (N, hw, c) (hw 1: any plain order): element i
 * is kept where rng_uniform(in->dropout_key, j) >= p with j its index in PyTorch's (N, c, hw)
 * order (the CPU backend's draw, element for element), scaled by 1 / (1 - p); mask: n bytes. */
cudaError_t gpu_dropout(enum gpu_dtype t, const void *x, void *y, uint8_t *mask, int64_t n,
                        int64_t c, int64_t hw, double p, const struct gpu_step_in *in,
                        cudaStream_t s);
cudaError_t gpu_dropout_backward(enum gpu_dtype t, const void *dy, void *dx,
                                 const uint8_t *mask, int64_t n, double p, cudaStream_t s);

/* Biases: y (rows, cols) T or fp32 (yt) += bias (cols) fp32; db (cols) fp32 = column sums
 * of dy (rows, cols) T. */
cudaError_t gpu_bias_add(enum gpu_dtype yt, void *y, const float *bias, int64_t rows, int cols,
                         cudaStream_t s);
cudaError_t gpu_bias_grad(enum gpu_dtype t, const void *dy, int64_t rows, int cols, float *db,
                          void *work, cudaStream_t s);
size_t gpu_bias_work_bytes(int64_t rows, int cols);

/*
 * The trained tensors, all in one fp32 arena of nfloats (master weights), their gradients
 * in another, and the optimizer's slots after each other (slot k at slots + k * nfloats).
 * With a 16-bit T, conv and linear weights are used and differentiated in T copies that
 * mirror the fp32 arenas element for element (half_params, half_grads): a range with half
 * set has its gradient in half_grads; every update rewrites half_params from params.
 * Ranges and chunks are in device memory (gpu_plan_chunks makes the chunks).
 */
struct gpu_trained {
    float *params, *grads, *slots;
    void *half_params, *half_grads; /* NULL with T fp32 */
    enum gpu_dtype t;
    int64_t nfloats;
    const struct gpu_range *ranges;
    const struct gpu_chunk *chunks;
    int nchunks;
};

/* Scratch for gpu_grad_check: gpu_grad_work_bytes(nchunks) bytes. */
size_t gpu_grad_work_bytes(int nchunks);
/* Before an update: out->found_inf, out->grad_norm (of the gradients divided by their scale,
 * out->grad_scale, summed in double in chunk order) and out->grad_mult = 1 / grad_scale
 * times, when max_norm > 0 and the norm exceeds it, max_norm / (norm + 1e-6). */
cudaError_t gpu_grad_check(const struct gpu_trained *w, double max_norm,
                           struct gpu_step_out *out, void *work, cudaStream_t s);
/* The updates, as torch.optim (see plan.h), with every gradient multiplied by
 * out->grad_mult first; nothing changes when out->found_inf. lr comes from in; the update's
 * number t from the applied ones before it (gpu_updates_before(in, out) + 1). */
cudaError_t gpu_sgd(const struct gpu_trained *w, double momentum, double dampening,
                    double weight_decay, bool nesterov, bool no_decay_vectors,
                    const struct gpu_step_in *in, const struct gpu_step_out *out,
                    cudaStream_t s);
cudaError_t gpu_adam(const struct gpu_trained *w, double beta1, double beta2, double eps,
                     double weight_decay, bool decoupled, bool amsgrad, bool no_decay_vectors,
                     const struct gpu_step_in *in, const struct gpu_step_out *out,
                     cudaStream_t s);
/* The EMA in slot `slot`: = params at the first applied update, else decay * ema + (1 -
 * decay) * params; skipped when out->found_inf. */
cudaError_t gpu_ema(const struct gpu_trained *w, int slot, double decay,
                    const struct gpu_step_in *in, const struct gpu_step_out *out,
                    cudaStream_t s);
/* Every stored gradient (fp32, and the T copies of half ranges) multiplied by f. */
cudaError_t gpu_scale_grads(const struct gpu_trained *w, float f, cudaStream_t s);
/* After an update: half_params = (T) params (for set_tensor and fp32 -> T refreshes). */
cudaError_t gpu_refresh_half(const struct gpu_trained *w, cudaStream_t s);
/* After an update (and its EMA): out->updates counts it unless it was skipped; with
 * loss_scaling, and gradients made by the scaled loss (not given at scale 1), fp16's dynamic
 * loss scale as torch.amp.GradScaler: after an overflow the scale halves (good_steps = 0,
 * skipped + 1); after growth_interval good steps in a row it doubles. */
cudaError_t gpu_update_finish(struct gpu_step_out *out, const struct gpu_step_in *in,
                              bool loss_scaling, int growth_interval, cudaStream_t s);

#ifdef __cplusplus
}
#endif

#endif
