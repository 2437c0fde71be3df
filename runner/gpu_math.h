/*
 * gpu_math.h: what the CUDA backend's kernels and its host side share, written once: the
 * compute types, the ranges and chunks of the trained arenas, and the element math of the
 * kernels as inline functions that compile both as plain C (the host, and the CPU tests in
 * tests/test_gpu_math.c, which check them against tests/ref and the CPU backend) and as CUDA
 * device code (runner/gpu_kernels.cu, runner/optim_cuda.cu).
 *
 *     struct gpu_adam_scalars a = gpu_adam_prepare(lr, bias1, bias2, 0.9, 0.999, 1e-8, 0, false);
 *     for (i ...) w[i] = gpu_adam_element(w[i], g[i], &m[i], &v[i], NULL, &a, true);
 *
 * The optimizer and EMA elements round every product and sum on its own (gpu_fmul, gpu_fadd),
 * in the CPU backend's order (runner/optim_cpu.c; C11 contracts nothing into an fma), so the
 * device's updates are the CPU's bits for the same scalars. The rest (loss, batchnorm) may
 * fuse and is compared with tolerances.
 */
#ifndef RUNNER_GPU_MATH_H
#define RUNNER_GPU_MATH_H

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "rng.h"

#ifdef __CUDACC__
#define GPU_HD __host__ __device__ __forceinline__
#else
#define GPU_HD static inline
#endif

enum gpu_dtype { GPU_F32, GPU_BF16, GPU_F16 };

/* Floats [begin, end) of the trained arenas: one tensor, or tensors of one kind in a row.
 * vector: rank <= 1 (biases, batchnorm), exempt from weight decay when asked; half: the
 * gradient is in the T copy (conv and linear weights with a 16-bit T). */
struct gpu_range {
    int64_t begin, end;
    int32_t vector, half;
};

/* A piece of one range, at most GPU_CHUNK floats: one thread block's share of an update. */
#define GPU_CHUNK 65536
struct gpu_chunk {
    int64_t begin, end;
    int32_t range;
};

/* ---------------------------------------------------------------------------------------- */
/* Rounding as the CPU rounds: one product or sum at a time, never fused */

GPU_HD float gpu_fmul(float a, float b)
{
#ifdef __CUDA_ARCH__
    return __fmul_rn(a, b);
#else
    return a * b;
#endif
}

GPU_HD float gpu_fadd(float a, float b)
{
#ifdef __CUDA_ARCH__
    return __fadd_rn(a, b);
#else
    return a + b;
#endif
}

GPU_HD float gpu_fsub(float a, float b)
{
#ifdef __CUDA_ARCH__
    return __fsub_rn(a, b);
#else
    return a - b;
#endif
}

/* ---------------------------------------------------------------------------------------- */
/* Optimizers (torch.optim, as runner/optim_cpu.c computes them) */

/*
 * One element of torch.optim.SGD: d = g + wd w; with momentum, buf = d on the first update,
 * else mom buf + damp1 d (damp1 = 1 - dampening), and d = nesterov ? d + mom buf : buf.
 * Returns w - lr d. buf (1) is neither read nor written when mom is 0. wd: 0 for a tensor
 * without weight decay.
 */
GPU_HD float gpu_sgd_element(float w, float g, float *buf, float lr, float wd, float mom,
                             float damp1, bool nesterov, bool first)
{
    float d = gpu_fadd(g, gpu_fmul(wd, w));
    if (mom != 0) {
        float b = first ? d : gpu_fadd(gpu_fmul(mom, *buf), gpu_fmul(damp1, d));
        *buf = b;
        d = nesterov ? gpu_fadd(d, gpu_fmul(mom, b)) : b;
    }
    return gpu_fsub(w, gpu_fmul(lr, d));
}

/* Updates applied before this one: the count the host gives (set), else the one kept. */
GPU_HD int32_t gpu_updates_before(int32_t set, int32_t given, int32_t kept)
{
    return set ? given : kept;
}

/* The count after an update: a skipped one (gradients overflowed) does not count. */
GPU_HD int32_t gpu_updates_after(int32_t before, bool skipped)
{
    return skipped ? before : before + 1;
}

/* Adam's bias correction of update t (1, 2, ...): 1 - beta^t, as the CPU backend computes it. */
GPU_HD double gpu_adam_bias(double beta, int64_t t)
{
    return 1 - pow(beta, (double)t);
}

