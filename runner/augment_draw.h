/*
 * augment_draw.h: the per-image random draws of the transforms (augment.h), written once for
 * the CPU's augment_image (augment.c) and the GPU's kernel (augment_gpu.h, augment_gpu.cu):
 * inline functions compiled both as plain C and as CUDA host/device code, so the two paths
 * draw the same crops, coins and cutout squares and cannot drift apart. Transform i of a list
 * draws from counters i * 16 + j of its image's key. Covered by tests/test_augment_gpu.c.
 */
#ifndef RUNNER_AUGMENT_DRAW_H
#define RUNNER_AUGMENT_DRAW_H

#include <stdbool.h>
#include <stdint.h>

#include "rng.h"

#ifdef __CUDACC__
#define AUGMENT_HD __host__ __device__ __forceinline__
#else
#define AUGMENT_HD static inline
#endif

/* Correctly rounded float division whatever the compiler flags (a device build with
 * --use_fast_math would otherwise approximate it). */
#ifdef __CUDA_ARCH__
#define AUGMENT_DIV(a, b) __fdiv_rn((a), (b))
#else
#define AUGMENT_DIV(a, b) ((a) / (b))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* One transform's random choice for one image. crop: on = 1, (y0, x0) the top-left corner of
 * the window in unpadded coordinates (-padding ..); hflip: on; cutout: on, and the clipped
 * square rows [y0, y1) x columns [x0, x1); random_resized_crop: the box rows [y0, y1) x
 * columns [x0, x1), inside the image, and on = 1 when one of the ten tries gave it, 0 for the
 * fallback. */
struct augment_box {
    int32_t on, y0, y1, x0, x1;
};

/* --------------------------------------------------------------------------------------- */
/* The draws */

/* The key of one image's random choices (augment_key). */
AUGMENT_HD uint64_t augment_draw_key(uint64_t seed, int64_t epoch, int64_t index)
{
    return rng_bits(rng_bits(seed, (uint64_t)epoch), (uint64_t)index);
}

/* The source row (or column) of padded coordinate i on a side of n, or -1 for a zero.
 * Reflection needs padding < n: one mirror suffices (-1 -> 1, n -> n - 2). */
AUGMENT_HD int augment_draw_pad_index(int i, int n, int reflect)
{
    if (i >= 0 && i < n) return i;
    if (!reflect) return -1;
    return i < 0 ? -i : 2 * (n - 1) - i;
}

/* random_crop's window start along a side of n padded by padding: -padding up to
 * n + padding - size, uniformly (counter ctr for rows, ctr + 1 for columns). */
AUGMENT_HD int augment_draw_crop_offset(uint64_t key, uint64_t ctr, int n, int padding, int size)
{
    return (int)(rng_bits(key, ctr) % (uint64_t)(n + 2 * padding - size + 1)) - padding;
}

/* Whether hflip or cutout applies (counter ctr). */
AUGMENT_HD bool augment_draw_coin(uint64_t key, uint64_t ctr, double p)
{
    return rng_uniform(key, ctr) < p;
}

/* cutout's size x size square on an h x w image, centred on a uniform pixel (counters
 * ctr + 1 and ctr + 2) and clipped at the border. on is left 0. */
AUGMENT_HD struct augment_box augment_draw_cutout(uint64_t key, uint64_t ctr, int h, int w,
                                                int size)
{
    struct augment_box b;
    b.on = 0;
    b.y0 = (int)(rng_bits(key, ctr + 1) % (uint64_t)h) - size / 2;
    b.x0 = (int)(rng_bits(key, ctr + 2) % (uint64_t)w) - size / 2;
    b.y1 = b.y0 + size < h ? b.y0 + size : h;
    b.x1 = b.x0 + size < w ? b.x0 + size : w;
    if (b.y0 < 0) b.y0 = 0;
    if (b.x0 < 0) b.x0 = 0;
    return b;
}

/*
 * random_resized_crop's box on an h x w image, torchvision's RandomResizedCrop.get_params:
 * up to ten tries of target_area = h w U(scale_lo, scale_hi) and aspect = exp(U(log ratio_lo,
 * log ratio_hi)), sides bw = round(sqrt(target_area aspect)) and bh = round(sqrt(target_area /
 * aspect)) (round half to even, as Python's round), the first that fits (0 < bw <= w,
 * 0 < bh <= h) placed at a uniform top in [0, h - bh] and left in [0, w - bw]; else the
 * central box of the whole image clamped to the ratio range. The draws come from the key
 * rng_bits(key, ctr): try t's uniforms at counters 2t and 2t + 1, top and left at 20 and 21.
 */
AUGMENT_HD struct augment_box augment_draw_rrc_box(uint64_t key, uint64_t ctr, int h, int w,
                                                 double scale_lo, double scale_hi,
                                                 double ratio_lo, double ratio_hi)
{
    struct augment_box b;
    uint64_t k = rng_bits(key, ctr);
    double area = (double)h * (double)w, log_lo = log(ratio_lo), log_hi = log(ratio_hi);
    for (uint64_t t = 0; t < 10; t++) {
        double target = area * (scale_lo + (scale_hi - scale_lo) * rng_uniform(k, 2 * t));
        double aspect = exp(log_lo + (log_hi - log_lo) * rng_uniform(k, 2 * t + 1));
        int bw = (int)rint(sqrt(target * aspect)), bh = (int)rint(sqrt(target / aspect));
        if (bw > 0 && bw <= w && bh > 0 && bh <= h) {
            b.on = 1;
            b.y0 = (int)(rng_bits(k, 20) % (uint64_t)(h - bh + 1));
            b.x0 = (int)(rng_bits(k, 21) % (uint64_t)(w - bw + 1));
            b.y1 = b.y0 + bh;
            b.x1 = b.x0 + bw;
            return b;
        }
    }
    /* The fallback: the whole image, narrowed to the nearest end of the ratio range (at
     * least one pixel, where torchvision would round a side of a tiny image to 0). */
    double in_ratio = (double)w / (double)h;
    int bw = w, bh = h;
    if (in_ratio < ratio_lo)
        bh = (int)rint((double)w / ratio_lo);
    else if (in_ratio > ratio_hi)
        bw = (int)rint((double)h * ratio_hi);
    if (bh < 1) bh = 1;
    if (bw < 1) bw = 1;
    b.on = 0;
    b.y0 = (h - bh) / 2;
    b.x0 = (w - bw) / 2;
    b.y1 = b.y0 + bh;
    b.x1 = b.x0 + bw;
    return b;
}

/* A source byte as a float in [0, 1]. */
AUGMENT_HD float augment_draw_byte(uint8_t b)
{
    return AUGMENT_DIV((float)b, 255.0f);
}

#ifdef __cplusplus
}
#endif

#endif
