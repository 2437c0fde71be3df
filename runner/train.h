/*
 * train.h: `runner FILE`: an experiment run from start to end, every result left on disk.
 *
 *     struct train_options o = {.out = NULL, .profile = false};
 *     int rc = train_run(spec, graph, &o);     // 0, 1 (runtime failure) or 2 (bad config)
 *
 * The run: load and check the data, compile the network into a training plan (and an
 * evaluation plan at eval.batch_size), create the run directory, then for every epoch train
 * on shuffled, augmented batches (made ahead by worker threads), validate on the held-out
 * images, append a row to metrics.jsonl and metrics.csv; at the end evaluate on the test set
 * and write confusion_matrix.csv, per_class.csv, samples/, model.safetensors and summary.json.
 * Everything printed also goes to run.log. A terminal gets a progress bar; anything else
 * plain lines. Checkpoints (checkpoint.h) are saved every checkpoint.every_epochs epochs and
 * when SIGINT or SIGTERM arrives (the step under way finishes first; the status is then
 * STATUS_SIGINT or STATUS_SIGTERM and the resume command is printed). With resume, the run
 * continues in its directory from its latest good checkpoint, and ends exactly as a run that
 * was never stopped: the same metrics and the same model.safetensors, byte for byte. Covered by tests/test_train.c and tests/test_quick.sh.
 */
#ifndef RUNNER_TRAIN_H
#define RUNNER_TRAIN_H

#include <stdbool.h>

#include "common.h"
#include "graph.h"
#include "plan.h"
#include "spec.h"

struct train_options {
    const char *out;    /* the run directory; NULL: results/<name>/<stamp> */
    const char *resume; /* a run directory to continue from its latest checkpoint */
    int64_t stop_after_epoch; /* > 0: save a checkpoint after this epoch and stop */
    bool profile;       /* time per pass, the data loader's waits, and per op kind */
    const char *command; /* how the run was started, for the resume hint ("runner FILE ...") */
    const struct backend *backend; /* runs the plans instead of the device's backend (a test's
                                      failing backend); NULL: the device's */
};

MUST_CHECK enum status train_run(const struct spec *s, const struct graph *g,
                                 const struct train_options *o);

#endif
