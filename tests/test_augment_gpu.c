/*
 * test_augment_gpu.c: the GPU augmentation's functions (augment_gpu.h) run on the CPU against
 * augment_image (augment.c). For the usual CIFAR lists (crop with zero and reflection
 * padding, hflip, cutout, normalize, the empty list), for lists whose order matters
 * (normalize before a padded crop, cutout before a crop, crops in a row) and for random lists
 * on random image shapes, every output pixel built from augment_gpu_choices and augment_gpu_pixel, in
 * the kernel's NHWC layout with padding channels, must equal augment_image's NCHW output bit
 * for bit; the draws must actually vary (flips, cutouts and crop offsets both ways).
 * augment_compile_gpu must refuse resize, mixup, cutmix and over-long lists with a reason.
 * Runs without a GPU.
 */
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

/* CIFAR-10's usual statistics: values whose float rounding matters. */
static struct spec_transform cifar_norm(void)
{
    return norm(0.4914, 0.4822, 0.4465, 0.2470, 0.2435, 0.2616);
}

static struct augment_gpu_plan compile_ok(const struct augment *a)
{
    struct augment_gpu_plan p;
    char why[256];
    if (!augment_compile_gpu(a, &p, why, sizeof why))
        fail_msg("augment_compile_gpu refused a list it runs: %s", why);
    assert_string_equal(why, "");
    return p;
}

/* How often the draws went each way, over all images of a check. */
struct seen {
    int flip[2], cutout[2]; /* [off, on] */
    int zero_pixels;        /* outputs set to zero by padding or cutout */
    int offsets;            /* distinct crop offsets of the first crop (bit set) */
    uint64_t offset_bits;
};

/*
 * n images of shape (c, h, w) with random bytes through the list t[0..nt): augment_image's
 * output (NCHW) against the plan's functions written as the kernel writes them (NHWC, cpad
 * channels, the extra ones zero), compared as bits. Keys are augment_key(seed, epoch, i) for
 * some images and raw random keys for others.
 */
static struct seen check_list(const char *name, const struct spec_transform *t, size_t nt,
                              int c, int h, int w, int n, uint64_t seed)
{
    struct augment a = init_ok(t, nt, c, h, w);
    struct augment_gpu_plan p = compile_ok(&a);
    assert_int_equal(p.out_h, a.out_h);
    assert_int_equal(p.out_w, a.out_w);
    int oh = a.out_h, ow = a.out_w, cpad = c + 1;
    size_t in = (size_t)c * h * w, numel = (size_t)a.out_numel;
    uint8_t *src = malloc(in);
    float *cpu = malloc(numel * sizeof *cpu), *scratch = malloc(a.scratch_floats * sizeof *scratch);
    float *gpu = malloc((size_t)oh * ow * cpad * sizeof *gpu);
    assert_non_null(src);
    assert_non_null(cpu);
    assert_non_null(scratch);
    assert_non_null(gpu);
    struct seen s = {0};
    for (int img = 0; img < n; img++) {
        for (size_t i = 0; i < in; i++) src[i] = (uint8_t)(rng_bits(seed ^ 0x5eed, img * in + i) >> 56);
        uint64_t key = img % 2 ? augment_key(seed, img / 7, img) : rng_bits(seed, (uint64_t)img);
        augment_image(&a, src, key, cpu, scratch);

        struct augment_gpu_image ch;
        augment_gpu_choices(&p, key, &ch);
        for (int y = 0; y < oh; y++)
            for (int x = 0; x < ow; x++)
                for (int k = 0; k < cpad; k++)
                    gpu[((size_t)y * ow + x) * cpad + k] =
                        k < c ? augment_gpu_pixel(&p, &ch, src, k, y, x) : 0.0f;

        for (int k = 0; k < cpad; k++)
            for (int y = 0; y < oh; y++)
                for (int x = 0; x < ow; x++) {
                    float g = gpu[((size_t)y * ow + x) * cpad + k];
                    float want = k < c ? cpu[((size_t)k * oh + y) * ow + x] : 0.0f;
                    if (memcmp(&g, &want, sizeof g) != 0)
                        fail_msg("%s, image %d (key %llx), channel %d, pixel (%d, %d): the GPU "
                                 "functions give %.9g, augment_image %.9g (bits must match)",
                                 name, img, (unsigned long long)key, k, y, x, g, want);
                }

        for (int i = 0; i < p.n; i++) {
            if (p.step[i].kind == AUGMENT_GPU_HFLIP) s.flip[ch.step[i].on != 0]++;
            if (p.step[i].kind == AUGMENT_GPU_CUTOUT) s.cutout[ch.step[i].on != 0]++;
        }
        for (int i = 0; i < p.n; i++)
            if (p.step[i].kind == AUGMENT_GPU_CROP) {
                int pad = p.step[i].padding;
                unsigned bit = (unsigned)((ch.step[i].y0 + pad) * 8 + ch.step[i].x0 + pad) % 64;
                s.offset_bits |= 1ull << bit;
                break;
            }
        for (int y = 0; y < oh; y++)
            for (int x = 0; x < ow; x++) {
                int sy, sx;
                s.zero_pixels += augment_gpu_source(&p, &ch, y, x, &sy, &sx) >= 0;
            }
    }
    for (int b = 0; b < 64; b++) s.offsets += (s.offset_bits >> b) & 1;
    free(src);
    free(cpu);
    free(scratch);
    free(gpu);
    return s;
}

