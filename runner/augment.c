/*
 * augment.c: image transforms, per image and per batch; see augment.h. Covered by
 * tests/test_augment.c, and against torchvision by tests/parity/augment_torchvision.py
 * (through tests/augment_dump.c).
 *
 * Random numbers: transform number i of the list draws from counters i * 16 + j of its key
 * (j = 0, 1, ...), so adding or removing a transform leaves the draws of the others alone.
 * A batch key's counters: 0 which of mixup and cutmix, 1 whether to mix, 2 and 3 the cutmix
 * centre, 4 the key of the pairing, 5 the Beta draw (which keys its gammas with counters
 * 10 and 11).
 *
 * The per-image draws (the key, crop offsets, coins, cutout squares, random_resized_crop's
 * box, padding indices) are the inline functions of augment_draw.h, which the GPU path calls
 * too; augment_compile_gpu, the list as that path reads it, is at the end of this file.
 *
 * Scratch (augment_image's, the caller's): two float images the float transforms move
 * between, the resampling coefficients (int32), two byte images the decoded-image stage moves
 * between, and the bytes of a resize's horizontal pass, in that order; plan_scratch sizes
 * each part for the largest image that may enter.
 */
#include "augment.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "augment_gpu.h"
#include "rng.h"

static const char *const kind_names[] = {
    [SPEC_TRANSFORM_RANDOM_CROP] = "random_crop", [SPEC_TRANSFORM_HFLIP] = "hflip",
    [SPEC_TRANSFORM_CUTOUT] = "cutout",           [SPEC_TRANSFORM_NORMALIZE] = "normalize",
    [SPEC_TRANSFORM_RESIZE] = "resize",           [SPEC_TRANSFORM_MIXUP] = "mixup",
    [SPEC_TRANSFORM_CUTMIX] = "cutmix",           [SPEC_TRANSFORM_CENTER_CROP] = "center_crop",
    [SPEC_TRANSFORM_RANDOM_RESIZED_CROP] = "random_resized_crop",
};
_Static_assert(ARRAY_LEN(kind_names) == SPEC_TRANSFORM_RANDOM_RESIZED_CROP + 1,
               "a name for every transform");

static bool is_batch(enum spec_transform_kind k)
{
    return k == SPEC_TRANSFORM_MIXUP || k == SPEC_TRANSFORM_CUTMIX;
}

/* The transforms that write a new image rather than change the current one in place. */
static bool changes_shape(enum spec_transform_kind k)
{
    return k == SPEC_TRANSFORM_RANDOM_CROP || k == SPEC_TRANSFORM_RESIZE ||
           k == SPEC_TRANSFORM_CENTER_CROP || k == SPEC_TRANSFORM_RANDOM_RESIZED_CROP;
}

/* The transforms the decoded-image stage (the leading run) may hold. */
static bool is_decoded(enum spec_transform_kind k)
{
    return k == SPEC_TRANSFORM_RESIZE || k == SPEC_TRANSFORM_CENTER_CROP ||
           k == SPEC_TRANSFORM_RANDOM_RESIZED_CROP;
}

/* The transforms after which every image has one size, size x size. */
static bool fixes_size(const struct spec_transform *t)
{
    return t->kind == SPEC_TRANSFORM_RANDOM_CROP || t->kind == SPEC_TRANSFORM_CENTER_CROP ||
           t->kind == SPEC_TRANSFORM_RANDOM_RESIZED_CROP ||
           (t->kind == SPEC_TRANSFORM_RESIZE && t->mode == SPEC_RESIZE_SQUARE);
}

static long long max_ll(long long a, long long b)
{
    return a > b ? a : b;
}

static long long min_ll(long long a, long long b)
{
    return a < b ? a : b;
}

/* --------------------------------------------------------------------------------------- */
/* Sizes */

/* torchvision 0.14's _compute_resized_output_size for Resize(n): the shorter side (the width
 * when the sides are equal) becomes n, the other int(n * long / short), in double as Python's
 * true division. */
static void shorter_side(long long n, int h, int w, int *oh, int *ow)
{
    if (w <= h) {
        *ow = (int)n;
        *oh = (int)((double)(n * h) / (double)w);
    } else {
        *oh = (int)n;
        *ow = (int)((double)(n * w) / (double)h);
    }
}

/* The size after t of an h x w image (0 x 0: the size varies). */
static void next_size(const struct spec_transform *t, int *h, int *w)
{
    if (fixes_size(t))
        *h = *w = (int)t->size;
    else if (t->kind == SPEC_TRANSFORM_RESIZE && *h > 0)
        shorter_side(t->size, *h, *w, h, w);
}

bool augment_output_size(const struct spec_list *list, int h, int w, int *out_h, int *out_w)
{
    if (h <= 0 || w <= 0) h = w = 0;
    const struct spec_transform *t = list->v;
    for (size_t i = 0; i < list->n; i++) next_size(&t[i], &h, &w);
    *out_h = h;
    *out_w = w;
    return h > 0;
}

/* torchvision's CenterCrop along a side of n for a crop of s: the source index of the crop's
 * first pixel, negative where it pads ((s - n) // 2 zeros before the image), else
 * round((n - s) / 2.0) with Python's round, half to even. */
static int center_offset(int n, int s)
{
    if (s > n) return -((s - n) / 2);
    int d = n - s, k = d / 2;
    if (d % 2 && k % 2) k++;
    return k;
}

