/*
 * decode_bench.c: how many images a second one thread decodes (runner/image.c), the work a
 * folder dataset's loader thread does for each sample. Built with the tests; figures in
 * tests/bench/RESULTS.md.
 *
 *     decode_bench FILE [SECONDS]                   (default 5 s, in 5 rounds)
 *     decode_bench --png-from-cifar BIN N OUT.png   record N of a CIFAR-10 .bin file as a PNG
 *     decode_bench --jpeg-photo W H OUT.jpg         a photo-like W x H JPEG, quality 90, 4:2:0
 *
 * The first form probes FILE once, then decodes it over and over in rounds of SECONDS / 5:
 * from its bytes in memory (image_decode) and from the file (image_decode_file: read, then
 * decode, as the loader calls it; the file stays in the page cache). Prints each round's
 * images/s, their median, and the median images per second of the thread's CPU time. The other two write the inputs the figures were measured on:
 * a CIFAR image as libpng writes it by default (zlib level 6, adaptive filters), and smooth
 * gradients with noise (a photograph's mix of flat and busy blocks) through TurboJPEG.
 * Exits 0, or 1 with a message.
 */
#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <turbojpeg.h>

#include "image.h"

#define ROUNDS 5

/* Seconds on clock c: CLOCK_MONOTONIC (wall) or CLOCK_THREAD_CPUTIME_ID (this thread's CPU). */
static double seconds(clockid_t c)
{
    struct timespec t;
    clock_gettime(c, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int die(const char *what, const char *why)
{
    fprintf(stderr, "decode_bench: %s: %s\n", what, why);
    return 1;
}

/* ---------------------------------------------------------------------------------------- */
/* Inputs */

/* Record n of a CIFAR-10 .bin file (1 label byte, then 3 x 32 x 32 planar bytes) as a PNG. */
static int png_from_cifar(const char *bin, long n, const char *out)
{
    enum { SIDE = 32, RECORD = 1 + 3 * SIDE * SIDE };
    uint8_t rec[RECORD], rgb[3 * SIDE * SIDE];
    FILE *f = fopen(bin, "rb");
    if (!f) return die(bin, "cannot open");
    bool ok = fseek(f, n * RECORD, SEEK_SET) == 0 && fread(rec, 1, RECORD, f) == RECORD;
    fclose(f);
    if (!ok) return die(bin, "no such record");
    for (int i = 0; i < SIDE * SIDE; i++)
        for (int c = 0; c < 3; c++) rgb[3 * i + c] = rec[1 + c * SIDE * SIDE + i];
    FILE *o = fopen(out, "wb");
    if (!o) return die(out, "cannot create");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, info ? &info : NULL);
        fclose(o);
        return die(out, "libpng failed");
    }
    png_init_io(png, o);
    png_set_IHDR(png, info, SIDE, SIDE, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < SIDE; y++) png_write_row(png, rgb + 3 * SIDE * y);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return fclose(o) ? die(out, "cannot write") : 0;
}

