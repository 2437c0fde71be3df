/*
 * pretrained.h: an experiment's pretrained weights (model.pretrained) found or downloaded,
 * then loaded into a plan by torchvision's names, the layers named in model.reinit left as
 * initialized.
 *
 *     plan_init_params(plan, seed);                  // what the re-initialized layers keep
 *     struct pretrained_result pr;
 *     enum status st = pretrained_load(plan, spec, &stop_signal, &pr, &diag);
 *     if (st) return st;                             // every problem is in diag
 *     if (pr.line[0]) puts(pr.line);                 // "pretrained: FILE: 318 tensors ..."
 *
 * Without model.pretrained nothing happens. A local file is read where it is. A URL
 * (http://, https://, hf://OWNER/REPO[/FILE]; url.h) is read from its copy in the cache,
 * path_cache_dir("pretrained"), under url_cache_name: downloaded there first when missing
 * (download_file: a progress line, the .part of an interrupted download resumed, retries), and
 * used from there with no network access afterwards. With model.pretrained_sha256 the file's
 * SHA-256 is checked, a local file's and the cached copy's on every load and a download's once
 * whole: a cached copy or a download that differs is deleted (a cached one is then downloaded
 * again), a local file is left alone; either way a mismatch is an error naming the file, both
 * digests and, for a URL, the URL. A failed download (no connection and no cached copy, an HTTP
 * error, a cut transfer that the retries could not finish, a cancel) is an error naming the URL
 * and the cache path. All of these are STATUS_RUNTIME. Runs of the runner that download into
 * the cache at once take turns (a lock on its folder).
 *
 * Then every tensor of the network must be in the file with its dtype kind and shape, except
 * the tensors under a model.reinit prefix ("fc" covers fc.weight and fc.bias) and batchnorm
 * counters (num_batches_tracked), which keep their value when the file lacks them; and the
 * file may hold nothing else, except, again, tensors under a reinit prefix, which are ignored
 * whatever their shape: reinit: [fc] turns ImageNet's 1000-class classifier into a fresh one
 * of the experiment's classes. Names saved by other programs for the same tensors are mapped
 * first (pretrained_map_names).
 *
 * Every missing, unexpected, mis-typed and mis-shaped tensor is reported at once, each naming
 * the file and the tensor (a mis-shaped one with its shape in the file and in the network,
 * and a hint to add its layer to model.reinit); the status is then STATUS_CONFIG and the plan
 * is unchanged. A file that does not open (st_open) gives its errors and status. Covered by
 * tests/test_pretrained.c and, for URLs, tests/test_pretrained_url.c; torchvision's own
 * ResNet-50 against the runner's by tests/test_pretrained_parity.c.
 */
#ifndef RUNNER_PRETRAINED_H
#define RUNNER_PRETRAINED_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "common.h"
#include "diag.h"
#include "plan.h"
#include "safetensors.h"
#include "spec.h"

struct pretrained_result {
    size_t loaded;   /* tensors of the network taken from the file */
    size_t reinit;   /* tensors of the network under a reinit prefix, left as they were */
    size_t counters; /* batchnorm counters the file lacks, left as they were */
    size_t mapped;   /* file tensors found under another name (pretrained_map_names) */
    char path[4400]; /* the file read: model.pretrained, or a URL's copy in the cache */
    char line[9000]; /* "pretrained: FILE: N tensors loaded, M re-initialized (fc)" (for a URL,
                      * "URL (PATH)"), for the run's output; empty without model.pretrained */
};

/* Loads s->model.pretrained into p as described above, downloading it first when it is a URL
 * not in the cache (cancel: the download stops when it becomes non-zero, as download_file's
 * does; NULL: none); out may be NULL. */
MUST_CHECK enum status pretrained_load(struct plan *p, const struct spec *s,
                                       const volatile sig_atomic_t *cancel,
                                       struct pretrained_result *out, struct diag *d);

/* Where s->model.pretrained is on this machine, into path (size bytes): the local file, or
 * the URL's copy in the cache, downloaded first when missing; each checked against
 * model.pretrained_sha256 when given, as described above. "" without model.pretrained. */
MUST_CHECK enum status pretrained_fetch(const struct spec *s,
                                        const volatile sig_atomic_t *cancel, struct diag *d,
                                        char *path, size_t size);

/* The copy of url in the cache, into buf (nothing is read or created); false when no cache
 * folder can be named ($RUNNER_CACHE_DIR, $XDG_CACHE_HOME and $HOME all unset) or it does not
 * fit. */
bool pretrained_cache_path(const char *url, char *buf, size_t size);

/*
 * The mapping hook, for files whose names differ from the network's: each tensor of f that g
 * does not have, whose name begins with a known prefix of another program's and whose name
 * without it (or with the network's replacement) g has and f does not, is renamed to that
 * (st_rename). Returns how many were. The prefixes, in pretrained.c's table name_rules:
 * "module." (saved from torch.nn.DataParallel or DistributedDataParallel) and "_orig_mod."
 * (from a torch.compile'd model). timm's ResNets (timm/resnet50.tv_in1k and its kin) use
 * torchvision's names and need none.
 */
size_t pretrained_map_names(struct st_file *f, const struct graph *g);

#endif