/* Adam's scalars for one update, rounded to float as the CPU backend rounds them. */
struct gpu_adam_scalars {
    float b1, b1c, b2, b2c; /* beta1, 1 - beta1, beta2, 1 - beta2 */
    float step, sc2, eps;   /* lr / bias1, sqrt(bias2), eps */
    float wd, keep;         /* L2 decay on the gradient (Adam), or the weights' factor
                               1 - lr wd (AdamW); for tensors that decay */
};

/* bias1 = 1 - beta1^t, bias2 = 1 - beta2^t; decoupled: AdamW. */
GPU_HD struct gpu_adam_scalars gpu_adam_prepare(double lr, double bias1, double bias2,
                                               double beta1, double beta2, double eps,
                                               double weight_decay, bool decoupled)
{
    struct gpu_adam_scalars a;
    a.b1 = (float)beta1;
    a.b1c = (float)(1 - beta1);
    a.b2 = (float)beta2;
    a.b2c = (float)(1 - beta2);
    a.step = (float)(lr / bias1);
    a.sc2 = (float)sqrt(bias2);
    a.eps = (float)eps;
    a.wd = decoupled ? 0.0f : (float)weight_decay;
    a.keep = decoupled ? (float)(1 - lr * weight_decay) : 1.0f;
    return a;
}

/*
 * One element of torch.optim.Adam / AdamW: d = g + wd w; w *= keep; m = b1 m + (1 - b1) d;
 * v = b2 v + (1 - b2) d d; with amsgrad (vmax not NULL) vmax = max(vmax, v), used for v;
 * returns w - step m / (sqrt(v) / sqrt(bias2) + eps). decay false: neither decay applies.
 */
GPU_HD float gpu_adam_element(float w, float g, float *m, float *v, float *vmax,
                              const struct gpu_adam_scalars *a, bool decay)
{
    float d = gpu_fadd(g, gpu_fmul(decay ? a->wd : 0.0f, w));
    w = gpu_fmul(w, decay ? a->keep : 1.0f);
    float mm = gpu_fadd(gpu_fmul(a->b1, *m), gpu_fmul(a->b1c, d));
    float vv = gpu_fadd(gpu_fmul(a->b2, *v), gpu_fmul(gpu_fmul(a->b2c, d), d));
    *m = mm;
    *v = vv;
    float s = vv;
    if (vmax) s = *vmax = *vmax > s ? *vmax : s;
    return gpu_fsub(w, gpu_fmul(a->step, mm) / gpu_fadd(sqrtf(s) / a->sc2, a->eps));
}

/* The weights' moving average: decay ema + (1 - decay) w, with d = (float)decay and
 * d1 = (float)(1 - decay). */
GPU_HD float gpu_ema_element(float ema, float w, float d, float d1)
{
    return gpu_fadd(gpu_fmul(d, ema), gpu_fmul(d1, w));
}

/* torch.nn.utils.clip_grad_norm_'s factor: max_norm / (norm + 1e-6) where that is below 1,
 * else 1 (and 1 when clipping is off: max_norm <= 0). */
GPU_HD double gpu_clip_factor(double max_norm, double norm)
{
    if (!(max_norm > 0)) return 1;
    double coef = max_norm / (norm + 1e-6);
    return coef < 1 ? coef : 1;
}

/* What the update multiplies every stored gradient by: 1 / loss_scale (unscaling), times
 * the clip factor of the unscaled norm. */
GPU_HD float gpu_grad_mult(float loss_scale, double max_norm, double norm)
{
    return (float)(1.0 / (double)loss_scale * gpu_clip_factor(max_norm, norm));
}

/*
 * torch.amp.GradScaler's update (backoff 0.5, growth 2): after an overflow the scale halves,
 * good_steps = 0, skipped + 1; otherwise good_steps + 1, and when that reaches
 * growth_interval the scale doubles (unless that overflows float) and good_steps = 0.
 */
GPU_HD void gpu_scaler_update(float *scale, int32_t *good_steps, int32_t *skipped,
                              bool found_inf, int growth_interval)
{
    if (found_inf) {
        *scale = *scale * 0.5f;
        *good_steps = 0;
        *skipped += 1;
        return;
    }
    int32_t good = *good_steps + 1;
    if (good == growth_interval) {
        /* Decided before multiplying, with no overflow to test: gcc 14 (Debian 13) at -O1
         * and above turned isfinite(x * 2) for a known x = 2^127 into storing FLT_MAX. */
        if (*scale <= FLT_MAX / 2) *scale *= 2.0f;
        good = 0;
    }
    *good_steps = good;
}

