/*
 * image.h: JPEG (libjpeg-turbo's TurboJPEG API) and PNG (libpng) files decoded into planar
 * 8-bit RGB, the layout CIFAR's files use (the red plane, then green, then blue).
 *
 *     struct image_info info;
 *     char why[256];
 *     if (!image_probe_file(path, &info, why, sizeof why)) fail(path, why);
 *     uint8_t *rgb = malloc(3 * (size_t)info.h * info.w);
 *     if (!image_decode_file(path, &info, rgb, why, sizeof why)) fail(path, why);
 *
 * What the file holds becomes RGB as PIL's Image.convert("RGB") makes it, which is what
 * torchvision's ImageFolder loader does: grayscale is repeated in the three planes, a palette
 * looked up, alpha (and PNG's tRNS transparency) dropped, 16-bit PNG samples cut to their
 * high byte (as PIL does for 16-bit RGB and RGBA; 16-bit gray it opens as mode I and clips
 * at 255 instead, which whitens all but the darkest pixels: here it is cut like the others),
 * and a four-channel (CMYK or YCCK) JPEG taken as Adobe writes it (inverted) and turned into
 * RGB with PIL's formula. tests/image_pil.py compares each kind with PIL pixel by pixel. Gamma and colour profiles are ignored, as PIL ignores
 * them. The format is told by the bytes (a .jpg holding a PNG decodes as PNG).
 *
 * The probe reads the header only: the size and the format, and whether the file ends as its
 * format ends (a PNG with its IEND chunk, a JPEG with its end-of-image marker, trailing zero
 * bytes allowed), which catches files cut short without decoding them. A file that passes the
 * probe can still fail to decode (damaged data in the middle); the decode says so. Hostile
 * input is an error, never a crash: sizes above IMAGE_MAX_PIXELS (PIL's decompression-bomb
 * limit) or IMAGE_MAX_SIDE on a side are refused before anything is allocated. Every
 * function is thread-safe. Covered by tests/test_folder.c and fuzzed by tests/fuzz/fuzz_image.c.
 */
#ifndef RUNNER_IMAGE_H
#define RUNNER_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IMAGE_MAX_SIDE 65500
#define IMAGE_MAX_PIXELS 178956970LL /* twice PIL's Image.MAX_IMAGE_PIXELS, where it errors */

enum image_format { IMAGE_NONE, IMAGE_JPEG, IMAGE_PNG };

struct image_info {
    enum image_format format;
    int w, h;
};

/* IMAGE_JPEG for a name ending in .jpg or .jpeg, IMAGE_PNG for .png (any case), else
 * IMAGE_NONE: the files a folder dataset takes. */
enum image_format image_format_of_name(const char *name);

/* The header of the bytes of a file: false with what is wrong in why (size bytes). */
bool image_probe(const uint8_t *data, size_t size, struct image_info *info, char *why,
                 size_t why_size);
/* Decodes the bytes into out (3 x info->h x info->w bytes, planar RGB); info from image_probe
 * of the same bytes. false with what is wrong in why. */
bool image_decode(const uint8_t *data, size_t size, const struct image_info *info, uint8_t *out,
                  char *why, size_t why_size);

/* The whole file into a malloc'd buffer (*size bytes): false with the reason in why. */
bool image_read_file(const char *path, uint8_t **data, size_t *size, char *why, size_t why_size);
/* image_read_file then image_probe / image_decode. */
bool image_probe_file(const char *path, struct image_info *info, char *why, size_t why_size);
bool image_decode_file(const char *path, const struct image_info *info, uint8_t *out, char *why,
                       size_t why_size);

#endif