/*
 * What scratch must hold, as bounds on the image on the way: exact sides when known, else
 * (the images vary in size) the largest height, width and pixel count possible. A shorter_side
 * resize of unknown sides long x short makes n x int(n long / short): sides up to n times the
 * largest, n n max(bh, bw) pixels.
 */
struct extent {
    long long h, w;         /* 0 x 0 when the size varies */
    long long bh, bw, area; /* bounds */
};

static struct extent exact(long long h, long long w)
{
    return (struct extent){h, w, h, w, h * w};
}

/* The extent after resize t, and in *cells the bytes per channel of its horizontal pass
 * (source rows x output columns) when it is not fused with a crop. */
static struct extent resized(const struct spec_transform *t, struct extent e, long long *cells)
{
    long long n = t->size;
    if (t->mode == SPEC_RESIZE_SQUARE) {
        *cells = e.bh * n;
        return exact(n, n);
    }
    if (e.h > 0) {
        int oh, ow;
        shorter_side(n, (int)e.h, (int)e.w, &oh, &ow);
        *cells = e.h * ow;
        return exact(oh, ow);
    }
    /* Rows h times n long / h columns, or h rows (the longer side) times n. */
    *cells = n * max_ll(e.bh, e.bw);
    return (struct extent){0, 0, max_ll(n, n * e.bh), max_ll(n, n * e.bw),
                           n * max_ll(n, n * max_ll(e.bh, e.bw))};
}

/* Resampling coefficients, in int32s, of n outputs along an axis of in inputs: Pillow's
 * kernel has ksize = 2 ceil(max(in / out, 1)) + 1 <= 2 in / out + 3 taps, so n ksize <= 2 in
 * + 3 n (n <= out), plus each output's first tap and tap count. */
static long long coeff_ints(long long in, long long n)
{
    return 2 * in + 5 * n + 1;
}

/* Sizes a's scratch for the images entering it: a->in_h x a->in_w, else up to a->max_h x
 * a->max_w. */
static void plan_scratch(struct augment *a)
{
    long long c = a->c, floats = 0, bytes = 0, tmp = 0, coeff = 0;
    struct extent e = a->in_h > 0 ? exact(a->in_h, a->in_w)
                                   : (struct extent){0, 0, a->max_h, a->max_w,
                                                     (long long)a->max_h * a->max_w};
    size_t i = 0;
    for (; i < a->lead; i++) {
        const struct spec_transform *t = &a->t[i];
        long long n = t->size, cells;
        if (t->kind == SPEC_TRANSFORM_RESIZE) {
            struct extent o = resized(t, e, &cells);
            if (i + 1 < a->lead && a->t[i + 1].kind == SPEC_TRANSFORM_CENTER_CROP) {
                /* Only the crop's window is resampled. */
                long long m = a->t[i + 1].size, wh = min_ll(m, o.bh), ww = min_ll(m, o.bw);
                coeff = max_ll(coeff, coeff_ints(e.bh, wh) + coeff_ints(e.bw, ww));
                tmp = max_ll(tmp, c * e.bh * ww);
                o = exact(m, m);
                i++;
            } else {
                coeff = max_ll(coeff, coeff_ints(e.bh, o.bh) + coeff_ints(e.bw, o.bw));
                tmp = max_ll(tmp, c * cells);
            }
            e = o;
        } else {
            if (t->kind == SPEC_TRANSFORM_RANDOM_RESIZED_CROP) {
                coeff = max_ll(coeff, coeff_ints(e.bh, n) + coeff_ints(e.bw, n));
                tmp = max_ll(tmp, c * e.bh * n);
            }
            e = exact(n, n);
        }
        bytes = max_ll(bytes, c * e.area);
    }
    floats = c * e.area; /* the decoded image as floats */
    for (; i < a->n; i++) {
        const struct spec_transform *t = &a->t[i];
        long long cells;
        if (fixes_size(t))
            e = exact(t->size, t->size);
        else if (t->kind == SPEC_TRANSFORM_RESIZE)
            e = resized(t, e, &cells);
        floats = max_ll(floats, c * e.area);
    }
    a->float_half = (size_t)floats;
    a->coeff_ints = (size_t)coeff;
    a->byte_half = (size_t)bytes;
    a->byte_tmp = (size_t)tmp;
    a->scratch_floats = 2 * a->float_half + a->coeff_ints +
                        (2 * a->byte_half + a->byte_tmp + sizeof(float) - 1) / sizeof(float);
}

void augment_set_input_max(struct augment *a, int max_h, int max_w)
{
    if (a->in_h > 0) return;
    a->max_h = max_h > 0 ? max_h : 0;
    a->max_w = max_w > 0 ? max_w : 0;
    plan_scratch(a);
}

/* --------------------------------------------------------------------------------------- */
/* Checking the list */

/* One random_crop against the current h x w; errors at its mark. */
static void check_crop(const struct spec_transform *t, int h, int w, struct diag *d)
{
    if (h == 0) {
        diag_error(d, t->mark, "random_crop needs images of one size, but here they still "
                               "differ in size");
        diag_hint(d, "put a resize (mode: square), center_crop or random_resized_crop before "
                     "it, e.g. '- center_crop: %lld'", t->size);
        return;
    }
    long long p = t->padding, ph = h + 2 * p, pw = w + 2 * p;
    if (t->size > ph || t->size > pw) {
        diag_error(d, t->mark,
                   "random_crop of %lld x %lld does not fit the %d x %d image padded by %lld "
                   "(%lld x %lld)",
                   t->size, t->size, h, w, p, ph, pw);
        diag_hint(d, "use size <= %lld, or more padding", ph < pw ? ph : pw);
    }
    if (t->fill == SPEC_FILL_REFLECT && (p >= h || p >= w)) {
        diag_error(d, t->mark, "reflection padding of %lld needs a side larger than %lld; the "
                               "image is %d x %d here", p, p, h, w);
        diag_hint(d, "a mirror image without the edge has side - 1 pixels (as torchvision's "
                     "padding_mode=\"reflect\"); use less padding or fill: zero");
    }
}

