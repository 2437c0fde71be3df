/*
 * test_augment.c: the image transforms (augment.c) on tiny images whose every output pixel
 * is written down by hand: bytes to floats, normalize, random_crop with zero and reflection
 * padding (every offset occurs, no other), hflip, cutout (clipped at the border too),
 * bilinear and nearest resize on floats (PyTorch's formulas, integer and fractional scales)
 * and in the decoded-image stage (Pillow's), center_crop (half-to-even offsets, padding),
 * random_resized_crop's boxes (inside, within scale and ratio, the fallback, pure functions
 * of the key) and output, output sizes, lists for images of varying size (errors at their
 * marks, the same bits as for one size in exactly the scratch promised, thin images), the
 * decoded stage's steps chained against one at a time, the new keys in an experiment file
 * (defaults, the written config read back, reversed ranges at their values), list order, a
 * chain through both scratch buffers, the configuration errors, determinism, mixup and cutmix
 * (pairing and ratio recovered from the targets), the Beta draws' moments and the batch flip.
 * tests/parity/augment_torchvision.py compares the decoded-image stage with torchvision.
 */
#define _GNU_SOURCE
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "augment.h"
#include "augment_gpu.h"
#include "rng.h"
#include "test_util.h"
#include "transforms.h"

/* --------------------------------------------------------------------------------------- */
/* Helpers */

static struct spec_transform resize(long long size, enum spec_interp interp)
{
    return (struct spec_transform){.kind = SPEC_TRANSFORM_RESIZE, .size = size,
                                   .interpolation = interp};
}

static struct spec_transform mix(enum spec_transform_kind kind, double alpha, double p)
{
    return (struct spec_transform){.kind = kind, .alpha = alpha, .p = p};
}

/* One image through a, with scratch and dst of exactly the sizes promised (so the sanitizer
 * sees any overrun); dst holds a.out_numel floats. */
static void run(const struct augment *a, const uint8_t *src, uint64_t key, float *dst)
{
    float *scratch = malloc(a->scratch_floats * sizeof *scratch);
    float *out = malloc((size_t)a->out_numel * sizeof *out);
    assert_non_null(scratch);
    augment_image(a, src, key, out, scratch);
    memcpy(dst, out, (size_t)a->out_numel * sizeof *out);
    free(scratch);
    free(out);
}

static uint64_t key_of(int64_t index)
{
    return augment_key(42, 3, index);
}

