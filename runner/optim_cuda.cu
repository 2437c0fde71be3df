/*
 * optim_cuda.cu: the launchers of gpu_kernels.h that work on the trained arenas: the gradient
 * check before an update (overflow, norm, clipping and unscaling in one factor), the fused
 * SGD and Adam updates, the weights' EMA, the refresh of the 16-bit weight copies, and fp16's
 * dynamic loss scale.
 *
 * An update runs one thread block per chunk of the arena (struct gpu_chunk, at most
 * GPU_CHUNK floats of one range), so a block knows its range's kind (vector: no weight decay
 * when asked; half: the gradient is in the T copy) without a search. The element math is
 * gpu_math.h's, the CPU backend's operations in its order, so an update from the same
 * gradients and scalars gives the CPU's bits. The gradients' norm sums squares in double, a
 * fixed tree per chunk, then the chunks in a fixed order. Step values (lr, the bias
 * corrections from the count of applied updates, the loss scale, found_inf, grad_mult) are
 * read on the device, so a captured step replays with new ones; a skipped update (fp16
 * overflow) changes nothing and is not counted, as PyTorch's GradScaler skips optimizer.step.
 *
 * The element math is checked on the CPU by tests/test_gpu_math.c, the kernels on a GPU by
 * tests/test_ops_cuda.c.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>

#include "gpu_kernels.h"

#define UPDATE_THREADS 256 /* per chunk */
#define NORM_THREADS 256   /* per chunk, and the single block summing the chunks */

/* The updates applied before this one. */
__device__ __forceinline__ int32_t updates_before(const gpu_step_in *in, const gpu_step_out *out)
{
    return gpu_updates_before(in->set_updates, in->updates, out->updates);
}

/* Element i's gradient as stored: in the T copy for a half range, else fp32. */
template <typename T>
__device__ __forceinline__ float stored_grad(const gpu_trained &w, bool half, int64_t i)
{
    return half ? gpu_f32(((const T *)w.half_grads)[i]) : w.grads[i];
}

/* The fixed tree over a block's n values in s; s[0] ends with the sum. */
__device__ __forceinline__ void block_sum(double *s, int n)
{
    for (int h = n / 2; h > 0; h /= 2) {
        __syncthreads();
        if ((int)threadIdx.x < h) s[threadIdx.x] += s[threadIdx.x + h];
    }
    __syncthreads();
}

/* ---------------------------------------------------------------------------------------- */
/* Gradient check */

template <typename T>
__global__ void __launch_bounds__(NORM_THREADS) grad_sumsq(gpu_trained w, double *part)
{ // part (nchunks): the sum of squares of each chunk's stored gradients
    __shared__ double s[NORM_THREADS];
    gpu_chunk ch = w.chunks[blockIdx.x];
    bool half = w.ranges[ch.range].half && w.half_grads;
    double a = 0;
    for (int64_t i = ch.begin + threadIdx.x; i < ch.end; i += NORM_THREADS) {
        double g = stored_grad<T>(w, half, i);
        a += g * g;
    }
    s[threadIdx.x] = a;
    block_sum(s, NORM_THREADS);
    if (threadIdx.x == 0) part[blockIdx.x] = s[0];
}

/* One block: thread k sums its run of chunks in order, then the tree; thread 0 writes. */
__global__ void __launch_bounds__(NORM_THREADS)
    grad_finish(const double *part, int nchunks, double max_norm, gpu_step_out *out)
{ // part (nchunks)
    __shared__ double s[NORM_THREADS];
    int per = (nchunks + NORM_THREADS - 1) / NORM_THREADS;
    int b = (int)threadIdx.x * per, e = b + per < nchunks ? b + per : nchunks;
    double a = 0;
    for (int k = b; k < e; k++) a += part[k];
    s[threadIdx.x] = a;
    block_sum(s, NORM_THREADS);
    if (threadIdx.x != 0) return;
    double sum = s[0];
    float scale = out->grad_scale;
    bool inf = !isfinite(sum);
    double norm = sqrt(sum) / (double)scale;
    out->found_inf = inf;
    out->grad_norm = (float)norm;
    out->grad_mult = inf ? (float)(1.0 / (double)scale) : gpu_grad_mult(scale, max_norm, norm);
}

