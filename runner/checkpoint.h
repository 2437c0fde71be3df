/*
 * checkpoint.h: a training run's whole state in one .safetensors file, and back.
 *
 *     struct checkpoint_state s = {.epoch = 3, .batch = 0, .step = 525, ...};
 *     if (checkpoint_save(plan, &opt, &s, run_dir, keep, &d)) ...   // checkpoints/step_*.safetensors
 *     ...
 *     if (checkpoint_resume(plan, &opt, run_dir, &s, &d)) ...        // the latest good one
 *
 * The file holds every tensor of the network by torchvision's names (as model.safetensors),
 * the optimizer's values per trained tensor as "optimizer.<slot>.<tensor>" (PyTorch's names:
 * momentum_buffer; exp_avg, exp_avg_sq), and metadata: format "runner-checkpoint", the
 * position (epoch, batch within it, step), the optimizer's update count, the plan's count of
 * training forwards (dropout masks), and the epoch's running loss sum, correct count and
 * images so far. The randomness of data and augmentation is a function of (seed, epoch,
 * image), so the position is all a run needs to see the same batches again. There is no time
 * or path inside: equal states give equal bytes. A file is written to a temporary name,
 * fsynced, renamed and its folder fsynced (st_write), so a crash at any instant leaves the
 * previous checkpoint intact; only the newest `keep` are kept (0: all). Covered by
 * tests/test_train.c.
 */
#ifndef RUNNER_CHECKPOINT_H
#define RUNNER_CHECKPOINT_H

#include <stdint.h>

#include "common.h"
#include "diag.h"
#include "plan.h"
#include "step.h"

struct checkpoint_state {
    int64_t epoch;      /* the epoch under way (0-based) */
    int64_t batch;      /* batches of it done */
    int64_t step;       /* optimizer steps so far */
    double loss_sum;    /* the epoch so far: sum of batch loss x images */
    int64_t correct, images;
};

/* Saves dir/checkpoints/step_<step>.safetensors; the file's path goes to path (size bytes). */
MUST_CHECK enum status checkpoint_save(struct plan *p, const struct step_optimizer *o,
                                       const struct checkpoint_state *s, const char *dir,
                                       int64_t keep, char *path, size_t size, struct diag *d);

/* Loads the newest checkpoint of dir/checkpoints that reads back whole (a damaged one is
 * reported and passed over) into p, o and s; its path goes to path. */
MUST_CHECK enum status checkpoint_resume(struct plan *p, struct step_optimizer *o,
                                         const char *dir, struct checkpoint_state *s,
                                         char *path, size_t size, struct diag *d);

#endif