/* 1..16 on a 4 x 4 image. */
static const uint8_t img16[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

/* --------------------------------------------------------------------------------------- */
/* Bytes, normalize */

static void test_to_floats(void **state)
{
    (void)state;
    const uint8_t src[12] = {0, 1, 51, 255, 102, 204, 17, 34, 68, 85, 170, 128};
    struct augment a = init_ok(NULL, 0, 3, 2, 2);
    assert_int_equal(a.out_h, 2);
    assert_int_equal(a.out_w, 2);
    assert_int_equal(a.out_numel, 12);
    float out[12];
    run(&a, src, 1, out);
    for (int i = 0; i < 12; i++) assert_true(out[i] == (float)src[i] / 255.0f);
    assert_true(out[0] == 0.0f && out[3] == 1.0f);
}

static void test_normalize(void **state)
{
    (void)state;
    /* Channel by channel: bytes 0, 51, 102, 255 are 0, 0.2, 0.4, 1. */
    const uint8_t src[12] = {0, 51, 102, 255, 0, 51, 102, 255, 0, 51, 102, 255};
    struct spec_transform t[] = {norm(0.5, 0.2, 0, 0.5, 0.25, 2)};
    struct augment a = init_ok(t, 1, 3, 2, 2);
    const float want[12] = {-1.0f, -0.6f, -0.2f, 1.0f,  /* (x - 0.5) / 0.5 */
                            -0.8f, 0.0f,  0.8f,  3.2f,  /* (x - 0.2) / 0.25 */
                            0.0f,  0.1f,  0.2f,  0.5f}; /* x / 2 */
    float out[12];
    run(&a, src, 1, out);
    for (int i = 0; i < 12; i++) assert_float_equal(out[i], want[i], 1e-6);
}

/* --------------------------------------------------------------------------------------- */
/* random_crop */

/*
 * Runs a crop of s x s over many keys on a (c, h, w) image whose padded form (c, ph, pw) in
 * bytes is given by hand: each output must equal exactly one window of the padded image, the
 * same in every channel, and every window must occur.
 */
static void crop_windows(const struct spec_transform *t, const uint8_t *src, int c, int h,
                         int w, const uint8_t *padded, int ph, int pw)
{
    int s = (int)t->size, ny = ph - s + 1, nx = pw - s + 1;
    struct augment a = init_ok(t, 1, c, h, w);
    assert_int_equal(a.out_h, s);
    assert_int_equal(a.out_w, s);
    int seen[16][16] = {{0}};
    float *out = malloc((size_t)a.out_numel * sizeof *out);
    for (int k = 0; k < 400; k++) {
        run(&a, src, key_of(k), out);
        int matches = 0;
        for (int oy = 0; oy < ny; oy++)
            for (int ox = 0; ox < nx; ox++) {
                bool same = true;
                for (int ch = 0; ch < c; ch++)
                    for (int y = 0; y < s; y++)
                        for (int x = 0; x < s; x++)
                            same &= out[(ch * s + y) * s + x] ==
                                    (float)padded[(ch * ph + oy + y) * pw + ox + x] / 255.0f;
                if (same) {
                    matches++;
                    seen[oy][ox]++;
                }
            }
        if (matches != 1) fail_msg("key %d: the crop matches %d windows", k, matches);
    }
    for (int oy = 0; oy < ny; oy++)
        for (int ox = 0; ox < nx; ox++)
            if (!seen[oy][ox]) fail_msg("offset (%d, %d) never drawn", oy, ox);
    free(out);
}

static void test_crop_zero(void **state)
{
    (void)state;
    /* Two channels (the second is the first + 100), padding 1, crop 4: offsets 0..2. */
    uint8_t src[32];
    for (int i = 0; i < 16; i++) {
        src[i] = img16[i];
        src[16 + i] = (uint8_t)(img16[i] + 100);
    }
    const uint8_t padded[2 * 36] = {
        0, 0,   0,   0,   0,   0, /* */
        0, 1,   2,   3,   4,   0, /* */
        0, 5,   6,   7,   8,   0, /* */
        0, 9,   10,  11,  12,  0, /* */
        0, 13,  14,  15,  16,  0, /* */
        0, 0,   0,   0,   0,   0, /* channel 1 */
        0, 0,   0,   0,   0,   0, /* */
        0, 101, 102, 103, 104, 0, /* */
        0, 105, 106, 107, 108, 0, /* */
        0, 109, 110, 111, 112, 0, /* */
        0, 113, 114, 115, 116, 0, /* */
        0, 0,   0,   0,   0,   0,
    };
    struct spec_transform t = crop(4, 1, SPEC_FILL_ZERO);
    crop_windows(&t, src, 2, 4, 4, padded, 6, 6);
    t = crop(6, 1, SPEC_FILL_ZERO); /* the whole padded image: one offset */
    crop_windows(&t, src, 2, 4, 4, padded, 6, 6);
}

static void test_crop_reflect(void **state)
{
    (void)state;
    /* Mirrors without repeating the edge: row -1 is row 1, row 4 is row 2 (torchvision's
     * padding_mode="reflect", checked against torch.nn.functional.pad). */
    const uint8_t padded[36] = {
        6,  5,  6,  7,  8,  7,  /* */
        2,  1,  2,  3,  4,  3,  /* */
        6,  5,  6,  7,  8,  7,  /* */
        10, 9,  10, 11, 12, 11, /* */
        14, 13, 14, 15, 16, 15, /* */
        10, 9,  10, 11, 12, 11,
    };
    struct spec_transform t = crop(4, 1, SPEC_FILL_REFLECT);
    crop_windows(&t, img16, 1, 4, 4, padded, 6, 6);

    /* Not square: 2 x 3 padded by 1 to 4 x 5, crop 3: offsets 0..1 down, 0..2 across. */
    const uint8_t src[6] = {1, 2, 3, 4, 5, 6};
    const uint8_t padded23[20] = {
        5, 4, 5, 6, 5, /* */
        2, 1, 2, 3, 2, /* */
        5, 4, 5, 6, 5, /* */
        2, 1, 2, 3, 2,
    };
    t = crop(3, 1, SPEC_FILL_REFLECT);
    crop_windows(&t, src, 1, 2, 3, padded23, 4, 5);
    /* The same with zeros. */
    const uint8_t zero23[20] = {0, 0, 0, 0, 0, 0, 1, 2, 3, 0, 0, 4, 5, 6, 0, 0, 0, 0, 0, 0};
    t = crop(3, 1, SPEC_FILL_ZERO);
    crop_windows(&t, src, 1, 2, 3, zero23, 4, 5);
}

/* A transform's draws depend on its place in the list, not on what comes before it. */
static void test_crop_draws_independent(void **state)
{
    (void)state;
    struct spec_transform t1[] = {flip(0), crop(4, 2, SPEC_FILL_ZERO)};
    struct spec_transform t2[] = {norm(0, 0, 0, 1, 1, 1), crop(4, 2, SPEC_FILL_ZERO)};
    struct augment a1 = init_ok(t1, 2, 1, 4, 4), a2 = init_ok(t2, 2, 1, 4, 4);
    float o1[16], o2[16];
    for (int k = 0; k < 50; k++) {
        run(&a1, img16, key_of(k), o1);
        run(&a2, img16, key_of(k), o2);
        assert_memory_equal(o1, o2, sizeof o1);
    }
}

/* --------------------------------------------------------------------------------------- */
/* hflip, cutout */

static void test_hflip(void **state)
{
    (void)state;
    const uint8_t src[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}; /* 2 x 2 x 3 */
    const uint8_t mirrored[12] = {3, 2, 1, 6, 5, 4, 9, 8, 7, 12, 11, 10};
    struct spec_transform t = flip(1);
    struct augment a = init_ok(&t, 1, 2, 2, 3);
    float out[12];
    for (int k = 0; k < 20; k++) {
        t.p = 1;
        run(&a, src, key_of(k), out);
        for (int i = 0; i < 12; i++) assert_true(out[i] == (float)mirrored[i] / 255.0f);
        t.p = 0;
        run(&a, src, key_of(k), out);
        for (int i = 0; i < 12; i++) assert_true(out[i] == (float)src[i] / 255.0f);
    }
    t.p = 0.5;
    int flipped = 0;
    for (int k = 0; k < 1000; k++) {
        run(&a, src, key_of(k), out);
        flipped += out[0] == (float)mirrored[0] / 255.0f;
    }
    assert_in_range(flipped, 430, 570);
}

static void test_cutout(void **state)
{
    (void)state;
    uint8_t src[32];
    for (int i = 0; i < 16; i++) {
        src[i] = img16[i];
        src[16 + i] = (uint8_t)(img16[i] + 100);
    }
    struct spec_transform t = cut(2, 1);
    struct augment a = init_ok(&t, 1, 2, 4, 4);
    /* The square is rows [cy - 1, cy + 1) and the same across, cy and cx in 0..3: rows -1
     * and 0 (one row left after clipping) up to rows 2 and 3. seen[y0 + 1][x0 + 1]. */
    int seen[4][4] = {{0}};
    float out[32];
    for (int k = 0; k < 400; k++) {
        run(&a, src, key_of(k), out);
        int y0 = 4, y1 = -1, x0 = 4, x1 = -1, zeros = 0;
        for (int y = 0; y < 4; y++)
            for (int x = 0; x < 4; x++)
                if (out[y * 4 + x] == 0) {
                    zeros++;
                    y0 = y < y0 ? y : y0;
                    y1 = y > y1 ? y : y1;
                    x0 = x < x0 ? x : x0;
                    x1 = x > x1 ? x : x1;
                }
        int hh = y1 - y0 + 1, ww = x1 - x0 + 1;
        assert_int_equal(zeros, hh * ww); /* a rectangle */
        assert_true(hh == 2 || (hh == 1 && y0 == 0));
        assert_true(ww == 2 || (ww == 1 && x0 == 0));
        for (int ch = 0; ch < 2; ch++)
            for (int y = 0; y < 4; y++)
                for (int x = 0; x < 4; x++) {
                    bool in = y >= y0 && y <= y1 && x >= x0 && x <= x1;
                    float v = out[(ch * 4 + y) * 4 + x];
                    assert_true(v == (in ? 0.0f : (float)src[(ch * 4 + y) * 4 + x] / 255.0f));
                }
        seen[hh == 1 ? 0 : y0 + 1][ww == 1 ? 0 : x0 + 1]++;
    }
    for (int y = 0; y < 4; y++)
        for (int x = 0; x < 4; x++)
            if (!seen[y][x]) fail_msg("the square at (%d, %d) never drawn", y - 1, x - 1);
    /* p = 0: untouched. */
    t.p = 0;
    run(&a, src, key_of(0), out);
    for (int i = 0; i < 32; i++) assert_true(out[i] == (float)src[i] / 255.0f);
}

/* --------------------------------------------------------------------------------------- */
/* resize */

/* Resizes a 1 x n x n byte image to m x m and compares with want (in byte units): in the
 * decoded-image stage (the resize first: Pillow's resampling) or on floats (after hflip with
 * p = 0, which changes nothing: PyTorch's interpolate). */
static void resize_check(bool decoded, enum spec_interp interp, const uint8_t *src, int n, int m,
                         const float *want)
{
    struct spec_transform t[] = {flip(0), resize(m, interp)};
    struct augment a = decoded ? init_ok(&t[1], 1, 1, n, n) : init_ok(t, 2, 1, n, n);
    assert_int_equal(a.lead, decoded);
    assert_int_equal(a.out_h, m);
    assert_int_equal(a.out_numel, m * m);
    float out[25];
    run(&a, src, 1, out);
    for (int i = 0; i < m * m; i++)
        if (fabsf(out[i] * 255.0f - want[i]) > 1e-3f)
            fail_msg("%s %d -> %d: pixel %d is %g, expected %g", decoded ? "decoded" : "float",
                     n, m, i, out[i] * 255.0, want[i]);
}

static const uint8_t img2[4] = {0, 40, 80, 120};
static const uint8_t img3[9] = {0, 10, 50, 20, 0, 100, 60, 30, 90};

/* On floats, PyTorch's interpolate(align_corners=False) without antialiasing. */
static void test_resize_bilinear(void **state)
{
    (void)state;
    /* 2 -> 4: src = (d + 0.5) / 2 - 0.5 = -0.25 (0), 0.25, 0.75, 1.25 (the last row or
     * column, clamped): weights 0, 1/4, 3/4, 1 along a linear image: 80 fy + 40 fx. */
    const float up[16] = {0, 10, 30, 40, 20, 30, 50, 60, 60, 70, 90, 100, 80, 90, 110, 120};
    resize_check(false, SPEC_INTERP_BILINEAR, img2, 2, 4, up);
    /* 4 -> 2: src = 2 (d + 0.5) - 0.5 = 0.5, 2.5: the mean of each 2 x 2 block. */
    const float down[4] = {3.5f, 5.5f, 11.5f, 13.5f};
    resize_check(false, SPEC_INTERP_BILINEAR, img16, 4, 2, down);
    /* 3 -> 5: src = 0.6 (d + 0.5) - 0.5 = -0.2 (0), 0.4, 1, 1.6, 2.2 (2). Along rows:
     * [0 10 50] -> 0 4 10 34 50, [20 0 100] -> 20 12 0 60 100, [60 30 90] -> 60 48 30 66 90;
     * then between them with the same weights. */
    const float frac[25] = {0,  4,    10, 34,   50, /* */
                            8,  7.2f, 6,  44.4f, 70, /* 0.6 row 0 + 0.4 row 1 */
                            20, 12,   0,  60,   100, /* */
                            44, 33.6f, 18, 63.6f, 94, /* 0.4 row 1 + 0.6 row 2 */
                            60, 48,   30, 66,   90};
    resize_check(false, SPEC_INTERP_BILINEAR, img3, 3, 5, frac);
}

static void test_resize_nearest(void **state)
{
    (void)state;
    /* src = floor(d in / out): 2 -> 4: 0 0 1 1; 4 -> 2: 0 2; 3 -> 5: 0 0 1 1 2. */
    const float up[16] = {0, 0, 40, 40, 0, 0, 40, 40, 80, 80, 120, 120, 80, 80, 120, 120};
    resize_check(false, SPEC_INTERP_NEAREST, img2, 2, 4, up);
    const float down[4] = {1, 3, 9, 11};
    resize_check(false, SPEC_INTERP_NEAREST, img16, 4, 2, down);
    const float frac[25] = {0,  0,  10, 10, 50,  0,  0,  10, 10, 50,  20, 20, 0,
                            0,  100, 20, 20, 0,  0,  100, 60, 60, 30, 30, 90};
    resize_check(false, SPEC_INTERP_NEAREST, img3, 3, 5, frac);
}

/* First in the list, Pillow's BILINEAR (tests/parity/augment_torchvision.py compares it with
 * torchvision on many sizes; these are worked by hand). */
static void test_decoded_bilinear(void **state)
{
    (void)state;
    /* 2 -> 4: centres (d + 0.5) / 2 = 0.25, 0.75, 1.25, 1.75 with the triangle of support 1:
     * 0.25 and 1.75 see one pixel (weight 1 after normalizing), 0.75 and 1.25 two, with
     * 3/4 and 1/4: as PyTorch on this linear image, exact in the fixed-point weights. */
    const float up[16] = {0, 10, 30, 40, 20, 30, 50, 60, 60, 70, 90, 100, 80, 90, 110, 120};
    resize_check(true, SPEC_INTERP_BILINEAR, img2, 2, 4, up);
    /* 4 -> 2 antialiases: the support doubles to 2, centres 1 and 3 take pixels 0..2 with
     * 3/7, 3/7, 1/7 and 1..3 with 1/7, 3/7, 3/7. Rows, rounded to bytes: [1 2 3 4] -> 12/7,
     * 23/7 -> 2, 3; [5..8] -> 6, 7; [9..12] -> 10, 11; [13..16] -> 14, 15. Then columns:
     * (3 2 + 3 6 + 10) / 7 = 34/7 -> 5, (9 + 21 + 11) / 7 -> 6, (6 + 30 + 42) / 7 -> 11,
     * (7 + 33 + 45) / 7 -> 12. */
    const float down[4] = {5, 6, 11, 12};
    resize_check(true, SPEC_INTERP_BILINEAR, img16, 4, 2, down);
    /* Only the side that changes is resampled: 2 x 4 -> 2 x 2 is the row pass alone (rows
     * as above), 4 x 2 -> 2 x 2 the column pass alone: [1 5 9 13] -> 27/7, 71/7 -> 4, 10;
     * [2 6 10 14] -> 34/7, 78/7 -> 5, 11. */
    struct spec_transform t = resize(2, SPEC_INTERP_BILINEAR);
    const uint8_t wide[8] = {1, 2, 3, 4, 13, 14, 15, 16}, tall[8] = {1, 2, 5, 6, 9, 10, 13, 14};
    const float rows[4] = {2, 3, 14, 15}, cols[4] = {4, 5, 10, 11};
    float out[4];
    struct augment a = init_ok(&t, 1, 1, 2, 4);
    run(&a, wide, 1, out);
    for (int i = 0; i < 4; i++) assert_float_equal(out[i] * 255.0f, rows[i], 1e-3);
    a = init_ok(&t, 1, 1, 4, 2);
    run(&a, tall, 1, out);
    for (int i = 0; i < 4; i++) assert_float_equal(out[i] * 255.0f, cols[i], 1e-3);
}

/* First in the list, Pillow's NEAREST: source (int)((d + 0.5) in / out), not PyTorch's
 * floor(d in / out). */
static void test_decoded_nearest(void **state)
{
    (void)state;
    const float up[16] = {0, 0, 40, 40, 0, 0, 40, 40, 80, 80, 120, 120, 80, 80, 120, 120};
    resize_check(true, SPEC_INTERP_NEAREST, img2, 2, 4, up);
    /* 4 -> 2: 2 (d + 0.5) = 1, 3. */
    const float down[4] = {6, 8, 14, 16};
    resize_check(true, SPEC_INTERP_NEAREST, img16, 4, 2, down);
    /* 3 -> 5: 0.6 (d + 0.5) = 0.3, 0.9, 1.5, 2.1, 2.7: 0 0 1 2 2. */
    const float frac[25] = {0,  0,  10, 50,  50,  0,  0,  10, 50,  50,  20, 20, 0,
                            100, 100, 60, 60, 30, 90, 90, 60, 60, 30, 90, 90};
    resize_check(true, SPEC_INTERP_NEAREST, img3, 3, 5, frac);
}

/* --------------------------------------------------------------------------------------- */
/* Lists */

/* Crop then normalize: the padding is normalized too ((0 - 0.5) / 0.5 = -1); normalize then
 * crop: the padding stays 0. A crop of the whole padded image has one offset. */
static void test_order(void **state)
{
    (void)state;
    struct spec_transform cn[] = {crop(6, 1, SPEC_FILL_ZERO), norm(0.5, 0, 0, 0.5, 1, 1)};
    struct spec_transform nc[] = {norm(0.5, 0, 0, 0.5, 1, 1), crop(6, 1, SPEC_FILL_ZERO)};
    struct augment a = init_ok(cn, 2, 1, 4, 4), b = init_ok(nc, 2, 1, 4, 4);
    float oa[36], ob[36];
    run(&a, img16, key_of(0), oa);
    run(&b, img16, key_of(0), ob);
    for (int y = 0; y < 6; y++)
        for (int x = 0; x < 6; x++) {
            bool pad = y == 0 || y == 5 || x == 0 || x == 5;
            float inner = pad ? 0 : ((float)img16[(y - 1) * 4 + x - 1] / 255.0f - 0.5f) / 0.5f;
            assert_float_equal(oa[y * 6 + x], pad ? -1.0f : inner, 1e-6);
            assert_float_equal(ob[y * 6 + x], pad ? 0.0f : inner, 1e-6);
        }
}

/* Through both scratch halves and into dst: nearest 4 -> 8 repeats each pixel twice, 8 -> 4
 * takes every other one, so with two flips and a full crop between, the image comes back. */
static void test_chain(void **state)
{
    (void)state;
    uint8_t src[48];
    for (int i = 0; i < 48; i++) src[i] = (uint8_t)(5 * i + 1);
    struct spec_transform t[] = {resize(8, SPEC_INTERP_NEAREST), flip(1),
                                 crop(8, 0, SPEC_FILL_ZERO), flip(1),
                                 resize(4, SPEC_INTERP_NEAREST)};
    struct augment a = init_ok(t, 5, 3, 4, 4);
    assert_int_equal(a.out_h, 4);
    assert_int_equal(a.out_numel, 48);
    assert_true(a.scratch_floats >= 2 * 3 * 64);
    float out[48];
    run(&a, src, key_of(9), out);
    for (int i = 0; i < 48; i++) assert_true(out[i] == (float)src[i] / 255.0f);
    /* The output shape follows the last crop or resize. */
    struct spec_transform u[] = {crop(32, 4, SPEC_FILL_REFLECT), resize(224, SPEC_INTERP_BILINEAR), flip(0.5)};
    a = init_ok(u, 3, 3, 32, 32);
    assert_int_equal(a.out_h, 224);
    assert_int_equal(a.out_w, 224);
    assert_int_equal(a.out_numel, 3 * 224 * 224);
}

static const char aug_yaml[] = "augment:\n"
                               "  train:\n"
                               "    - random_crop: {size: 40, padding: 2}\n"
                               "    - random_crop: {size: 8, padding: 8, fill: reflect}\n"
                               "    - mixup\n"
                               "    - hflip\n";

/* augment_init's errors on the list t[0..n); returns the messages (caller frees). */
static char *init_errors(const struct spec_transform *t, size_t n, int h, int w, int errors)
{
    char *msgs = NULL;
    size_t len;
    FILE *mem = open_memstream(&msgs, &len);
    struct diag d = {.out = mem};
    struct augment a;
    struct spec_list list = {(void *)t, n};
    enum status st = augment_init(&a, &list, 3, h, w, &d);
    fclose(mem);
    assert_int_equal(st, STATUS_CONFIG);
    if (d.errors != errors) fail_msg("%d errors, expected %d:\n%s", d.errors, errors, msgs);
    return msgs;
}

static void has(const char *msgs, const char *what)
{
    if (!strstr(msgs, what)) fail_msg("expected \"%s\" in:\n%s", what, msgs);
}

static void test_init_errors(void **state)
{
    (void)state;
    static const struct source src = {"aug.yaml", ".", aug_yaml, sizeof aug_yaml - 1};
    struct spec_transform big = crop(40, 2, SPEC_FILL_ZERO);
    struct spec_transform refl = crop(8, 8, SPEC_FILL_REFLECT);
    struct spec_transform mx = mix(SPEC_TRANSFORM_MIXUP, 1, 1), fl = flip(0.5);
    big.mark = (struct mark){&src, 3, 7};
    refl.mark = (struct mark){&src, 4, 7};
    mx.mark = (struct mark){&src, 5, 7};
    fl.mark = (struct mark){&src, 6, 7};

    /* 40 > 32 + 2 * 2. */
    char *m = init_errors(&big, 1, 32, 32, 1);
    has(m, "aug.yaml:3:7: error: random_crop of 40 x 40 does not fit the 32 x 32 image");
    has(m, "hint:");
    free(m);
    /* Reflection padding 8 of an 8 x 8 image (7 would do); the side is the current one. */
    m = init_errors(&refl, 1, 8, 8, 1);
    has(m, "aug.yaml:4:7: error: reflection padding of 8");
    free(m);
    struct spec_transform shrink[] = {crop(8, 0, SPEC_FILL_ZERO), refl};
    free(init_errors(shrink, 2, 32, 32, 1));
    struct spec_transform seven = crop(8, 7, SPEC_FILL_REFLECT);
    (void)init_ok(&seven, 1, 3, 8, 8);
    /* A per-image transform after mixup. */
    struct spec_transform late[] = {mx, fl};
    m = init_errors(late, 2, 32, 32, 1);
    has(m, "aug.yaml:6:7: error: hflip is listed after mixup");
    has(m, "hint: mixup works on whole batches; list it after every per-image transform");
    free(m);
    /* All at once; the crop after mixup has two faults (it also exceeds 8 + 2 * 2). */
    struct spec_transform all[] = {shrink[0], refl, mx, fl, big};
    m = init_errors(all, 5, 32, 32, 4);
    has(m, "aug.yaml:4:7");
    has(m, "aug.yaml:6:7");
    has(m, "aug.yaml:3:7: error: random_crop is listed after mixup");
    has(m, "aug.yaml:3:7: error: random_crop of 40 x 40 does not fit the 8 x 8 image");
    free(m);
}

static void test_determinism(void **state)
{
    (void)state;
    uint8_t src[48];
    for (int i = 0; i < 48; i++) src[i] = (uint8_t)(3 * i + 7);
    struct spec_transform t[] = {crop(4, 2, SPEC_FILL_ZERO), flip(0.5), cut(2, 0.5)};
    struct augment a = init_ok(t, 3, 3, 4, 4);
    float one[48], two[48], prev[48];
    run(&a, src, augment_key(1, 0, 5), one);
    run(&a, src, augment_key(1, 0, 5), two);
    assert_memory_equal(one, two, sizeof one);
    /* Other images, epochs or seeds: other choices (most of the time). */
    int differ = 0;
    memcpy(prev, one, sizeof one);
    for (int i = 0; i < 20; i++) {
        run(&a, src, augment_key(1, 0, i), two);
        differ += memcmp(prev, two, sizeof two) != 0;
        memcpy(prev, two, sizeof two);
    }
    assert_true(differ >= 15);
    assert_true(augment_key(1, 0, 5) != augment_key(1, 1, 5));
    assert_true(augment_key(1, 0, 5) != augment_key(2, 0, 5));
    assert_true(augment_key(1, 0, 5) != augment_key(1, 0, -6));
}

/* --------------------------------------------------------------------------------------- */
/* center_crop, random_resized_crop */

static struct spec_transform center(long long size)
{
    return (struct spec_transform){.kind = SPEC_TRANSFORM_CENTER_CROP, .size = size};
}

static struct spec_transform rrc(long long size, double s0, double s1, double r0, double r1)
{
    return (struct spec_transform){.kind = SPEC_TRANSFORM_RANDOM_RESIZED_CROP, .size = size,
                                   .scale = {s0, s1}, .ratio = {r0, r1}};
}

static struct spec_transform shorter(long long size)
{
    return (struct spec_transform){.kind = SPEC_TRANSFORM_RESIZE, .size = size,
                                   .mode = SPEC_RESIZE_SHORTER_SIDE};
}

/* center_crop s of the 1 x h x w image 1, 2, ... against want (bytes; 0 is padding), in the
 * decoded-image stage and on floats (after hflip with p = 0): the same pixels. */
static void center_check(int h, int w, int s, const uint8_t *want)
{
    uint8_t src[64];
    for (int i = 0; i < h * w; i++) src[i] = (uint8_t)(i + 1);
    struct spec_transform t[] = {flip(0), center(s)};
    for (int decoded = 0; decoded < 2; decoded++) {
        struct augment a = decoded ? init_ok(&t[1], 1, 1, h, w) : init_ok(t, 2, 1, h, w);
        assert_int_equal(a.out_h, s);
        assert_int_equal(a.out_w, s);
        float out[64];
        run(&a, src, 1, out);
        for (int i = 0; i < s * s; i++)
            if (out[i] != (float)want[i] / 255.0f)
                fail_msg("center_crop(%d) of %d x %d (%s): pixel %d is %g, expected %d", s, h,
                         w, decoded ? "decoded" : "floats", i, out[i] * 255.0, want[i]);
    }
}

static void test_center_crop(void **state)
{
    (void)state;
    /* 4 x 4, crop 2: top = left = round(2 / 2) = 1. */
    center_check(4, 4, 2, (const uint8_t[]){6, 7, 10, 11});
    /* Odd differences round half to even, as Python's round: 4 -> 1 is round(1.5) = 2, 4 -> 3
     * round(0.5) = 0; 3 x 6 -> 3: rows from 0, columns from round(1.5) = 2. */
    center_check(4, 4, 1, (const uint8_t[]){11});
    center_check(4, 4, 3, (const uint8_t[]){1, 2, 3, 5, 6, 7, 9, 10, 11});
    center_check(3, 6, 3, (const uint8_t[]){3, 4, 5, 9, 10, 11, 15, 16, 17});
    /* Smaller than the crop: zeros first, (s - side) // 2 before, the rest after: 2 x 3 in
     * 5 x 5 has one row above and two below, one column left and one right. */
    center_check(2, 3, 5, (const uint8_t[]){0, 0, 0, 0, 0, /* */
                                            0, 1, 2, 3, 0, /* */
                                            0, 4, 5, 6, 0, /* */
                                            0, 0, 0, 0, 0, /* */
                                            0, 0, 0, 0, 0});
    /* Padded along one side, cropped along the other: 2 x 6 -> 4: rows 1 above, 1 below;
     * columns from round(2 / 2) = 1. */
    center_check(2, 6, 4, (const uint8_t[]){0, 0, 0, 0, 2, 3, 4, 5, 8, 9, 10, 11, 0, 0, 0, 0});
}

/* Boxes inside the image; within scale and ratio (up to the rounding of the sides) when a try
 * gave them; both ends of both ranges reached; a function of the key alone. */
static void test_rrc_boxes(void **state)
{
    (void)state;
    enum { H = 200, W = 300 };
    const double s0 = 0.25, s1 = 0.5, r0 = 0.5, r1 = 2;
    struct spec_transform t[] = {flip(0.5), rrc(32, s0, s1, r0, r1)};
    struct augment a = init_ok(t, 2, 3, H, W);
    double amin = 1, amax = 0, rmin = 10, rmax = 0;
    int tops[H] = {0}, distinct = 0;
    struct augment_box prev = {0};
    for (int k = 0; k < 2000; k++) {
        struct augment_box b = augment_rrc_box(&a, 1, key_of(k), H, W);
        int bh = b.y1 - b.y0, bw = b.x1 - b.x0;
        if (b.y0 < 0 || b.x0 < 0 || b.y1 > H || b.x1 > W || bh < 1 || bw < 1)
            fail_msg("key %d: box rows [%d, %d) x columns [%d, %d) leaves the %d x %d image", k,
                     b.y0, b.y1, b.x0, b.x1, H, W);
        assert_true(b.on); /* these ranges always fit */
        double area = (double)bh * bw, slack = 0.5 * (bh + bw) + 1;
        if (area < s0 * H * W - slack || area > s1 * H * W + slack)
            fail_msg("key %d: a %d x %d box is %.4f of the image, outside [%g, %g]", k, bh, bw,
                     area / (H * W), s0, s1);
        if ((bw - 0.5) / (bh + 0.5) > r1 || (bw + 0.5) / (bh - 0.5) < r0)
            fail_msg("key %d: a %d x %d box has aspect %.4f, outside [%g, %g]", k, bh, bw,
                     (double)bw / bh, r0, r1);
        amin = fmin(amin, area / (H * W));
        amax = fmax(amax, area / (H * W));
        rmin = fmin(rmin, (double)bw / bh);
        rmax = fmax(rmax, (double)bw / bh);
        tops[b.y0]++;
        distinct += memcmp(&b, &prev, sizeof b) != 0;
        prev = b;
        struct augment_box again = augment_rrc_box(&a, 1, key_of(k), H, W);
        assert_memory_equal(&b, &again, sizeof b);
    }
    if (amin > 0.27 || amax < 0.48 || rmin > 0.55 || rmax < 1.8)
        fail_msg("areas [%g, %g] and aspects [%g, %g] do not span the ranges", amin, amax, rmin,
                 rmax);
    assert_true(tops[0] > 0 && distinct > 1900);
    /* Another place in the list: other draws (counters 16 i + j). */
    struct spec_transform u[] = {rrc(32, s0, s1, r0, r1)};
    struct augment b = init_ok(u, 1, 3, H, W);
    int same = 0;
    for (int k = 0; k < 100; k++) {
        struct augment_box x = augment_rrc_box(&a, 1, key_of(k), H, W);
        struct augment_box y = augment_rrc_box(&b, 0, key_of(k), H, W);
        same += memcmp(&x, &y, sizeof x) == 0;
    }
    assert_true(same < 5);
}

/* Ranges no box of the ten tries fits: torchvision's fallback, the whole image narrowed to
 * the nearer end of the ratio range and centred. */
static void test_rrc_fallback(void **state)
{
    (void)state;
    /* 40 x 60 (aspect 1.5) with the whole area at aspect 2..3 needs a side of at least
     * sqrt(4800) > 60: never fits. Aspect 1.5 < 2: the full width, height round(60 / 2). */
    struct spec_transform t = rrc(8, 1, 1, 2, 3);
    struct augment a = init_ok(&t, 1, 1, 40, 60);
    for (int k = 0; k < 20; k++) {
        struct augment_box b = augment_rrc_box(&a, 0, key_of(k), 40, 60);
        assert_false(b.on);
        assert_true(b.y0 == 5 && b.y1 == 35 && b.x0 == 0 && b.x1 == 60);
    }
    /* Aspect 1.5 > 0.3: the full height, width round(40 * 0.3) = 12, from (60 - 12) // 2. */
    t = rrc(8, 1, 1, 0.2, 0.3);
    a = init_ok(&t, 1, 1, 40, 60);
    struct augment_box b = augment_rrc_box(&a, 0, key_of(3), 40, 60);
    assert_true(!b.on && b.y0 == 0 && b.y1 == 40 && b.x0 == 24 && b.x1 == 36);
    /* Aspect 1.5 within the range: the whole image (the tries rarely fit the whole area:
     * only at an aspect that rounds to 60 x 40). */
    t = rrc(8, 1, 1, 1.2, 1.8);
    a = init_ok(&t, 1, 1, 40, 60);
    int fallbacks = 0;
    for (int k = 0; k < 50; k++) {
        b = augment_rrc_box(&a, 0, key_of(k), 40, 60);
        if (b.on) continue;
        fallbacks++;
        assert_true(b.y0 == 0 && b.y1 == 40 && b.x0 == 0 && b.x1 == 60);
    }
    assert_true(fallbacks > 10);
}

/* The output is the box resized: the same bits as a resize of the box cut out by hand, in the
 * decoded-image stage and on floats; and the same for the same key. */
static void test_rrc_output(void **state)
{
    (void)state;
    enum { C = 3, H = 23, W = 37, S = 16 };
    static uint8_t src[C * H * W], box[C * H * W];
    for (int i = 0; i < C * H * W; i++) src[i] = (uint8_t)(rng_bits(5, (uint64_t)i) >> 56);
    for (int decoded = 0; decoded < 2; decoded++) {
        struct spec_transform t[] = {flip(0), rrc(S, 0.08, 1, 0.75, 4.0 / 3)};
        struct augment a = decoded ? init_ok(&t[1], 1, C, H, W) : init_ok(t, 2, C, H, W);
        size_t at = decoded ? 0 : 1;
        float out[C * S * S], again[C * S * S], want[C * S * S];
        for (int k = 0; k < 30; k++) {
            run(&a, src, key_of(k), out);
            run(&a, src, key_of(k), again);
            assert_memory_equal(out, again, sizeof out);
            struct augment_box b = augment_rrc_box(&a, at, key_of(k), H, W);
            int bh = b.y1 - b.y0, bw = b.x1 - b.x0;
            for (int ch = 0; ch < C; ch++)
                for (int y = 0; y < bh; y++)
                    memcpy(box + (ch * bh + y) * bw, src + (ch * H + b.y0 + y) * W + b.x0,
                           (size_t)bw);
            struct spec_transform r[] = {flip(0), resize(S, SPEC_INTERP_BILINEAR)};
            struct augment ra = decoded ? init_ok(&r[1], 1, C, bh, bw) : init_ok(r, 2, C, bh, bw);
            run(&ra, box, 1, want);
            if (memcmp(out, want, sizeof out))
                fail_msg("key %d (%s): not the %d x %d box at (%d, %d) resized", k,
                         decoded ? "decoded" : "floats", bh, bw, b.y0, b.x0);
        }
    }
}

/* --------------------------------------------------------------------------------------- */
/* Sizes, and images of varying size */

static void test_output_size(void **state)
{
    (void)state;
    int h, w;
    struct spec_list none = {NULL, 0};
    assert_true(augment_output_size(&none, 5, 7, &h, &w) && h == 5 && w == 7);
    assert_false(augment_output_size(&none, 0, 0, &h, &w));
    assert_true(h == 0 && w == 0);
    /* shorter_side: int(16 * 37 / 23) = int(25.74) = 25 for the longer side. */
    struct spec_transform t[] = {shorter(16), flip(0.5), center(12), resize(9, SPEC_INTERP_NEAREST)};
    struct spec_list one = {t, 1}, two = {t, 3}, all = {t, 4};
    assert_true(augment_output_size(&one, 23, 37, &h, &w) && h == 16 && w == 25);
    assert_true(augment_output_size(&one, 37, 23, &h, &w) && h == 25 && w == 16);
    assert_true(augment_output_size(&one, 16, 16, &h, &w) && h == 16 && w == 16);
    assert_false(augment_output_size(&one, 0, 0, &h, &w));
    assert_true(augment_output_size(&two, 0, 0, &h, &w) && h == 12 && w == 12);
    assert_true(augment_output_size(&all, 0, 0, &h, &w) && h == 9 && w == 9);
    /* torchvision's double division: int(224 * 500 / 375) = 298; the same through init. */
    struct spec_transform s = shorter(224);
    struct augment a = init_ok(&s, 1, 3, 375, 500);
    assert_true(a.out_h == 224 && a.out_w == 298 && a.out_numel == 3 * 224 * 298);
    assert_int_equal(a.lead, 1);
    /* In the leading run or not. */
    struct spec_transform lead[] = {shorter(40), center(32), rrc(24, 0.5, 1, 1, 1), flip(0.5),
                                    resize(16, SPEC_INTERP_BILINEAR)};
    a = init_ok(lead, 5, 3, 100, 80);
    assert_int_equal(a.lead, 3);
    assert_int_equal(a.out_h, 16);
}

static const char vary_yaml[] = "augment:\n"
                                "  train:\n"
                                "    - resize: {size: 64, mode: shorter_side}\n"
                                "    - random_crop: 32\n"
                                "    - cutmix\n";

/* augment_init with h = w = 0: the transforms that need one size, at their marks; a list
 * that ends with the size varying loads, with no output size. */
static void test_varying_init(void **state)
{
    (void)state;
    static const struct source src = {"vary.yaml", ".", vary_yaml, sizeof vary_yaml - 1};
    struct spec_transform rs = shorter(64), rc = crop(32, 0, SPEC_FILL_ZERO);
    struct spec_transform cm = mix(SPEC_TRANSFORM_CUTMIX, 1, 1);
    rs.mark = (struct mark){&src, 3, 7};
    rc.mark = (struct mark){&src, 4, 7};
    cm.mark = (struct mark){&src, 5, 7};
    struct spec_transform bad[] = {rs, rc};
    char *m = init_errors(bad, 2, 0, 0, 1);
    has(m, "vary.yaml:4:7: error: random_crop needs images of one size, but here they still "
           "differ in size");
    has(m, "hint: put a resize (mode: square), center_crop or random_resized_crop before it");
    free(m);
    struct spec_transform batch[] = {rs, cm};
    m = init_errors(batch, 2, 0, 0, 1);
    has(m, "vary.yaml:5:7: error: cutmix mixes images of one size");
    free(m);
    /* Known sizes: both fine. */
    (void)init_ok(bad, 2, 3, 48, 40);
    (void)init_ok(batch, 2, 3, 48, 40);
    /* Fixed first: fine. */
    struct spec_transform fixed[] = {rs, center(40), rc, cm};
    struct augment a = init_ok(fixed, 4, 3, 0, 0);
    assert_true(a.in_h == 0 && a.out_h == 32 && a.out_w == 32 && a.out_numel == 3 * 32 * 32);
    assert_true(a.cutmix);
    /* Still varying at the end: no error here, no size. */
    struct spec_transform open[] = {rs, flip(0.5)};
    a = init_ok(open, 2, 3, 0, 0);
    assert_true(a.out_h == 0 && a.out_w == 0 && a.out_numel == 0);
    /* The GPU takes none of it, saying why. */
    struct augment_gpu_plan p;
    char why[256];
    a = init_ok(fixed + 1, 2, 3, 0, 0);
    assert_false(augment_compile_gpu(&a, &p, why, sizeof why));
    assert_non_null(strstr(why, "varying size"));
    const struct spec_transform cpu_only[] = {center(16), rrc(16, 0.5, 1, 1, 1), shorter(16)};
    for (size_t i = 0; i < ARRAY_LEN(cpu_only); i++) {
        struct spec_transform l[] = {crop(32, 4, SPEC_FILL_ZERO), cpu_only[i]};
        a = init_ok(l, 2, 3, 32, 32);
        assert_false(augment_compile_gpu(&a, &p, why, sizeof why));
        if (!strstr(why, "runs on the CPU")) fail_msg("reason: %s", why);
    }
}

#define CANARY 0x5eed5eedu

/* One h x w image through a with scratch and dst of exactly the sizes promised and canary
 * words after both, which must stay. dst holds c x (the output size for h x w) floats. */
static void run_sized(const struct augment *a, const uint8_t *src, int h, int w, uint64_t key,
                      float *dst, size_t numel)
{
    enum { K = 32 };
    float *scratch = malloc((a->scratch_floats + K) * sizeof *scratch);
    float *out = malloc((numel + K) * sizeof *out);
    uint32_t c = CANARY;
    for (int i = 0; i < K; i++) {
        memcpy(scratch + a->scratch_floats + i, &c, sizeof c);
        memcpy(out + numel + i, &c, sizeof c);
    }
    augment_image_sized(a, src, h, w, key, out, scratch);
    for (int i = 0; i < K; i++) {
        if (memcmp(scratch + a->scratch_floats + i, &c, sizeof c))
            fail_msg("%d x %d: written past scratch (%zu floats)", h, w, a->scratch_floats);
        if (memcmp(out + numel + i, &c, sizeof c))
            fail_msg("%d x %d: written past dst (%zu floats)", h, w, numel);
    }
    memcpy(dst, out, numel * sizeof *out);
    free(scratch);
    free(out);
}

/* The same list for images of varying size (h = w = 0, augment_set_input_max) gives the same
 * bits as for one size, within the scratch it asks for, thin images included; a resize
 * followed by center_crop (only the crop's window resampled) equals the crop of the whole
 * resize. */
static void test_varying_images(void **state)
{
    (void)state;
    enum { C = 3, MAXS = 60 };
    static uint8_t src[C * MAXS * MAXS];
    static float one[C * 8 * 1000], var[C * 8 * 1000];
    for (size_t i = 0; i < sizeof src; i++) src[i] = (uint8_t)(rng_bits(9, i) >> 56);
    const int sizes[][2] = {{23, 37}, {60, 60}, {3, 50}, {50, 1}, {1, 1}, {8, 8}};
    struct spec_transform l1[] = {shorter(8), center(6), flip(0.5), norm(0.5, 0.4, 0.3, 1, 2, 3)};
    struct spec_transform l2[] = {shorter(8), center(10)}; /* pads the short side */
    struct spec_transform l3[] = {rrc(12, 0.08, 1, 0.75, 4.0 / 3), cut(4, 1)};
    struct spec_transform l4[] = {shorter(8), flip(0.5)}; /* still varying: as long as it gets */
    const struct {
        const struct spec_transform *t;
        size_t n;
    } lists[] = {{l1, 4}, {l2, 2}, {l3, 2}, {l4, 2}};
    for (size_t l = 0; l < ARRAY_LEN(lists); l++) {
        struct spec_list list = {(void *)lists[l].t, lists[l].n};
        struct augment v = init_ok(lists[l].t, lists[l].n, C, 0, 0);
        augment_set_input_max(&v, MAXS, MAXS);
        assert_true(v.max_h == MAXS && v.max_w == MAXS);
        for (size_t s = 0; s < ARRAY_LEN(sizes); s++) {
            int h = sizes[s][0], w = sizes[s][1], oh, ow;
            assert_true(augment_output_size(&list, h, w, &oh, &ow));
            struct augment f = init_ok(lists[l].t, lists[l].n, C, h, w);
            size_t numel = (size_t)C * oh * ow;
            assert_true(numel <= ARRAY_LEN(one));
            for (int k = 0; k < 5; k++) {
                run_sized(&f, src, h, w, key_of(k), one, numel);
                run_sized(&v, src, h, w, key_of(k), var, numel);
                if (memcmp(one, var, numel * sizeof *one))
                    fail_msg("list %zu, %d x %d, key %d: varying size gives other values", l, h,
                             w, k);
            }
        }
    }
    /* Fused window against the crop of the whole resize, on floats (exact: a crop moves
     * bytes / 255 as they are). */
    for (int interp = 0; interp < 2; interp++)
        for (int m = 1; m <= 12; m += 3)
            for (size_t s = 0; s < ARRAY_LEN(sizes); s++) {
                int h = sizes[s][0], w = sizes[s][1];
                struct spec_transform fused[] = {shorter(8), center(m)};
                struct spec_transform apart[] = {shorter(8), flip(0), center(m)};
                fused[0].interpolation = apart[0].interpolation = (enum spec_interp)interp;
                struct augment a = init_ok(fused, 2, C, h, w), b = init_ok(apart, 3, C, h, w);
                assert_true(a.lead == 2 && b.lead == 1);
                size_t numel = (size_t)C * m * m;
                run_sized(&a, src, h, w, 1, one, numel);
                run_sized(&b, src, h, w, 1, var, numel);
                if (memcmp(one, var, numel * sizeof *one))
                    fail_msg("%s resize(8) of %d x %d then center_crop(%d): the window differs "
                             "from the crop of the whole", interp ? "nearest" : "bilinear", h,
                             w, m);
            }
    /* Sides of unequal largest size: a wide thin image's shorter_side resize is longest. */
    struct augment v = init_ok(l4, 2, C, 0, 0);
    augment_set_input_max(&v, 10, 60);
    const int wide[][2] = {{1, 60}, {10, 60}, {3, 50}, {10, 1}};
    for (size_t s = 0; s < ARRAY_LEN(wide); s++) {
        int h = wide[s][0], w = wide[s][1], oh, ow;
        struct spec_list list = {l4, 2};
        assert_true(augment_output_size(&list, h, w, &oh, &ow));
        struct augment f = init_ok(l4, 2, C, h, w);
        run_sized(&f, src, h, w, 7, one, (size_t)C * oh * ow);
        run_sized(&v, src, h, w, 7, var, (size_t)C * oh * ow);
        assert_memory_equal(one, var, (size_t)C * oh * ow * sizeof *one);
    }
    /* A list of one size keeps its sizing. */
    struct augment f = init_ok(l1, 4, C, 23, 37);
    size_t before = f.scratch_floats;
    augment_set_input_max(&f, 500, 500);
    assert_int_equal(f.scratch_floats, before);
}

/* A list of two decoded-image steps against the steps one at a time, each from its own
 * buffer: the first's output made bytes again (exact: it holds byte / 255), then the second
 * alone (random_resized_crop: its box, augment_rrc_box as number 1 of the list, cut out by
 * hand and resized). So the steps move between the stage's buffers without one overwriting
 * what the next reads, and the coefficients fit their room. */
static void test_decoded_chain(void **state)
{
    (void)state;
    enum { C = 3, H = 41, W = 29 };
    static uint8_t src[C * H * W], mid[C * 64 * 64], box[C * 64 * 64];
    static float first[C * 64 * 64], whole[C * 64 * 64], two[C * 64 * 64];
    for (size_t i = 0; i < sizeof src; i++) src[i] = (uint8_t)(rng_bits(3, i) >> 56);
    struct spec_transform near31 = resize(31, SPEC_INTERP_NEAREST);
    struct spec_transform chains[][2] = {
        {resize(20, SPEC_INTERP_BILINEAR), shorter(8)},
        {center(30), rrc(12, 0.08, 1, 0.75, 4.0 / 3)},
        {rrc(24, 0.3, 1, 0.5, 2), center(20)},
        {resize(9, SPEC_INTERP_NEAREST), resize(31, SPEC_INTERP_BILINEAR)},
        {shorter(50), resize(13, SPEC_INTERP_BILINEAR)},
        {center(20), center(30)},
        {rrc(10, 0.5, 1, 1, 1), near31},
        {resize(12, SPEC_INTERP_BILINEAR), resize(12, SPEC_INTERP_BILINEAR)},
        {resize(29, SPEC_INTERP_BILINEAR), resize(13, SPEC_INTERP_BILINEAR)},
    };
    chains[1][1].interpolation = SPEC_INTERP_NEAREST;
    for (size_t l = 0; l < ARRAY_LEN(chains); l++)
        for (int k = 0; k < 4; k++) {
            struct augment a = init_ok(chains[l], 2, C, H, W);
            assert_int_equal(a.lead, 2);
            struct augment a1 = init_ok(&chains[l][0], 1, C, H, W);
            run_sized(&a1, src, H, W, key_of(k), first, (size_t)a1.out_numel);
            for (int64_t i = 0; i < a1.out_numel; i++)
                mid[i] = (uint8_t)lrintf(first[i] * 255.0f);
            int h = a1.out_h, w = a1.out_w;
            const struct spec_transform *t = &chains[l][1];
            if (t->kind == SPEC_TRANSFORM_RANDOM_RESIZED_CROP) {
                struct augment_box b = augment_rrc_box(&a, 1, key_of(k), h, w);
                int bh = b.y1 - b.y0, bw = b.x1 - b.x0;
                for (int ch = 0; ch < C; ch++)
                    for (int y = 0; y < bh; y++)
                        memcpy(box + (ch * bh + y) * bw, mid + (ch * h + b.y0 + y) * w + b.x0,
                               (size_t)bw);
                struct spec_transform r = resize(t->size, t->interpolation);
                struct augment a2 = init_ok(&r, 1, C, bh, bw);
                run_sized(&a2, box, bh, bw, 1, two, (size_t)a2.out_numel);
            } else {
                struct augment a2 = init_ok(t, 1, C, h, w);
                run_sized(&a2, mid, h, w, key_of(k), two, (size_t)a2.out_numel);
            }
            run_sized(&a, src, H, W, key_of(k), whole, (size_t)a.out_numel);
            if (memcmp(whole, two, (size_t)a.out_numel * sizeof *whole))
                fail_msg("chain %zu, key %d: the list differs from its steps one by one", l, k);
        }
}

/* The new transforms through the experiment file: shorthands, defaults, the resolved config
 * read back, and the ranges checked at their values. */
static void test_spec_transforms(void **state)
{
    (void)state;
    const char *text = "model: {graph: {input: [3, 8, 8], graph: []}}\n"
                       "optimizer: {type: sgd, lr: 1}\n"
                       "augment:\n"
                       "  train:\n"
                       "    - random_resized_crop: 224\n"
                       "    - resize: {size: 256, mode: shorter_side, interpolation: nearest}\n"
                       "    - center_crop: 200\n"
                       "  eval:\n"
                       "    - random_resized_crop: {size: 8, scale: [0.5, 0.75], ratio: [1, 2]}\n";
    struct diag d = {.out = stderr};
    struct spec *s, *back;
    assert_int_equal(spec_load_text("mem/aug.yaml", text, strlen(text), NULL, 0, &d, &s),
                     STATUS_OK);
    const struct spec_transform *t = s->augment.train.v, *e = s->augment.eval.v;
    assert_int_equal(t[0].kind, SPEC_TRANSFORM_RANDOM_RESIZED_CROP);
    assert_int_equal(t[0].size, 224);
    assert_true(t[0].scale[0] == 0.08 && t[0].scale[1] == 1.0);
    assert_true(t[0].ratio[0] == 0.75 && t[0].ratio[1] == 4.0 / 3.0); /* torchvision's 4/3 */
    assert_int_equal(t[0].interpolation, SPEC_INTERP_BILINEAR);
    assert_int_equal(t[1].kind, SPEC_TRANSFORM_RESIZE);
    assert_int_equal(t[1].mode, SPEC_RESIZE_SHORTER_SIDE);
    assert_int_equal(t[1].interpolation, SPEC_INTERP_NEAREST);
    assert_int_equal(t[2].kind, SPEC_TRANSFORM_CENTER_CROP);
    assert_int_equal(t[2].size, 200);
    assert_true(e[0].scale[0] == 0.5 && e[0].ratio[1] == 2);
    char *yaml = spec_yaml_text(s);
    assert_non_null(strstr(yaml, "random_resized_crop: {size: 224, scale: [0.08, 1], ratio: "
                                 "[0.75, 1.3333333333333333], interpolation: bilinear}"));
    assert_int_equal(spec_load_text("mem/back.yaml", yaml, strlen(yaml), NULL, 0, &d, &back),
                     STATUS_OK);
    const struct spec_transform *bt = back->augment.train.v;
    assert_memory_equal(bt[0].ratio, t[0].ratio, sizeof t[0].ratio);
    assert_int_equal(bt[1].mode, SPEC_RESIZE_SHORTER_SIDE);
    assert_int_equal(bt[2].size, 200);
    spec_free(back);
    free(yaml);
    spec_free(s);
    /* A resize written without a mode is square. */
    const char *plain = "model: {graph: {input: [3, 8, 8], graph: []}}\n"
                        "optimizer: {type: sgd, lr: 1}\n"
                        "augment: {eval: [resize: 16]}\n";
    assert_int_equal(spec_load_text("mem/p.yaml", plain, strlen(plain), NULL, 0, &d, &s),
                     STATUS_OK);
    assert_int_equal(((const struct spec_transform *)s->augment.eval.v)[0].mode,
                     SPEC_RESIZE_SQUARE);
    spec_free(s);

    /* Reversed ranges: errors at the values, in either list. */
    const char *bad = "model: {graph: {input: [3, 8, 8], graph: []}}\n"
                      "optimizer: {type: sgd, lr: 1}\n"
                      "augment:\n"
                      "  train:\n"
                      "    - random_resized_crop: {size: 8, scale: [0.9, 0.1]}\n"
                      "  eval:\n"
                      "    - hflip\n"
                      "    - random_resized_crop: {size: 8, ratio: [2, 1]}\n"
                      "    - random_resized_crop: {size: 8, scale: [0, 1]}\n";
    char *msgs = NULL;
    size_t len;
    FILE *mem = open_memstream(&msgs, &len);
    struct diag bd = {.out = mem};
    assert_int_equal(spec_load_text("mem/bad.yaml", bad, strlen(bad), NULL, 0, &bd, &s),
                     STATUS_CONFIG);
    fclose(mem);
    assert_null(s);
    /* 0 is outside (0, 1]: the schema's bound, at the element. */
    has(msgs, "mem/bad.yaml:9:46: error: 'augment.eval[2].random_resized_crop.scale[0]' must be "
              "a number in (0, 1], got 0");
    free(msgs);
    const char *reversed = "model: {graph: {input: [3, 8, 8], graph: []}}\n"
                           "optimizer: {type: sgd, lr: 1}\n"
                           "augment:\n"
                           "  train:\n"
                           "    - random_resized_crop: {size: 8, scale: [0.9, 0.1]}\n"
                           "  eval:\n"
                           "    - hflip\n"
                           "    - random_resized_crop: {size: 8, ratio: [2, 1]}\n";
    msgs = NULL;
    mem = open_memstream(&msgs, &len);
    bd = (struct diag){.out = mem};
    assert_int_equal(spec_load_text("mem/bad.yaml", reversed, strlen(reversed), NULL, 0, &bd, &s),
                     STATUS_CONFIG);
    fclose(mem);
    has(msgs, "mem/bad.yaml:5:45: error: random_resized_crop: scale [0.9, 0.1] is not a range "
              "(lo > hi)");
    has(msgs, "mem/bad.yaml:8:45: error: random_resized_crop: ratio [2, 1] is not a range "
              "(lo > hi)");
    has(msgs, "hint: write [lo, hi] with 0 < lo <= hi <= 1");
    free(msgs);
}

/* --------------------------------------------------------------------------------------- */
/* Batches */

#define N 8

/* Reads lam and the pairing back from targets of labels 0..n-1 (one class per image):
 * perm[i] is the other class of row i, or i when the row is one-hot. Every row sums to 1.
 * Returns lam, or -1 when every row is one-hot. */
static float read_targets(const float *targets, int n, int64_t *perm)
{
    float lam = -1;
    for (int i = 0; i < n; i++) {
        const float *row = targets + i * n;
        float sum = 0;
        perm[i] = i;
        for (int k = 0; k < n; k++) {
            sum += row[k];
            if (k != i && row[k] != 0) perm[i] = k;
        }
        assert_float_equal(sum, 1, 1e-6);
        if (perm[i] == i) {
            assert_true(row[i] == 1.0f);
            continue;
        }
        if (lam < 0) lam = row[i];
        assert_true(row[i] == lam);
        assert_float_equal(row[perm[i]], 1 - lam, 1e-6);
    }
    bool used[N] = {false};
    for (int i = 0; i < n; i++) {
        assert_false(used[perm[i]]); /* a permutation */
        used[perm[i]] = true;
    }
    return lam;
}

static void test_batch_none(void **state)
{
    (void)state;
    struct spec_transform t = flip(0.5);
    struct augment a = init_ok(&t, 1, 1, 2, 2);
    assert_false(a.mixup || a.cutmix);
    const int32_t labels[3] = {2, 0, 1};
    float x[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, targets[9];
    assert_false(augment_batch(&a, x, labels, 3, 3, 5, targets));
    const float want[9] = {0, 0, 1, 1, 0, 0, 0, 1, 0};
    assert_memory_equal(targets, want, sizeof want);
    for (int i = 0; i < 12; i++) assert_true(x[i] == (float)(i + 1));
}

static void test_mixup(void **state)
{
    (void)state;
    struct spec_transform t = mix(SPEC_TRANSFORM_MIXUP, 1, 1);
    struct augment a = init_ok(&t, 1, 1, 2, 3);
    assert_true(a.mixup && !a.cutmix);
    int32_t labels[N];
    for (int i = 0; i < N; i++) labels[i] = i;
    float x[N * 6], targets[N * N], lams[30];
    int nlam = 0, moved = 0;
    for (int b = 0; b < 30; b++) {
        for (int i = 0; i < N * 6; i++) x[i] = (float)(i / 6); /* image i: all i */
        assert_true(augment_batch(&a, x, labels, N, N, augment_key(1, 0, -1 - b), targets));
        int64_t perm[N];
        float lam = read_targets(targets, N, perm);
        for (int i = 0; i < N; i++) {
            moved += perm[i] != i;
            float want = perm[i] == i ? (float)i : lam * i + (1 - lam) * perm[i];
            for (int k = 0; k < 6; k++) assert_float_equal(x[i * 6 + k], want, 1e-5);
        }
        if (lam >= 0) lams[nlam++] = lam;
    }
    assert_true(moved > 100 && nlam > 25);
    int distinct = 0;
    for (int i = 1; i < nlam; i++) distinct += lams[i] != lams[i - 1];
    assert_true(distinct > 20);
}

static void test_cutmix(void **state)
{
    (void)state;
    enum { C = 2, H = 8, W = 8, P = H * W };
    struct spec_transform t = mix(SPEC_TRANSFORM_CUTMIX, 1, 1);
    struct augment a = init_ok(&t, 1, C, H, W);
    assert_true(a.cutmix && !a.mixup);
    int32_t labels[N];
    for (int i = 0; i < N; i++) labels[i] = i;
    static float x[N * C * P];
    float targets[N * N];
    int boxes = 0;
    for (int b = 0; b < 40; b++) {
        for (int i = 0; i < N * C * P; i++) x[i] = (float)(i / (C * P));
        assert_true(augment_batch(&a, x, labels, N, N, augment_key(2, 0, -1 - b), targets));
        int64_t perm[N];
        float lam = read_targets(targets, N, perm);
        int box[4] = {-1, -1, -1, -1}; /* y0 y1 x0 x1 of the pasted pixels, the same for all */
        for (int i = 0; i < N; i++) {
            int y0 = H, y1 = -1, x0 = W, x1 = -1, count = 0;
            for (int ch = 0; ch < C; ch++)
                for (int p = 0; p < P; p++) {
                    float v = x[(i * C + ch) * P + p];
                    if (v == (float)i && perm[i] != i) continue;
                    assert_true(v == (float)perm[i]);
                    if (perm[i] == i || ch) continue;
                    count++;
                    int y = p / W, xx = p % W;
                    y0 = y < y0 ? y : y0;
                    y1 = y > y1 ? y : y1;
                    x0 = xx < x0 ? xx : x0;
                    x1 = xx > x1 ? xx : x1;
                }
            if (perm[i] == i) continue;
            /* Every pasted pixel in both channels (the loop above checked values). */
            for (int p = 0; p < P; p++)
                assert_true((x[(i * C) * P + p] == (float)perm[i]) ==
                            (x[(i * C + 1) * P + p] == (float)perm[i]));
            assert_int_equal(count, (int)lroundf((1 - lam) * P));
            if (count == 0) continue;
            assert_int_equal(count, (y1 - y0 + 1) * (x1 - x0 + 1)); /* a rectangle */
            /* Unclipped, a side is twice the reference code's cut_w // 2: even. */
            if (y0 > 0 && y1 < H - 1) assert_int_equal((y1 - y0 + 1) % 2, 0);
            if (x0 > 0 && x1 < W - 1) assert_int_equal((x1 - x0 + 1) % 2, 0);
            if (box[0] < 0) {
                box[0] = y0;
                box[1] = y1;
                box[2] = x0;
                box[3] = x1;
                boxes++;
            }
            assert_true(box[0] == y0 && box[1] == y1 && box[2] == x0 && box[3] == x1);
        }
    }
    assert_true(boxes > 20);
}

/* Both listed: each batch one or the other; p decides whether at all. */
static void test_mix_choice(void **state)
{
    (void)state;
    struct spec_transform t[] = {mix(SPEC_TRANSFORM_MIXUP, 1, 1),
                                 mix(SPEC_TRANSFORM_CUTMIX, 1, 1)};
    struct augment a = init_ok(t, 2, 1, 4, 4);
    int32_t labels[N];
    for (int i = 0; i < N; i++) labels[i] = i;
    float x[N * 16], targets[N * N];
    int blends = 0, pastes = 0;
    for (int b = 0; b < 200; b++) {
        for (int i = 0; i < N * 16; i++) x[i] = (float)(i / 16);
        assert_true(augment_batch(&a, x, labels, N, N, augment_key(3, 0, -1 - b), targets));
        bool frac = false, two = false;
        for (int i = 0; i < N * 16; i++) {
            frac |= x[i] != floorf(x[i]);
            two |= x[i] != x[i / 16 * 16];
        }
        assert_false(frac && two);
        blends += frac;
        pastes += two;
    }
    assert_in_range(blends, 60, 140);
    assert_in_range(pastes, 60, 140);

    /* p = 0: never, one-hot; p = 0.5: about half the batches. */
    t[0].p = t[1].p = 0;
    for (int b = 0; b < 50; b++) {
        for (int i = 0; i < N * 16; i++) x[i] = (float)(i / 16);
        assert_false(augment_batch(&a, x, labels, N, N, augment_key(3, 0, -1 - b), targets));
        for (int i = 0; i < N * N; i++) assert_true(targets[i] == (i / N == i % N ? 1.0f : 0));
        for (int i = 0; i < N * 16; i++) assert_true(x[i] == (float)(i / 16));
    }
    t[0].p = t[1].p = 0.5;
    int mixed = 0;
    for (int b = 0; b < 400; b++)
        mixed += augment_batch(&a, x, labels, N, N, augment_key(4, 0, -1 - b), targets);
    assert_in_range(mixed, 160, 240);
}

static void test_beta(void **state)
{
    (void)state;
    const double alphas[] = {0.2, 1, 2};
    for (size_t k = 0; k < ARRAY_LEN(alphas); k++) {
        double alpha = alphas[k], sum = 0, sq = 0;
        enum { DRAWS = 20000 };
        for (uint64_t i = 0; i < DRAWS; i++) {
            double v = augment_beta(alpha, 99, i);
            assert_true(v >= 0 && v <= 1);
            sum += v;
            sq += v * v;
        }
        double mean = sum / DRAWS, var = sq / DRAWS - mean * mean;
        double want = 1 / (4 * (2 * alpha + 1)); /* 1/12 for alpha 1 */
        if (fabs(mean - 0.5) > 0.01 || fabs(var - want) > 0.05 * want)
            fail_msg("Beta(%g, %g): mean %g, variance %g (expected 0.5, %g)", alpha, alpha,
                     mean, var, want);
    }
    assert_true(augment_beta(0.4, 5, 6) == augment_beta(0.4, 5, 6));
    assert_true(augment_beta(0.4, 5, 6) != augment_beta(0.4, 5, 7));
}

static void test_hflip_batch(void **state)
{
    (void)state;
    /* Two images of 2 channels x 2 rows x 3. */
    float x[24];
    for (int i = 0; i < 24; i++) x[i] = (float)i;
    augment_hflip_batch(x, 2, 2, 2, 3);
    const float want[24] = {2,  1,  0,  5,  4,  3,  8,  7,  6,  11, 10, 9,
                            14, 13, 12, 17, 16, 15, 20, 19, 18, 23, 22, 21};
    assert_memory_equal(x, want, sizeof want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_to_floats),
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_crop_zero),
        cmocka_unit_test(test_crop_reflect),
        cmocka_unit_test(test_crop_draws_independent),
        cmocka_unit_test(test_hflip),
        cmocka_unit_test(test_cutout),
        cmocka_unit_test(test_resize_bilinear),
        cmocka_unit_test(test_resize_nearest),
        cmocka_unit_test(test_decoded_bilinear),
        cmocka_unit_test(test_decoded_nearest),
        cmocka_unit_test(test_center_crop),
        cmocka_unit_test(test_rrc_boxes),
        cmocka_unit_test(test_rrc_fallback),
        cmocka_unit_test(test_rrc_output),
        cmocka_unit_test(test_output_size),
        cmocka_unit_test(test_varying_init),
        cmocka_unit_test(test_varying_images),
        cmocka_unit_test(test_decoded_chain),
        cmocka_unit_test(test_spec_transforms),
        cmocka_unit_test(test_order),
        cmocka_unit_test(test_chain),
        cmocka_unit_test(test_init_errors),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_batch_none),
        cmocka_unit_test(test_mixup),
        cmocka_unit_test(test_cutmix),
        cmocka_unit_test(test_mix_choice),
        cmocka_unit_test(test_beta),
        cmocka_unit_test(test_hflip_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
