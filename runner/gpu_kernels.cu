/*
 * gpu_kernels.cu: the launchers of gpu_kernels.h but the trained-arena updates (those are in
 * optim_cuda.cu): conversions and layout changes at the plan's edges, the loss, batch
 * normalization with its fused add and relu, pointwise ops, global average pooling, dropout
 * and biases. Every kernel is a template over T (float, __nv_bfloat16, __half) computing in
 * fp32 with the element math of gpu_math.h; the launchers pick T with gpu_by_type.
 *
 * Shapes: a tensor of m rows of c channels (channels fastest) runs on blocks of 32 channels
 * by 8 rows, a warp over 32 neighbouring channels. Sums over rows (batch statistics, bias
 * gradients) go in two kernels: each block of a row chunk leaves its partial per channel in
 * the caller's scratch, merged across the block's 8 row threads by a fixed tree; a second
 * kernel merges the chunks in order. No float atomics, so every run gives the same bits.
 * Nothing here allocates, copies to the host or synchronizes: launches can be captured in a
 * CUDA graph, and values that change per step are read on the device from gpu_step_in and
 * gpu_step_out.
 *
 * The element math is checked on the CPU by tests/test_gpu_math.c, the kernels on a GPU by
 * tests/test_ops_cuda.c.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>

#include "gpu_kernels.h"

/* ---------------------------------------------------------------------------------------- */
/* Launch shapes */

#define CR_X 32           /* channel-row blocks: channels */
#define CR_Y 8            /* and rows */
#define CR_BLOCKS 8192    /* channel-row blocks over a whole tensor, at most */
#define SPLIT_BLOCKS 2048 /* row-chunk blocks of a reduction, about */
#define SPLIT_MIN_ROWS 64 /* rows of a chunk, at least (8 per thread) */
#define SPLIT_MAX 1024    /* chunks, at most */
#define XENT_THREADS 1024 /* the loss: one block, a warp per row */

/* Blocks over rows x c: 32-channel groups across, rows looped over by the y blocks. */
static dim3 cr_grid(int64_t rows, int c)
{
    int64_t gx = ((int64_t)c + CR_X - 1) / CR_X, gy = (rows + CR_Y - 1) / CR_Y;
    int64_t most = CR_BLOCKS / gx;
    if (most < 1) most = 1;
    if (gy > most) gy = most;
    if (gy > 65535) gy = 65535;
    if (gy < 1) gy = 1;
    return dim3((unsigned)gx, (unsigned)gy);
}

/* How a reduction over m rows of c channels splits into row chunks: `rows` rows each (the
 * last one maybe fewer), `chunks` of them; its scratch holds two floats per chunk and
 * channel. Host arithmetic only, shared by the launchers and the *_work_bytes functions. */
struct split {
    int64_t chunks, rows;
};

static struct split split_rows(int64_t m, int c)
{
    struct split s = {1, m > 0 ? m : 0};
    if (m <= 0 || c <= 0) return s;
    int64_t groups = ((int64_t)c + CR_X - 1) / CR_X;
    int64_t want = (SPLIT_BLOCKS + groups - 1) / groups;
    int64_t most = (m + SPLIT_MIN_ROWS - 1) / SPLIT_MIN_ROWS;
    int64_t k = want < most ? want : most;
    if (k > SPLIT_MAX) k = SPLIT_MAX;
    if (k < 1) k = 1;
    s.rows = (m + k - 1) / k;
    s.chunks = (m + s.rows - 1) / s.rows;
    return s;
}

static size_t split_bytes(int64_t m, int c)
{
    struct split s = split_rows(m, c);
    return (size_t)s.chunks * (size_t)(c > 0 ? c : 0) * 2 * sizeof(float);
}

/* Merges the values a of the block's CR_Y row threads (same threadIdx.x) in a fixed tree;
 * every thread gets the result. s: the block's shared scratch. */
template <typename V, typename Op>
__device__ __forceinline__ V column_merge(V (*s)[CR_X], V a, Op op)
{
    s[threadIdx.y][threadIdx.x] = a;
    for (int h = CR_Y / 2; h > 0; h /= 2) {
        __syncthreads();
        if ((int)threadIdx.y < h)
            s[threadIdx.y][threadIdx.x] =
                op(s[threadIdx.y][threadIdx.x], s[threadIdx.y + h][threadIdx.x]);
    }
    __syncthreads();
    V r = s[0][threadIdx.x];
    __syncthreads();
    return r;
}

