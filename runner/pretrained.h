/*
 * pretrained.h: an experiment's pretrained weights (model.pretrained) loaded into a plan by
 * torchvision's names, the layers named in model.reinit left as initialized.
 *
 *     plan_init_params(plan, seed);                  // what the re-initialized layers keep
 *     struct pretrained_result pr;
 *     enum status st = pretrained_load(plan, spec, &pr, &diag);
 *     if (st) return st;                             // every problem is in diag
 *     if (pr.line[0]) puts(pr.line);                 // "pretrained: FILE: 318 tensors ..."
 *
 * Without model.pretrained nothing happens. Otherwise every tensor of the network must be in
 * the file with its dtype kind and shape, except the tensors under a model.reinit prefix
 * ("fc" covers fc.weight and fc.bias); and the file may hold nothing else, except, again,
 * tensors under a reinit prefix, which are ignored whatever their shape: reinit: [fc] turns
 * ImageNet's 1000-class classifier into a fresh one of the experiment's classes.
 *
 * Every missing, unexpected, mis-typed and mis-shaped tensor is reported at once, each naming
 * the file and the tensor (a mis-shaped one with its shape in the file and in the network,
 * and a hint to add its layer to model.reinit); the status is then STATUS_CONFIG and the plan
 * is unchanged. A file that does not open (st_open) gives its errors and status. Covered by
 * tests/test_pretrained.c; torchvision's own ResNet-50 against the runner's by
 * tests/test_pretrained_parity.c.
 */
#ifndef RUNNER_PRETRAINED_H
#define RUNNER_PRETRAINED_H

#include <stddef.h>

#include "common.h"
#include "diag.h"
#include "plan.h"
#include "spec.h"

struct pretrained_result {
    size_t loaded; /* tensors of the network taken from the file */
    size_t reinit; /* tensors of the network under a reinit prefix, left as they were */
    char line[4600]; /* "pretrained: FILE: N tensors loaded, M re-initialized (fc)", for the
                      * run's output; empty without model.pretrained */
};

/* Loads s->model.pretrained into p as described above; out may be NULL. */
MUST_CHECK enum status pretrained_load(struct plan *p, const struct spec *s,
                                       struct pretrained_result *out, struct diag *d);

#endif