extern "C" size_t gpu_grad_work_bytes(int nchunks)
{
    return (size_t)(nchunks > 0 ? nchunks : 0) * sizeof(double);
}

extern "C" cudaError_t gpu_grad_check(const struct gpu_trained *w, double max_norm,
                                      struct gpu_step_out *out, void *work, cudaStream_t s)
{
    double *part = (double *)work;
    if (w->nchunks > 0) {
        cudaError_t e = gpu_by_type(w->t, [&](auto zero) {
            using T = decltype(zero);
            grad_sumsq<T><<<(unsigned)w->nchunks, NORM_THREADS, 0, s>>>(*w, part);
            return cudaGetLastError();
        });
        if (e != cudaSuccess) return e;
    }
    grad_finish<<<1, NORM_THREADS, 0, s>>>(part, w->nchunks, max_norm, out);
    return cudaGetLastError();
}

/* ---------------------------------------------------------------------------------------- */
/* Updates: a block per chunk */

template <typename T>
__global__ void __launch_bounds__(UPDATE_THREADS)
    sgd_kernel(gpu_trained w, float mom, float damp1, float wd, bool nesterov,
               bool no_decay_vectors, const gpu_step_in *in, const gpu_step_out *out)
{
    gpu_chunk ch = w.chunks[blockIdx.x];
    gpu_range r = w.ranges[ch.range];
    bool half = r.half && w.half_grads, skip = out->found_inf != 0;
    bool first = updates_before(in, out) == 0;
    float lr = in->lr, mult = out->grad_mult, wd_r = no_decay_vectors && r.vector ? 0.0f : wd;
    T *hp = (T *)w.half_params;
    for (int64_t i = ch.begin + threadIdx.x; i < ch.end; i += UPDATE_THREADS) {
        float p = w.params[i];
        if (!skip) {
            float g = gpu_fmul(stored_grad<T>(w, half, i), mult);
            p = gpu_sgd_element(p, g, mom != 0 ? &w.slots[i] : NULL, lr, wd_r, mom, damp1,
                                nesterov, first);
            w.params[i] = p;
        }
        if (hp) hp[i] = gpu_to<T>(p);
    }
}

template <typename T>
__global__ void __launch_bounds__(UPDATE_THREADS)
    adam_kernel(gpu_trained w, double beta1, double beta2, double eps, double weight_decay,
                bool decoupled, bool amsgrad, bool no_decay_vectors, const gpu_step_in *in,
                const gpu_step_out *out)
{
    gpu_chunk ch = w.chunks[blockIdx.x];
    gpu_range r = w.ranges[ch.range];
    bool half = r.half && w.half_grads, skip = out->found_inf != 0;
    bool decay = !(no_decay_vectors && r.vector);
    float mult = out->grad_mult;
    int64_t t = (int64_t)updates_before(in, out) + 1;
    gpu_adam_scalars a = gpu_adam_prepare(in->lr, gpu_adam_bias(beta1, t), gpu_adam_bias(beta2, t),
                                          beta1, beta2, eps, weight_decay, decoupled);
    float *m = w.slots, *v = w.slots + w.nfloats, *vmax = w.slots + 2 * w.nfloats;
    T *hp = (T *)w.half_params;
    for (int64_t i = ch.begin + threadIdx.x; i < ch.end; i += UPDATE_THREADS) {
        float p = w.params[i];
        if (!skip) {
            float g = gpu_fmul(stored_grad<T>(w, half, i), mult);
            p = gpu_adam_element(p, g, &m[i], &v[i], amsgrad ? &vmax[i] : NULL, &a, decay);
            w.params[i] = p;
        }
        if (hp) hp[i] = gpu_to<T>(p);
    }
}

extern "C" cudaError_t gpu_sgd(const struct gpu_trained *w, double momentum, double dampening,
                               double weight_decay, bool nesterov, bool no_decay_vectors,
                               const struct gpu_step_in *in, const struct gpu_step_out *out,
                               cudaStream_t s)
{
    if (w->nchunks <= 0) return cudaGetLastError();
    float mom = (float)momentum, damp1 = (float)(1 - dampening), wd = (float)weight_decay;
    return gpu_by_type(w->t, [&](auto zero) {
        using T = decltype(zero);
        sgd_kernel<T><<<(unsigned)w->nchunks, UPDATE_THREADS, 0, s>>>(
            *w, mom, damp1, wd, nesterov, no_decay_vectors, in, out);
        return cudaGetLastError();
    });
}