struct add_f1 {
    __device__ float operator()(float a, float b) const
    {
        return a + b;
    }
};
struct add_f2 {
    __device__ float2 operator()(float2 a, float2 b) const
    {
        return make_float2(a.x + b.x, a.y + b.y);
    }
};
struct merge_moments {
    __device__ gpu_moments operator()(gpu_moments a, gpu_moments b) const
    {
        return gpu_moments_merge(a, b);
    }
};

#define ROW_LOOP(r, m)                                                                         \
    for (int64_t r = (int64_t)blockIdx.y * CR_Y + threadIdx.y; r < (m);                        \
         r += (int64_t)gridDim.y * CR_Y)

/* ---------------------------------------------------------------------------------------- */
/* Conversions and layouts */

template <typename D, typename S>
__global__ void convert_kernel(D *dst, const S *src, int64_t n) // dst, src: (n)
{
    GPU_FLAT_LOOP(i, n) dst[i] = gpu_to<D>(gpu_f32(src[i]));
}

extern "C" cudaError_t gpu_convert(enum gpu_dtype to, void *dst, enum gpu_dtype from,
                                   const void *src, int64_t n, cudaStream_t s)
{
    if (n <= 0) return cudaGetLastError();
    return gpu_by_type(to, [&](auto d) {
        return gpu_by_type(from, [&](auto f) {
            using D = decltype(d);
            using S = decltype(f);
            convert_kernel<D, S><<<gpu_flat_blocks(n), GPU_THREADS, 0, s>>>(
                (D *)dst, (const S *)src, n);
            return cudaGetLastError();
        });
    });
}

template <typename T>
__global__ void pack_kernel(T *y, const float *x, int64_t total, int c, int64_t hw, int cpad)
{ // y (n, hw, cpad), x (n, c, hw); total = n hw cpad
    GPU_FLAT_LOOP(i, total) {
        int64_t j = gpu_pack_src(i, c, hw, cpad);
        y[i] = gpu_to<T>(j < 0 ? 0.0f : x[j]);
    }
}

template <typename T>
__global__ void unpack_kernel(float *y, const T *x, int64_t total, int c, int64_t hw, int cpad)
{ // y (n, c, hw), x (n, hw, cpad); total = n c hw
    GPU_FLAT_LOOP(j, total) y[j] = gpu_f32(x[gpu_unpack_src(j, c, hw, cpad)]);
}

extern "C" cudaError_t gpu_kernels_loadable(void)
{
    cudaFuncAttributes a;
    return cudaFuncGetAttributes(&a, pack_kernel<float>);
}

extern "C" cudaError_t gpu_pack_nchw(enum gpu_dtype t, void *y, const float *x, int64_t n,
                                     int c, int h, int w, int cpad, cudaStream_t s)
{
    int64_t hw = (int64_t)h * w, total = n * hw * cpad;
    if (total <= 0) return cudaGetLastError();
    return gpu_by_type(t, [&](auto z) {
        using T = decltype(z);
        pack_kernel<T><<<gpu_flat_blocks(total), GPU_THREADS, 0, s>>>((T *)y, x, total, c, hw,
                                                                      cpad);
        return cudaGetLastError();
    });
}

template <typename T>
__global__ void to_nhwc_kernel(T *y, const T *x, int64_t total, int64_t c, int64_t hw)
{ // y (n, hw, c), x (n, c, hw); total = n hw c
    GPU_FLAT_LOOP(i, total) y[i] = x[gpu_torch_index(i, c, hw)];
}

extern "C" cudaError_t gpu_to_nhwc(enum gpu_dtype t, void *y, const void *x, int64_t n,
                                   int64_t c, int64_t hw, cudaStream_t s)
{
    int64_t total = n * hw * c;
    if (total <= 0) return cudaGetLastError();
    return gpu_by_type(t, [&](auto z) {
        using T = decltype(z);
        to_nhwc_kernel<T><<<gpu_flat_blocks(total), GPU_THREADS, 0, s>>>((T *)y, (const T *)x,
                                                                         total, c, hw);
        return cudaGetLastError();
    });
}