/* --------------------------------------------------------------------------------------- */
/* The CIFAR lists */

static void test_key(void **state)
{
    (void)state;
    for (int64_t i = -5; i < 200; i++)
        assert_true(augment_draw_key(7, i / 3, i) == augment_key(7, i / 3, i));
    assert_true(augment_draw_key(1, 0, 5) == rng_bits(rng_bits(1, 0), 5));
}

static void test_crop_zero(void **state)
{
    (void)state;
    struct spec_transform t[] = {crop(32, 4, SPEC_FILL_ZERO)};
    struct seen s = check_list("crop 32 pad 4 zero", t, 1, 3, 32, 32, 200, 1);
    assert_true(s.zero_pixels > 0);
    assert_true(s.offsets > 40); /* of 81 offsets, folded into 64 bits */
}

static void test_crop_reflect_flip(void **state)
{
    (void)state;
    struct spec_transform t[] = {crop(32, 4, SPEC_FILL_REFLECT), flip(0.5)};
    struct seen s = check_list("crop 32 pad 4 reflect, hflip", t, 2, 3, 32, 32, 200, 2);
    assert_int_equal(s.zero_pixels, 0);
    assert_true(s.flip[0] > 50 && s.flip[1] > 50);
    assert_true(s.offsets > 40);
}

static void test_crop_flip_norm_cutout(void **state)
{
    (void)state;
    struct spec_transform t[] = {crop(28, 0, SPEC_FILL_ZERO), flip(0.5), cifar_norm(),
                                 cut(8, 0.5)};
    struct seen s = check_list("crop 28, hflip, normalize, cutout 8", t, 4, 3, 32, 32, 200, 3);
    assert_true(s.flip[0] > 50 && s.flip[1] > 50);
    assert_true(s.cutout[0] > 50 && s.cutout[1] > 50);
    assert_true(s.zero_pixels > 0);
    assert_true(s.offsets > 15); /* 25 offsets */
    /* Always applied, and a square larger than half the image (clipped on every side). */
    t[3] = cut(8, 1);
    s = check_list("crop 28, hflip, normalize, cutout 8 p 1", t, 4, 3, 32, 32, 100, 4);
    assert_int_equal(s.cutout[0], 0);
    t[3] = cut(20, 1);
    check_list("crop 28, hflip, normalize, cutout 20 p 1", t, 4, 3, 32, 32, 100, 5);

    /* The plan: one step per transform, in order, each with its place and entering side. */
    struct augment a = init_ok(t, 4, 3, 32, 32);
    struct augment_gpu_plan p = compile_ok(&a);
    assert_int_equal(p.n, 4);
    assert_int_equal(p.c, 3);
    assert_int_equal(p.in_h, 32);
    assert_int_equal(p.out_h, 28);
    const int kinds[4] = {AUGMENT_GPU_CROP, AUGMENT_GPU_HFLIP, AUGMENT_GPU_NORMALIZE,
                          AUGMENT_GPU_CUTOUT};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(p.step[i].kind, kinds[i]);
        assert_int_equal(p.step[i].index, i);
        assert_int_equal(p.step[i].h, i == 0 ? 32 : 28);
    }
    assert_true(p.step[2].mean[1] == (float)0.4822 && p.step[2].std[2] == (float)0.2616);
}

