/*
 * eval_cmd.h: `runner eval`: trained weights measured on the test set.
 *
 *     runner eval RUN_DIR [key=value ...] [--out DIR]
 *     runner eval FILE.yaml model.pretrained=W.safetensors [key=value ...] [--out DIR]
 *
 * The experiment (a run directory's config.yaml, or an experiment file) gives the network,
 * the data and the evaluation transforms; the weights (RUN_DIR/model.safetensors, or
 * model.pretrained: a file, or a URL's copy in the cache, which cli.c fetches first with
 * pretrained_fetch) are loaded strictly, by name, as model.pretrained loads (other programs'
 * names mapped, batchnorm counters the file lacks kept). The test set is evaluated as at the
 * end of a run (eval.flip_tta, eval.batch_size, eval.samples) and summary.json,
 * confusion_matrix.csv, per_class.csv and samples/ are written to DIR/eval/ beside the
 * weights (results/NAME/eval/ for a URL), or to --out. Covered by tests/test_train.c and
 * tests/test_cli.sh.
 */
#ifndef RUNNER_EVAL_CMD_H
#define RUNNER_EVAL_CMD_H

#include "common.h"
#include "graph.h"
#include "spec.h"

/* Evaluates g with the weights in `weights`; writes into out (created). */
MUST_CHECK enum status eval_run(const struct spec *s, const struct graph *g,
                                const char *weights, const char *out);

#endif