extern "C" cudaError_t gpu_unpack_nhwc(float *y, enum gpu_dtype t, const void *x, int64_t n,
                                       int c, int h, int w, int cpad, cudaStream_t s)
{
    int64_t hw = (int64_t)h * w, total = n * c * hw;
    if (total <= 0) return cudaGetLastError();
    return gpu_by_type(t, [&](auto z) {
        using T = decltype(z);
        unpack_kernel<T><<<gpu_flat_blocks(total), GPU_THREADS, 0, s>>>(y, (const T *)x, total,
                                                                        c, hw, cpad);
        return cudaGetLastError();
    });
}

/* ---------------------------------------------------------------------------------------- */
/* Softmax cross-entropy: one block, warp w taking rows w, w + 32, ...; each lane takes the
 * classes lane, lane + 32, ... of a row and the warp merges them by butterfly shuffles (the
 * same bits in every lane). A warp adds its rows' losses in row order, thread 0 the warps'
 * sums in warp order. */

__device__ __forceinline__ float warp_sum(float v)
{
    for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

template <typename T>
__global__ void __launch_bounds__(XENT_THREADS)
    xent_kernel(const float *logits, int64_t n, int classes, const int32_t *labels,
                const float *targets, float ek, float keep, T *dlogits,
                const gpu_step_in *in, gpu_step_out *out)
{ // logits, targets, dlogits: (n, classes); labels: (n)
    __shared__ float s_loss[XENT_THREADS / 32];
    __shared__ int s_correct[XENT_THREADS / 32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = XENT_THREADS / 32;
    int64_t valid = in->valid < 0 ? 0 : in->valid > n ? n : in->valid;
    float scale = valid > 0 ? out->loss_scale / (float)valid : 0.0f;
    float loss = 0;
    int correct = 0;
    for (int64_t r = warp; r < n; r += warps) {
        const float *z = logits + r * classes;
        T *dz = dlogits ? dlogits + r * classes : NULL;
        if (r >= valid) {
            if (dz)
                for (int k = lane; k < classes; k += 32) dz[k] = gpu_to<T>(0.0f);
            continue;
        }
        float zmax = -INFINITY;
        int at = 0x7fffffff;
        for (int k = lane; k < classes; k += 32) gpu_argmax_merge(&zmax, &at, z[k], k);
        for (int o = 16; o > 0; o /= 2) {
            float ov = __shfl_xor_sync(0xffffffffu, zmax, o);
            int oi = __shfl_xor_sync(0xffffffffu, at, o);
            gpu_argmax_merge(&zmax, &at, ov, oi);
        }
        float sum = 0;
        for (int k = lane; k < classes; k += 32) sum += expf(z[k] - zmax);
        float lse = logf(warp_sum(sum)), part = 0, grad;
        int label = labels ? labels[r] : -1;
        const float *trow = targets ? targets + r * classes : NULL;
        for (int k = lane; k < classes; k += 32) {
            part += gpu_xent_class(z[k], zmax, lse, gpu_xent_target(trow, label, k, ek, keep),
                                   scale, &grad);
            if (dz) dz[k] = gpu_to<T>(grad);
        }
        part = warp_sum(part);
        loss += part;
        correct += at == label;
    }
    if (lane == 0) s_loss[warp] = loss, s_correct[warp] = correct;
    __syncthreads();
    if (threadIdx.x == 0) {
        float total = 0;
        int right = 0;
        for (int w = 0; w < warps; w++) total += s_loss[w], right += s_correct[w];
        out->loss_sum = total;
        out->correct = right;
        if (dlogits) out->grad_scale = out->loss_scale; /* what the gradients will carry */
    }
}

extern "C" cudaError_t gpu_softmax_xent(const float *logits, int64_t n, int classes,
                                        const int32_t *labels, const float *targets,
                                        double smoothing, enum gpu_dtype t, void *dlogits,
                                        const struct gpu_step_in *in, struct gpu_step_out *out,
                                        cudaStream_t s)
{
    if (classes <= 0) return cudaErrorInvalidValue;
    float ek = (float)(smoothing / classes), keep = (float)(1 - smoothing);
    return gpu_by_type(t, [&](auto z) {
        using T = decltype(z);
        xent_kernel<T><<<1, XENT_THREADS, 0, s>>>(logits, n, classes, labels, targets, ek, keep,
                                                  (T *)dlogits, in, out);
        return cudaGetLastError();
    });
}

/* ---------------------------------------------------------------------------------------- */
/* Batch normalization */

extern "C" size_t gpu_bn_work_bytes(int64_t m, int c)
{
    return split_bytes(m, c);
}

/* Per chunk and channel: the mean and squared deviations of the chunk's rows. */
template <typename T>
__global__ void __launch_bounds__(CR_X * CR_Y)
    bn_stats_partial(const T *x, int64_t m, int c, int64_t rows, float2 *part)
{ // x (m, c); part (chunks, c)
    __shared__ gpu_moments s[CR_Y][CR_X];
    int ch = blockIdx.x * CR_X + threadIdx.x;
    int64_t r0 = (int64_t)blockIdx.y * rows, r1 = r0 + rows < m ? r0 + rows : m;
    gpu_moments a = {0, 0, 0};
    if (ch < c)
        for (int64_t r = r0 + threadIdx.y; r < r1; r += CR_Y)
            a = gpu_moments_add(a, gpu_f32(x[r * c + ch]));
    a = column_merge(s, a, merge_moments());
    if (threadIdx.y == 0 && ch < c) part[blockIdx.y * (int64_t)c + ch] = make_float2(a.mean, a.m2);
}

/* The chunks merged in order: the batch statistics, and the running ones moved. */
__global__ void __launch_bounds__(CR_X * CR_Y)
    bn_stats_finish(const float2 *part, int64_t chunks, int64_t rows, int64_t m, int c,
                    double eps, double momentum, float *save_mean, float *save_invstd,
                    float *run_mean, float *run_var)
{ // part (chunks, c); the rest (c)
    __shared__ gpu_moments s[CR_Y][CR_X];
    int ch = blockIdx.x * CR_X + threadIdx.x;
    gpu_moments a = {0, 0, 0};
    if (ch < c)
        for (int64_t b = threadIdx.y; b < chunks; b += CR_Y) {
            float2 p = part[b * c + ch];
            int64_t nb = m - b * rows < rows ? m - b * rows : rows;
            a = gpu_moments_merge(a, gpu_moments{(float)nb, p.x, p.y});
        }
    a = column_merge(s, a, merge_moments());
    if (threadIdx.y != 0 || ch >= c) return;
    float var = gpu_moments_var(a);
    save_mean[ch] = a.mean;
    save_invstd[ch] = gpu_bn_invstd(var, eps);
    if (run_mean && run_var && m > 0)
        gpu_bn_running(&run_mean[ch], &run_var[ch], a.mean, var, m, momentum);
}

extern "C" cudaError_t gpu_bn_stats(enum gpu_dtype t, const void *x, int64_t m, int c,
                                    double eps, double momentum, float *save_mean,
                                    float *save_invstd, float *run_mean, float *run_var,
                                    void *work, cudaStream_t s)
{
    if (c <= 0) return cudaGetLastError();
    struct split sp = split_rows(m, c);
    unsigned groups = (unsigned)(((int64_t)c + CR_X - 1) / CR_X);
    float2 *part = (float2 *)work;
    cudaError_t e = gpu_by_type(t, [&](auto z) {
        using T = decltype(z);
        bn_stats_partial<T><<<dim3(groups, (unsigned)sp.chunks), dim3(CR_X, CR_Y), 0, s>>>(
            (const T *)x, m, c, sp.rows, part);
        return cudaGetLastError();
    });
    if (e != cudaSuccess) return e;
    bn_stats_finish<<<groups, dim3(CR_X, CR_Y), 0, s>>>(part, sp.chunks, sp.rows, m, c, eps,
                                                        momentum, save_mean, save_invstd,
                                                        run_mean, run_var);
    return cudaGetLastError();
}

/* y = (x - mean) invstd gamma + beta (+ z) (relu); invstd from var and eps when NULL. */
template <typename T>
__global__ void __launch_bounds__(CR_X * CR_Y)
    bn_apply_kernel(const T *x, int64_t m, int c, const float *mean, const float *invstd,
                    const float *var, float eps, const float *gamma, const float *beta,
                    const T *z, bool relu, T *y)
{ // x, z, y: (m, c); the rest (c)
    int ch = blockIdx.x * CR_X + threadIdx.x;
    if (ch >= c) return;
    float is = invstd ? invstd[ch] : gpu_bn_invstd(var[ch], eps), mu = mean[ch];
    float sc = is * (gamma ? gamma[ch] : 1.0f), b = beta ? beta[ch] : 0.0f;
    ROW_LOOP(r, m) {
        int64_t i = r * c + ch;
        float v = gpu_bn_y(gpu_f32(x[i]), mu, sc, b);
        if (z) v += gpu_f32(z[i]);
        y[i] = gpu_to<T>(relu ? gpu_relu_element(v) : v);
    }
}

static cudaError_t bn_apply_any(enum gpu_dtype t, const void *x, int64_t m, int c,
                                const float *mean, const float *invstd, const float *var,
                                double eps, const float *gamma, const float *beta,
                                const void *z, bool relu, void *y, cudaStream_t s)
{
    if (m <= 0 || c <= 0) return cudaGetLastError();
    return gpu_by_type(t, [&](auto zero) {
        using T = decltype(zero);
        bn_apply_kernel<T><<<cr_grid(m, c), dim3(CR_X, CR_Y), 0, s>>>(
            (const T *)x, m, c, mean, invstd, var, (float)eps, gamma, beta, (const T *)z, relu,
            (T *)y);
        return cudaGetLastError();
    });
}

extern "C" cudaError_t gpu_bn_apply(enum gpu_dtype t, const void *x, int64_t m, int c,
                                    const float *mean, const float *invstd, const float *gamma,
                                    const float *beta, const void *z, bool relu, void *y,
                                    cudaStream_t s)
{
    return bn_apply_any(t, x, m, c, mean, invstd, NULL, 0, gamma, beta, z, relu, y, s);
}

extern "C" cudaError_t gpu_bn_apply_running(enum gpu_dtype t, const void *x, int64_t m, int c,
                                            const float *run_mean, const float *run_var,
                                            double eps, const float *gamma, const float *beta,
                                            const void *z, bool relu, void *y, cudaStream_t s)
{
    return bn_apply_any(t, x, m, c, run_mean, NULL, run_var, eps, gamma, beta, z, relu, y, s);
}

/* The output's gradient g: dy, or 0 where the relu after it gave 0. */
template <typename T>
__device__ __forceinline__ float bn_grad(const T *y, const T *dy, int64_t i, bool relu)
{
    float g = gpu_f32(dy[i]);
    return relu && !(gpu_f32(y[i]) > 0) ? 0.0f : g;
}

/* Per chunk and channel: sum g and sum g xhat. */
template <typename T>
__global__ void __launch_bounds__(CR_X * CR_Y)
    bn_bwd_partial(const T *x, const T *y, const T *dy, int64_t m, int c, int64_t rows,
                   const float *mean, const float *invstd, bool relu, float2 *part)
{ // x, y, dy: (m, c); part (chunks, c)
    __shared__ float2 s[CR_Y][CR_X];
    int ch = blockIdx.x * CR_X + threadIdx.x;
    int64_t r0 = (int64_t)blockIdx.y * rows, r1 = r0 + rows < m ? r0 + rows : m;
    float2 a = make_float2(0, 0);
    if (ch < c) {
        float mu = mean[ch], is = invstd[ch];
        for (int64_t r = r0 + threadIdx.y; r < r1; r += CR_Y) {
            int64_t i = r * c + ch;
            float g = bn_grad(y, dy, i, relu);
            a.x += g;
            a.y += g * gpu_bn_xhat(gpu_f32(x[i]), mu, is);
        }
    }
    a = column_merge(s, a, add_f2());
    if (threadIdx.y == 0 && ch < c) part[blockIdx.y * (int64_t)c + ch] = a;
}

/* Sums of two floats per chunk and channel, chunks in order: into out0 and out1 (c). */
__global__ void __launch_bounds__(CR_X * CR_Y)
    sum_chunks2(const float2 *part, int64_t chunks, int c, float *out0, float *out1)
{
    __shared__ float2 s[CR_Y][CR_X];
    int ch = blockIdx.x * CR_X + threadIdx.x;
    float2 a = make_float2(0, 0);
    if (ch < c)
        for (int64_t b = threadIdx.y; b < chunks; b += CR_Y) {
            float2 p = part[b * c + ch];
            a.x += p.x;
            a.y += p.y;
        }
    a = column_merge(s, a, add_f2());
    if (threadIdx.y == 0 && ch < c) {
        out0[ch] = a.x;
        if (out1) out1[ch] = a.y;
    }
}

template <typename T>
__global__ void __launch_bounds__(CR_X * CR_Y)
    bn_bwd_dx(const T *x, const T *y, const T *dy, int64_t m, int c, const float *mean,
              const float *invstd, const float *gamma, const float *dgamma, const float *dbeta,
              bool relu, T *dx, T *dz)
{ // x, y, dy, dx, dz: (m, c); the rest (c)
    int ch = blockIdx.x * CR_X + threadIdx.x;
    if (ch >= c) return;
    float mu = mean[ch], is = invstd[ch], k = (gamma ? gamma[ch] : 1.0f) * is;
    float mg = dbeta[ch] / (float)m, mgx = dgamma[ch] / (float)m;
    ROW_LOOP(r, m) {
        int64_t i = r * c + ch;
        float g = bn_grad(y, dy, i, relu), xhat = gpu_bn_xhat(gpu_f32(x[i]), mu, is);
        if (dz) dz[i] = gpu_to<T>(g);
        if (dx) dx[i] = gpu_to<T>(gpu_bn_dx(g, xhat, k, mg, mgx));
    }
}

extern "C" cudaError_t gpu_bn_backward(enum gpu_dtype t, const void *x, const void *y,
                                       const void *dy, int64_t m, int c, const float *mean,
                                       const float *invstd, const float *gamma, bool relu,
                                       float *dgamma, float *dbeta, void *dx, void *dz,
                                       void *work, cudaStream_t s)
{
    if (c <= 0) return cudaGetLastError();
    struct split sp = split_rows(m, c);
    unsigned groups = (unsigned)(((int64_t)c + CR_X - 1) / CR_X);
    float2 *part = (float2 *)work;
    return gpu_by_type(t, [&](auto zero) {
        using T = decltype(zero);
        bn_bwd_partial<T><<<dim3(groups, (unsigned)sp.chunks), dim3(CR_X, CR_Y), 0, s>>>(
            (const T *)x, (const T *)y, (const T *)dy, m, c, sp.rows, mean, invstd, relu, part);
        cudaError_t e = cudaGetLastError();
        if (e != cudaSuccess) return e;
        sum_chunks2<<<groups, dim3(CR_X, CR_Y), 0, s>>>(part, sp.chunks, c, dbeta, dgamma);
        e = cudaGetLastError();
        if (e != cudaSuccess || m <= 0) return e;
        bn_bwd_dx<T><<<cr_grid(m, c), dim3(CR_X, CR_Y), 0, s>>>(
            (const T *)x, (const T *)y, (const T *)dy, m, c, mean, invstd, gamma, dgamma, dbeta,
            relu, (T *)dx, (T *)dz);
        return cudaGetLastError();
    });
}

/* ---------------------------------------------------------------------------------------- */
/* Pointwise */

enum pw_op {
    PW_RELU, /* y = relu(a) */
    PW_MASK, /* y = a > 0 ? b : 0 */
    PW_ADD,  /* y = a + b (b NULL: 0) */
};

template <typename T, int OP>
__global__ void pointwise_kernel(const T *a, const T *b, T *y, int64_t n)
{ // all (n)
    GPU_FLAT_LOOP(i, n) {
        float v;
        if (OP == PW_RELU)
            v = gpu_relu_element(gpu_f32(a[i]));
        else if (OP == PW_MASK)
            v = gpu_f32(a[i]) > 0 ? gpu_f32(b[i]) : 0.0f;
        else
            v = gpu_f32(a[i]) + (b ? gpu_f32(b[i]) : 0.0f);
        y[i] = gpu_to<T>(v);
    }
}

template <int OP>
static cudaError_t pointwise(enum gpu_dtype t, const void *a, const void *b, void *y, int64_t n,
                             cudaStream_t s)
{
    if (n <= 0) return cudaGetLastError();
    return gpu_by_type(t, [&](auto zero) {
        using T = decltype(zero);
        pointwise_kernel<T, OP><<<gpu_flat_blocks(n), GPU_THREADS, 0, s>>>(
            (const T *)a, (const T *)b, (T *)y, n);
        return cudaGetLastError();
    });
}

extern "C" cudaError_t gpu_relu(enum gpu_dtype t, const void *x, void *y, int64_t n,
                                cudaStream_t s)
{
    return pointwise<PW_RELU>(t, x, NULL, y, n, s);
}

extern "C" cudaError_t gpu_relu_backward(enum gpu_dtype t, const void *y, const void *dy,
                                         void *dx, int64_t n, cudaStream_t s)
{
    return pointwise<PW_MASK>(t, y, dy, dx, n, s);
}

extern "C" cudaError_t gpu_add(enum gpu_dtype t, const void *a, const void *b, void *y,
                               int64_t n, cudaStream_t s)
{
    return pointwise<PW_ADD>(t, a, b, y, n, s);
}

extern "C" cudaError_t gpu_accumulate(enum gpu_dtype t, void *y, const void *x, int64_t n,
                                      cudaStream_t s)
{
    return pointwise<PW_ADD>(t, y, x, y, n, s);
}

/* ---------------------------------------------------------------------------------------- */
/* Global average pooling */

template <typename T>
__global__ void __launch_bounds__(CR_X * CR_Y)
    gap_kernel(const T *x, T *y, int64_t n, int hw, int c)
{ // x (n, hw, c), y (n, c)
    __shared__ float s[CR_Y][CR_X];
    int ch = blockIdx.x * CR_X + threadIdx.x;
    for (int64_t img = blockIdx.y; img < n; img += gridDim.y) {
        float a = 0;
        if (ch < c)
            for (int p = threadIdx.y; p < hw; p += CR_Y) a += gpu_f32(x[(img * hw + p) * c + ch]);
        a = column_merge(s, a, add_f1());
        if (threadIdx.y == 0 && ch < c) y[img * c + ch] = gpu_to<T>(a / (float)hw);
    }
}

template <typename T>
__global__ void __launch_bounds__(CR_X * CR_Y)
    gap_bwd_kernel(const T *dy, T *dx, int64_t rows, int hw, int c)
{ // dy (n, c), dx (n, hw, c); rows = n hw
    int ch = blockIdx.x * CR_X + threadIdx.x;
    if (ch >= c) return;
    ROW_LOOP(r, rows) dx[r * c + ch] = gpu_to<T>(gpu_f32(dy[r / hw * c + ch]) / (float)hw);
}

extern "C" cudaError_t gpu_gap(enum gpu_dtype t, const void *x, void *y, int64_t n, int hw,
                               int c, cudaStream_t s)
{
    if (n <= 0 || c <= 0) return cudaGetLastError();
    dim3 grid = cr_grid(n * CR_Y, c); /* one row of blocks per image, looped */
    return gpu_by_type(t, [&](auto zero) {
        using T = decltype(zero);
        gap_kernel<T><<<grid, dim3(CR_X, CR_Y), 0, s>>>((const T *)x, (T *)y, n, hw, c);
        return cudaGetLastError();
    });
}

extern "C" cudaError_t gpu_gap_backward(enum gpu_dtype t, const void *dy, void *dx, int64_t n,
                                        int hw, int c, cudaStream_t s)
{
    int64_t rows = n * hw;
    if (rows <= 0 || c <= 0) return cudaGetLastError();
    return gpu_by_type(t, [&](auto zero) {
        using T = decltype(zero);
        gap_bwd_kernel<T><<<cr_grid(rows, c), dim3(CR_X, CR_Y), 0, s>>>((const T *)dy, (T *)dx,
                                                                        rows, hw, c);
        return cudaGetLastError();
    });
}

/* ---------------------------------------------------------------------------------------- */
/* Dropout */

template <typename T>
__global__ void dropout_kernel(const T *x, T *y, uint8_t *mask, int64_t n, int64_t c, int64_t hw,
                               uint64_t threshold, float scale, const gpu_step_in *in)
{ // x, y, mask: (n) as (N, hw, c)
    uint64_t key = in->dropout_key;
    GPU_FLAT_LOOP(i, n) {
        bool keep = gpu_dropout_keep(key, gpu_torch_index(i, c, hw), threshold);
        mask[i] = keep;
        y[i] = gpu_to<T>(keep ? gpu_f32(x[i]) * scale : 0.0f);
    }
}

template <typename T>
__global__ void dropout_bwd_kernel(const T *dy, T *dx, const uint8_t *mask, int64_t n,
                                   float scale)
{ // dy, dx, mask: (n)
    GPU_FLAT_LOOP(i, n) dx[i] = gpu_to<T>(mask[i] ? gpu_f32(dy[i]) * scale : 0.0f);
}

extern "C" cudaError_t gpu_dropout(enum gpu_dtype t, const void *x, void *y, uint8_t *mask,
                                   int64_t n, int64_t c, int64_t hw, double p,
                                   const struct gpu_step_in *in, cudaStream_t s)
{
    if (n <= 0) return cudaGetLastError();
    uint64_t threshold = gpu_dropout_threshold(p);
    float scale = (float)(1 / (1 - p));
    return gpu_by_type(t, [&](auto zero) {
        using T = decltype(zero);
        dropout_kernel<T><<<gpu_flat_blocks(n), GPU_THREADS, 0, s>>>(
            (const T *)x, (T *)y, mask, n, c, hw, threshold, scale, in);
        return cudaGetLastError();
    });
}

extern "C" cudaError_t gpu_dropout_backward(enum gpu_dtype t, const void *dy, void *dx,
                                            const uint8_t *mask, int64_t n, double p,
                                            cudaStream_t s)
{
    if (n <= 0) return cudaGetLastError();
    float scale = (float)(1 / (1 - p));
    return gpu_by_type(t, [&](auto zero) {
        using T = decltype(zero);
        dropout_bwd_kernel<T><<<gpu_flat_blocks(n), GPU_THREADS, 0, s>>>((const T *)dy, (T *)dx,
                                                                         mask, n, scale);
        return cudaGetLastError();
    });
}

/* ---------------------------------------------------------------------------------------- */
/* Biases */

template <typename T>
__global__ void __launch_bounds__(CR_X * CR_Y)
    bias_add_kernel(T *y, const float *bias, int64_t rows, int cols)
{ // y (rows, cols), bias (cols)
    int col = blockIdx.x * CR_X + threadIdx.x;
    if (col >= cols) return;
    float b = bias[col];
    ROW_LOOP(r, rows) {
        int64_t i = r * cols + col;
        y[i] = gpu_to<T>(gpu_f32(y[i]) + b);
    }
}

/* Per chunk and column: the sum of the chunk's rows (the second float unused). */
template <typename T>
__global__ void __launch_bounds__(CR_X * CR_Y)
    bias_grad_partial(const T *dy, int64_t rows, int cols, int64_t chunk_rows, float2 *part)
{ // dy (rows, cols); part (chunks, cols)
    __shared__ float s[CR_Y][CR_X];
    int col = blockIdx.x * CR_X + threadIdx.x;
    int64_t r0 = (int64_t)blockIdx.y * chunk_rows;
    int64_t r1 = r0 + chunk_rows < rows ? r0 + chunk_rows : rows;
    float a = 0;
    if (col < cols)
        for (int64_t r = r0 + threadIdx.y; r < r1; r += CR_Y) a += gpu_f32(dy[r * cols + col]);
    a = column_merge(s, a, add_f1());
    if (threadIdx.y == 0 && col < cols)
        part[blockIdx.y * (int64_t)cols + col] = make_float2(a, 0.0f);
}

extern "C" cudaError_t gpu_bias_add(enum gpu_dtype yt, void *y, const float *bias, int64_t rows,
                                    int cols, cudaStream_t s)
{
    if (rows <= 0 || cols <= 0) return cudaGetLastError();
    return gpu_by_type(yt, [&](auto zero) {
        using T = decltype(zero);
        bias_add_kernel<T><<<cr_grid(rows, cols), dim3(CR_X, CR_Y), 0, s>>>((T *)y, bias, rows,
                                                                            cols);
        return cudaGetLastError();
    });
}

extern "C" size_t gpu_bias_work_bytes(int64_t rows, int cols)
{
    return split_bytes(rows, cols);
}

extern "C" cudaError_t gpu_bias_grad(enum gpu_dtype t, const void *dy, int64_t rows, int cols,
                                     float *db, void *work, cudaStream_t s)
{
    if (cols <= 0) return cudaGetLastError();
    struct split sp = split_rows(rows, cols);
    unsigned groups = (unsigned)(((int64_t)cols + CR_X - 1) / CR_X);
    float2 *part = (float2 *)work;
    return gpu_by_type(t, [&](auto zero) {
        using T = decltype(zero);
        bias_grad_partial<T><<<dim3(groups, (unsigned)sp.chunks), dim3(CR_X, CR_Y), 0, s>>>(
            (const T *)dy, rows, cols, sp.rows, part);
        cudaError_t e = cudaGetLastError();
        if (e != cudaSuccess) return e;
        sum_chunks2<<<groups, dim3(CR_X, CR_Y), 0, s>>>(part, sp.chunks, cols, db, NULL);
        return cudaGetLastError();
    });
}