static void test_normalize_alone(void **state)
{
    (void)state;
    struct spec_transform t[] = {cifar_norm()};
    check_list("normalize", t, 1, 3, 32, 32, 50, 6);
    /* Non-representable statistics, and zero means. */
    t[0] = norm(0.1, 0.7, 0, 0.3, 0.9, 1.0 / 3);
    check_list("normalize 0.1 0.7 0 / 0.3 0.9 1/3", t, 1, 3, 32, 32, 50, 7);
}

static void test_empty(void **state)
{
    (void)state;
    struct seen s = check_list("the empty list", NULL, 0, 3, 32, 32, 50, 8);
    assert_int_equal(s.zero_pixels, 0);
}

/* --------------------------------------------------------------------------------------- */
/* Order and composition */

static void test_order(void **state)
{
    (void)state;
    /* Normalize before a padded crop: the padding stays 0; after it: normalized. */
    struct spec_transform nc[] = {cifar_norm(), crop(32, 4, SPEC_FILL_ZERO), cifar_norm()};
    struct seen s = check_list("normalize, crop 32 pad 4, normalize", nc, 3, 3, 32, 32, 100, 9);
    assert_true(s.zero_pixels > 0);
    /* A cutout, then a crop that moves it, then a flip and another cutout. */
    struct spec_transform cc[] = {cut(10, 0.7), crop(30, 3, SPEC_FILL_REFLECT), flip(0.5),
                                  cifar_norm(), cut(6, 0.7)};
    check_list("cutout, crop reflect, hflip, normalize, cutout", cc, 5, 3, 32, 32, 200, 10);
    /* Crops in a row, flips between them, padding of padding. */
    struct spec_transform rr[] = {flip(0.5), crop(36, 4, SPEC_FILL_ZERO), flip(0.5),
                                  crop(30, 5, SPEC_FILL_REFLECT), crop(24, 2, SPEC_FILL_ZERO),
                                  flip(0.5)};
    check_list("hflip, crop 36, hflip, crop 30 reflect, crop 24, hflip", rr, 6, 3, 32, 32,
               200, 11);
}

