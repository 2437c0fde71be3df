/*
 * loader.h: batches of augmented images, made by worker threads ahead of the compute.
 *
 *     struct loader *l;
 *     struct loader_config cfg = {.set = &cifar.train, .index = split.train, .n = split.ntrain,
 *                                 .aug = &aug, .batch = 256, .shuffle = true, .drop_last = true,
 *                                 .seed = seed, .workers = 2, .classes = 10};
 *     loader_create(&cfg, &l);
 *     loader_start(l, epoch);
 *     for (const struct batch *b; (b = loader_next(l)); ) use(b->x, b->labels, b->n);
 *     loader_free(l);
 *
 * Each epoch has its own order (a shuffle keyed by seed and epoch, or the index order), and
 * each image its own random choices (augment_key(seed, epoch, image)): a batch's contents do
 * not depend on which worker made it or when. Workers fill a ring of 2 x workers batches, so
 * the consumer finds the next one ready unless the workers are slower than the compute; the
 * time it waits is counted (loader_stats). The batch returned by loader_next stays valid until
 * the next call. A partial last batch (drop_last false) is padded with zeros; b->n says how
 * many images are real. With indices_only, x and targets are NULL and no thread runs. A set of
 * files (a folder dataset) is decoded by the workers, each image at its own size, through the
 * transforms (augment_image_sized); the transforms' scratch must fit the set's largest image
 * (augment_set_input_max).
 * Covered by tests/test_train.c.
 */
#ifndef RUNNER_LOADER_H
#define RUNNER_LOADER_H

#include <stdbool.h>
#include <stdint.h>

#include "augment.h"
#include "common.h"
#include "data.h"

struct loader_config {
    const struct dataset *set;
    const int64_t *index; /* the images of set to use, n of them */
    int64_t n;
    const struct augment *aug;
    int64_t batch;
    bool shuffle, drop_last;
    uint64_t seed;
    int workers; /* >= 1; unused with indices_only */
    int classes;
    /* Batches that only name their images (image, key, labels), made on the consumer's
     * thread when asked for: the plan keeps the dataset and augments them (plan_set_batch). */
    bool indices_only;
};

struct batch {
    int64_t number;        /* within the epoch */
    int64_t n;             /* real images (the rest is zero padding) */
    float *x;              /* (batch, C, H, W) */
    int32_t *labels;       /* (batch) */
    float *targets;        /* (batch, classes), soft when mixed */
    bool mixed;            /* mixup or cutmix changed this batch */
    int64_t *image;        /* (batch) the dataset index of each image; -1: padding */
    uint64_t *key;         /* (batch) each image's augment_key */
};

struct loader_stats {
    double wait_seconds; /* the consumer waiting for a batch */
    double work_seconds; /* the workers making batches, summed over workers */
    int64_t batches;
};

struct loader;

/* Workers when data.workers is 0: 2 below 8 cores, 4 below 16, else 8. */
int loader_default_workers(void);

MUST_CHECK enum status loader_create(const struct loader_config *cfg, struct loader **out);
/* Batches per epoch. */
int64_t loader_batches(const struct loader *l);
/* Starts an epoch (after the previous one was read to its end, or before the first). */
void loader_start(struct loader *l, int64_t epoch);
/* The same, from batch `first` of the epoch (a resumed run). */
void loader_start_at(struct loader *l, int64_t epoch, int64_t first);
/* The next batch of the epoch, or NULL after the last, or once an image could not be read
 * (loader_error then says which and why). */
const struct batch *loader_next(struct loader *l);
/* "PATH: what is wrong" for the image that could not be read, or NULL. Once set, the loader
 * gives no more batches. */
const char *loader_error(const struct loader *l);
void loader_stats(const struct loader *l, struct loader_stats *s);
void loader_free(struct loader *l);

#endif
