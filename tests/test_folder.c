/*
 * test_folder.c: folder datasets (folder.c) and the image decoders (image.c), on folders this
 * test writes: PNG through libpng and JPEG through TurboJPEG with known pixels.
 *
 * Decoding: every PNG colour type (gray 1/8/16 bits, gray + alpha, palette with tRNS, RGB 8 and
 * 16 bits, RGBA, interlaced) gives the pixels written, alpha dropped and 16 bits cut to the
 * high byte; a JPEG of flat colour decodes within JPEG's rounding of it; a four-channel JPEG
 * becomes RGB by PIL's formula. (tests/test_image_pil.sh checks the same decodes against
 * PIL.) The folder: classes in byte order, files in torchvision's order (folder, then name),
 * other files ignored, val/ and test/ mapped by class name, the errors of each layout, every
 * bad file listed (empty, truncated PNG and JPEG, not an image, damaged header), data.skip_bad,
 * a damaged file that passes the probe failing in the loader with its path, and data.cache.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <png.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <turbojpeg.h>
#include <unistd.h>

#include "augment.h"
#include "data.h"
#include "folder.h"
#include "image.h"
#include "loader.h"
#include "model.h"
#include "spec.h"
#include "test_util.h"

TMPDIR_FIXTURE("test_folder")

/* --------------------------------------------------------------------------------------- */
/* Writing images */

static void mkdirs(const char *path)
{
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", path);
    if (system(cmd)) abort();
}

/* A PNG of w x h, colour type `type`, `bits` per sample, from rows of samples (16-bit
 * samples big-endian), optionally interlaced, with a palette and tRNS when given. */
static void write_png(const char *path, int w, int h, int type, int bits, const uint8_t *data,
                      bool interlace, const png_color *pal, int npal, const uint8_t *trns,
                      int ntrns)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) fail_msg("libpng failed writing %s", path);
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, bits, type,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (pal) png_set_PLTE(png, info, pal, npal);
    if (trns) png_set_tRNS(png, info, trns, ntrns, NULL);
    png_write_info(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    png_bytep *rows = malloc((size_t)h * sizeof *rows);
    for (int y = 0; y < h; y++) rows[y] = (png_bytep)data + (size_t)y * rowbytes;
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    fclose(f);
}

/* An 8-bit RGB PNG from planar pixels. */
static void write_rgb_png(const char *path, int w, int h, const uint8_t *planar)
{
    size_t plane = (size_t)w * h;
    uint8_t *rgb = malloc(3 * plane);
    for (size_t i = 0; i < plane; i++)
        for (int c = 0; c < 3; c++) rgb[3 * i + c] = planar[c * plane + i];
    write_png(path, w, h, PNG_COLOR_TYPE_RGB, 8, rgb, false, NULL, 0, NULL, 0);
    free(rgb);
}

/* A JPEG of interleaved pixels in format pf (TJPF_RGB, TJPF_GRAY, TJPF_CMYK). */
static void write_jpeg(const char *path, int w, int h, int pf, const uint8_t *px, int sub)
{
    tjhandle tj = tjInitCompress();
    unsigned char *jpg = NULL;
    unsigned long size = 0;
    assert_int_equal(tjCompress2(tj, px, w, w * tjPixelSize[pf], h, pf, &jpg, &size, sub, 95, 0),
                     0);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(jpg, 1, size, f), size);
    fclose(f);
    tjFree(jpg);
    tjDestroy(tj);
}

/* The pixel pattern of image `seed`: planar, w x h. */
static uint8_t *pattern(int w, int h, int seed)
{
    uint8_t *p = malloc(3 * (size_t)w * h);
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < w * h; i++) p[(size_t)c * w * h + i] = (uint8_t)(i * 7 + c * 50 + seed * 13);
    return p;
}

static uint8_t *decode(const char *path, struct image_info *info)
{
    char why[300];
    if (!image_probe_file(path, info, why, sizeof why)) fail_msg("%s: %s", path, why);
    uint8_t *out = malloc(3 * (size_t)info->w * info->h);
    if (!image_decode_file(path, info, out, why, sizeof why)) fail_msg("%s: %s", path, why);
    return out;
}

