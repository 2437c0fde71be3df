/*
 * weights.h: a plan's parameters and buffers to and from safetensors files, by torchvision's
 * names, so weights move between the runner and PyTorch in both directions.
 *
 *     struct st_file *f;
 *     if (st_open("model.safetensors", &d, &f) || weights_load(plan, f, &d)) ...
 *     weights_save(plan, "out.safetensors", ST_F32, &d);
 *
 * Loading is strict, as PyTorch's load_state_dict(strict=True): every tensor of the graph must
 * be in the file with its shape (F32, or F16/BF16 converted; num_batches_tracked I64), and the
 * file may hold nothing else. All mismatches are reported, each naming the file and tensor.
 * Saving writes every tensor in graph order, parameters as `as` (F32, BF16 or F16) and the
 * batchnorm counters as I64, with metadata {"format": "pt"}. A load that fails leaves the plan
 * unchanged. Covered by tests/test_weights.c and tests/test_parity.c.
 */
#ifndef RUNNER_WEIGHTS_H
#define RUNNER_WEIGHTS_H

#include "common.h"
#include "diag.h"
#include "plan.h"
#include "safetensors.h"

MUST_CHECK enum status weights_load(struct plan *p, const struct st_file *f, const char *path,
                                    struct diag *d);
MUST_CHECK enum status weights_save(struct plan *p, const char *path, enum st_dtype as,
                                    struct diag *d);

/* What a load passes over: tensors under the skip prefixes (neither required nor taken: the
 * layers to re-initialize), file tensors under `extra` (a checkpoint's optimizer state), and,
 * with counters_optional, batchnorm counters (num_batches_tracked, the I64 tensors) missing
 * from the file: they keep their value, as PyTorch's BatchNorm does for a state dict without
 * them (timm's exports may lack them). */
struct weights_filter {
    const char *const *skip;
    size_t nskip;
    const char *extra;
    bool counters_optional;
};
/* Whether the network tensor gt is a counter the file f lacks and w lets it lack. */
bool weights_counter_kept(const struct weights_filter *w, const struct graph_tensor *gt,
                          const struct st_file *f);
/* Whether a network tensor is under one of w's skip prefixes (false for w NULL). */
bool weights_skipped(const struct weights_filter *w, const char *name);
/* Reports each tensor of f that g does not have, except those w passes over. */
void weights_check_extra(const struct graph *g, const struct st_file *f, const char *path,
                         const struct weights_filter *w, struct diag *d);
MUST_CHECK enum status weights_load_filtered(struct plan *p, const struct st_file *f,
                                             const char *path, const struct weights_filter *w,
                                             struct diag *d);

/* Adds every tensor of p to w (parameters as `as`); returns the copy w reads from at st_write,
 * to free after it, or NULL when out of memory. */
void *weights_add(struct plan *p, struct st_writer *w, enum st_dtype as);

/* Elements of g's largest tensor (at least 1): the size of a buffer any tensor fits in. */
size_t weights_largest(const struct graph *g);

/* Whether a tensor name is prefix or lies under it: "fc" covers "fc.weight", not "fc2.bias". */
bool weights_under(const char *name, const char *prefix);

#endif
