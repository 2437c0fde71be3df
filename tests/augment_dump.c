/*
 * augment_dump.c: one image through a transform list written on the command line, for
 * tests/parity/augment_torchvision.py, which compares the result with torchvision's.
 *
 *     augment_dump IN C H W OUT KEY [--max MH MW] TRANSFORM...
 *
 * IN holds the image as C x H x W bytes (planar); OUT receives the output as float32 (native
 * order), C x OH x OW. TRANSFORM is one of
 *     resize:N[:square|shorter_side[:bilinear|nearest]]
 *     center_crop:N
 *     random_resized_crop:N:SCALE_LO:SCALE_HI:RATIO_LO:RATIO_HI[:bilinear|nearest]
 *     hflip:P
 * KEY is the image's augmentation key. With --max, the list is set up for images of varying
 * size (augment_init with 0 x 0, then augment_set_input_max(MH, MW)) and the image goes
 * through augment_image_sized (the list may then leave the size varying: the output has this
 * image's size, augment_output_size's). Prints "size OH OW" and, for each random_resized_crop, "box I
 * TOP LEFT HEIGHT WIDTH ON" (augment_rrc_box, for the size entering it). Scratch is
 * allocated with exactly a.scratch_floats floats and canary words after it, which must stay
 * untouched. Exits 0, or 1 with a message.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "augment.h"

#define CANARIES 64
#define CANARY 0x5eed5eedu

static int usage(void)
{
    fprintf(stderr, "usage: augment_dump IN C H W OUT KEY [--max MH MW] TRANSFORM...\n");
    return 1;
}

static enum spec_interp interp_of(const char *s)
{
    return s && strcmp(s, "nearest") == 0 ? SPEC_INTERP_NEAREST : SPEC_INTERP_BILINEAR;
}

/* One TRANSFORM argument; false when it is not one. */
static bool parse(char *arg, struct spec_transform *t)
{
    char *f[8] = {NULL};
    int n = 0;
    for (char *p = strtok(arg, ":"); p && n < 8; p = strtok(NULL, ":")) f[n++] = p;
    if (n < 2) return false;
    *t = (struct spec_transform){.size = atoll(f[1])};
    if (strcmp(f[0], "resize") == 0) {
        t->kind = SPEC_TRANSFORM_RESIZE;
        t->mode = f[2] && strcmp(f[2], "shorter_side") == 0 ? SPEC_RESIZE_SHORTER_SIDE
                                                            : SPEC_RESIZE_SQUARE;
        t->interpolation = interp_of(f[3]);
    } else if (strcmp(f[0], "center_crop") == 0) {
        t->kind = SPEC_TRANSFORM_CENTER_CROP;
    } else if (strcmp(f[0], "random_resized_crop") == 0 && n >= 6) {
        t->kind = SPEC_TRANSFORM_RANDOM_RESIZED_CROP;
        t->scale[0] = atof(f[2]);
        t->scale[1] = atof(f[3]);
        t->ratio[0] = atof(f[4]);
        t->ratio[1] = atof(f[5]);
        t->interpolation = interp_of(f[6]);
    } else if (strcmp(f[0], "hflip") == 0) {
        t->kind = SPEC_TRANSFORM_HFLIP;
        t->p = atof(f[1]);
    } else {
        return false;
    }
    return t->kind == SPEC_TRANSFORM_HFLIP || t->size > 0;
}

int main(int argc, char **argv)
{
    if (argc < 8) return usage();
    const char *in_path = argv[1], *out_path = argv[5];
    int c = atoi(argv[2]), h = atoi(argv[3]), w = atoi(argv[4]);
    uint64_t key = strtoull(argv[6], NULL, 10);
    int arg = 7, max_h = 0, max_w = 0;
    if (strcmp(argv[arg], "--max") == 0) {
        if (argc < arg + 4) return usage();
        max_h = atoi(argv[arg + 1]);
        max_w = atoi(argv[arg + 2]);
        arg += 3;
    }
    size_t n = (size_t)(argc - arg);
    struct spec_transform *t = calloc(n, sizeof *t);
    size_t bytes = (size_t)c * h * w;
    uint8_t *src = malloc(bytes);
    if (!t || !src || c < 1 || h < 1 || w < 1) return usage();
    for (size_t i = 0; i < n; i++)
        if (!parse(argv[arg + (int)i], &t[i])) {
            fprintf(stderr, "augment_dump: not a transform: %s\n", argv[arg + (int)i]);
            return 1;
        }
    FILE *f = fopen(in_path, "rb");
    if (!f || fread(src, 1, bytes, f) != bytes) {
        fprintf(stderr, "augment_dump: cannot read %zu bytes from %s\n", bytes, in_path);
        return 1;
    }
    fclose(f);

    struct spec_list list = {t, n};
    struct augment a;
    struct diag d = {.out = stderr};
    if (augment_init(&a, &list, c, max_h ? 0 : h, max_h ? 0 : w, &d)) return 1;
    if (max_h) augment_set_input_max(&a, max_h, max_w);
    int oh, ow; /* this image's output size, which the list may leave varying */
    (void)augment_output_size(&list, h, w, &oh, &ow);
    if (a.out_h && (a.out_h != oh || a.out_w != ow)) {
        fprintf(stderr, "augment_dump: augment_init gives %d x %d, augment_output_size %d x %d\n",
                a.out_h, a.out_w, oh, ow);
        return 1;
    }
    size_t numel = (size_t)c * oh * ow;
    printf("size %d %d\n", oh, ow);
    for (size_t i = 0; i < n; i++) {
        if (t[i].kind != SPEC_TRANSFORM_RANDOM_RESIZED_CROP) continue;
        struct spec_list before = {t, i};
        int bh, bw;
        (void)augment_output_size(&before, h, w, &bh, &bw);
        struct augment_box b = augment_rrc_box(&a, i, key, bh, bw);
        printf("box %zu %d %d %d %d %d\n", i, b.y0, b.x0, b.y1 - b.y0, b.x1 - b.x0, b.on);
    }

    float *scratch = malloc((a.scratch_floats + CANARIES) * sizeof *scratch);
    float *out = malloc((numel + CANARIES) * sizeof *out);
    if (!scratch || !out) return 1;
    uint32_t canary = CANARY;
    for (int i = 0; i < CANARIES; i++) {
        memcpy(scratch + a.scratch_floats + i, &canary, sizeof canary);
        memcpy(out + numel + i, &canary, sizeof canary);
    }
    augment_image_sized(&a, src, h, w, key, out, scratch);
    for (int i = 0; i < CANARIES; i++)
        if (memcmp(scratch + a.scratch_floats + i, &canary, sizeof canary) ||
            memcmp(out + numel + i, &canary, sizeof canary)) {
            fprintf(stderr, "augment_dump: written past the end of %s (%zu floats)\n",
                    memcmp(out + numel + i, &canary, sizeof canary) ? "dst" : "scratch",
                    memcmp(out + numel + i, &canary, sizeof canary)
                        ? numel
                        : a.scratch_floats);
            return 1;
        }
    f = fopen(out_path, "wb");
    if (!f || fwrite(out, sizeof *out, numel, f) != numel ||
        fclose(f)) {
        fprintf(stderr, "augment_dump: cannot write %s\n", out_path);
        return 1;
    }
    free(scratch);
    free(out);
    free(src);
    free(t);
    return 0;
}
