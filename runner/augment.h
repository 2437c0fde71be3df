/*
 * augment.h: the image transforms of `augment.train` and `augment.eval`, applied in the order
 * listed.
 *
 *     struct augment a;
 *     if (augment_init(&a, &spec->augment.train, 3, 32, 32, &d)) return 2;
 *     float *scratch = malloc(a.scratch_floats * sizeof *scratch);
 *     for (i in batch)
 *         augment_image(&a, pixels + idx[i] * 3072, augment_key(seed, epoch, idx[i]),
 *                       x + i * a.out_numel, scratch);
 *     augment_batch(&a, x, labels, n, 10, augment_key(seed, epoch, -1 - batch), targets);
 *
 * An image enters as bytes (planar C x H x W, as CIFAR stores it), becomes floats in [0, 1]
 * (value / 255), and goes through the per-image transforms: random_crop (pad by `padding` on
 * every side with zeros or a mirror image without repeating the edge, as torchvision's
 * padding_mode="reflect", then crop `size` x `size` at a uniformly random offset), hflip
 * (mirror left-right with probability p), cutout (with probability p, set a `size` x `size`
 * square centred on a uniformly random pixel, clipped at the border, to zero in every
 * channel), normalize ((x - mean[c]) / std[c]) and resize (to `size` x `size`: bilinear as
 * PyTorch's interpolate(align_corners=False) without antialiasing, or nearest as its
 * mode="nearest"). mixup and cutmix work on whole batches after every per-image transform
 * (they must be listed after them): a Beta(alpha, alpha) ratio lam and a random pairing of the
 * batch's images; mixup blends x = lam x + (1 - lam) x[pair], cutmix pastes a box of area
 * (1 - lam) of the paired image (lam then recomputed from the clipped box); the soft targets
 * are lam onehot(y) + (1 - lam) onehot(y[pair]). When both are listed, each batch uses one of
 * them, chosen with equal odds, and then its p.
 *
 * Randomness is a pure function of the key: augment_key(seed, epoch, image index) for an
 * image, another key per batch, so the same images come out whatever the thread timing and
 * a resumed run sees the same images. Covered by tests/test_augment.c.
 */
#ifndef RUNNER_AUGMENT_H
#define RUNNER_AUGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "diag.h"
#include "spec.h"

struct augment {
    const struct spec_transform *t; /* the list (owned by the spec) */
    size_t n;
    int c, in_h, in_w;   /* what enters */
    int out_h, out_w;    /* what comes out */
    int64_t out_numel;   /* c * out_h * out_w */
    size_t scratch_floats; /* floats of scratch augment_image needs */
    bool mixup, cutmix;  /* batch transforms present */
};

/* Checks the list against the input shape (a crop larger than the padded image, reflection
 * padding not smaller than the side, a per-image transform after mixup or cutmix: errors at
 * the transform's mark) and computes the output shape. */
MUST_CHECK enum status augment_init(struct augment *a, const struct spec_list *list, int c,
                                    int h, int w, struct diag *d);

/* The key of one image's (or, with index = -1 - batch, one batch's) random choices. */
uint64_t augment_key(uint64_t seed, int64_t epoch, int64_t index);

/* One image: src (c, in_h, in_w) bytes -> dst (c, out_h, out_w) floats, using scratch
 * (a->scratch_floats floats, the caller's, one per thread). Thread-safe; allocates nothing.
 * Transform number i draws from counters i * 16 + j of key. */
void augment_image(const struct augment *a, const uint8_t *src, uint64_t key, float *dst,
                   float *scratch);

/*
 * The batch transforms (mixup, cutmix) on x (n, c, out_h, out_w), in place, and the targets
 * (n, classes): the labels one-hot when no mixing happened. Returns whether x was mixed.
 * Mixing allocates the pairing and one image's copy for the call (aborts when memory runs
 * out); thread-safe.
 */
bool augment_batch(const struct augment *a, float *x, const int32_t *labels, int64_t n,
                   int classes, uint64_t key, float *targets);

/* Mirrors every image of x (n, c, h, w) left to right (flip test-time augmentation). */
void augment_hflip_batch(float *x, int64_t n, int c, int h, int w);

/* A Beta(alpha, alpha) draw, a pure function of (key, counter): its two gamma draws are keyed
 * by rng_bits(key, 2 counter) and rng_bits(key, 2 counter + 1). Used by mixup and cutmix;
 * exposed for tests. */
double augment_beta(double alpha, uint64_t key, uint64_t counter);

/* The list of a (from augment_init, outliving nothing: the plan copies what it needs) as the
 * GPU's plan (augment_gpu.h). Returns false, with the reason in why (size bytes, may be 0),
 * when the list holds resize, mixup or cutmix, or more than AUGMENT_GPU_MAX_STEPS transforms. */
struct augment_gpu_plan;
MUST_CHECK bool augment_compile_gpu(const struct augment *a, struct augment_gpu_plan *p,
                                    char *why, size_t size);

#endif
