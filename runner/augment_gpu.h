/*
 * augment_gpu.h: the per-image transforms of augment.h run on the GPU, on a dataset kept
 * whole in GPU memory, giving the same bits as augment_image.
 *
 *     struct augment_gpu_plan p;
 *     char why[128];
 *     if (!augment_gpu_compile(&aug, &p, why, sizeof why)) use_the_cpu_loader(why);
 *     // per batch: images (count, 3, 32, 32) bytes, index (n) and key (n) on the device,
 *     // key[i] = aug_gpu_key(seed, epoch, index[i])
 *     err = augment_gpu_run(&p, images, index, key, n, GPU_BF16, x, 4, stream);
 *
 * random_crop (zero or reflection padding), hflip, cutout and normalize run here; resize,
 * mixup and cutmix stay on the CPU, and a list holding any of them does not compile. The plan
 * is a flat copy of the list: each step keeps its place i in the list, since transform i
 * draws its randomness from counters i * 16 + j of the image key, and the side of the image
 * entering it.
 *
 * An output pixel is found by walking the steps backwards: a crop moves the coordinate into
 * the image before it (or lands in zero padding), a flip mirrors it, an applied cutout square
 * holding it makes it zero; normalizations after the point where the value was set are then
 * applied in list order, in float, as augment.c does. The random choices (aug_gpu_choices)
 * and that walk (aug_gpu_source, aug_gpu_value, aug_gpu_pixel) are inline functions compiled
 * both as plain C and as CUDA host/device code; augment.c draws through the same functions
 * (aug_gpu_key, aug_gpu_crop_offset, aug_gpu_coin, aug_gpu_cutout_box, aug_gpu_pad_index),
 * so the two paths cannot drift apart. augment_gpu_compile is defined in augment.c,
 * augment_gpu_run in augment_gpu.cu.
 *
 * Covered by tests/test_augment_gpu.c (every output pixel computed with these functions on
 * the CPU equals augment_image's, bit for bit).
 */
#ifndef RUNNER_AUGMENT_GPU_H
#define RUNNER_AUGMENT_GPU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "rng.h"

#ifdef __CUDACC__
#define AUG_HD __host__ __device__ __forceinline__
#else
#define AUG_HD static inline
#endif

/* Correctly rounded float division whatever the compiler flags (a device build with
 * --use_fast_math would otherwise approximate it). */
#ifdef __CUDA_ARCH__
#define AUG_GPU_DIV(a, b) __fdiv_rn((a), (b))
#else
#define AUG_GPU_DIV(a, b) ((a) / (b))
#endif

#define AUG_GPU_MAX_STEPS 16

