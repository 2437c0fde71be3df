/*
 * image.c: JPEG and PNG into planar RGB; see image.h.
 *
 * libpng reports errors by longjmp from its error callback, so each libpng call sequence runs
 * under one setjmp, with nothing allocated by us between it and the calls that may jump
 * (the row buffer is allocated before, and freed after, in every case).
 */
#include "image.h"

#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <turbojpeg.h>

#define IMAGE_MAX_FILE_BYTES (1LL << 31) /* 2 GiB: more is no image file we decode */

enum image_format image_format_of_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (!dot) return IMAGE_NONE;
    if (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg")) return IMAGE_JPEG;
    if (!strcasecmp(dot, ".png")) return IMAGE_PNG;
    return IMAGE_NONE;
}

static bool fail(char *why, size_t size, const char *fmt, const char *arg)
{
    if (size) snprintf(why, size, fmt, arg);
    return false;
}

static bool size_ok(long long w, long long h, char *why, size_t size)
{
    /* TurboJPEG gives 0 x 0 for a JPEG without a frame (tables only, or "\xff\xd8\xff"). */
    if (w <= 0 || h <= 0) {
        if (size) snprintf(why, size, "no image in the file (%lld x %lld pixels)", w, h);
        return false;
    }
    if (w > IMAGE_MAX_SIDE || h > IMAGE_MAX_SIDE || w * h > IMAGE_MAX_PIXELS) {
        if (size)
            snprintf(why, size, "%lld x %lld pixels, more than the %lld (and %d a side) this "
                     "runner decodes", w, h, IMAGE_MAX_PIXELS, IMAGE_MAX_SIDE);
        return false;
    }
    return true;
}

/* --------------------------------------------------------------------------------------- */
/* PNG */

static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

struct png_src {
    const uint8_t *data;
    size_t size, at;
    char *why;
    size_t why_size;
};

static void png_read_mem(png_structp png, png_bytep out, png_size_t n)
{
    struct png_src *s = png_get_io_ptr(png);
    if (n > s->size - s->at) png_error(png, "the file ends early (truncated)");
    memcpy(out, s->data + s->at, n);
    s->at += n;
}

static void png_on_error(png_structp png, png_const_charp msg)
{
    struct png_src *s = png_get_error_ptr(png);
    if (s->why_size) snprintf(s->why, s->why_size, "corrupt PNG: %s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
    (void)png, (void)msg; /* benign (an unknown chunk, a bad profile): PIL ignores them too */
}

/* Whether the last chunk is IEND (only zero bytes may follow): the file was written whole. */
static bool png_ends(const uint8_t *data, size_t size)
{
    while (size > 0 && data[size - 1] == 0) size--;
    static const uint8_t iend[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xae, 0x42, 0x60, 0x82};
    return size >= 8 + 12 && memcmp(data + size - 12, iend, 12) == 0;
}

/* The PNG's header, then (out non-NULL) its pixels. */
static bool png_run(const uint8_t *data, size_t size, struct image_info *info, uint8_t *out,
                    char *why, size_t why_size)
{
    struct png_src src = {.data = data, .size = size, .why = why, .why_size = why_size};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_on_error,
                                             png_on_warning);
    if (!png) return fail(why, why_size, "%s", "out of memory");
    png_infop pi = png_create_info_struct(png);
    uint8_t *volatile row = NULL;
    bool ok = false;
    if (!pi) {
        fail(why, why_size, "%s", "out of memory");
        goto done;
    }
    if (setjmp(png_jmpbuf(png))) goto done; /* png_on_error said why */
    png_set_read_fn(png, &src, png_read_mem);
    png_set_user_limits(png, IMAGE_MAX_SIDE, IMAGE_MAX_SIDE);
    png_set_chunk_malloc_max(png, 64u << 20);
    /* Every chunk but IHDR, PLTE, tRNS, IDAT and IEND skipped unread (the pixels do not depend
     * on them without png_set_gamma and the like, and PIL's convert ignores them too). Read,
     * libpng 1.6.39 allocates and zeroes a text chunk's declared length before reading it,
     * whatever png_set_chunk_malloc_max says: 90 bytes claiming a 2 GB tEXt took that much. */
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, NULL, -1);
    png_read_info(png, pi);
    png_uint_32 w = png_get_image_width(png, pi), h = png_get_image_height(png, pi);
    if (!size_ok(w, h, why, why_size)) goto done;
    if (!out) {
        *info = (struct image_info){.format = IMAGE_PNG, .w = (int)w, .h = (int)h};
        ok = true;
        goto done;
    }
    if ((int)w != info->w || (int)h != info->h) {
        fail(why, why_size, "%s", "the file changed since it was probed");
        goto done;
    }
    /* Everything becomes 8-bit RGB: palette and low bit depths expanded, tRNS to alpha and
     * alpha dropped, 16 bits cut to the high byte, gray repeated. */
    png_set_expand(png);
    png_set_strip_16(png);
    png_set_strip_alpha(png);
    png_set_gray_to_rgb(png);
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, pi);
    if (png_get_rowbytes(png, pi) != 3 * (size_t)w) {
        fail(why, why_size, "%s", "corrupt PNG: unexpected row layout");
        goto done;
    }
    /* One interleaved image: interlaced files need every row for each pass. */
    row = malloc(3 * (size_t)w * h);
    if (!row) {
        fail(why, why_size, "%s", "out of memory");
        goto done;
    }
    for (int p = 0; p < passes; p++)
        for (png_uint_32 y = 0; y < h; y++) png_read_row(png, row + 3 * (size_t)w * y, NULL);
    size_t plane = (size_t)w * h;
    for (size_t i = 0; i < plane; i++) {
        out[i] = row[3 * i];
        out[plane + i] = row[3 * i + 1];
        out[2 * plane + i] = row[3 * i + 2];
    }
    ok = true;