/* --------------------------------------------------------------------------------------- */
/* Decoding */

static void test_png_types(void **state)
{
    (void)state;
    enum { W = 5, H = 3, N = W * H };
    uint8_t g8[N], ga[2 * N], rgb[3 * N], rgba[4 * N], rgb16[6 * N], g16[2 * N], idx[N];
    uint8_t g1[H] = {0xa8, 0x50, 0xf8}; /* rows of 5 one-bit pixels, padded */
    for (int i = 0; i < N; i++) {
        g8[i] = (uint8_t)(i * 17);
        ga[2 * i] = (uint8_t)(i * 17);
        ga[2 * i + 1] = (uint8_t)(255 - i);
        for (int c = 0; c < 3; c++) {
            rgb[3 * i + c] = (uint8_t)(i * 11 + c * 70);
            rgba[4 * i + c] = (uint8_t)(i * 11 + c * 70);
            rgb16[6 * i + 2 * c] = (uint8_t)(i * 11 + c * 70); /* high byte */
            rgb16[6 * i + 2 * c + 1] = (uint8_t)(i * 3);       /* low byte, cut */
        }
        rgba[4 * i + 3] = (uint8_t)(i * 5);
        g16[2 * i] = (uint8_t)(i * 17);
        g16[2 * i + 1] = 0x7f;
        idx[i] = (uint8_t)(i % 3);
    }
    png_color pal[3] = {{10, 20, 30}, {200, 100, 0}, {1, 2, 3}};
    uint8_t trns[3] = {0, 128, 255};
    struct {
        const char *name;
        int type, bits;
        const uint8_t *data;
        bool interlace;
    } cases[] = {
        {"gray8.png", PNG_COLOR_TYPE_GRAY, 8, g8, false},
        {"gray16.png", PNG_COLOR_TYPE_GRAY, 16, g16, false},
        {"graya.png", PNG_COLOR_TYPE_GRAY_ALPHA, 8, ga, false},
        {"rgb.png", PNG_COLOR_TYPE_RGB, 8, rgb, false},
        {"rgb_interlaced.png", PNG_COLOR_TYPE_RGB, 8, rgb, true},
        {"rgb16.png", PNG_COLOR_TYPE_RGB, 16, rgb16, false},
        {"rgba.png", PNG_COLOR_TYPE_RGB_ALPHA, 8, rgba, false},
        {"palette.png", PNG_COLOR_TYPE_PALETTE, 8, idx, false},
        {"gray1.png", PNG_COLOR_TYPE_GRAY, 1, g1, false},
    };
    for (size_t k = 0; k < ARRAY_LEN(cases); k++) {
        const char *path = at(cases[k].name);
        bool pal_case = cases[k].type == PNG_COLOR_TYPE_PALETTE;
        write_png(path, W, H, cases[k].type, cases[k].bits, cases[k].data, cases[k].interlace,
                  pal_case ? pal : NULL, 3, pal_case ? trns : NULL, 3);
        struct image_info info;
        uint8_t *out = decode(path, &info);
        assert_int_equal(info.format, IMAGE_PNG);
        assert_int_equal(info.w, W);
        assert_int_equal(info.h, H);
        for (int i = 0; i < N; i++)
            for (int c = 0; c < 3; c++) {
                int want;
                switch (cases[k].type) {
                case PNG_COLOR_TYPE_GRAY:
                    want = cases[k].bits == 1 ? ((g1[i / W] >> (7 - i % W)) & 1) * 255
                                              : g8[i]; /* 16 bits: the high byte */
                    break;
                case PNG_COLOR_TYPE_GRAY_ALPHA: want = ga[2 * i]; break;
                case PNG_COLOR_TYPE_PALETTE:
                    want = c == 0 ? pal[idx[i]].red : c == 1 ? pal[idx[i]].green : pal[idx[i]].blue;
                    break;
                default: want = rgb[3 * i + c]; break;
                }
                if (out[c * N + i] != want)
                    fail_msg("%s: pixel %d channel %d is %d, expected %d", cases[k].name, i, c,
                             out[c * N + i], want);
            }
        free(out);
    }
}

