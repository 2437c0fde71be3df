/*
 * fuzz_image.c: libFuzzer target for the image decoders (runner/image.c). The input is a
 * file's bytes: image_probe, and where it passes (and the image is at most FUZZ_MAX_PIXELS),
 * image_decode into a buffer of exactly 3 x h x w bytes, so that ASan reports a write past the
 * planes. Either function's failure must leave a message in why (checked: non-empty and
 * NUL-terminated within the buffer). A PNG goes through a second time with every chunk's CRC
 * made right: libpng refuses a critical chunk whose CRC is wrong, so otherwise almost every
 * mutation of IHDR or IDAT stops there and the decode's paths are seldom reached.
 * The seeds are tests/fuzz/seeds/image/ (tiny PNGs of every colour type and bit depth, tRNS,
 * Adam7; JPEGs at each subsampling, grayscale, CMYK, YCCK, progressive), written by
 * tests/fuzz/image_seeds.py. libpng and libjpeg-turbo are the system's, not instrumented, so
 * the coverage libFuzzer follows is image.c's own.
 * Built and run by scripts/fuzz.sh (ASan + UBSan) and CI's fuzz stage; not part of CTest.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The largest image decoded: 4096 x 4096. image.h allows IMAGE_MAX_PIXELS (179 M pixels), and
 * a few KB can claim that many (deflate expands about 1000:1, so a 1-bit PNG of 8192 x 8192
 * fits in scripts/fuzz.sh's 8 KB -max_len; a JPEG header costs nothing). Decoding one would
 * take this buffer (537 MB) plus the decoder's own (as much again for PNG's interleaved rows,
 * 4/3 of it for CMYK, about 6 bytes a pixel for a progressive JPEG's coefficients), past the
 * fuzzer's 2 GiB -rss_limit_mb with ASan's quarantine, and seconds a run. At 16 M pixels the
 * worst case is about 300 MB and well under a second; larger sizes still go through the
 * probe, and the decode's code does not depend on the size beyond it. */
#define FUZZ_MAX_PIXELS (4096LL * 4096)

/* Whether a failed call said why: a non-empty message ending inside the buffer. */
static void check_why(const char *why, size_t size)
{
    if (!memchr(why, 0, size) || !why[0]) __builtin_trap();
}

/* The probe, then the decode of what passes. */
static void run(const uint8_t *data, size_t size)
{
    struct image_info info;
    char why[256];
    memset(why, 'x', sizeof why);
    if (!image_probe(data, size, &info, why, sizeof why)) {
        check_why(why, sizeof why);
        return;
    }
    if (info.format == IMAGE_NONE || info.w <= 0 || info.h <= 0 || info.w > IMAGE_MAX_SIDE ||
        info.h > IMAGE_MAX_SIDE || (long long)info.w * info.h > IMAGE_MAX_PIXELS)
        __builtin_trap(); /* the probe passed what image.h says it refuses */
    if ((long long)info.w * info.h > FUZZ_MAX_PIXELS) return;
    uint8_t *out = malloc(3 * (size_t)info.w * info.h);
    if (!out) return;
    memset(why, 'x', sizeof why);
    if (!image_decode(data, size, &info, out, why, sizeof why)) check_why(why, sizeof why);
    free(out);
}

/* A copy of a PNG with each chunk's CRC recomputed (the chunks walked by their lengths, up to
 * one that runs past the end); NULL when nothing changed. */
static uint8_t *png_fix_crcs(const uint8_t *data, size_t size)
{
    static const uint8_t magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (size < 8 || memcmp(data, magic, 8) != 0) return NULL;
    uint8_t *copy = NULL;
    for (size_t at = 8; size - at >= 12;) {
        const uint8_t *c = data + at;
        size_t len = (size_t)c[0] << 24 | (size_t)c[1] << 16 | (size_t)c[2] << 8 | c[3];
        if (len > size - at - 12) break;
        uLong crc = crc32(crc32(0, Z_NULL, 0), c + 4, (uInt)(4 + len));
        uint8_t want[4] = {(uint8_t)(crc >> 24), (uint8_t)(crc >> 16), (uint8_t)(crc >> 8),
                           (uint8_t)crc};
        if (memcmp(c + 8 + len, want, 4) != 0) {
            if (!copy) {
                if (!(copy = malloc(size))) return NULL;
                memcpy(copy, data, size);
            }
            memcpy(copy + at + 8 + len, want, 4);
        }
        at += 12 + len;
    }
    return copy;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run(data, size);
    uint8_t *fixed = png_fix_crcs(data, size);
    if (fixed) run(fixed, size);
    free(fixed);
    return 0;
}