done:
    png_destroy_read_struct(&png, pi ? &pi : NULL, NULL);
    free(row);
    return ok;
}

/* --------------------------------------------------------------------------------------- */
/* JPEG */

/* Whether the end-of-image marker ends the file (only zero bytes may follow). */
static bool jpeg_ends(const uint8_t *data, size_t size)
{
    while (size > 0 && data[size - 1] == 0) size--;
    return size >= 4 && data[size - 2] == 0xff && data[size - 1] == 0xd9;
}

static bool jpeg_error(tjhandle tj, char *why, size_t size)
{
    return fail(why, size, "corrupt JPEG: %s", tjGetErrorStr2(tj));
}

static bool jpeg_run(const uint8_t *data, size_t size, struct image_info *info, uint8_t *out,
                     char *why, size_t why_size)
{
    tjhandle tj = tjInitDecompress();
    if (!tj) return fail(why, why_size, "%s", "cannot start the JPEG decoder");
    int w = 0, h = 0, sub = 0, cs = 0;
    bool ok = false;
    uint8_t *px = NULL;
    if (tjDecompressHeader3(tj, data, (unsigned long)size, &w, &h, &sub, &cs)) {
        jpeg_error(tj, why, why_size);
    } else if (size_ok(w, h, why, why_size)) {
        if (!out) {
            *info = (struct image_info){.format = IMAGE_JPEG, .w = w, .h = h};
            ok = true;
        } else if (w != info->w || h != info->h) {
            fail(why, why_size, "%s", "the file changed since it was probed");
        } else {
            bool cmyk = cs == TJCS_CMYK || cs == TJCS_YCCK;
            int ch = cmyk ? 4 : 3;
            px = malloc((size_t)ch * w * h);
            /* The library's defaults (accurate DCT, smooth upsampling) are what PIL uses. A
             * warning (damaged data the decoder filled in) is an error here. */
            if (!px) fail(why, why_size, "%s", "out of memory");
            else if (tjDecompress2(tj, data, (unsigned long)size, px, w, ch * w, h,
                                   cmyk ? TJPF_CMYK : TJPF_RGB, TJFLAG_STOPONWARNING))
                jpeg_error(tj, why, why_size);
            else
                ok = true;
        }
    }
    if (ok && out) {
        size_t plane = (size_t)w * h;
        bool cmyk = cs == TJCS_CMYK || cs == TJCS_YCCK;
        {
            for (size_t i = 0; i < plane; i++) {
                if (!cmyk) {
                    out[i] = px[3 * i];
                    out[plane + i] = px[3 * i + 1];
                    out[2 * plane + i] = px[3 * i + 2];
                    continue;
                }
                /* PIL reads a four-channel JPEG as Adobe's inverted CMYK ("CMYK;I"), then
                 * converts: nk = 255 - K, R = nk - C nk / 255 (its rounding), with C, K the
                 * inverted values. */
                const uint8_t *q = px + 4 * i;
                int nk = q[3];
                for (int c = 0; c < 3; c++) {
                    int t = (255 - q[c]) * nk + 128;
                    int v = nk - (((t >> 8) + t) >> 8);
                    out[c * plane + i] = (uint8_t)(v < 0 ? 0 : v);
                }
            }
        }
    }
    free(px);
    tjDestroy(tj);
    return ok;
}