/* ---------------------------------------------------------------------------------------- */
/* Softmax cross-entropy */

/* The smoothed target of class k: ek + keep t with ek = e / classes, keep = 1 - e, and t
 * the soft target trow[k] or, with trow NULL, 1 for the label and 0 for the others. */
GPU_HD float gpu_xent_target(const float *trow, int label, int k, float ek, float keep)
{
    float t = trow ? trow[k] : k == label ? 1.0f : 0.0f;
    return ek + keep * t;
}

/* One class of a row whose largest logit is zmax and lse = log sum exp(z - zmax): returns
 * the loss term -q log p and writes the gradient (p - q) scale into *grad. */
GPU_HD float gpu_xent_class(float z, float zmax, float lse, float q, float scale, float *grad)
{
    float logp = (z - zmax) - lse;
    *grad = (expf(logp) - q) * scale;
    return -q * logp;
}

/* Merges the best (value *v, index *i) so far with another (ov, oi): the larger value wins,
 * on a tie the smaller index (argmax's first maximum, in any merge order). */
GPU_HD void gpu_argmax_merge(float *v, int *i, float ov, int oi)
{
    if (ov > *v || (ov == *v && oi < *i)) {
        *v = ov;
        *i = oi;
    }
}

/*
 * One row serially (what the kernel computes with a warp per row): z (classes) logits,
 * label, trow (classes) soft targets or NULL, smoothing e; the gradient (p - q') scale into
 * grad (classes) when not NULL; the first maximum's index into *argmax. Returns the loss.
 */
GPU_HD float gpu_xent_row(const float *z, int classes, int label, const float *trow, float e,
                          float scale, float *grad, int *argmax)
{
    float zmax = z[0];
    int at = 0;
    for (int k = 1; k < classes; k++) gpu_argmax_merge(&zmax, &at, z[k], k);
    float sum = 0;
    for (int k = 0; k < classes; k++) sum += expf(z[k] - zmax);
    float lse = logf(sum), ek = e / (float)classes, keep = 1 - e, loss = 0, gk;
    for (int k = 0; k < classes; k++) {
        loss += gpu_xent_class(z[k], zmax, lse, gpu_xent_target(trow, label, k, ek, keep),
                               scale, &gk);
        if (grad) grad[k] = gk;
    }
    *argmax = at;
    return loss;
}

/* ---------------------------------------------------------------------------------------- */
/* Batch normalization */

/* Count, mean and sum of squared deviations of some values (Welford; Chan et al. to merge). */
struct gpu_moments {
    float n, mean, m2;
};

GPU_HD struct gpu_moments gpu_moments_add(struct gpu_moments a, float x)
{
    a.n += 1;
    float d = x - a.mean;
    a.mean += d / a.n;
    a.m2 += d * (x - a.mean);
    return a;
}

GPU_HD struct gpu_moments gpu_moments_merge(struct gpu_moments a, struct gpu_moments b)
{
    float n = a.n + b.n;
    if (n == 0) return a;
    float d = b.mean - a.mean, f = b.n / n;
    struct gpu_moments r = {n, a.mean + d * f, a.m2 + b.m2 + d * d * a.n * f};
    return r;
}

/* The biased variance of merged moments (0 for none). */
GPU_HD float gpu_moments_var(struct gpu_moments a)
{
    return a.n > 0 && a.m2 > 0 ? a.m2 / a.n : 0.0f;
}

/* PyTorch's running statistics after a batch of count values with mean and biased variance
 * var: run = (1 - momentum) run + momentum batch, the variance unbiased (count / (count -
 * 1), the biased one for a single value). In double, as the CPU backend. */
GPU_HD void gpu_bn_running(float *run_mean, float *run_var, float mean, float var,
                           int64_t count, double momentum)
{
    double n = (double)count, unbias = n > 1 ? n / (n - 1) : 1;
    *run_mean = (float)((1 - momentum) * *run_mean + momentum * mean);
    *run_var = (float)((1 - momentum) * *run_var + momentum * var * unbias);
}

/* 1 / sqrt(var + eps). */
GPU_HD float gpu_bn_invstd(float var, double eps)
{
    return 1.0f / sqrtf(var + (float)eps);
}

/* xhat = (x - mean) invstd, and the output (x - mean) scale + beta with scale = gamma
 * invstd. */
GPU_HD float gpu_bn_xhat(float x, float mean, float invstd)
{
    return (x - mean) * invstd;
}

GPU_HD float gpu_bn_y(float x, float mean, float scale, float beta)
{
    return (x - mean) * scale + beta;
}

