/*
 * transforms.h: augment-list items built in C for the augmentation tests (test_augment.c,
 * test_augment_gpu.c): random_crop, hflip, cutout and normalize with the given settings, and
 * init_ok, which loads such a list. Include after <cmocka.h>.
 */
#ifndef RUNNER_TEST_TRANSFORMS_H
#define RUNNER_TEST_TRANSFORMS_H

#include "augment.h"
#include "diag.h"
#include "spec.h"

static inline struct spec_transform crop(long long size, long long padding, enum spec_fill fill)
{
    return (struct spec_transform){.kind = SPEC_TRANSFORM_RANDOM_CROP, .size = size,
                                   .padding = padding, .fill = fill};
}

static inline struct spec_transform flip(double p)
{
    return (struct spec_transform){.kind = SPEC_TRANSFORM_HFLIP, .p = p};
}

static inline struct spec_transform cut(long long size, double p)
{
    return (struct spec_transform){.kind = SPEC_TRANSFORM_CUTOUT, .size = size, .p = p};
}

static inline struct spec_transform norm(double m0, double m1, double m2, double s0, double s1,
                                  double s2)
{
    return (struct spec_transform){.kind = SPEC_TRANSFORM_NORMALIZE, .mean = {m0, m1, m2},
                                   .std = {s0, s1, s2}};
}

/* The list t[0..n) for c x h x w images; it must load. */
static inline struct augment init_ok(const struct spec_transform *t, size_t n, int c, int h,
                                     int w)
{
    struct spec_list list = {(void *)t, n};
    struct augment a;
    struct diag d = {.out = stderr};
    if (augment_init(&a, &list, c, h, w, &d) != STATUS_OK) fail_msg("augment_init failed");
    return a;
}

#endif