enum status augment_init(struct augment *a, const struct spec_list *list, int c, int h, int w,
                         struct diag *d)
{
    if (h <= 0 || w <= 0) h = w = 0;
    *a = (struct augment){.t = list->v, .n = list->n, .c = c, .in_h = h, .in_w = w,
                          .max_h = h, .max_w = w};
    int before = d->errors;
    const struct spec_transform *batch = NULL; /* the first mixup or cutmix seen */
    bool leading = true;
    for (size_t i = 0; i < a->n; i++) {
        const struct spec_transform *t = &a->t[i];
        leading = leading && is_decoded(t->kind);
        if (leading) a->lead = i + 1;
        if (is_batch(t->kind)) {
            if (!batch) batch = t;
            if (t->kind == SPEC_TRANSFORM_MIXUP) a->mixup = true;
            else a->cutmix = true;
            if (h == 0) {
                diag_error(d, t->mark, "%s mixes images of one size, but here they still "
                                       "differ in size", kind_names[t->kind]);
                diag_hint(d, "fix the size before it: a resize (mode: square), center_crop, "
                             "random_resized_crop or random_crop");
            }
            continue;
        }
        if (batch) {
            diag_error(d, t->mark, "%s is listed after %s", kind_names[t->kind],
                       kind_names[batch->kind]);
            diag_hint(d, "%s works on whole batches; list it after every per-image transform",
                      kind_names[batch->kind]);
        }
        if (t->kind == SPEC_TRANSFORM_RANDOM_CROP) check_crop(t, h, w, d);
        if (t->kind == SPEC_TRANSFORM_NORMALIZE && c > 3)
            diag_error(d, t->mark, "normalize has a mean and std for 3 channels; the images "
                                   "have %d", c);
        next_size(t, &h, &w);
    }
    a->out_h = h;
    a->out_w = w;
    a->out_numel = (int64_t)c * h * w;
    plan_scratch(a);
    return d->errors == before ? STATUS_OK : STATUS_CONFIG;
}

uint64_t augment_key(uint64_t seed, int64_t epoch, int64_t index)
{
    return augment_draw_key(seed, epoch, index);
}

struct augment_box augment_rrc_box(const struct augment *a, size_t i, uint64_t key, int h,
                                   int w)
{
    const struct spec_transform *t = &a->t[i];
    return augment_draw_rrc_box(key, (uint64_t)i * 16, h, w, t->scale[0], t->scale[1],
                                t->ratio[0], t->ratio[1]);
}

/* --------------------------------------------------------------------------------------- */
/* The decoded-image stage: Pillow's resampling, on bytes */

/* Pillow 9.4's src/libImaging/Resample.c: 8 bits of result, 2 for overflow, the rest for the
 * fixed-point weights. */
#define PIL_BITS 22

/* Pillow's bilinear (triangle) filter, support 1. */
static double pil_triangle(double x)
{
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* Pillow's clip8 of a sum of bytes times weights: never negative with the triangle's weights. */
static uint8_t pil_clip8(int32_t ss)
{
    int32_t v = ss >> PIL_BITS;
    return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)v;
}

/* One axis of a bilinear resize from in to out, outputs [o0, o0 + n): output j reads count[j]
 * inputs from first[j] with the weights k[j * ksize ..]. */
struct pil_axis {
    int n, ksize;
    const int32_t *first, *count, *k;
};

/* Pillow's precompute_coeffs and normalize_coeffs_8bpc for the bilinear filter, into buf
 * (coeff_ints(in, n) int32s). The weights are computed twice, to sum them and then to divide
 * by the sum: the same doubles as Pillow's, which keeps them in between. Returns the end of
 * what it used. */
static int32_t *pil_axis_init(struct pil_axis *ax, int in, int out, int o0, int n, int32_t *buf)
{
    double scale = (double)in / out, filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filterscale, ss = 1.0 / filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    int32_t *first = buf, *count = buf + n, *k = buf + 2 * n;
    for (int j = 0; j < n; j++) {
        double center = (o0 + j + 0.5) * scale, ww = 0.0;
        int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5);
        if (xmin < 0) xmin = 0;
        if (xmax > in) xmax = in;
        xmax -= xmin;
        for (int x = 0; x < xmax; x++) ww += pil_triangle((x + xmin - center + 0.5) * ss);
        int32_t *kj = k + (size_t)j * ksize;
        for (int x = 0; x < xmax; x++) {
            double wt = pil_triangle((x + xmin - center + 0.5) * ss);
            if (ww != 0.0) wt /= ww;
            kj[x] = (int32_t)(0.5 + wt * (1 << PIL_BITS));
        }
        first[j] = xmin;
        count[j] = xmax;
    }
    *ax = (struct pil_axis){n, ksize, first, count, k};
    return k + (size_t)n * ksize;
}