/* The input's gradient from the output's, g, over a channel of count values:
 * k (g - mg - xhat mgx) with k = gamma invstd, mg = dbeta / count (the mean of g) and
 * mgx = dgamma / count (the mean of g xhat). */
GPU_HD float gpu_bn_dx(float g, float xhat, float k, float mg, float mgx)
{
    return k * (g - mg - xhat * mgx);
}

/* relu keeping nan (as PyTorch): x where x > 0 or x is nan, else 0. */
GPU_HD float gpu_relu_element(float x)
{
    return !(x <= 0) ? x : 0.0f;
}

/* ---------------------------------------------------------------------------------------- */
/* Layouts and dropout */

/* Element i of an NHWC tensor (n, hw, cpad): where it comes from in the NCHW tensor (n, c,
 * hw), or -1 for a padding channel (c <= channel < cpad). */
GPU_HD int64_t gpu_pack_src(int64_t i, int c, int64_t hw, int cpad)
{
    int64_t ch = i % cpad, pix = i / cpad;
    if (ch >= c) return -1;
    return (pix / hw * c + ch) * hw + pix % hw;
}

/* Element j of an NCHW tensor (n, c, hw): where it lies in the NHWC tensor (n, hw, cpad). */
GPU_HD int64_t gpu_unpack_src(int64_t j, int c, int64_t hw, int cpad)
{
    int64_t p = j % hw, t = j / hw;
    return (t / c * hw + p) * cpad + t % c;
}

/* Element i of a tensor (n, hw, c) channels-last: its index in PyTorch's (n, c, hw) order. */
GPU_HD int64_t gpu_torch_index(int64_t i, int64_t c, int64_t hw)
{
    int64_t ch = i % c, pix = i / c;
    return (pix / hw * c + ch) * hw + pix % hw;
}

/* Dropout keeps element i where rng_uniform(key, i) >= p; as integers: the top 53 bits of
 * rng_bits(key, i) at least gpu_dropout_threshold(p) (p in [0, 1]). */
GPU_HD uint64_t gpu_dropout_threshold(double p)
{
    if (!(p > 0)) return 0;
    return p >= 1 ? (uint64_t)1 << 53 : (uint64_t)ceil(p * 0x1.0p53);
}

GPU_HD bool gpu_dropout_keep(uint64_t key, int64_t i, uint64_t threshold)
{
    return rng_bits(key, (uint64_t)i) >> 11 >= threshold;
}

/* ---------------------------------------------------------------------------------------- */
/* Device loads and stores of T, computing in fp32 */

#ifdef __CUDACC__
#include <cuda_bf16.h>
#include <cuda_fp16.h>

__device__ __forceinline__ float gpu_f32(float x)
{
    return x;
}

__device__ __forceinline__ float gpu_f32(__nv_bfloat16 x)
{
    return __bfloat162float(x);
}

__device__ __forceinline__ float gpu_f32(__half x)
{
    return __half2float(x);
}

template <typename T> __device__ __forceinline__ T gpu_to(float v);

template <> __device__ __forceinline__ float gpu_to<float>(float v)
{
    return v;
}

template <> __device__ __forceinline__ __nv_bfloat16 gpu_to<__nv_bfloat16>(float v)
{
    return __float2bfloat16_rn(v);
}

template <> __device__ __forceinline__ __half gpu_to<__half>(float v)
{
    return __float2half_rn(v);
}

/* Calls f with a value of the C++ type of t (float, __nv_bfloat16, __half): a launcher
 * written once for the three. */
template <typename F> static cudaError_t gpu_by_type(enum gpu_dtype t, F f)
{
    switch (t) {
    case GPU_BF16: return f(__nv_bfloat16());
    case GPU_F16: return f(__half());
    default: return f(0.0f);
    }
}

/* Flat kernels over n elements: blocks of GPU_THREADS, at most GPU_MAX_BLOCKS of them (the
 * threads loop over the rest with GPU_FLAT_LOOP). */
#define GPU_THREADS 256
#define GPU_MAX_BLOCKS 8192

#define GPU_FLAT_LOOP(i, n)                                                                    \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                  \
         i += (int64_t)gridDim.x * blockDim.x)

static inline unsigned gpu_flat_blocks(int64_t n)
{
    int64_t b = (n + GPU_THREADS - 1) / GPU_THREADS;
    return (unsigned)(b < 1 ? 1 : b > GPU_MAX_BLOCKS ? GPU_MAX_BLOCKS : b);
}
#endif

#endif
