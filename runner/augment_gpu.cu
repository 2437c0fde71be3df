/*
 * augment_gpu.cu: augment_gpu_run (augment_gpu.h), a batch of images augmented on the GPU
 * from a dataset held in GPU memory.
 *
 * Grid: y walks the batch's images, x the output pixels of one image; each thread makes one
 * pixel (all cpad channels, contiguous in NHWC). Thread 0 of a block draws the image's choices
 * into shared memory (augment_gpu_choices: a few hashes of the image key), the others wait; the
 * pixel math is augment_gpu_source and augment_gpu_value, the same inline code the CPU test runs.
 * The plan travels as a __grid_constant__ kernel argument, so launching needs no allocation
 * and no copy, and the launch can be captured in a CUDA graph.
 *
 * The functions are checked on the CPU against augment_image by tests/test_augment_gpu.c;
 * the kernel itself by the CUDA backend's tests on a GPU.
 */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "augment_gpu.h"
#include "gpu_math.h"

/* --------------------------------------------------------------------------------------- */
/* The kernel */

#define AUG_GPU_THREADS 256
#define AUG_GPU_MAX_GRID_Y 65535

/*
 * p:      the plan (by value, read in place)
 * images: (count, c, in_h, in_w) bytes
 * index:  (n) dataset image of each batch row; < 0: a zero image
 * key:    (n) the key of each row's random choices
 * x:      (n, out_h, out_w, cpad)
 */
template <typename T>
__global__ void __launch_bounds__(AUG_GPU_THREADS)
aug_gpu_kernel(const __grid_constant__ struct augment_gpu_plan p, const uint8_t *images,
               const int32_t *index, const uint64_t *key, int64_t n, T *x, int cpad)
{
    __shared__ struct augment_gpu_image choice;
    const int64_t pixels = (int64_t)p.out_h * p.out_w;
    const size_t image_bytes = (size_t)p.c * (size_t)p.in_h * (size_t)p.in_w;
    const int64_t first = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = blockIdx.y; i < n; i += gridDim.y) {
        const int64_t img = index[i]; /* the same for the whole block */
        if (threadIdx.x == 0 && img >= 0) augment_gpu_choices(&p, key[i], &choice);
        __syncthreads();
        const uint8_t *src = images + (size_t)(img >= 0 ? img : 0) * image_bytes;
        for (int64_t q = first; q < pixels; q += stride) {
            T *out = x + (i * pixels + q) * cpad;
            int ch = 0;
            if (img >= 0) {
                const int y = (int)(q / p.out_w), xx = (int)(q % p.out_w);
                int sy = 0, sx = 0;
                const int from = augment_gpu_source(&p, &choice, y, xx, &sy, &sx);
                const uint8_t *at = src + (size_t)sy * p.in_w + sx;
                const size_t plane = (size_t)p.in_h * p.in_w;
                for (; ch < p.c; ch++) {
                    float v = from < 0 ? augment_draw_byte(at[ch * plane]) : 0.0f;
                    out[ch] = gpu_to<T>(augment_gpu_value(&p, from, ch, v));
                }
            }
            for (; ch < cpad; ch++) out[ch] = gpu_to<T>(0.0f);
        }
        __syncthreads(); /* before thread 0 overwrites the choices */
    }
}

template <typename T>
static cudaError_t aug_gpu_launch(const struct augment_gpu_plan *p, const uint8_t *images,
                                  const int32_t *index, const uint64_t *key, int64_t n, void *x,
                                  int cpad, cudaStream_t s)
{
    const int64_t pixels = (int64_t)p->out_h * p->out_w;
    int64_t bx = (pixels + AUG_GPU_THREADS - 1) / AUG_GPU_THREADS;
    if (bx > 1024) bx = 1024; /* the rest by striding */
    const int64_t by = n < AUG_GPU_MAX_GRID_Y ? n : AUG_GPU_MAX_GRID_Y;
    dim3 grid((unsigned)bx, (unsigned)by);
    aug_gpu_kernel<T><<<grid, AUG_GPU_THREADS, 0, s>>>(*p, images, index, key, n, (T *)x,
                                                       cpad);
    return cudaGetLastError();
}

/* --------------------------------------------------------------------------------------- */
/* The launcher */

/* Whether the plan is one augment_compile_gpu can make: sizes positive, steps in range and
 * each crop fitting the image before it. */
static bool aug_gpu_plan_ok(const struct augment_gpu_plan *p)
{
    if (p->c < 1 || p->in_h < 1 || p->in_w < 1 || p->out_h < 1 || p->out_w < 1 || p->n < 0 ||
        p->n > AUGMENT_GPU_MAX_STEPS)
        return false;
    int h = p->in_h, w = p->in_w;
    for (int i = 0; i < p->n; i++) {
        const struct augment_gpu_step *st = &p->step[i];
        if (st->h != h || st->w != w || st->index < 0) return false;
        if (st->kind == AUGMENT_GPU_CROP) {
            int pad = st->padding;
            if (st->size < 1 || pad < 0 || st->size > h + 2 * pad || st->size > w + 2 * pad ||
                (st->reflect && (pad >= h || pad >= w)))
                return false;
            h = w = st->size;
        } else if (st->kind == AUGMENT_GPU_CUTOUT) {
            if (st->size < 0) return false;
        } else if (st->kind != AUGMENT_GPU_HFLIP && st->kind != AUGMENT_GPU_NORMALIZE) {
            return false;
        }
    }
    return h == p->out_h && w == p->out_w;
}

extern "C" cudaError_t augment_gpu_run(const struct augment_gpu_plan *p, const uint8_t *images,
                                       const int32_t *index, const uint64_t *key, int64_t n,
                                       enum gpu_dtype dtype, void *x, int cpad,
                                       cudaStream_t s)
{
    if (!p || n < 0 || !aug_gpu_plan_ok(p) || cpad < p->c) return cudaErrorInvalidValue;
    if (n == 0) return cudaSuccess;
    if (!images || !index || !key || !x) return cudaErrorInvalidValue;
    if (dtype != GPU_F32 && dtype != GPU_BF16 && dtype != GPU_F16) return cudaErrorInvalidValue;
    return gpu_by_type(dtype, [&](auto zero) {
        return aug_gpu_launch<decltype(zero)>(p, images, index, key, n, x, cpad, s);
    });
}