static void test_jpeg(void **state)
{
    (void)state;
    enum { W = 16, H = 16, N = W * H };
    uint8_t rgb[3 * N], gray[N], cmyk[4 * N];
    for (int i = 0; i < N; i++) {
        memcpy(rgb + 3 * i, (uint8_t[]){200, 100, 50}, 3);
        gray[i] = 77;
        memcpy(cmyk + 4 * i, (uint8_t[]){30, 90, 150, 200}, 4);
    }
    write_jpeg(at("rgb.jpg"), W, H, TJPF_RGB, rgb, TJSAMP_420);
    write_jpeg(at("gray.JPEG"), W, H, TJPF_GRAY, gray, TJSAMP_GRAY);
    write_jpeg(at("cmyk.jpg"), W, H, TJPF_CMYK, cmyk, TJSAMP_444);
    struct image_info info;
    uint8_t *out = decode(at("rgb.jpg"), &info);
    assert_int_equal(info.format, IMAGE_JPEG);
    const int want_rgb[3] = {200, 100, 50};
    for (int i = 0; i < N; i++)
        for (int c = 0; c < 3; c++) /* flat colour: JPEG's rounding only */
            assert_true(abs(out[c * N + i] - want_rgb[c]) <= 2);
    free(out);
    out = decode(at("gray.JPEG"), &info);
    for (int i = 0; i < 3 * N; i++) assert_true(abs(out[i] - 77) <= 1);
    free(out);
    /* As PIL reads it: stored values inverted (Adobe), R = nk - C nk / 255 with C, nk the
     * stored values' complements: R = k' - (255 - c') k' / 255. */
    out = decode(at("cmyk.jpg"), &info);
    for (int c = 0; c < 3; c++) {
        int k = cmyk[3], v = cmyk[c];
        int want = k - (255 - v) * k / 255;
        for (int i = 0; i < N; i++)
            if (abs(out[c * N + i] - want) > 2)
                fail_msg("cmyk: channel %d is %d, expected %d", c, out[c * N + i], want);
    }
    free(out);
}

/* Bytes of a file: written, truncated, damaged. */
static void put_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

static void truncate_file(const char *from, const char *to, double keep)
{
    uint8_t *data;
    size_t size;
    char why[200];
    assert_true(image_read_file(from, &data, &size, why, sizeof why));
    put_bytes(to, data, keep > 1 ? (size_t)keep : (size_t)(size * keep)); /* > 1: bytes */
    free(data);
}

static void expect_probe_error(const char *path, const char *part)
{
    struct image_info info;
    char why[300] = "";
    if (image_probe_file(path, &info, why, sizeof why)) fail_msg("%s passed the probe", path);
    if (!strstr(why, part)) fail_msg("%s: '%s' does not say '%s'", path, why, part);
}

