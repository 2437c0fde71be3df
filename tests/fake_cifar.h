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
#include <sys/stat.h>

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

/* A whole fake CIFAR-10 under root: root/cifar-10-batches-bin/ with data_batch_1..5.bin,
 * test_batch.bin and batches.meta.txt. */
static inline void write_fake_cifar_dir(const char *root)
{
    static const char *const names[] = {"data_batch_1", "data_batch_2", "data_batch_3",
                                        "data_batch_4", "data_batch_5", "test_batch"};
    char path[4096];
    mkdir(root, 0777);
    snprintf(path, sizeof path, "%s/cifar-10-batches-bin", root);
    mkdir(path, 0777);
    for (int b = 0; b < 6; b++) {
        snprintf(path, sizeof path, "%s/cifar-10-batches-bin/%s.bin", root, names[b]);
        write_fake_cifar(path, b < 5 ? (uint64_t)b + 1 : 99, b < 5 ? b + 1 : 0);
    }
    snprintf(path, sizeof path, "%s/cifar-10-batches-bin/batches.meta.txt", root);
    FILE *f = fopen(path, "w");
    if (!f || fputs("airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n", f) < 0 ||
        fclose(f)) {
        fprintf(stderr, "cannot write %s\n", path);
        abort();
    }
}

#endif
