/*
 * image_dump.c: one file through the image decoders (runner/image.c), for tests/image_pil.py,
 * which compares the pixels with PIL's Image.convert("RGB").
 *
 *     image_dump IN OUT
 *
 * Probes and decodes IN (a PNG or a JPEG) and writes its planar RGB bytes (3 x H x W: the red
 * plane, then green, then blue) to OUT; prints "size H W" and the format ("png" or "jpeg").
 * Exits 0, or 1 with the decoder's message.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "image.h"

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: image_dump IN OUT\n");
        return 1;
    }
    struct image_info info;
    char why[300];
    if (!image_probe_file(argv[1], &info, why, sizeof why)) {
        fprintf(stderr, "%s: %s\n", argv[1], why);
        return 1;
    }
    size_t n = 3 * (size_t)info.h * info.w;
    uint8_t *rgb = malloc(n);
    if (!rgb) {
        fprintf(stderr, "%s: out of memory\n", argv[1]);
        return 1;
    }
    if (!image_decode_file(argv[1], &info, rgb, why, sizeof why)) {
        fprintf(stderr, "%s: %s\n", argv[1], why);
        free(rgb);
        return 1;
    }
    FILE *f = fopen(argv[2], "wb");
    bool ok = f && fwrite(rgb, 1, n, f) == n;
    if (f && fclose(f)) ok = false;
    free(rgb);
    if (!ok) {
        fprintf(stderr, "%s: cannot write\n", argv[2]);
        return 1;
    }
    printf("size %d %d %s\n", info.h, info.w, info.format == IMAGE_PNG ? "png" : "jpeg");
    return 0;
}