static void test_bad_images(void **state)
{
    (void)state;
    uint8_t *p = pattern(40, 30, 1);
    write_rgb_png(at("good.png"), 40, 30, p);
    uint8_t rgb[3 * 64 * 64];
    for (size_t i = 0; i < sizeof rgb; i++) rgb[i] = (uint8_t)(i * 31);
    write_jpeg(at("good.jpg"), 64, 64, TJPF_RGB, rgb, TJSAMP_420);
    free(p);
    put_bytes(at("empty.png"), "", 0);
    put_bytes(at("text.png"), "hello, not an image\n", 20);
    truncate_file(at("good.png"), at("cut.png"), 0.6);
    truncate_file(at("good.jpg"), at("cut.jpg"), 0.6);
    truncate_file(at("good.png"), at("header_only.png"), 20); /* inside IHDR */
    expect_probe_error(at("empty.png"), "empty file");
    expect_probe_error(at("text.png"), "neither a PNG nor a JPEG");
    expect_probe_error(at("cut.png"), "truncated PNG");
    expect_probe_error(at("cut.jpg"), "truncated JPEG");
    expect_probe_error(at("header_only.png"), "corrupt PNG");
    expect_probe_error(at("missing.png"), "cannot open");

    /* Damaged in the middle, whole at both ends: passes the probe, fails the decode. */
    uint8_t *data;
    size_t size;
    char why[300];
    assert_true(image_read_file(at("good.png"), &data, &size, why, sizeof why));
    for (size_t i = size / 2; i < size / 2 + 16; i++) data[i] ^= 0x5a;
    put_bytes(at("damaged.png"), data, size);
    free(data);
    struct image_info info;
    assert_true(image_probe_file(at("damaged.png"), &info, why, sizeof why));
    uint8_t out[3 * 40 * 30];
    assert_false(image_decode_file(at("damaged.png"), &info, out, why, sizeof why));
    assert_non_null(strstr(why, "corrupt PNG"));

    /* A header claiming a huge image is refused before anything is allocated. */
    assert_true(image_read_file(at("good.png"), &data, &size, why, sizeof why));
    data[16] = 0x7f; /* IHDR width's high byte: about 2^30 */
    put_bytes(at("huge.png"), data, size);
    free(data);
    expect_probe_error(at("huge.png"), "PNG");

    /* A JPEG without a frame (tables only) has no image; TurboJPEG calls it 0 x 0. */
    put_bytes(at("tables.jpg"), "\xff\xd8\xff\xd9", 4);
    expect_probe_error(at("tables.jpg"), "no image in the file");

    /* A text chunk claiming 2 GB (found by tests/fuzz/fuzz_image.c) is skipped unread: libpng
     * would allocate and zero its length before reading it, so the peak RSS tells. */
    assert_true(image_read_file(at("good.png"), &data, &size, why, sizeof why));
    static const uint8_t text[] = {0x7e, 0xf6, 0x00, 0x0c, 't', 'E', 'X', 't', 'C', 'o', 'm'};
    uint8_t *big = malloc(size + sizeof text);
    memcpy(big, data, 33); /* the signature and IHDR */
    memcpy(big + 33, text, sizeof text);
    memcpy(big + 33 + sizeof text, data + 33, size - 33);
    put_bytes(at("big_text.png"), big, size + sizeof text);
    free(big);
    free(data);
    struct rusage before, after;
    getrusage(RUSAGE_SELF, &before);
    expect_probe_error(at("big_text.png"), "corrupt PNG");
    getrusage(RUSAGE_SELF, &after);
    if (after.ru_maxrss - before.ru_maxrss > 256 * 1024)
        fail_msg("probing big_text.png raised the peak RSS by %ld KB",
                 after.ru_maxrss - before.ru_maxrss);
}

/* --------------------------------------------------------------------------------------- */
/* Folders */

/* root/part/cls/name as a PNG of w x h with pattern `seed`. */
static void put_png(const char *root, const char *rel, int w, int h, int seed)
{
    char path[4200], dirp[4200];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    snprintf(dirp, sizeof dirp, "%s", path);
    *strrchr(dirp, '/') = '\0';
    mkdirs(dirp);
    uint8_t *p = pattern(w, h, seed);
    write_rgb_png(path, w, h, p);
    free(p);
}

static enum status load_folder(const char *root, const char *extra, struct data *out,
                               char **msgs)
{
    char text[4096];
    snprintf(text, sizeof text, "name: t\nmodel: {graph: {layers: [{name: fc, op: linear, out: "
             "2}]}}\noptimizer: {type: sgd, lr: 0.1}\ndata: {dataset: folder, root: '%s'%s}\n",
             root, extra ? extra : "");
    size_t len;
    FILE *mem = open_memstream(msgs, &len);
    struct diag d = {.out = mem};
    struct spec *s = NULL;
    enum status st = spec_load_text(at("exp.yaml"), text, strlen(text), NULL, 0, &d, &s);
    if (!st) st = folder_load(s, &d, out);
    fclose(mem);
    spec_free(s);
    return st;
}

static void expect_in(const char *msgs, const char *part)
{
    if (!strstr(msgs, part)) fail_msg("the messages do not say '%s':\n%s", part, msgs);
}