#ifdef __cplusplus
extern "C" {
#endif

/* --------------------------------------------------------------------------------------- */
/* The plan */

enum aug_gpu_kind {
    AUG_GPU_KIND_CROP,
    AUG_GPU_KIND_HFLIP,
    AUG_GPU_KIND_CUTOUT,
    AUG_GPU_KIND_NORMALIZE,
};

struct aug_gpu_step {
    int32_t kind;          /* enum aug_gpu_kind */
    int32_t index;         /* place in the augment list: draws from counters index * 16 + j */
    int32_t h, w;          /* the image entering this step */
    int32_t size;          /* crop: side of the output; cutout: side of the square */
    int32_t padding;       /* crop: on every side */
    int32_t reflect;       /* crop: 1 mirror padding (torchvision "reflect"), 0 zeros */
    double p;              /* hflip, cutout: probability of applying */
    float mean[3], std[3]; /* normalize: per channel, rounded to float as augment.c does */
};

struct augment_gpu_plan {
    int32_t c, in_h, in_w; /* an image entering: (c, in_h, in_w) bytes */
    int32_t out_h, out_w;  /* coming out: (out_h, out_w) pixels of c channels */
    int32_t n;             /* steps used */
    struct aug_gpu_step step[AUG_GPU_MAX_STEPS];
};

/* One step's random choice for one image. crop: on = 1, (y0, x0) the top-left corner of the
 * window in unpadded coordinates (-padding ..); hflip: on; cutout: on, and the clipped square
 * rows [y0, y1) x columns [x0, x1). */
struct aug_gpu_choice {
    int32_t on, y0, y1, x0, x1;
};

struct aug_gpu_image {
    struct aug_gpu_choice step[AUG_GPU_MAX_STEPS];
};

struct augment;

/* The list of a (from augment_init, outliving nothing: the plan copies what it needs) as a
 * plan. Returns false, with the reason in why (size bytes, may be 0), when the list holds
 * resize, mixup or cutmix, or more than AUG_GPU_MAX_STEPS transforms. */
MUST_CHECK bool augment_gpu_compile(const struct augment *a, struct augment_gpu_plan *p,
                                    char *why, size_t size);

/* --------------------------------------------------------------------------------------- */
/* The draws, shared with augment.c */

/* The key of one image's random choices (augment_key). */
AUG_HD uint64_t aug_gpu_key(uint64_t seed, int64_t epoch, int64_t index)
{
    return rng_bits(rng_bits(seed, (uint64_t)epoch), (uint64_t)index);
}

/* The source row (or column) of padded coordinate i on a side of n, or -1 for a zero.
 * Reflection needs padding < n: one mirror suffices (-1 -> 1, n -> n - 2). */
AUG_HD int aug_gpu_pad_index(int i, int n, int reflect)
{
    if (i >= 0 && i < n) return i;
    if (!reflect) return -1;
    return i < 0 ? -i : 2 * (n - 1) - i;
}

/* random_crop's window start along a side of n padded by padding: -padding up to
 * n + padding - size, uniformly (counter ctr for rows, ctr + 1 for columns). */
AUG_HD int aug_gpu_crop_offset(uint64_t key, uint64_t ctr, int n, int padding, int size)
{
    return (int)(rng_bits(key, ctr) % (uint64_t)(n + 2 * padding - size + 1)) - padding;
}

/* Whether hflip or cutout applies (counter ctr). */
AUG_HD bool aug_gpu_coin(uint64_t key, uint64_t ctr, double p)
{
    return rng_uniform(key, ctr) < p;
}

/* cutout's size x size square on an h x w image, centred on a uniform pixel (counters
 * ctr + 1 and ctr + 2) and clipped at the border. on is left 0. */
AUG_HD struct aug_gpu_choice aug_gpu_cutout_box(uint64_t key, uint64_t ctr, int h, int w,
                                                int size)
{
    struct aug_gpu_choice b;
    b.on = 0;
    b.y0 = (int)(rng_bits(key, ctr + 1) % (uint64_t)h) - size / 2;
    b.x0 = (int)(rng_bits(key, ctr + 2) % (uint64_t)w) - size / 2;
    b.y1 = b.y0 + size < h ? b.y0 + size : h;
    b.x1 = b.x0 + size < w ? b.x0 + size : w;
    if (b.y0 < 0) b.y0 = 0;
    if (b.x0 < 0) b.x0 = 0;
    return b;
}

/* --------------------------------------------------------------------------------------- */
/* One image, one pixel */

/* Every step's choice for the image of key. */
AUG_HD void aug_gpu_choices(const struct augment_gpu_plan *p, uint64_t key,
                            struct aug_gpu_image *c)
{
    for (int i = 0; i < p->n && i < AUG_GPU_MAX_STEPS; i++) {
        const struct aug_gpu_step *s = &p->step[i];
        uint64_t ctr = (uint64_t)s->index * 16;
        struct aug_gpu_choice ch = {0, 0, 0, 0, 0};
        if (s->kind == AUG_GPU_KIND_CROP) {
            ch.on = 1;
            ch.y0 = aug_gpu_crop_offset(key, ctr, s->h, s->padding, s->size);
            ch.x0 = aug_gpu_crop_offset(key, ctr + 1, s->w, s->padding, s->size);
        } else if (s->kind == AUG_GPU_KIND_HFLIP) {
            ch.on = aug_gpu_coin(key, ctr, s->p);
        } else if (s->kind == AUG_GPU_KIND_CUTOUT && aug_gpu_coin(key, ctr, s->p)) {
            ch = aug_gpu_cutout_box(key, ctr, s->h, s->w, s->size);
            ch.on = 1;
        }
        c->step[i] = ch;
    }
}

/* Where output pixel (y, x) (0 <= y < out_h, 0 <= x < out_w) comes from, in every channel
 * alike: -1 with (*sy, *sx) the pixel of the source image, or the step that set it to zero
 * (a crop's zero padding, an applied cutout square). */
AUG_HD int aug_gpu_source(const struct augment_gpu_plan *p, const struct aug_gpu_image *c,
                          int y, int x, int *sy, int *sx)
{
    int n = p->n < AUG_GPU_MAX_STEPS ? p->n : AUG_GPU_MAX_STEPS;
    for (int i = n - 1; i >= 0; i--) {
        const struct aug_gpu_step *s = &p->step[i];
        const struct aug_gpu_choice *ch = &c->step[i];
        if (s->kind == AUG_GPU_KIND_CROP) {
            y = aug_gpu_pad_index(ch->y0 + y, s->h, s->reflect);
            x = aug_gpu_pad_index(ch->x0 + x, s->w, s->reflect);
            if (y < 0 || x < 0) return i;
        } else if (s->kind == AUG_GPU_KIND_HFLIP) {
            if (ch->on) x = s->w - 1 - x;
        } else if (s->kind == AUG_GPU_KIND_CUTOUT) {
            if (ch->on && y >= ch->y0 && y < ch->y1 && x >= ch->x0 && x < ch->x1) return i;
        }
    }
    *sy = y, *sx = x;
    return -1;
}

/* Value v of channel ch, set at step `from` (-1: the source image's value / 255), through the
 * normalizations after it. */
AUG_HD float aug_gpu_value(const struct augment_gpu_plan *p, int from, int ch, float v)
{
    int n = p->n < AUG_GPU_MAX_STEPS ? p->n : AUG_GPU_MAX_STEPS;
    for (int i = from + 1; i < n; i++) {
        const struct aug_gpu_step *s = &p->step[i];
        /* Subtract, then divide, in float: augment.c's (and torchvision's) order. */
        if (s->kind == AUG_GPU_KIND_NORMALIZE && ch < 3)
            v = AUG_GPU_DIV(v - s->mean[ch], s->std[ch]);
    }
    return v;
}

/* A source byte as augment.c turns it into a float. */
AUG_HD float aug_gpu_byte(uint8_t b)
{
    return AUG_GPU_DIV((float)b, 255.0f);
}

/* Output pixel (ch, y, x) of the image src ((c, in_h, in_w) bytes) under choices c. */
AUG_HD float aug_gpu_pixel(const struct augment_gpu_plan *p, const struct aug_gpu_image *c,
                           const uint8_t *src, int ch, int y, int x)
{
    int sy = 0, sx = 0;
    int from = aug_gpu_source(p, c, y, x, &sy, &sx);
    float v = from < 0 ? aug_gpu_byte(src[((size_t)ch * p->in_h + sy) * p->in_w + sx]) : 0.0f;
    return aug_gpu_value(p, from, ch, v);
}

#ifdef __cplusplus
}
#endif

