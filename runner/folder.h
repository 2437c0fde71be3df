/*
 * folder.h: a folder dataset, the layout of torchvision's ImageFolder.
 *
 *     ROOT/train/<class>/...                   required: .jpg, .jpeg and .png files
 *     ROOT/val/<class>/...                     optional: else data.val_split holds train out
 *     ROOT/test/<class>/...                    optional: else evaluation uses val/
 *
 * The classes are train/'s subfolders sorted by name (byte order, which is Python's sorted()
 * on the names as torchvision uses it); val/ and test/ may hold only folders of those names
 * (each mapped to train's index of its name). A class's images are found in its folder and
 * every folder below it (symbolic links followed), in torchvision's order: sorted by folder,
 * then by file name. Files of other kinds are ignored; a class folder with no image is an
 * error, as in torchvision.
 *
 * Every image is probed (image.h) before training: the files that cannot be read or are
 * damaged are all listed, each with its path and what is wrong, and the load fails
 * (STATUS_RUNTIME) — or, with data.skip_bad, they are left out with a warning line each and
 * counted (data.skipped). The pixels are decoded when a batch needs them (dataset_image, in
 * the data-loading threads), or read back from data.cache, a folder of decoded images keyed
 * by each file's path, size and modification time. Covered by tests/test_folder.c.
 */
#ifndef RUNNER_FOLDER_H
#define RUNNER_FOLDER_H

#include "common.h"
#include "data.h"
#include "diag.h"
#include "spec.h"

/* The class folders of root/train/, sorted (*names malloc'd, each name too; *n of them).
 * Errors at `at` (data.root's mark) when root/train/ cannot be read or holds no folder. */
MUST_CHECK enum status folder_classes(const char *root, struct mark at, char ***names, int *n,
                                      struct diag *d);
void folder_classes_free(char **names, int n);

/* The experiment's folder dataset (data.root), probed; see above. */
MUST_CHECK enum status folder_load(const struct spec *s, struct diag *d, struct data *out);

/* dataset_image for a set of files (data.c calls it). */
bool folder_image(const struct dataset *set, int64_t i, uint8_t *buf, char *why,
                  size_t why_size);

/* Writes an in-memory dataset (CIFAR-10, CIFAR-100) out as a folder dataset: the first
 * `subset` images of data_split's fixed order of the training set (0: all) into
 * out/train/<class>/NNNNN.png, NNNNN the image's index in the set, and the first
 * `test_subset` test images (0: all) into out/test/<class>/; as JPEG (.jpg, 4:2:0) of that
 * quality when quality is 1-100, else PNG. For `runner folder`. */
MUST_CHECK enum status folder_export(const struct data *c, const char *out, int64_t subset,
                                     int64_t test_subset, int quality, struct diag *d);

#endif