/* --------------------------------------------------------------------------------------- */

static enum image_format format_of_bytes(const uint8_t *data, size_t size)
{
    if (size >= 8 && memcmp(data, png_magic, 8) == 0) return IMAGE_PNG;
    if (size >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff) return IMAGE_JPEG;
    return IMAGE_NONE;
}

bool image_probe(const uint8_t *data, size_t size, struct image_info *info, char *why,
                 size_t why_size)
{
    switch (format_of_bytes(data, size)) {
    case IMAGE_PNG:
        if (!png_run(data, size, info, NULL, why, why_size)) return false;
        if (!png_ends(data, size))
            return fail(why, why_size, "%s", "truncated PNG: the file does not end with its "
                                             "IEND chunk");
        return true;
    case IMAGE_JPEG:
        if (!jpeg_run(data, size, info, NULL, why, why_size)) return false;
        if (!jpeg_ends(data, size))
            return fail(why, why_size, "%s", "truncated JPEG: the file does not end with the "
                                             "end-of-image marker");
        return true;
    case IMAGE_NONE: break;
    }
    if (size == 0) return fail(why, why_size, "%s", "empty file");
    return fail(why, why_size, "%s", "neither a PNG nor a JPEG (its first bytes are no such "
                                     "signature)");
}

bool image_decode(const uint8_t *data, size_t size, const struct image_info *info, uint8_t *out,
                  char *why, size_t why_size)
{
    enum image_format f = format_of_bytes(data, size);
    if (f != info->format) return fail(why, why_size, "%s", "the file changed since it was probed");
    struct image_info copy = *info;
    return f == IMAGE_PNG ? png_run(data, size, &copy, out, why, why_size)
                          : jpeg_run(data, size, &copy, out, why, why_size);
}

bool image_read_file(const char *path, uint8_t **data, size_t *size, char *why, size_t why_size)
{
    *data = NULL;
    *size = 0;
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f || fstat(fileno(f), &st)) {
        int err = errno;
        if (f) fclose(f);
        return fail(why, why_size, "cannot open: %s", strerror(err));
    }
    if (!S_ISREG(st.st_mode) || st.st_size > IMAGE_MAX_FILE_BYTES) {
        fclose(f);
        return fail(why, why_size, "%s", S_ISREG(st.st_mode) ? "larger than 2 GiB"
                                                             : "not a regular file");
    }
    size_t n = (size_t)st.st_size;
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) {
        fclose(f);
        return fail(why, why_size, "%s", "out of memory");
    }
    size_t got = fread(buf, 1, n, f);
    int err = ferror(f) ? errno : 0;
    fclose(f);
    if (got != n) {
        free(buf);
        return fail(why, why_size, "read error: %s", err ? strerror(err) : "the file shrank");
    }
    *data = buf;
    *size = n;
    return true;
}

bool image_probe_file(const char *path, struct image_info *info, char *why, size_t why_size)
{
    uint8_t *data;
    size_t size;
    if (!image_read_file(path, &data, &size, why, why_size)) return false;
    bool ok = image_probe(data, size, info, why, why_size);
    free(data);
    return ok;
}

bool image_decode_file(const char *path, const struct image_info *info, uint8_t *out, char *why,
                       size_t why_size)
{
    uint8_t *data;
    size_t size;
    if (!image_read_file(path, &data, &size, why, why_size)) return false;
    bool ok = image_decode(data, size, info, out, why, why_size);
    free(data);
    return ok;
}
