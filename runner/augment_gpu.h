/*
 * augment_gpu.h: the per-image transforms of augment.h run on the GPU, on a dataset kept
 * whole in GPU memory, giving the same bits as augment_image.
 *
 *     struct augment_gpu_plan p;
 *     char why[128];
 *     if (!augment_compile_gpu(&aug, &p, why, sizeof why)) use_the_cpu_loader(why);
 *     // per batch: images (count, 3, 32, 32) bytes, index (n) and key (n) on the device,
 *     // key[i] = augment_draw_key(seed, epoch, index[i])
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
 * applied in list order, in float, as augment.c does. The random choices
 * (augment_gpu_choices) and that walk (augment_gpu_source, augment_gpu_value,
 * augment_gpu_pixel) are inline functions compiled both as plain C and as CUDA host/device
 * code, on the draws that augment.c makes too (augment_draw.h), so the two paths cannot drift
 * apart. augment_compile_gpu is augment.c's (augment.h), augment_gpu_run augment_gpu.cu's.
 *
 * Covered by tests/test_augment_gpu.c (every output pixel computed with these functions on
 * the CPU equals augment_image's, bit for bit).
 */
#ifndef RUNNER_AUGMENT_GPU_H
#define RUNNER_AUGMENT_GPU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "augment_draw.h"
#include "common.h"

#define AUGMENT_GPU_MAX_STEPS 16

#ifdef __cplusplus
extern "C" {
#endif

/* --------------------------------------------------------------------------------------- */
/* The plan */

enum augment_gpu_kind {
    AUGMENT_GPU_CROP,
    AUGMENT_GPU_HFLIP,
    AUGMENT_GPU_CUTOUT,
    AUGMENT_GPU_NORMALIZE,
};

struct augment_gpu_step {
    int32_t kind;          /* enum augment_gpu_kind */
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
    struct augment_gpu_step step[AUGMENT_GPU_MAX_STEPS];
};

struct augment_gpu_image {
    struct augment_box step[AUGMENT_GPU_MAX_STEPS];
};

/* --------------------------------------------------------------------------------------- */
/* One image, one pixel */

/* Every step's choice for the image of key. */
AUGMENT_HD void augment_gpu_choices(const struct augment_gpu_plan *p, uint64_t key,
                            struct augment_gpu_image *c)
{
    for (int i = 0; i < p->n && i < AUGMENT_GPU_MAX_STEPS; i++) {
        const struct augment_gpu_step *s = &p->step[i];
        uint64_t ctr = (uint64_t)s->index * 16;
        struct augment_box ch = {0, 0, 0, 0, 0};
        if (s->kind == AUGMENT_GPU_CROP) {
            ch.on = 1;
            ch.y0 = augment_draw_crop_offset(key, ctr, s->h, s->padding, s->size);
            ch.x0 = augment_draw_crop_offset(key, ctr + 1, s->w, s->padding, s->size);
        } else if (s->kind == AUGMENT_GPU_HFLIP) {
            ch.on = augment_draw_coin(key, ctr, s->p);
        } else if (s->kind == AUGMENT_GPU_CUTOUT && augment_draw_coin(key, ctr, s->p)) {
            ch = augment_draw_cutout(key, ctr, s->h, s->w, s->size);
            ch.on = 1;
        }
        c->step[i] = ch;
    }
}

/* Where output pixel (y, x) (0 <= y < out_h, 0 <= x < out_w) comes from, in every channel
 * alike: -1 with (*sy, *sx) the pixel of the source image, or the step that set it to zero
 * (a crop's zero padding, an applied cutout square). */
AUGMENT_HD int augment_gpu_source(const struct augment_gpu_plan *p, const struct augment_gpu_image *c,
                          int y, int x, int *sy, int *sx)
{
    int n = p->n < AUGMENT_GPU_MAX_STEPS ? p->n : AUGMENT_GPU_MAX_STEPS;
    for (int i = n - 1; i >= 0; i--) {
        const struct augment_gpu_step *s = &p->step[i];
        const struct augment_box *ch = &c->step[i];
        if (s->kind == AUGMENT_GPU_CROP) {
            y = augment_draw_pad_index(ch->y0 + y, s->h, s->reflect);
            x = augment_draw_pad_index(ch->x0 + x, s->w, s->reflect);
            if (y < 0 || x < 0) return i;
        } else if (s->kind == AUGMENT_GPU_HFLIP) {
            if (ch->on) x = s->w - 1 - x;
        } else if (s->kind == AUGMENT_GPU_CUTOUT) {
            if (ch->on && y >= ch->y0 && y < ch->y1 && x >= ch->x0 && x < ch->x1) return i;
        }
    }
    *sy = y;
    *sx = x;
    return -1;
}

/* Value v of channel ch, set at step `from` (-1: the source image's value / 255), through the
 * normalizations after it. */
AUGMENT_HD float augment_gpu_value(const struct augment_gpu_plan *p, int from, int ch, float v)
{
    int n = p->n < AUGMENT_GPU_MAX_STEPS ? p->n : AUGMENT_GPU_MAX_STEPS;
    for (int i = from + 1; i < n; i++) {
        const struct augment_gpu_step *s = &p->step[i];
        /* Subtract, then divide, in float: augment.c's (and torchvision's) order. */
        if (s->kind == AUGMENT_GPU_NORMALIZE && ch < 3)
            v = AUGMENT_DIV(v - s->mean[ch], s->std[ch]);
    }
    return v;
}

/* Output pixel (ch, y, x) of the image src ((c, in_h, in_w) bytes) under choices c. */
AUGMENT_HD float augment_gpu_pixel(const struct augment_gpu_plan *p, const struct augment_gpu_image *c,
                           const uint8_t *src, int ch, int y, int x)
{
    int sy = 0, sx = 0;
    int from = augment_gpu_source(p, c, y, x, &sy, &sx);
    float v = from < 0 ? augment_draw_byte(src[((size_t)ch * p->in_h + sy) * p->in_w + sx]) : 0.0f;
    return augment_gpu_value(p, from, ch, v);
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
 * key[i] (augment_draw_key(seed, epoch, index[i]) = augment_key, computed by the caller: the keys
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