static void test_order(void **state)
{
    (void)state;
    char root[4096];
    snprintf(root, sizeof root, "%s", at("order"));
    /* Classes sorted by bytes: "B" < "a" < "a b" < "b"; files by folder then name. */
    put_png(root, "train/b/2.png", 4, 4, 1);
    put_png(root, "train/b/10.png", 4, 4, 2);
    put_png(root, "train/a/z.png", 4, 4, 3);
    put_png(root, "train/a/sub/a.png", 4, 4, 4);
    put_png(root, "train/a/sub b/c.png", 4, 4, 5);
    put_png(root, "train/B/x.PNG", 6, 2, 6);
    put_png(root, "train/a b/q.png", 4, 4, 7);
    write_file(at("order/train/a"), "notes.txt", "ignored\n");
    put_png(root, "val/b/v.png", 4, 4, 8);
    struct data c;
    char *msgs = NULL;
    assert_int_equal(load_folder(root, NULL, &c, &msgs), STATUS_OK);
    assert_int_equal(c.classes, 4);
    const char *names[] = {"B", "a", "a b", "b"};
    for (int i = 0; i < 4; i++) assert_string_equal(c.class_names[i], names[i]);
    const char *files[] = {"B/x.PNG", "a/z.png", "a/sub/a.png", "a/sub b/c.png", "a b/q.png",
                           "b/10.png", "b/2.png"};
    const int labels[] = {0, 1, 1, 1, 2, 3, 3};
    assert_int_equal(c.train.n, 7);
    for (int i = 0; i < 7; i++) {
        char want[4200];
        snprintf(want, sizeof want, "%s/train/%s", root, files[i]);
        assert_string_equal(c.train.files[i], want);
        assert_int_equal(c.train.labels[i], labels[i]);
    }
    assert_int_equal(c.train.h, 0); /* 6 x 2 among 4 x 4: sizes differ */
    assert_int_equal(c.train.max_w, 6);
    assert_int_equal(c.train.max_h, 4);
    assert_int_equal(c.val.n, 1);
    assert_int_equal(c.val.labels[0], 3);
    assert_int_equal(c.val.h, 4);
    assert_int_equal(c.test.n, 1); /* no test/: val/ */
    assert_non_null(strstr(c.test_from, "val/"));
    /* The pixels of an image, through dataset_image. */
    uint8_t buf[3 * 6 * 4];
    const uint8_t *px;
    int h, w;
    char why[300];
    assert_true(dataset_image(&c.train, 0, buf, &px, &h, &w, why, sizeof why));
    assert_int_equal(w, 6);
    assert_int_equal(h, 2);
    uint8_t *want = pattern(6, 2, 6);
    assert_memory_equal(px, want, 3 * 6 * 2);
    free(want);
    data_free(&c);
    free(msgs);
}

static void test_layout_errors(void **state)
{
    (void)state;
    struct data c;
    char *msgs = NULL;
    assert_int_equal(load_folder(at("nowhere"), NULL, &c, &msgs), STATUS_CONFIG);
    expect_in(msgs, "cannot read the training images' folder");
    expect_in(msgs, "ROOT/train/<class>/");
    free(msgs);

    put_png(at("empty_class"), "train/cat/1.png", 4, 4, 1);
    mkdirs(at("empty_class/train/dog"));
    write_file(at("empty_class/train/dog"), "readme.txt", "no images\n");
    assert_int_equal(load_folder(at("empty_class"), NULL, &c, &msgs), STATUS_RUNTIME);
    expect_in(msgs, "train/dog/: no image in the class folder");
    free(msgs);

    put_png(at("stray"), "train/cat/1.png", 4, 4, 1);
    put_png(at("stray"), "test/cta/1.png", 4, 4, 1);
    assert_int_equal(load_folder(at("stray"), NULL, &c, &msgs), STATUS_RUNTIME);
    expect_in(msgs, "test/cta/: no class of this name");
    free(msgs);
}

