/*
 * run_files.h: the files of a run directory (DESIGN.md, "Results of a run"): its creation,
 * files written whole (to NAME.tmp, then renamed, so a reader never sees half a file), the
 * evaluation tables and the sample images.
 *
 *     char dir[4096];
 *     if (run_files_dir_create(NULL, "quick", dir, sizeof dir, &d)) return 1;  // results/quick/<stamp>
 *     FILE *f = run_files_begin(dir, "per_class.csv", &d);
 *     ...
 *     if (run_files_end(f, dir, "per_class.csv", &d)) return 1;
 *
 * Covered by tests/test_train.c.
 */
#ifndef RUNNER_RUN_FILES_H
#define RUNNER_RUN_FILES_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common.h"
#include "data.h"
#include "diag.h"
#include "evaluate.h"

/*
 * Creates the run directory: out when given (it may exist, but must hold no run: no
 * metrics.jsonl), else results/<name>/<YYYYmmdd-HHMMSS>[-N] under the current directory, N
 * from 2 up when that stamp is taken. The path goes to dir.
 */
MUST_CHECK enum status run_files_dir_create(const char *out, const char *name, char *dir, size_t size,
                                      struct diag *d);

/* mkdir -p path; STATUS_RUNTIME, reported ("PATH: cannot create: REASON"), when it cannot. */
MUST_CHECK enum status run_files_mkdirs(const char *path, struct diag *d);

/* Opens dir/name.tmp for writing; NULL (reported) on failure. */
FILE *run_files_begin(const char *dir, const char *name, struct diag *d);
/* Closes f, checking every write, and renames it to dir/name. */
MUST_CHECK enum status run_files_end(FILE *f, const char *dir, const char *name, struct diag *d);

/* The PNG of run_files_png written to f; false when libpng failed. */
bool run_files_png_stream(FILE *f, const uint8_t *planar, int w, int h, const char *const *key,
                          const char *const *value, int ntext);
/* Writes an RGB image of w x h from planar bytes (R plane, G plane, B plane) as PNG, with
 * tEXt chunks key[i] = value[i]. */
MUST_CHECK enum status run_files_png(const char *path, const uint8_t *planar, int w, int h,
                                        const char *const *key, const char *const *value,
                                        int ntext, struct diag *d);

/* confusion_matrix.csv: a header "true\predicted,<classes...>", one row per true class. */
MUST_CHECK enum status run_files_confusion(const char *dir, const struct eval_result *r,
                                       const char *const *names, struct diag *d);
/* per_class.csv: class,precision,recall,f1,support; returns the macro F1 in *macro_f1. */
MUST_CHECK enum status run_files_per_class(const char *dir, const struct eval_result *r,
                                       const char *const *names, double *macro_f1,
                                       struct diag *d);
/*
 * samples/: the first `count` correctly classified test images (in test order) and the
 * `count` most confidently misclassified ones, as PNG (each at its size in set, the test
 * images), and samples/index.csv: file, index, true, predicted, confidence. Class names in
 * file names keep only [A-Za-z0-9._-] (others become '_'); CSV fields are quoted as needed.
 */
MUST_CHECK enum status run_files_samples(const char *dir, const struct eval_result *r,
                                         const struct dataset *set, const char *const *names,
                                         int64_t count, struct diag *d);

/* w as a shell reads it back: bare when every character is safe
 * ([A-Za-z0-9_-.,/=+:@]), else in single quotes (an empty word as ''). */
void run_files_shell_word(FILE *f, const char *w);

/* seconds as a clock, "m:ss" or "h:mm:ss" (rounded), into buf; returns buf. */
const char *run_files_clock(double seconds, char *buf, size_t size);

/*
 * The evaluation as pictures (TensorBoard's images). The confusion matrix: classes x classes
 * squares of run_files_confusion_cell(classes) pixels (480 / classes, from 2 to 24), row i
 * (true class i) and column j (predicted j) white to dark blue by the share of class i's
 * images predicted as j; *size is its side. The sample grid: the images samples/ holds
 * (wrong_ones: the misclassified, else the correctly classified; at most count), in its order,
 * on ceil(sqrt(n)) columns and as many rows as needed, each fitted into a square cell of
 * run_files_sample_cell(set) pixels (the images' longest side, at most RUN_FILES_GRID_CELL)
 * inside a RUN_FILES_GRID_BORDER-pixel border, green or red: (cell + 2 border) times the
 * columns wide and times the rows high. NULL with *w = *h = 0 when there is no such image,
 * or (why says) when an image cannot be read. Both planar RGB, malloc'd.
 */
enum { RUN_FILES_GRID_CELL = 96, RUN_FILES_GRID_BORDER = 2 };
int run_files_confusion_cell(int classes);
uint8_t *run_files_confusion_image(const struct eval_result *r, int *size);
int run_files_sample_cell(const struct dataset *set);
uint8_t *run_files_sample_grid(const struct eval_result *r, const struct dataset *set,
                               int64_t count, bool wrong_ones, int *w, int *h, char *why,
                               size_t size);

#endif