/* A byte image of c planes: pixel (y, x) of plane ch at p[ch * plane + y * row + x]. */
struct bytes_in {
    const uint8_t *p;
    size_t row, plane;
};
struct bytes_out {
    uint8_t *p;
    size_t row, plane;
};

/* Pillow's horizontal pass over source rows [r0, r1): out row r - r0 of plane ch. */
static void pil_horizontal(struct bytes_in in, int c, int r0, int r1, const struct pil_axis *ax,
                           struct bytes_out out)
{
    for (int ch = 0; ch < c; ch++)
        for (int r = r0; r < r1; r++) {
            const uint8_t *src = in.p + ch * in.plane + (size_t)r * in.row;
            uint8_t *dst = out.p + ch * out.plane + (size_t)(r - r0) * out.row;
            for (int j = 0; j < ax->n; j++) {
                const int32_t *k = ax->k + (size_t)j * ax->ksize;
                const uint8_t *s = src + ax->first[j];
                int32_t ss = 1 << (PIL_BITS - 1);
                for (int x = 0; x < ax->count[j]; x++) ss += s[x] * k[x];
                dst[j] = pil_clip8(ss);
            }
        }
}

/* Pillow's vertical pass: output row j of columns [0, cols) from source rows first[j] - r0 ... */
static void pil_vertical(struct bytes_in in, int c, int r0, int cols, const struct pil_axis *ax,
                         struct bytes_out out)
{
    for (int ch = 0; ch < c; ch++)
        for (int j = 0; j < ax->n; j++) {
            const int32_t *k = ax->k + (size_t)j * ax->ksize;
            const uint8_t *src = in.p + ch * in.plane + (size_t)(ax->first[j] - r0) * in.row;
            uint8_t *dst = out.p + ch * out.plane + (size_t)j * out.row;
            for (int x = 0; x < cols; x++) {
                int32_t ss = 1 << (PIL_BITS - 1);
                for (int y = 0; y < ax->count[j]; y++) ss += src[(size_t)y * in.row + x] * k[y];
                dst[x] = pil_clip8(ss);
            }
        }
}

/* Pillow's NEAREST resize (ImagingScaleAffine): source column of output x is (int) of
 * (x + 0.5) w / ow, accumulated in double as Pillow adds the step; outside the image, zero. */
static void pil_nearest(struct bytes_in in, int c, int h, int w, int oh, int ow, int y0, int y1,
                        int x0, int x1, struct bytes_out out, int32_t *xin)
{
    double a0 = (double)w / ow, a4 = (double)h / oh, xo = a0 * 0.5, yo = a4 * 0.5;
    for (int x = 0; x < x1; x++, xo += a0) {
        int xi = xo < 0.0 ? -1 : (int)xo;
        if (x >= x0) xin[x - x0] = xi < w ? xi : -1;
    }
    for (int y = 0; y < y1; y++, yo += a4) {
        if (y < y0) continue;
        int yi = yo < 0.0 ? -1 : (int)yo;
        for (int ch = 0; ch < c; ch++) {
            uint8_t *dst = out.p + ch * out.plane + (size_t)(y - y0) * out.row;
            const uint8_t *src = in.p + ch * in.plane + (size_t)yi * in.row;
            for (int x = 0; x < x1 - x0; x++)
                dst[x] = yi >= 0 && yi < h && xin[x] >= 0 ? src[xin[x]] : 0;
        }
    }
}

/*
 * Pillow's Image.resize of the c x h x w bytes in to oh x ow, computing only the window rows
 * [y0, y1) x columns [x0, x1) of the result into out (the window's first pixel at out.p):
 * the same size is a copy; NEAREST; BILINEAR with only the passes whose side changes, the
 * horizontal one over just the source rows the vertical one reads. Each output pixel depends
 * on its own coefficients only, so a window is exactly that part of the whole result. tmp
 * holds c x (source rows) x (x1 - x0) bytes, coeff coeff_ints of both axes.
 */
static void pil_resize(struct bytes_in in, int c, int h, int w, int oh, int ow, int y0, int y1,
                       int x0, int x1, enum spec_interp interp, struct bytes_out out,
                       uint8_t *tmp, int32_t *coeff)
{
    int rows = y1 - y0, cols = x1 - x0;
    if (rows <= 0 || cols <= 0) return;
    if (oh == h && ow == w) {
        for (int ch = 0; ch < c; ch++)
            for (int y = 0; y < rows; y++)
                memcpy(out.p + ch * out.plane + (size_t)y * out.row,
                       in.p + ch * in.plane + (size_t)(y0 + y) * in.row + x0, (size_t)cols);
        return;
    }
    if (interp == SPEC_INTERP_NEAREST) {
        pil_nearest(in, c, h, w, oh, ow, y0, y1, x0, x1, out, coeff);
        return;
    }
    bool need_h = ow != w, need_v = oh != h;
    struct pil_axis vert = {0}, horiz;
    int32_t *next = coeff;
    int r0 = y0, r1 = y1; /* the source rows the vertical pass reads */
    if (need_v) {
        next = pil_axis_init(&vert, h, oh, y0, rows, next);
        r0 = vert.first[0];
        r1 = vert.first[rows - 1] + vert.count[rows - 1];
    }
    if (need_h) {
        pil_axis_init(&horiz, w, ow, x0, cols, next);
        if (!need_v) {
            pil_horizontal(in, c, r0, r1, &horiz, out);
            return;
        }
        struct bytes_out t = {tmp, (size_t)cols, (size_t)cols * (size_t)(r1 - r0)};
        pil_horizontal(in, c, r0, r1, &horiz, t);
        pil_vertical((struct bytes_in){tmp, t.row, t.plane}, c, r0, cols, &vert, out);
        return;
    }
    in.p += x0;
    pil_vertical(in, c, 0, cols, &vert, out);
}