/* --------------------------------------------------------------------------------------- */
/* The kernel */

#ifdef RUNNER_HAVE_CUDA
#include <cuda_runtime_api.h>

#include "gpu_math.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Augments a batch on stream s: image i of x is dataset image index[i] with the choices of
 * key[i] (aug_gpu_key(seed, epoch, index[i]) = augment_key, computed by the caller: the keys
 * live in device memory, so a captured graph replays any epoch), written NHWC with cpad channels
 * (channels c.. cpad - 1 zero) in dtype (fp32, bf16 or fp16, rounded to nearest even);
 * a negative index gives an all-zero image (the padding of a partial batch).
 *   images: device, (count, c, in_h, in_w) bytes (CIFAR's layout); every index[i] < count
 *   index:  device, (n)
 *   key:    device, (n)
 *   x:      device, (n, out_h, out_w, cpad)
 * Allocates nothing and never synchronizes (capturable in a CUDA graph); returns
 * cudaErrorInvalidValue for a bad plan, dtype, cpad < c or a NULL pointer with n > 0,
 * otherwise the launch's cudaGetLastError().
 */
cudaError_t augment_gpu_run(const struct augment_gpu_plan *p, const uint8_t *images,
                            const int32_t *index, const uint64_t *key, int64_t n,
                            enum gpu_dtype dtype, void *x, int cpad, cudaStream_t s);

#ifdef __cplusplus
}
#endif
#endif

#endif
