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
 *     // Images of varying size (a folder of files): each its own h x w.
 *     if (augment_init(&a, &spec->augment.train, 3, 0, 0, &d)) return 2;
 *     if (a.out_h == 0) ... // the list leaves the size varying: an error at the list
 *     augment_set_input_max(&a, largest_h, largest_w);  // before allocating scratch
 *     augment_image_sized(&a, bytes, h, w, key, x + i * a.out_numel, scratch);
 *
 * An image enters as bytes (planar C x H x W, as CIFAR stores it). The decoded-image stage
 * comes first: the leading run of the list made of resize, center_crop and random_resized_crop
 * works on the bytes exactly as torchvision does on the PIL image before ToTensor (Pillow's
 * Image.resize: BILINEAR is its separable convolution, horizontal pass then vertical, with
 * the filter's support widened by the downscale factor, so shrinking antialiases, fixed-point
 * weights and the result rounded and clipped to 8 bits after each pass; NEAREST its nearest
 * neighbour). Then the image becomes floats in [0, 1] (value / 255) and goes through the
 * other transforms, every one of them on floats:
 *   resize        to size x size (mode square) or with the shorter side size and the longer
 *                 int(size * long / short) (mode shorter_side, torchvision's Resize(size));
 *                 on floats bilinear as PyTorch's interpolate(align_corners=False) without
 *                 antialiasing, or nearest as its mode="nearest";
 *   center_crop   torchvision's CenterCrop(size): pad a side shorter than size with zeros
 *                 (left (size - w) / 2, the rest right; likewise top and bottom), then cut
 *                 size x size at top round((h - size) / 2), left likewise (half to even);
 *   random_resized_crop  a box of random area and aspect (augment_draw_rrc_box, torchvision's
 *                 RandomResizedCrop.get_params) resized to size x size;
 *   random_crop   pad by `padding` on every side with zeros or a mirror image without
 *                 repeating the edge, as torchvision's padding_mode="reflect", then crop
 *                 `size` x `size` at a uniformly random offset;
 *   hflip         mirror left-right with probability p;
 *   cutout        with probability p, set a `size` x `size` square centred on a uniformly
 *                 random pixel, clipped at the border, to zero in every channel;
 *   normalize     (x - mean[c]) / std[c].
 * mixup and cutmix work on whole batches after every per-image transform (they must be listed
 * after them): a Beta(alpha, alpha) ratio lam and a random pairing of the batch's images;
 * mixup blends x = lam x + (1 - lam) x[pair], cutmix pastes a box of area (1 - lam) of the
 * paired image (lam then recomputed from the clipped box); the soft targets are
 * lam onehot(y) + (1 - lam) onehot(y[pair]). When both are listed, each batch uses one of
 * them, chosen with equal odds, and then its p.
 *
 * Images of varying size (a folder of files): augment_init with h = w = 0, then
 * augment_set_input_max with the largest sides that occur, then augment_image_sized with each
 * image's own size. The list must fix the size on the way (a square resize, center_crop,
 * random_resized_crop or random_crop) before random_crop, mixup or cutmix, which need one
 * size.
 *
 * Randomness is a pure function of the key: augment_key(seed, epoch, image index) for an
 * image, another key per batch, so the same images come out whatever the thread timing and
 * a resumed run sees the same images. Covered by tests/test_augment.c, and the decoded-image
 * stage against torchvision by tests/parity/augment_torchvision.py.
 */
#ifndef RUNNER_AUGMENT_H
#define RUNNER_AUGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "augment_draw.h"
#include "common.h"
#include "diag.h"
#include "spec.h"

