/*
 * data.h: the datasets. CIFAR-10 in its official binary layout (cifar-10-batches-bin/:
 * data_batch_1..5.bin, test_batch.bin, batches.meta.txt) and CIFAR-100 in its own
 * (cifar-100-binary/), read whole into memory, checked, and split; and folder datasets
 * (folder.h), probed and decoded as batches need them.
 *
 *     struct data c;
 *     if (data_load(spec, NULL, &d, &c)) return 1;   // data.dataset, from data_root or data.root
 *     struct data_split sp;
 *     data_split(c.train.n, spec->data.subset, spec->data.val_split, &sp);
 *     dataset_image(&c.train, sp.train[i], buf, &px, &h, &w, why, sizeof why);
 *     data_split_free(&sp);
 *     data_free(&c);
 *
 * A record is one label byte (0-9) and 3072 pixel bytes: the 32x32 red plane, then green,
 * then blue, rows top to bottom. Every file is checked before use: its size must be a whole
 * number of records (10000 of them), every label in 0-9; an error names the file and the
 * record (0-based) that is wrong. When the folder is missing and downloading is allowed, the
 * official archive is fetched with libcurl (download.h: resumed, retried, its MD5 checked,
 * stopped at once by a cancel flag a signal handler sets) and unpacked with tar; otherwise the
 * error says where the runner looked and how to fix it.
 * Covered by tests/test_data.c and, for the download, tests/test_download.c.
 */
#ifndef RUNNER_DATA_H
#define RUNNER_DATA_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "diag.h"
#include "download.h"
#include "image.h"
#include "spec.h"

#define CIFAR_CLASSES 10
#define CIFAR_SIDE 32
#define CIFAR_IMAGE_BYTES (3 * CIFAR_SIDE * CIFAR_SIDE) /* 3072 */
#define CIFAR_RECORD_BYTES (1 + CIFAR_IMAGE_BYTES)       /* 3073 */
#define CIFAR_FILE_RECORDS 10000

/* The official archive and its MD5 (https://www.cs.toronto.edu/~kriz/cifar.html). The
 * environment variable RUNNER_CIFAR10_URL names a mirror instead; a mirror that repacked the
 * archive (same layout, other bytes) also sets RUNNER_CIFAR10_MD5 to its checksum, which is
 * read only when RUNNER_CIFAR10_URL is set. */
#define CIFAR10_URL "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
#define CIFAR10_MD5 "c32a1d4ab5d03f1284b67883e8d87530"
/* CIFAR-100's binary release, found and downloaded the same way (RUNNER_CIFAR100_URL and
 * RUNNER_CIFAR100_MD5 name a mirror). */
#define CIFAR100_URL "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz"
#define CIFAR100_MD5 "03b5dce01913d631647c71ecec9e9cb8"

/* Images with their labels, in file order: in memory (the CIFAR datasets), or files decoded
 * when a batch needs them (a folder dataset; dataset_image). */
struct dataset {
    int64_t n;
    int h, w;              /* the images' size; 0 x 0: they differ (files) */
    int max_h, max_w;      /* the largest image's sides (equal to h, w when they agree) */
    uint8_t *pixels;       /* in memory: n x 3 x h x w bytes, planar R, G, B; NULL for files */
    int32_t *labels;       /* n class indices */
    char **files;          /* files: n paths (the strings in the same allocation) */
    struct image_info *info; /* files: each one's probe */
    const char *cache;     /* files: data.cache, the folder of decoded images, or NULL */
};

/* A dataset loaded: CIFAR-10, CIFAR-100 or a folder. */
struct data {
    char root[4096];
    enum spec_dataset kind;
    int classes;
    char **class_names;    /* classes names (data_free frees them) */
    struct dataset train;
    struct dataset val;    /* a folder's val/; n = 0 when validation is held out of train */
    struct dataset test;   /* test/ (test_batch.bin, test.bin), else a folder's val/ */
    const char *test_from; /* what test holds, for the logs: "test/", "val/ (there is no test/)" */
    int64_t skipped;       /* bad files left out (data.skip_bad) */
    char *cache;           /* data.cache, copied: the sets' cache points here */
};

/* The data root: $RUNNER_DATA when set and not empty, else data->root (already resolved
 * relative to the experiment file), else "data/cifar10" (relative to the current directory). */
void data_root(const struct spec_data *data, char *out, size_t size);

/* CIFAR-10's standard name of class i (0 <= i < CIFAR_CLASSES): "airplane" ... "truck". */
const char *data_cifar10_name(int i);
/* How data_root chose: "RUNNER_DATA", "data.root" or "the default" (for messages). */
const char *data_root_source(const struct spec_data *data);

