/*
 * augment.c: image transforms, per image and per batch; see augment.h.
 *
 * Random numbers: transform number i of the list draws from counters i * 16 + j of its key
 * (j = 0, 1, ...), so adding or removing a transform leaves the draws of the others alone.
 * A batch key's counters: 0 which of mixup and cutmix, 1 whether to mix, 2 and 3 the cutmix
 * centre, 4 the key of the pairing, 5 the Beta draw (which keys its gammas with counters
 * 10 and 11).
 *
 * The per-image draws (the key, crop offsets, coins, cutout squares, padding indices) are the
 * inline functions of augment_draw.h, which the GPU path calls too; augment_compile_gpu, the
 * list as that path reads it, is at the end of this file.
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
    [SPEC_TRANSFORM_CUTMIX] = "cutmix",
};

static bool is_batch(enum spec_transform_kind k)
{
    return k == SPEC_TRANSFORM_MIXUP || k == SPEC_TRANSFORM_CUTMIX;
}

static bool changes_shape(enum spec_transform_kind k)
{
    return k == SPEC_TRANSFORM_RANDOM_CROP || k == SPEC_TRANSFORM_RESIZE;
}

/* --------------------------------------------------------------------------------------- */
/* Checking the list */

/* One random_crop against the current h x w; errors at its mark. */
static void check_crop(const struct spec_transform *t, int h, int w, struct diag *d)
{
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
    *a = (struct augment){.t = list->v, .n = list->n, .c = c, .in_h = h, .in_w = w};
    int before = d->errors;
    size_t largest = (size_t)h * (size_t)w;
    const struct spec_transform *batch = NULL; /* the first mixup or cutmix seen */
    for (size_t i = 0; i < a->n; i++) {
        const struct spec_transform *t = &a->t[i];
        if (is_batch(t->kind)) {
            if (!batch) batch = t;
            if (t->kind == SPEC_TRANSFORM_MIXUP) a->mixup = true;
            else a->cutmix = true;
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
        if (changes_shape(t->kind)) {
            h = w = (int)t->size;
            if ((size_t)h * (size_t)w > largest) largest = (size_t)h * (size_t)w;
        }
    }
    a->out_h = h;
    a->out_w = w;
    a->out_numel = (int64_t)c * h * w;
    /* Two buffers (ping-pong) for the largest image on the way; crops read the unpadded image
     * through an index map, so the padded size is never stored. */
    a->scratch_floats = 2 * (size_t)c * largest;
    return d->errors == before ? STATUS_OK : STATUS_CONFIG;
}

uint64_t augment_key(uint64_t seed, int64_t epoch, int64_t index)
{
    return augment_draw_key(seed, epoch, index);
}

/* --------------------------------------------------------------------------------------- */
/* Per-image transforms */

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

static void resize_nearest(const float *in, int c, int h, int w, int s, float *out)
{
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < s; y++) {
            const float *row = in + ((size_t)ch * h + nearest_source(y, h, s)) * w;
            for (int x = 0; x < s; x++) *out++ = row[nearest_source(x, w, s)];
        }
}

static void resize_bilinear(const float *in, int c, int h, int w, int s, float *out)
{
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < s; y++) {
            int y0, y1;
            float wy;
            linear_source(y, h, s, &y0, &y1, &wy);
            const float *r0 = in + ((size_t)ch * h + y0) * w, *r1 = in + ((size_t)ch * h + y1) * w;
            for (int x = 0; x < s; x++) {
                int x0, x1;
                float wx;
                linear_source(x, w, s, &x0, &x1, &wx);
                /* Along rows first, then between them: the order of PyTorch's CPU kernel. */
                float top = r0[x0] * (1 - wx) + r0[x1] * wx;
                float bottom = r1[x0] * (1 - wx) + r1[x1] * wx;
                *out++ = top * (1 - wy) + bottom * wy;
            }
        }
}

void augment_image(const struct augment *a, const uint8_t *src, uint64_t key, float *dst,
                   float *scratch)
{
    int c = a->c, h = a->in_h, w = a->in_w;
    /* The last crop or resize writes into dst; before it, the image moves between the two
     * halves of scratch. Without one, it never leaves dst. */
    size_t reshapes = 0, half = a->scratch_floats / 2;
    for (size_t i = 0; i < a->n; i++) reshapes += changes_shape(a->t[i].kind);
    float *cur = reshapes ? scratch : dst;
    for (size_t i = 0, n = (size_t)c * h * w; i < n; i++) cur[i] = augment_draw_byte(src[i]);

    for (size_t i = 0; i < a->n; i++) {
        const struct spec_transform *t = &a->t[i];
        uint64_t ctr = (uint64_t)i * 16;
        if (changes_shape(t->kind)) {
            float *next = --reshapes == 0 ? dst : cur == scratch ? scratch + half : scratch;
            if (t->kind == SPEC_TRANSFORM_RANDOM_CROP)
                random_crop(t, cur, c, h, w, key, ctr, next);
            else if (t->interpolation == SPEC_INTERP_NEAREST)
                resize_nearest(cur, c, h, w, (int)t->size, next);
            else
                resize_bilinear(cur, c, h, w, (int)t->size, next);
            cur = next;
            h = w = (int)t->size;
        } else if (t->kind == SPEC_TRANSFORM_HFLIP) {
            if (augment_draw_coin(key, ctr, t->p)) mirror_rows(cur, (int64_t)c * h, w);
        } else if (t->kind == SPEC_TRANSFORM_CUTOUT) {
            if (augment_draw_coin(key, ctr, t->p)) cutout(t, cur, c, h, w, key, ctr);
        } else if (t->kind == SPEC_TRANSFORM_NORMALIZE) {
            normalize(t, cur, c, h, w);
        }
    }
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
    int h = a->in_h, w = a->in_w;
    for (size_t i = 0; i < a->n; i++) {
        const struct spec_transform *t = &a->t[i];
        if (t->kind == SPEC_TRANSFORM_RESIZE || is_batch(t->kind)) {
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