struct augment {
    const struct spec_transform *t; /* the list (owned by the spec) */
    size_t n;
    int c, in_h, in_w;   /* what enters; in_h = in_w = 0: images of varying size */
    int out_h, out_w;    /* what comes out; 0 when the list leaves the size varying */
    int64_t out_numel;   /* c * out_h * out_w */
    size_t scratch_floats; /* floats of scratch augment_image(_sized) needs */
    bool mixup, cutmix;  /* batch transforms present */
    /* The scratch's parts (augment.c): */
    size_t lead;         /* transforms of the decoded-image stage (the leading run) */
    int max_h, max_w;    /* the largest image scratch is sized for */
    size_t float_half;   /* floats of each of the two float images */
    size_t coeff_ints;   /* int32 resampling coefficients */
    size_t byte_half;    /* bytes of each of the two decoded images */
    size_t byte_tmp;     /* bytes of a resize's horizontal pass */
};

/*
 * Checks the list against the input shape, h = w = 0 meaning images of varying size, and
 * computes the output shape. Errors at the transform's mark: a crop larger than the padded
 * image, reflection padding not smaller than the side, a per-image transform after mixup or
 * cutmix, random_crop, mixup or cutmix while the size still varies. A list that ends with the
 * size still varying (no square resize, center_crop, random_resized_crop or random_crop) is
 * no error here: a->out_h = a->out_w = a->out_numel = 0, and the caller, which needs one size
 * for its batches, reports it at the list. scratch_floats is sized for h x w (for nothing
 * but the output when the size varies: see augment_set_input_max).
 */
MUST_CHECK enum status augment_init(struct augment *a, const struct spec_list *list, int c,
                                    int h, int w, struct diag *d);

/* Sizes a->scratch_floats for images of up to max_h x max_w entering a (from augment_init with
 * h = w = 0): the largest such image and every intermediate on the way, whatever its aspect (a
 * shorter_side resize of a thin image is long, unless a center_crop follows it at once: then
 * only the crop is resampled). Needed before augment_image_sized when a's images vary in size;
 * for a list of one size (h, w > 0 at augment_init) it changes nothing. */
void augment_set_input_max(struct augment *a, int max_h, int max_w);

/* The output size of the list for h x w images (h = w = 0: varying), as augment_init
 * computes it, checking nothing: false, with *out_h = *out_w = 0, when the size still varies
 * at the end. */
bool augment_output_size(const struct spec_list *list, int h, int w, int *out_h, int *out_w);

/* The key of one image's (or, with index = -1 - batch, one batch's) random choices. */
uint64_t augment_key(uint64_t seed, int64_t epoch, int64_t index);

/* One image: src (c, in_h, in_w) bytes -> dst (c, out_h, out_w) floats, using scratch
 * (a->scratch_floats floats, the caller's, one per thread). Thread-safe; allocates nothing.
 * Transform number i draws from counters i * 16 + j of key. */
void augment_image(const struct augment *a, const uint8_t *src, uint64_t key, float *dst,
                   float *scratch);

/* The same for an image of its own size: src (c, h, w) bytes, h <= a->max_h and w <= a->max_w
 * (augment_set_input_max), and h x w a->in_h x a->in_w when a's images are of one size.
 * dst holds c x (the size augment_output_size gives for h x w) floats: a->out_numel when the
 * list fixes the size. */
void augment_image_sized(const struct augment *a, const uint8_t *src, int h, int w,
                         uint64_t key, float *dst, float *scratch);

/* The box random_resized_crop number i of a's list draws for an h x w image (the size as it
 * enters that transform) with key: the draw augment_image makes (augment_draw_rrc_box).
 * Exposed for tests. */
struct augment_box augment_rrc_box(const struct augment *a, size_t i, uint64_t key, int h,
                                   int w);

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
 * when the list holds resize, center_crop, random_resized_crop, mixup or cutmix, or more than
 * AUGMENT_GPU_MAX_STEPS transforms, or when the images vary in size. */
struct augment_gpu_plan;
MUST_CHECK bool augment_compile_gpu(const struct augment *a, struct augment_gpu_plan *p,
                                    char *why, size_t size);

#endif