/*
 * Loads root/cifar-10-batches-bin/. When that folder is missing: with download, fetches the
 * archive (CIFAR10_URL or $RUNNER_CIFAR10_URL) into root, checks its MD5 and unpacks it there;
 * without, or when the download fails, reports where it looked and what to do (set
 * RUNNER_DATA, data.root, or allow the download). cancel (NULL: none) is the download's cancel
 * flag (download_options): once it is set the download stops, keeping its .part, and the load
 * fails with only the download's message ("download interrupted; ..."), for the caller to end
 * as its signal asks. Every error goes to d with the path (and the record) at fault; on
 * failure *out holds nothing to free. Returns STATUS_RUNTIME on failure.
 */
MUST_CHECK enum status cifar10_load(const char *root, bool download,
                                    const volatile sig_atomic_t *cancel, struct diag *d,
                                    struct data *out);
/* CIFAR-100 the same way: root/cifar-100-binary/ (train.bin, test.bin, fine_label_names.txt,
 * coarse_label_names.txt), its labels the fine ones (100 classes) or, with coarse, the 20
 * superclasses. Each record is the coarse label, the fine label and 3072 pixel bytes. */
MUST_CHECK enum status cifar100_load(const char *root, bool download, bool coarse,
                                     const volatile sig_atomic_t *cancel, struct diag *d,
                                     struct data *out);
/* CIFAR-100's class names alone, without reading an image: root/cifar-100-binary/'s
 * fine_label_names.txt (100) or, with coarse, coarse_label_names.txt (20), one a line, into
 * out->classes and out->class_names (out->kind and out->root set, no images; data_free frees
 * it). A file that is missing or holds too few or too many names: reported to d,
 * STATUS_RUNTIME. */
MUST_CHECK enum status cifar100_names(const char *root, bool coarse, struct diag *d,
                                      struct data *out);
/*
 * The experiment's dataset (data.dataset): CIFAR-10 or CIFAR-100 from data_root, or a folder
 * (folder.h) from data.root, with its bad files reported (and, with data.skip_bad, left out).
 * Errors as cifar10_load's, and STATUS_CONFIG for a folder's layout.
 */
MUST_CHECK enum status data_load(const struct spec *s, const volatile sig_atomic_t *cancel,
                                 struct diag *d, struct data *out);
void data_free(struct data *c);

/* Image i of set: its pixels (3 x h x w planar) in *px, its size in *h, *w. In memory: a
 * pointer into set->pixels; files: decoded (or read from data.cache) into buf, which holds
 * 3 x max_h x max_w bytes. false with the file and what is wrong in why. Thread-safe. */
bool dataset_image(const struct dataset *set, int64_t i, uint8_t *buf, const uint8_t **px,
                   int *h, int *w, char *why, size_t why_size);

/*
 * Downloads url into root/cifar-10-binary.tar.gz (download_file: through a .part, resumed and
 * retried, its MD5 checked against md5), unpacks it with tar (without a shell) into a fresh
 * folder in root, moves the cifar-10-batches-bin/ found there into root and removes the
 * archive. root is created when missing (and removed again on failure when left empty). On
 * failure root holds no cifar-10-batches-bin/, and no archive unless it is whole and checked
 * and tar could not unpack it (the next call unpacks it without downloading); a .part is left
 * only after an interruption (o->cancel set included), for the next call to resume, and the
 * message says so; a cancel after the download's checked end keeps the archive unpacked, for
 * the next call to unpack. o NULL: download_defaults(d->out). file:// URLs work too.
 */
MUST_CHECK enum status data_download(const char *root, const char *url, const char *md5,
                                     const struct download_options *o, struct diag *d);
/* The same for an archive holding `folder` (cifar-100-binary/, ...) saved as `archive`. */
MUST_CHECK enum status data_download_as(const char *root, const char *url, const char *md5,
                                        const char *archive, const char *folder,
                                        const struct download_options *o, struct diag *d);

/* data_download of the official archive (CIFAR10_URL, CIFAR10_MD5), or of the mirror named by
 * RUNNER_CIFAR10_URL (with RUNNER_CIFAR10_MD5), with download_defaults and cancel (NULL:
 * none): what cifar10_load does when allowed. */
MUST_CHECK enum status cifar10_download(const char *root, const volatile sig_atomic_t *cancel,
                                        struct diag *d);

/* The same for CIFAR-100 (CIFAR100_URL, or RUNNER_CIFAR100_URL with RUNNER_CIFAR100_MD5). */
MUST_CHECK enum status cifar100_download(const char *root, const volatile sig_atomic_t *cancel,
                                         struct diag *d);

/*
 * Which training images train and which validate: a fixed pseudo-random order of 0..n-1 (the
 * same for every seed, so runs that differ only in seed validate on the same images); the
 * first `subset` of that order are used (0: all n), the first `val` of those validate and the
 * rest train. Both lists are sorted ascending.
 */
struct data_split {
    int64_t *train, *val;
    int64_t ntrain, nval;
};
void data_split(int64_t n, int64_t subset, int64_t val, struct data_split *out);
void data_split_free(struct data_split *s);

#endif