extern "C" cudaError_t gpu_adam(const struct gpu_trained *w, double beta1, double beta2,
                                double eps, double weight_decay, bool decoupled, bool amsgrad,
                                bool no_decay_vectors, const struct gpu_step_in *in,
                                const struct gpu_step_out *out, cudaStream_t s)
{
    if (w->nchunks <= 0) return cudaGetLastError();
    return gpu_by_type(w->t, [&](auto zero) {
        using T = decltype(zero);
        adam_kernel<T><<<(unsigned)w->nchunks, UPDATE_THREADS, 0, s>>>(
            *w, beta1, beta2, eps, weight_decay, decoupled, amsgrad, no_decay_vectors, in, out);
        return cudaGetLastError();
    });
}

/* ---------------------------------------------------------------------------------------- */
/* EMA, the 16-bit copies, the loss scale */

__global__ void ema_kernel(const float *params, float *ema, int64_t n, float d, float d1,
                           const gpu_step_in *in, const gpu_step_out *out)
{ // params, ema: (n)
    if (out->found_inf) return;
    bool first = updates_before(in, out) == 0;
    GPU_FLAT_LOOP(i, n) ema[i] = first ? params[i] : gpu_ema_element(ema[i], params[i], d, d1);
}

extern "C" cudaError_t gpu_ema(const struct gpu_trained *w, int slot, double decay,
                               const struct gpu_step_in *in, const struct gpu_step_out *out,
                               cudaStream_t s)
{
    if (w->nfloats <= 0) return cudaGetLastError();
    float *ema = w->slots + (int64_t)slot * w->nfloats;
    ema_kernel<<<gpu_flat_blocks(w->nfloats), GPU_THREADS, 0, s>>>(
        w->params, ema, w->nfloats, (float)decay, (float)(1 - decay), in, out);
    return cudaGetLastError();
}

template <typename T>
__global__ void __launch_bounds__(UPDATE_THREADS) scale_grads_kernel(gpu_trained w, float f)
{
    gpu_chunk ch = w.chunks[blockIdx.x];
    bool half = w.ranges[ch.range].half && w.half_grads;
    T *hg = (T *)w.half_grads;
    for (int64_t i = ch.begin + threadIdx.x; i < ch.end; i += UPDATE_THREADS) {
        if (half)
            hg[i] = gpu_to<T>(gpu_f32(hg[i]) * f);
        else
            w.grads[i] *= f;
    }
}

extern "C" cudaError_t gpu_scale_grads(const struct gpu_trained *w, float f, cudaStream_t s)
{
    if (w->nchunks <= 0) return cudaGetLastError();
    return gpu_by_type(w->t, [&](auto zero) {
        using T = decltype(zero);
        scale_grads_kernel<T><<<(unsigned)w->nchunks, UPDATE_THREADS, 0, s>>>(*w, f);
        return cudaGetLastError();
    });
}

extern "C" cudaError_t gpu_refresh_half(const struct gpu_trained *w, cudaStream_t s)
{
    if (!w->half_params) return cudaGetLastError();
    return gpu_convert(w->t, w->half_params, GPU_F32, w->params, w->nfloats, s);
}

__global__ void update_finish_kernel(gpu_step_out *out, const gpu_step_in *in,
                                     bool loss_scaling, int growth_interval)
{
    bool inf = out->found_inf != 0;
    out->updates = gpu_updates_after(updates_before(in, out), inf);
    /* the scale moves by what the scaled loss's gradients did, not by given ones */
    if (loss_scaling && out->grad_scale == out->loss_scale)
        gpu_scaler_update(&out->loss_scale, &out->good_steps, &out->skipped, inf, growth_interval);
}

extern "C" cudaError_t gpu_update_finish(struct gpu_step_out *out, const struct gpu_step_in *in,
                                         bool loss_scaling, int growth_interval, cudaStream_t s)
{
    update_finish_kernel<<<1, 1, 0, s>>>(out, in, loss_scaling, growth_interval);
    return cudaGetLastError();
}