/* Random lists on random (c, h, w): every composition of the four transforms the GPU runs. */
static void test_random_lists(void **state)
{
    (void)state;
    uint64_t r = 12345;
    for (int list = 0; list < 300; list++) {
        int c = 1 + (int)(rng_bits(r, 0) % 3), h = 2 + (int)(rng_bits(r, 1) % 11);
        int w = 2 + (int)(rng_bits(r, 2) % 11), nt = (int)(rng_bits(r, 3) % 7);
        struct spec_transform t[6];
        int ch = h, cw = w;
        char name[256];
        int len = snprintf(name, sizeof name, "random list %d on %d x %d x %d:", list, c, h, w);
        for (int i = 0; i < nt; i++) {
            uint64_t k = rng_bits(r, 100 + (uint64_t)i);
            double p = (double)(k >> 40 & 3) / 3; /* 0, 1/3, 2/3, 1 */
            switch (k % 4) {
            case 0: {
                int small = ch < cw ? ch : cw;
                bool reflect = (k >> 8 & 1) && small > 1;
                int pad = (int)((k >> 12) % (uint64_t)(reflect ? small : 4));
                int size = 1 + (int)((k >> 20) % (uint64_t)(small + 2 * pad));
                t[i] = crop(size, pad, reflect ? SPEC_FILL_REFLECT : SPEC_FILL_ZERO);
                ch = cw = size;
                len += snprintf(name + len, sizeof name - (size_t)len, " crop %d pad %d%s",
                                size, pad, reflect ? " reflect" : "");
                break;
            }
            case 1:
                t[i] = flip(p);
                len += snprintf(name + len, sizeof name - (size_t)len, " hflip %.2g", p);
                break;
            case 2: {
                int size = (int)((k >> 20) % 8);
                t[i] = cut(size, p);
                len += snprintf(name + len, sizeof name - (size_t)len, " cutout %d %.2g", size, p);
                break;
            }
            default:
                t[i] = norm((double)(k >> 24 & 255) / 255, 0.25, 0.7, 0.1 + (double)(k >> 32 & 15) / 7,
                            0.3, 1.7);
                len += snprintf(name + len, sizeof name - (size_t)len, " normalize");
            }
        }
        check_list(name, t, (size_t)nt, c, h, w, 12, r);
        r = rng_bits(r, 999);
    }
}

/* --------------------------------------------------------------------------------------- */
/* What stays on the CPU */

static void refused(const struct spec_transform *t, size_t n, const char *want)
{
    struct augment a = init_ok(t, n, 3, 32, 32);
    struct augment_gpu_plan p;
    char why[256] = "unchanged";
    if (augment_compile_gpu(&a, &p, why, sizeof why))
        fail_msg("augment_compile_gpu accepted a list needing \"%s\"", want);
    if (!strstr(why, want)) fail_msg("expected \"%s\" in the reason, got \"%s\"", want, why);
    /* No room for the reason: still refused, nothing written. */
    assert_false(augment_compile_gpu(&a, &p, NULL, 0));
}

static void test_refuses(void **state)
{
    (void)state;
    struct spec_transform rs[] = {crop(32, 4, SPEC_FILL_ZERO),
                                  {.kind = SPEC_TRANSFORM_RESIZE, .size = 64}};
    refused(rs, 2, "resize runs on the CPU");
    struct spec_transform mx[] = {crop(32, 4, SPEC_FILL_ZERO), flip(0.5),
                                  {.kind = SPEC_TRANSFORM_MIXUP, .alpha = 1, .p = 1}};
    refused(mx, 3, "mixup runs on the CPU");
    struct spec_transform cm[] = {{.kind = SPEC_TRANSFORM_CUTMIX, .alpha = 1, .p = 1}};
    refused(cm, 1, "cutmix runs on the CPU");
    struct spec_transform many[AUGMENT_GPU_MAX_STEPS + 1];
    for (int i = 0; i <= AUGMENT_GPU_MAX_STEPS; i++) many[i] = flip(0.5);
    refused(many, AUGMENT_GPU_MAX_STEPS + 1, "at most 16 transforms");
    (void)compile_ok(&(struct augment){.c = 3, .in_h = 32, .in_w = 32, .out_h = 32, .out_w = 32});
    struct augment a = init_ok(many, AUGMENT_GPU_MAX_STEPS, 3, 32, 32);
    struct augment_gpu_plan p = compile_ok(&a);
    assert_int_equal(p.n, AUGMENT_GPU_MAX_STEPS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key),
        cmocka_unit_test(test_crop_zero),
        cmocka_unit_test(test_crop_reflect_flip),
        cmocka_unit_test(test_crop_flip_norm_cutout),
        cmocka_unit_test(test_normalize_alone),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_order),
        cmocka_unit_test(test_random_lists),
        cmocka_unit_test(test_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