static void test_bad_files(void **state)
{
    (void)state;
    char root[4096];
    snprintf(root, sizeof root, "%s", at("bad"));
    put_png(root, "train/a/1.png", 8, 8, 1);
    put_png(root, "train/a/2.png", 8, 8, 2);
    put_png(root, "train/b/1.png", 8, 8, 3);
    put_png(root, "train/b/2.png", 8, 8, 4);
    truncate_file(at("bad/train/a/1.png"), at("bad/train/a/cut.png"), 0.5);
    write_file(at("bad/train/b"), "fake.jpg", "not a jpeg at all");
    struct data c;
    char *msgs = NULL;
    assert_int_equal(load_folder(root, NULL, &c, &msgs), STATUS_RUNTIME);
    expect_in(msgs, "train/a/cut.png: truncated PNG");
    expect_in(msgs, "train/b/fake.jpg: neither a PNG nor a JPEG");
    expect_in(msgs, "2 images in");
    expect_in(msgs, "data.skip_bad: true");
    free(msgs);

    if (load_folder(root, ", skip_bad: true", &c, &msgs)) fail_msg("%s", msgs);
    expect_in(msgs, "warning: ");
    expect_in(msgs, "cut.png: truncated PNG");
    expect_in(msgs, "(left out: data.skip_bad)");
    assert_int_equal(c.skipped, 2);
    assert_int_equal(c.train.n, 4);
    assert_int_equal(c.train.h, 8);
    for (int64_t i = 0; i < c.train.n; i++) assert_null(strstr(c.train.files[i], "cut"));
    assert_non_null(strstr(c.test_from, "held out"));
    data_free(&c);
    free(msgs);

    /* A class whose every image is bad is an error even when skipping. */
    mkdirs(at("bad/train/c"));
    write_file(at("bad/train/c"), "only.png", "x");
    assert_int_equal(load_folder(root, ", skip_bad: true", &c, &msgs), STATUS_RUNTIME);
    expect_in(msgs, "train/c/: every image was left out");
    free(msgs);
}

/* A file damaged after the probe (or in the middle, where the probe does not look) stops the
 * loader, which names it. */
static void test_late_failure(void **state)
{
    (void)state;
    char root[4096];
    snprintf(root, sizeof root, "%s", at("late"));
    for (int i = 0; i < 6; i++) {
        char rel[64];
        snprintf(rel, sizeof rel, "train/%c/%d.png", 'a' + i % 2, i);
        put_png(root, rel, 8, 8, i);
    }
    struct data c;
    char *msgs = NULL;
    assert_int_equal(load_folder(root, NULL, &c, &msgs), STATUS_OK);
    free(msgs);
    /* Damage one after the probe. */
    uint8_t *data;
    size_t size;
    char why[300];
    assert_true(image_read_file(c.train.files[3], &data, &size, why, sizeof why));
    for (size_t i = size / 2; i < size / 2 + 8; i++) data[i] ^= 0xff;
    put_bytes(c.train.files[3], data, size);
    free(data);

    struct spec_list none = {0};
    struct augment aug;
    struct diag d = {.out = NULL};
    assert_int_equal(augment_init(&aug, &none, 3, 8, 8, &d), STATUS_OK);
    struct loader_config cfg = {.set = &c.train, .n = c.train.n, .aug = &aug, .batch = 2,
                                .workers = 2, .classes = 2};
    struct loader *l;
    assert_int_equal(loader_create(&cfg, &l), STATUS_OK);
    loader_start(l, 0);
    int batches = 0;
    while (loader_next(l)) batches++;
    assert_true(batches < 3);
    assert_non_null(loader_error(l));
    if (!strstr(loader_error(l), c.train.files[3]) || !strstr(loader_error(l), "corrupt PNG"))
        fail_msg("the loader's error: %s", loader_error(l));
    loader_free(l);
    data_free(&c);
}

static void test_cache(void **state)
{
    (void)state;
    char root[4096];
    snprintf(root, sizeof root, "%s", at("cached"));
    put_png(root, "train/a/1.png", 5, 4, 1);
    put_png(root, "train/b/1.png", 5, 4, 2);
    char extra[4200];
    snprintf(extra, sizeof extra, ", cache: '%s'", at("cache_dir"));
    struct data c;
    char *msgs = NULL;
    assert_int_equal(load_folder(root, extra, &c, &msgs), STATUS_OK);
    free(msgs);
    uint8_t buf[3 * 5 * 4];
    const uint8_t *px;
    int h, w;
    char why[300];
    assert_true(dataset_image(&c.train, 1, buf, &px, &h, &w, why, sizeof why));
    uint8_t *want = pattern(5, 4, 2);
    assert_memory_equal(px, want, sizeof buf);
    /* One entry, read back instead of the file: changing its pixels changes what comes. */
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -c '\\.rgb$' | grep -qx 1", at("cache_dir"));
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "f=$(ls '%s'/*.rgb) && printf 'Z' | dd of=\"$f\" bs=1 seek=$(( $(stat "
             "-c %%s \"$f\") - 1 )) conv=notrunc 2>/dev/null", at("cache_dir"));
    assert_int_equal(system(cmd), 0);
    assert_true(dataset_image(&c.train, 1, buf, &px, &h, &w, why, sizeof why));
    assert_int_equal(px[3 * 5 * 4 - 1], 'Z');
    /* A new modification time is a new key: the file is decoded again. */
    sleep(1);
    put_png(root, "train/b/1.png", 5, 4, 2);
    assert_true(dataset_image(&c.train, 1, buf, &px, &h, &w, why, sizeof why));
    assert_memory_equal(px, want, sizeof buf);
    free(want);
    data_free(&c);
}