/* The c x h x w bytes in cropped to oh x ow from (oy, ox), zero outside the image. */
static void crop_bytes(struct bytes_in in, int c, int h, int w, int oy, int ox, int oh, int ow,
                       uint8_t *out)
{
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < oh; y++) {
            uint8_t *dst = out + ((size_t)ch * oh + y) * ow;
            int sy = oy + y;
            for (int x = 0; x < ow; x++) {
                int sx = ox + x;
                dst[x] = sy >= 0 && sy < h && sx >= 0 && sx < w
                             ? in.p[ch * in.plane + (size_t)sy * in.row + sx]
                             : 0;
            }
        }
}

/* resize t of the c x h x w bytes in into out, then, when crop is given, its center crop:
 * only the crop's window is resampled, the padding around it zeroed. Returns the size made. */
static void decoded_resize(const struct spec_transform *t, const struct spec_transform *crop,
                           struct bytes_in in, int c, int *h, int *w, uint8_t *out,
                           uint8_t *tmp, int32_t *coeff)
{
    int oh = (int)t->size, ow = oh;
    if (t->mode == SPEC_RESIZE_SHORTER_SIDE) shorter_side(t->size, *h, *w, &oh, &ow);
    int s_h = oh, s_w = ow, oy = 0, ox = 0;
    if (crop) {
        s_h = s_w = (int)crop->size;
        oy = center_offset(oh, s_h);
        ox = center_offset(ow, s_w);
        if (oy < 0 || ox < 0) memset(out, 0, (size_t)c * s_h * s_w);
    }
    int y0 = oy > 0 ? oy : 0, y1 = oy + s_h < oh ? oy + s_h : oh;
    int x0 = ox > 0 ? ox : 0, x1 = ox + s_w < ow ? ox + s_w : ow;
    struct bytes_out o = {out + (size_t)(y0 - oy) * s_w + (x0 - ox), (size_t)s_w,
                          (size_t)s_h * s_w};
    pil_resize(in, c, *h, *w, oh, ow, y0, y1, x0, x1, t->interpolation, o, tmp, coeff);
    *h = s_h;
    *w = s_w;
}

/* --------------------------------------------------------------------------------------- */
/* Per-image transforms on floats */

static void random_crop(const struct spec_transform *t, const float *in, int c, int h, int w,
                        uint64_t key, uint64_t ctr, float *out)
{
    int s = (int)t->size, p = (int)t->padding, reflect = t->fill == SPEC_FILL_REFLECT;
    int oy = augment_draw_crop_offset(key, ctr, h, p, s);
    int ox = augment_draw_crop_offset(key, ctr + 1, w, p, s);
    for (int ch = 0; ch < c; ch++) {
        const float *src = in + (size_t)ch * h * w;
        float *dst = out + (size_t)ch * s * s;
        for (int y = 0; y < s; y++) {
            int sy = augment_draw_pad_index(oy + y, h, reflect);
            for (int x = 0; x < s; x++) {
                int sx = augment_draw_pad_index(ox + x, w, reflect);
                dst[y * s + x] = sy < 0 || sx < 0 ? 0.0f : src[(size_t)sy * w + sx];
            }
        }
    }
}

/* The c x h x w floats in cropped to s x s from (oy, ox), zero outside the image. */
static void crop_floats(const float *in, int c, int h, int w, int oy, int ox, int s, float *out)
{
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < s; y++) {
            int sy = oy + y;
            for (int x = 0; x < s; x++) {
                int sx = ox + x;
                *out++ = sy >= 0 && sy < h && sx >= 0 && sx < w
                             ? in[((size_t)ch * h + sy) * w + sx]
                             : 0.0f;
            }
        }
}

/* Mirrors `rows` rows of w values each. */
static void mirror_rows(float *x, int64_t rows, int w)
{
    for (int64_t r = 0; r < rows; r++) {
        float *row = x + r * w;
        for (int i = 0, j = w - 1; i < j; i++, j--) {
            float v = row[i];
            row[i] = row[j];
            row[j] = v;
        }
    }
}

static void cutout(const struct spec_transform *t, float *x, int c, int h, int w, uint64_t key,
                   uint64_t ctr)
{
    struct augment_box b = augment_draw_cutout(key, ctr, h, w, (int)t->size);
    for (int ch = 0; ch < c; ch++)
        for (int y = b.y0; y < b.y1; y++)
            for (int xx = b.x0; xx < b.x1; xx++) x[((size_t)ch * h + y) * w + xx] = 0.0f;
}

static void normalize(const struct spec_transform *t, float *x, int c, int h, int w)
{
    size_t plane = (size_t)h * w;
    for (int ch = 0; ch < c; ch++) {
        /* Subtract, then divide, in float: torchvision's order and rounding. */
        float m = (float)t->mean[ch], s = (float)t->std[ch];
        for (size_t i = 0; i < plane; i++) x[ch * plane + i] = (x[ch * plane + i] - m) / s;
    }
}

/* PyTorch's source position of output pixel d (align_corners=False), in float as it
 * computes for float tensors: lo, hi and the weight of hi. */