/* Smooth gradients plus uniform noise of +-12 (a fixed generator), as a quality-90 4:2:0 JPEG. */
static int jpeg_photo(int w, int h, const char *out)
{
    if (w < 2 || h < 2 || w > 8192 || h > 8192) return die(out, "sizes must be 2 to 8192");
    uint8_t *rgb = malloc(3 * (size_t)w * h);
    if (!rgb) return die(out, "out of memory");
    uint32_t r = 12345;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                r = r * 1664525u + 1013904223u;
                int v = (x * 255 / (w - 1) * (c + 1) + y * 255 / (h - 1) * (3 - c)) / 3 +
                        (int)(r >> 24) % 25 - 12;
                rgb[3 * ((size_t)y * w + x) + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    tjhandle tj = tjInitCompress();
    unsigned char *jpg = NULL;
    unsigned long size = 0;
    int bad = !tj || tjCompress2(tj, rgb, w, 3 * w, h, TJPF_RGB, &jpg, &size, TJSAMP_420, 90, 0);
    free(rgb);
    FILE *o = bad ? NULL : fopen(out, "wb");
    bool ok = o && fwrite(jpg, 1, size, o) == size;
    if (o && fclose(o)) ok = false;
    tjFree(jpg);
    if (tj) tjDestroy(tj);
    return ok ? 0 : die(out, bad ? "TurboJPEG failed" : "cannot write");
}

/* ---------------------------------------------------------------------------------------- */
/* Timing */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Images a second over ROUNDS rounds of `secs` each, from memory (path NULL) or the file:
 * each round's by the wall clock, then the medians by the wall clock and by the thread's CPU
 * time (which other work on a busy machine slows less). */
static bool measure(const char *label, const uint8_t *data, size_t size, const char *path,
                    const struct image_info *info, uint8_t *out, double secs)
{
    char why[300];
    double rate[ROUNDS], cpu_rate[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        long n = 0;
        double t0 = seconds(CLOCK_MONOTONIC), c0 = seconds(CLOCK_THREAD_CPUTIME_ID), t;
        do {
            bool ok = path ? image_decode_file(path, info, out, why, sizeof why)
                           : image_decode(data, size, info, out, why, sizeof why);
            if (!ok) {
                fprintf(stderr, "decode_bench: %s\n", why);
                return false;
            }
            n++;
        } while ((t = seconds(CLOCK_MONOTONIC) - t0) < secs);
        rate[r] = (double)n / t;
        cpu_rate[r] = (double)n / (seconds(CLOCK_THREAD_CPUTIME_ID) - c0);
    }
    printf("  %-34s", label);
    for (int r = 0; r < ROUNDS; r++) printf(" %7.0f", rate[r]);
    qsort(rate, ROUNDS, sizeof rate[0], cmp_double);
    qsort(cpu_rate, ROUNDS, sizeof cpu_rate[0], cmp_double);
    printf("  median %7.0f, per CPU second %7.0f\n", rate[ROUNDS / 2], cpu_rate[ROUNDS / 2]);
    return true;
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--png-from-cifar") == 0)
        return png_from_cifar(argv[2], atol(argv[3]), argv[4]);
    if (argc == 5 && strcmp(argv[1], "--jpeg-photo") == 0)
        return jpeg_photo(atoi(argv[2]), atoi(argv[3]), argv[4]);
    if (argc < 2 || argc > 3 || argv[1][0] == '-') {
        fprintf(stderr, "usage: decode_bench FILE [SECONDS]\n"
                        "       decode_bench --png-from-cifar BIN N OUT.png\n"
                        "       decode_bench --jpeg-photo W H OUT.jpg\n");
        return 1;
    }
    double secs = (argc == 3 ? atof(argv[2]) : 5.0) / ROUNDS;
    if (!(secs > 0)) return die(argv[2], "SECONDS must be a positive number");
    uint8_t *data;
    size_t size;
    struct image_info info;
    char why[300];
    if (!image_read_file(argv[1], &data, &size, why, sizeof why)) return die(argv[1], why);
    if (!image_probe(data, size, &info, why, sizeof why)) {
        free(data);
        return die(argv[1], why);
    }
    uint8_t *out = malloc(3 * (size_t)info.w * info.h);
    if (!out) {
        free(data);
        return die(argv[1], "out of memory");
    }
    printf("%s: %s %d x %d, %zu bytes; one thread, %d rounds of %.2f s (images/s)\n", argv[1],
           info.format == IMAGE_PNG ? "PNG" : "JPEG", info.w, info.h, size, ROUNDS, secs);
    bool ok = measure("image_decode (bytes in memory)", data, size, NULL, &info, out, secs) &&
              measure("image_decode_file (read + decode)", NULL, 0, argv[1], &info, out, secs);
    free(out);
    free(data);
    return ok ? 0 : 1;
}