/* Images of three sizes through random_resized_crop: every batch 3 x 16 x 16, in [0, 1]. And
 * a list that leaves the sizes differing is an error at its key when the experiment is
 * checked. */
static void test_mixed_sizes(void **state)
{
    (void)state;
    char root[4096];
    snprintf(root, sizeof root, "%s", at("mixed"));
    put_png(root, "train/a/1.png", 40, 30, 1);
    put_png(root, "train/a/2.png", 17, 60, 2);
    put_png(root, "train/b/1.png", 64, 64, 3);
    put_png(root, "train/b/2.png", 9, 11, 4);
    char text[8192];
    snprintf(text, sizeof text,
             "name: t\nmodel: {graph: {input: [3, 16, 16], layers: [{name: fc, op: linear, out: "
             "$classes}]}}\noptimizer: {type: sgd, lr: 0.1}\n"
             "data: {dataset: folder, root: '%s', val_split: 1}\n"
             "augment: {train: [{random_resized_crop: {size: 16}}, {hflip: 0.5}],\n"
             "          eval: [{resize: {size: 16, mode: shorter_side}}]}\n", root);
    struct diag quiet = {0};
    struct spec *s = NULL;
    assert_int_equal(spec_load_text(at("mixed.yaml"), text, strlen(text), NULL, 0, &quiet, &s),
                     STATUS_OK);
    /* eval: a shorter-side resize leaves 16 x N: an error at augment.eval */
    char *msgs;
    size_t len;
    FILE *mem = open_memstream(&msgs, &len);
    struct diag d = {.out = mem};
    struct graph *g = NULL;
    assert_int_equal(model_build(s, &d, &g), STATUS_CONFIG);
    fclose(mem);
    expect_in(msgs, "mixed.yaml:6:");
    expect_in(msgs, "augment.eval does not make the images one size");
    free(msgs);

    struct data c;
    d = (struct diag){.out = NULL};
    assert_int_equal(folder_load(s, &d, &c), STATUS_OK);
    assert_int_equal(c.train.h, 0);
    struct augment aug;
    assert_int_equal(augment_init(&aug, &s->augment.train, 3, 0, 0, &d), STATUS_OK);
    assert_int_equal(aug.out_h, 16);
    augment_set_input_max(&aug, c.train.max_h, c.train.max_w);
    struct loader_config cfg = {.set = &c.train, .n = c.train.n, .aug = &aug, .batch = 2,
                                .shuffle = true, .workers = 2, .classes = 2, .seed = 3};
    struct loader *l;
    assert_int_equal(loader_create(&cfg, &l), STATUS_OK);
    for (int epoch = 0; epoch < 3; epoch++) {
        loader_start(l, epoch);
        int batches = 0;
        for (const struct batch *b; (b = loader_next(l)); batches++)
            for (int64_t i = 0; i < 2 * 3 * 16 * 16; i++)
                assert_true(b->x[i] >= 0.0f && b->x[i] <= 1.0f);
        assert_int_equal(batches, 2);
        assert_null(loader_error(l));
    }
    loader_free(l);
    data_free(&c);
    spec_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_png_types),   cmocka_unit_test(test_jpeg),
        cmocka_unit_test(test_bad_images),  cmocka_unit_test(test_order),
        cmocka_unit_test(test_layout_errors), cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_late_failure), cmocka_unit_test(test_cache),
        cmocka_unit_test(test_mixed_sizes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