static void linear_source(int d, int in, int out, int *lo, int *hi, float *wt)
{
    float scale = (float)in / (float)out;
    float src = scale * ((float)d + 0.5f) - 0.5f;
    if (src < 0) src = 0;
    *lo = (int)src;
    *hi = *lo < in - 1 ? *lo + 1 : *lo;
    *wt = src - (float)*lo;
}

/* PyTorch's mode="nearest" (not "nearest-exact"): floor(d * in / out). */
static int nearest_source(int d, int in, int out)
{
    float scale = (float)in / (float)out;
    int i = (int)floorf((float)d * scale);
    return i < in - 1 ? i : in - 1;
}

/* A float image of c planes: pixel (y, x) of plane ch at p[ch * plane + y * row + x]. */
struct floats_in {
    const float *p;
    size_t row, plane;
};

static void resize_nearest(struct floats_in in, int c, int h, int w, int oh, int ow, float *out)
{
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < oh; y++) {
            const float *row = in.p + ch * in.plane + (size_t)nearest_source(y, h, oh) * in.row;
            for (int x = 0; x < ow; x++) *out++ = row[nearest_source(x, w, ow)];
        }
}

static void resize_bilinear(struct floats_in in, int c, int h, int w, int oh, int ow, float *out)
{
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < oh; y++) {
            int y0, y1;
            float wy;
            linear_source(y, h, oh, &y0, &y1, &wy);
            const float *r0 = in.p + ch * in.plane + (size_t)y0 * in.row;
            const float *r1 = in.p + ch * in.plane + (size_t)y1 * in.row;
            for (int x = 0; x < ow; x++) {
                int x0, x1;
                float wx;
                linear_source(x, w, ow, &x0, &x1, &wx);
                /* Along rows first, then between them: the order of PyTorch's CPU kernel. */
                float top = r0[x0] * (1 - wx) + r0[x1] * wx;
                float bottom = r1[x0] * (1 - wx) + r1[x1] * wx;
                *out++ = top * (1 - wy) + bottom * wy;
            }
        }
}

static void resize_floats(enum spec_interp interp, struct floats_in in, int c, int h, int w,
                          int oh, int ow, float *out)
{
    if (interp == SPEC_INTERP_NEAREST)
        resize_nearest(in, c, h, w, oh, ow, out);
    else
        resize_bilinear(in, c, h, w, oh, ow, out);
}

/* A transform that writes a new image, on floats: in (c, *h, *w) -> out; updates the size. */
static void reshape_floats(const struct augment *a, size_t i, const float *in, int *h, int *w,
                           uint64_t key, float *out)
{
    const struct spec_transform *t = &a->t[i];
    int c = a->c, s = (int)t->size;
    struct floats_in whole = {in, (size_t)*w, (size_t)*h * *w};
    switch (t->kind) {
    case SPEC_TRANSFORM_RANDOM_CROP:
        random_crop(t, in, c, *h, *w, key, (uint64_t)i * 16, out);
        *h = *w = s;
        break;
    case SPEC_TRANSFORM_RESIZE: {
        int oh = s, ow = s;
        if (t->mode == SPEC_RESIZE_SHORTER_SIDE) shorter_side(t->size, *h, *w, &oh, &ow);
        resize_floats(t->interpolation, whole, c, *h, *w, oh, ow, out);
        *h = oh;
        *w = ow;
        break;
    }
    case SPEC_TRANSFORM_CENTER_CROP:
        crop_floats(in, c, *h, *w, center_offset(*h, s), center_offset(*w, s), s, out);
        *h = *w = s;
        break;
    case SPEC_TRANSFORM_RANDOM_RESIZED_CROP: {
        struct augment_box b = augment_rrc_box(a, i, key, *h, *w);
        struct floats_in box = {in + (size_t)b.y0 * *w + b.x0, whole.row, whole.plane};
        resize_floats(t->interpolation, box, c, b.y1 - b.y0, b.x1 - b.x0, s, s, out);
        *h = *w = s;
        break;
    }
    default: break;
    }
}

