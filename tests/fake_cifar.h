/*
 * fake_cifar.h: a synthetic CIFAR-10 file for the tests that train (test_train.c,
 * test_sweep.c): 10000 records in the official layout, the class written in the red plane's
 * level (label * 20 plus noise) so a small network learns it in an epoch.
 */
#ifndef RUNNER_TEST_FAKE_CIFAR_H
#define RUNNER_TEST_FAKE_CIFAR_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "data.h"
#include "rng.h"

/* Writes path; labels run (i + shift) % 10, the noise is keyed by key. Aborts on failure. */
static inline void write_fake_cifar(const char *path, uint64_t key, int shift)
{
    size_t n = CIFAR_FILE_RECORDS * (size_t)CIFAR_RECORD_BYTES;
    uint8_t *buf = malloc(n);
    if (!buf) abort();
    for (size_t i = 0; i < CIFAR_FILE_RECORDS; i++) {
        uint8_t *r = buf + i * CIFAR_RECORD_BYTES, label = (uint8_t)((i + (size_t)shift) % 10);
        r[0] = label;
        for (size_t p = 0; p < CIFAR_IMAGE_BYTES; p++) {
            int noise = (int)(rng_bits(key, i * CIFAR_IMAGE_BYTES + p) % 40);
            r[1 + p] = (uint8_t)(p < 1024 ? label * 20 + noise : 60 + noise * 2);
        }
    }
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, n, f) != n || fclose(f)) {
        fprintf(stderr, "cannot write %s\n", path);
        abort();
    }
    free(buf);
}

#endif
