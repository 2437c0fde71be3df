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
 * square rows [y0, y1) x columns [x0, x1). */
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

/* A source byte as a float in [0, 1]. */
AUGMENT_HD float augment_draw_byte(uint8_t b)
{
    return AUGMENT_DIV((float)b, 255.0f);
}

#ifdef __cplusplus
}
#endif

#endif