void augment_image_sized(const struct augment *a, const uint8_t *src, int h, int w,
                         uint64_t key, float *dst, float *scratch)
{
    int c = a->c;
    float *half[2] = {scratch, scratch + a->float_half};
    int32_t *coeff = (int32_t *)(void *)(scratch + 2 * a->float_half);
    uint8_t *bytes[2] = {(uint8_t *)(void *)(coeff + a->coeff_ints), NULL};
    bytes[1] = bytes[0] + a->byte_half;
    uint8_t *tmp = bytes[1] + a->byte_half;

    /* The decoded-image stage, between the two byte images. */
    struct bytes_in cur_b = {src, (size_t)w, (size_t)h * w};
    size_t i = 0;
    for (int which = 0; i < a->lead; i++, which ^= 1) {
        const struct spec_transform *t = &a->t[i];
        uint8_t *out = bytes[which];
        if (t->kind == SPEC_TRANSFORM_RESIZE) {
            const struct spec_transform *crop = NULL;
            if (i + 1 < a->lead && a->t[i + 1].kind == SPEC_TRANSFORM_CENTER_CROP)
                crop = &a->t[++i];
            decoded_resize(t, crop, cur_b, c, &h, &w, out, tmp, coeff);
        } else if (t->kind == SPEC_TRANSFORM_CENTER_CROP) {
            int s = (int)t->size;
            crop_bytes(cur_b, c, h, w, center_offset(h, s), center_offset(w, s), s, s, out);
            h = w = s;
        } else {
            int s = (int)t->size;
            struct augment_box b = augment_rrc_box(a, i, key, h, w);
            struct bytes_in box = {cur_b.p + (size_t)b.y0 * cur_b.row + b.x0, cur_b.row,
                                   cur_b.plane};
            struct bytes_out o = {out, (size_t)s, (size_t)s * s};
            pil_resize(box, c, b.y1 - b.y0, b.x1 - b.x0, s, s, 0, s, 0, s, t->interpolation, o,
                       tmp, coeff);
            h = w = s;
        }
        cur_b = (struct bytes_in){out, (size_t)w, (size_t)h * w};
    }

    /* To floats (ToTensor), then the rest. The last transform that writes a new image writes
     * into dst; before it, the image moves between the two float images. Without one, it
     * never leaves dst. */
    size_t reshapes = 0;
    for (size_t j = i; j < a->n; j++) reshapes += changes_shape(a->t[j].kind);
    float *cur = reshapes ? half[0] : dst;
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < h; y++) {
            const uint8_t *row = cur_b.p + ch * cur_b.plane + (size_t)y * cur_b.row;
            float *o = cur + ((size_t)ch * h + y) * w;
            for (int x = 0; x < w; x++) o[x] = augment_draw_byte(row[x]);
        }

    for (; i < a->n; i++) {
        const struct spec_transform *t = &a->t[i];
        uint64_t ctr = (uint64_t)i * 16;
        if (changes_shape(t->kind)) {
            float *next = --reshapes == 0 ? dst : cur == half[0] ? half[1] : half[0];
            reshape_floats(a, i, cur, &h, &w, key, next);
            cur = next;
        } else if (t->kind == SPEC_TRANSFORM_HFLIP) {
            if (augment_draw_coin(key, ctr, t->p)) mirror_rows(cur, (int64_t)c * h, w);
        } else if (t->kind == SPEC_TRANSFORM_CUTOUT) {
            if (augment_draw_coin(key, ctr, t->p)) cutout(t, cur, c, h, w, key, ctr);
        } else if (t->kind == SPEC_TRANSFORM_NORMALIZE) {
            normalize(t, cur, c, h, w);
        }
    }
}

void augment_image(const struct augment *a, const uint8_t *src, uint64_t key, float *dst,
                   float *scratch)
{
    augment_image_sized(a, src, a->in_h, a->in_w, key, dst, scratch);
}

void augment_hflip_batch(float *x, int64_t n, int c, int h, int w)
{
    mirror_rows(x, n * c * h, w);
}

/* --------------------------------------------------------------------------------------- */
/* Batch transforms */

/* Gamma(a, 1) by Marsaglia and Tsang, from the stream of key: normal k at counter 2k (uniform
 * counters 4k, 4k + 1), its acceptance uniform at 4k + 2, the a < 1 boost at 3. */
static double gamma_draw(double a, uint64_t key)
{
    double boost = 1;
    if (a < 1) {
        /* Gamma(a) = Gamma(a + 1) U^(1/a). */
        boost = pow(rng_uniform(key, 3), 1 / a);
        a += 1;
    }
    double d = a - 1.0 / 3, c = 1 / sqrt(9 * d);
    for (uint64_t k = 0; k < 1000; k++) { /* accepts with probability > 0.95 each time */
        double z = rng_normal(key, 2 * k), v = 1 + c * z;
        if (v <= 0) continue;
        v = v * v * v;
        double u = rng_uniform(key, 4 * k + 2);
        if (log(u) < 0.5 * z * z + d - d * v + d * log(v)) return d * v * boost;
    }
    return d * boost;
}

double augment_beta(double alpha, uint64_t key, uint64_t counter)
{
    double x = gamma_draw(alpha, rng_bits(key, 2 * counter));
    double y = gamma_draw(alpha, rng_bits(key, 2 * counter + 1));
    /* Both underflow for tiny alpha: a coin flip between the two ends is the limit. */
    if (x + y == 0) return rng_uniform(key, 2 * counter) < 0.5 ? 0.0 : 1.0;
    return x / (x + y);
}

static void one_hot(const int32_t *labels, int64_t n, int classes, float *targets)
{
    memset(targets, 0, (size_t)n * (size_t)classes * sizeof *targets);
    for (int64_t i = 0; i < n; i++) targets[i * classes + labels[i]] = 1.0f;
}

/* The cutmix box [y0, y1) x [x0, x1), as the CutMix paper's code draws it. */
struct box {
    int y0, y1, x0, x1;
};

static int clamp(int v, int hi)
{
    return v < 0 ? 0 : v > hi ? hi : v;
}

static struct box cutmix_box(int h, int w, double lam, uint64_t key)
{
    double rat = sqrt(1 - lam);
    int cw = (int)(w * rat), ch = (int)(h * rat);
    int cx = (int)(rng_bits(key, 2) % (uint64_t)w), cy = (int)(rng_bits(key, 3) % (uint64_t)h);
    return (struct box){clamp(cy - ch / 2, h), clamp(cy + ch / 2, h), clamp(cx - cw / 2, w),
                        clamp(cx + cw / 2, w)};
}

/* Mixes image dst with its partner src (which may be a saved copy). */
static void mix_one(const struct augment *a, bool cut, float lam, struct box b, float *dst,
                    const float *src)
{
    size_t numel = (size_t)a->out_numel;
    if (!cut) {
        for (size_t k = 0; k < numel; k++) dst[k] = lam * dst[k] + (1 - lam) * src[k];
        return;
    }
    int h = a->out_h, w = a->out_w;
    for (int ch = 0; ch < a->c; ch++)
        for (int y = b.y0; y < b.y1; y++) {
            size_t row = ((size_t)ch * h + y) * w;
            memcpy(dst + row + b.x0, src + row + b.x0, (size_t)(b.x1 - b.x0) * sizeof *dst);
        }
}

bool augment_batch(const struct augment *a, float *x, const int32_t *labels, int64_t n,
                   int classes, uint64_t key, float *targets)
{
    bool cut = a->cutmix && (!a->mixup || rng_uniform(key, 0) < 0.5);
    const struct spec_transform *t = NULL;
    for (size_t i = 0; i < a->n && !t; i++)
        if (is_batch(a->t[i].kind) && (a->t[i].kind == SPEC_TRANSFORM_CUTMIX) == cut)
            t = &a->t[i];
    if (!t || n < 1 || rng_uniform(key, 1) >= t->p) {
        one_hot(labels, n, classes, targets);
        return false;
    }
    double lam = augment_beta(t->alpha, key, 5);
    struct box b = {0};
    if (cut) {
        b = cutmix_box(a->out_h, a->out_w, lam, key);
        lam = 1 - (double)(b.y1 - b.y0) * (b.x1 - b.x0) / ((double)a->out_h * a->out_w);
    }
    /* The pairing (Fisher-Yates), and one image's room: the permutation's cycles are mixed
     * in place, each needing a copy of its first image only. */
    size_t numel = (size_t)a->out_numel;
    int64_t *perm = malloc((size_t)n * sizeof *perm + numel * sizeof(float));
    if (!perm) abort();
    float *first = (float *)(void *)(perm + n);
    uint64_t pkey = rng_bits(key, 4);
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(rng_bits(pkey, (uint64_t)i) % (uint64_t)(i + 1)), v = perm[i];
        perm[i] = perm[j];
        perm[j] = v;
    }

    float l = (float)lam;
    memset(targets, 0, (size_t)n * (size_t)classes * sizeof *targets);
    for (int64_t i = 0; i < n; i++) {
        float *row = targets + i * classes;
        row[labels[i]] = l;
        row[labels[perm[i]]] += 1 - l;
        if (labels[i] == labels[perm[i]]) row[labels[i]] = 1.0f;
    }
    /* Walk each cycle i -> perm[i] -> ...: every image mixes with its partner before the
     * partner changes, except the last, whose partner is the saved first. Done entries are
     * marked by flipping them negative. */
    for (int64_t s = 0; s < n; s++) {
        if (perm[s] < 0) continue;
        if (perm[s] == s) {
            perm[s] = -1 - s;
            continue;
        }
        memcpy(first, x + s * (int64_t)numel, numel * sizeof *first);
        int64_t i = s;
        while (perm[i] != s) {
            int64_t j = perm[i];
            mix_one(a, cut, l, b, x + i * (int64_t)numel, x + j * (int64_t)numel);
            perm[i] = -1 - j;
            i = j;
        }
        mix_one(a, cut, l, b, x + i * (int64_t)numel, first);
        perm[i] = -1 - s;
    }
    free(perm);
    return true;
}

/* --------------------------------------------------------------------------------------- */
/* The list for the GPU (augment_gpu.h) */

bool augment_compile_gpu(const struct augment *a, struct augment_gpu_plan *p, char *why,
                         size_t size)
{
    *p = (struct augment_gpu_plan){.c = a->c, .in_h = a->in_h, .in_w = a->in_w,
                                   .out_h = a->out_h, .out_w = a->out_w};
    if (size) why[0] = '\0';
    if (a->in_h == 0 || a->out_h == 0) {
        if (size) snprintf(why, size, "images of varying size are augmented on the CPU");
        return false;
    }
    int h = a->in_h, w = a->in_w;
    for (size_t i = 0; i < a->n; i++) {
        const struct spec_transform *t = &a->t[i];
        if (is_decoded(t->kind) || is_batch(t->kind)) {
            if (size)
                snprintf(why, size, "%s runs on the CPU (the GPU does random_crop, hflip, "
                                    "cutout and normalize)", kind_names[t->kind]);
            return false;
        }
        if (p->n == AUGMENT_GPU_MAX_STEPS) {
            if (size)
                snprintf(why, size, "the GPU runs at most %d transforms; the list has %zu",
                         AUGMENT_GPU_MAX_STEPS, a->n);
            return false;
        }
        struct augment_gpu_step *s = &p->step[p->n++];
        *s = (struct augment_gpu_step){.index = (int32_t)i, .h = h, .w = w,
                                   .size = (int32_t)t->size, .p = t->p};
        if (t->kind == SPEC_TRANSFORM_RANDOM_CROP) {
            s->kind = AUGMENT_GPU_CROP;
            s->padding = (int32_t)t->padding;
            s->reflect = t->fill == SPEC_FILL_REFLECT;
            h = w = (int)t->size;
        } else if (t->kind == SPEC_TRANSFORM_HFLIP) {
            s->kind = AUGMENT_GPU_HFLIP;
        } else if (t->kind == SPEC_TRANSFORM_CUTOUT) {
            s->kind = AUGMENT_GPU_CUTOUT;
        } else {
            s->kind = AUGMENT_GPU_NORMALIZE;
            for (int ch = 0; ch < 3; ch++) {
                s->mean[ch] = (float)t->mean[ch];
                s->std[ch] = (float)t->std[ch];
            }
        }
    }
    return true;
}
