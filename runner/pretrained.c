/*
 * pretrained.c: model.pretrained found (a URL's copy in the cache, downloaded when missing)
 * and loaded into a plan, model.reinit left out; see pretrained.h.
 *
 * The file is checked here against the network first, so that each mismatch can say what to
 * do about it (add the layer to model.reinit), and only a file that fits is handed to
 * weights_load_filtered, which sets the tensors.
 */
#include "pretrained.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "download.h"
#include "paths.h"
#include "url.h"
#include "weights.h"

#define CACHE_SUBDIR "pretrained" /* under path_cache_dir */
#define LOCK_POLL_S 0.1          /* a run waiting for another's download looks this often */

/* --------------------------------------------------------------------------------------- */
/* Helpers */

/* "a, b, c": the reinit list as written, then `more` when given. */
static const char *reinit_text(const struct spec *s, const char *more, char *buf, size_t size)
{
    size_t k = 0;
    buf[0] = 0;
    for (size_t i = 0; i <= s->model.reinit.n && k < size; i++) {
        const char *name = i < s->model.reinit.n ? s->model.reinit.v[i] : more;
        if (name) k += (size_t)snprintf(buf + k, size - k, "%s%s", k ? ", " : "", name);
    }
    return buf;
}

/* --------------------------------------------------------------------------------------- */
/* The file: a local path, or a URL's copy in the cache */

bool pretrained_cache_path(const char *url, char *buf, size_t size)
{
    char dir[4096], name[256];
    if (!path_cache_dir(CACHE_SUBDIR, dir, sizeof dir) || !url_cache_name(url, name, sizeof name))
        return false;
    int n = snprintf(buf, size, "%s/%s", dir, name);
    return n > 0 && (size_t)n < size;
}

/* path's SHA-256 into got, and into *same whether it is want (either case); false, with an
 * error in d, when it cannot be read. */
static bool sha256_is(const char *path, const char *want, char got[65], bool *same,
                      struct diag *d)
{
    if (download_sha256_file(path, got, d)) return false;
    *same = strcasecmp(got, want) == 0;
    return true;
}

/* A local model.pretrained: its SHA-256 checked when model.pretrained_sha256 is given. */
static enum status check_local(const struct spec *s, const char *path, struct diag *d)
{
    const char *want = s->model.pretrained_sha256;
    char got[65];
    bool same;
    if (!want) return STATUS_OK;
    if (!sha256_is(path, want, got, &same, d)) return STATUS_RUNTIME;
    if (same) return STATUS_OK;
    diag_error(d, spec_mark(s, "model.pretrained_sha256"),
               "%s: SHA-256 mismatch: got %s, expected %s (model.pretrained_sha256)", path, got,
               want);
    diag_hint(d, "the file is not the one the experiment expects; sha256sum %s shows its digest",
              path);
    return STATUS_RUNTIME;
}


/* Whether the copy at path can be used: there, and of the right SHA-256 when want is given.
 * A copy of another digest is deleted (and said so), for the download to replace it. */
static bool cached(const char *path, const char *want, struct diag *d)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return false;
    if (!want) return true;
    char got[65] = "unreadable";
    bool same = false;
    struct diag quiet = {0};
    if (sha256_is(path, want, got, &same, &quiet) && same) return true;
    remove(path);
    download_say(d, "%s: SHA-256 %s, expected %s: deleted, downloading it again", path, got, want);
    return false;
}

/* Takes the cache folder's lock (dir_fd, flock), waiting for another run's download; false
 * when cancelled first. */
static bool lock_dir(int dir_fd, const char *dir, const volatile sig_atomic_t *cancel,
                     struct diag *d)
{
    bool said = false;
    while (flock(dir_fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK && errno != EINTR) return true; /* no locks here: go on */
        if (cancel && *cancel) return false;
        if (!said) download_say(d, "waiting for another run downloading into %s", dir);
        said = true;
        struct timespec ts = {0, (long)(LOCK_POLL_S * 1e9)};
        nanosleep(&ts, NULL);
    }
    return true;
}

/* What to do after a failed download of text (url once resolved) into path. */
static void download_hint(const char *text, const char *path, enum download_failure why,
                          struct diag *d)
{
    switch (why) {
    case DOWNLOAD_FAILURE_CONNECT:
        diag_hint(d, "model.pretrained is %s, and the cache has no copy of it (%s): run once "
                     "where the host can be reached, or put the file there", text, path);
        break;
    case DOWNLOAD_FAILURE_HTTP:
        diag_hint(d, "model.pretrained is %s; nothing was kept in the cache (%s)%s", text, path,
                  strncmp(text, "hf://", 5) == 0
                      ? ". hf://OWNER/REPO/FILE names a file other than model.safetensors; "
                        "private and gated repositories cannot be downloaded"
                      : "");
        break;
    case DOWNLOAD_FAILURE_CHECKSUM:
        diag_hint(d, "model.pretrained is %s; model.pretrained_sha256 says which file it must "
                     "be", text);
        break;
    case DOWNLOAD_FAILURE_INTERRUPTED:
    case DOWNLOAD_FAILURE_CANCELLED:
    case DOWNLOAD_FAILURE_OTHER:
        diag_hint(d, "model.pretrained is %s, to be kept in the cache as %s", text, path);
        break;
    case DOWNLOAD_FAILURE_NONE: break;
    }
}

/* A URL's copy into path: the cache's, else downloaded into it (under the folder's lock). */
static enum status fetch_url(const struct spec *s, const char *text,
                             const volatile sig_atomic_t *cancel, struct diag *d, char *path,
                             size_t size)
{
    const char *want = s->model.pretrained_sha256;
    char dir[4096], url[8192];
    if (!pretrained_cache_path(text, path, size) ||
        !path_cache_dir(CACHE_SUBDIR, dir, sizeof dir) || !url_resolve(text, url, sizeof url)) {
        diag_error(d, spec_mark(s, "model.pretrained"), "cannot name a cache folder for %s",
                   text);
        diag_hint(d, "set RUNNER_CACHE_DIR (or XDG_CACHE_HOME, or HOME) to a folder the run "
                     "may write");
        return STATUS_RUNTIME;
    }
    if (cached(path, want, d)) return STATUS_OK; /* no network */
    if (!path_mkdirs(dir)) {
        diag_error(d, (struct mark){0}, "%s: cannot create the cache folder: %s", dir,
                   strerror(errno));
        return STATUS_RUNTIME;
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0 && !lock_dir(fd, dir, cancel, d)) {
        close(fd);
        diag_error(d, (struct mark){0}, "%s: interrupted while another run downloaded into %s",
                   text, dir);
        return STATUS_RUNTIME;
    }
    enum status st = STATUS_OK;
    if (!cached(path, want, d)) { /* the other run may have fetched it meanwhile */
        struct download_options o = download_defaults(d->out);
        o.cancel = cancel;
        enum download_failure why;
        if ((st = download_file(url, path, want, &o, d, &why))) download_hint(text, path, why, d);
    }
    if (fd >= 0) close(fd); /* and the lock with it */
    return st;
}

enum status pretrained_fetch(const struct spec *s, const volatile sig_atomic_t *cancel,
                             struct diag *d, char *path, size_t size)
{
    const char *p = s->model.pretrained;
    path[0] = 0;
    if (!p) return STATUS_OK;
    if (url_has_scheme(p)) return fetch_url(s, p, cancel, d, path, size);
    if ((size_t)snprintf(path, size, "%s", p) >= size) {
        diag_error(d, spec_mark(s, "model.pretrained"), "the path is too long");
        return STATUS_RUNTIME;
    }
    return check_local(s, path, d);
}

/* --------------------------------------------------------------------------------------- */
/* Names */

/* Prefixes other programs put before the names of the same tensors: a file tensor under
 * `from` the network lacks is the network's `to` + the rest. Keep it to what is known to
 * occur; timm's ResNets need no rule (their names are torchvision's). */
static const struct {
    const char *from, *to;
} name_rules[] = {
    {"module.", ""},    /* saved from torch.nn.DataParallel or DistributedDataParallel */
    {"_orig_mod.", ""}, /* saved from a model compiled with torch.compile */
};

size_t pretrained_map_names(struct st_file *f, const struct graph *g)
{
    size_t mapped = 0;
    char name[1024];
    for (size_t i = 0; i < st_count(f); i++) {
        const char *have = st_tensor_at(f, i)->name;
        if (graph_find_tensor(g, have)) continue;
        for (size_t r = 0; r < ARRAY_LEN(name_rules); r++) {
            size_t n = strlen(name_rules[r].from);
            if (strncmp(have, name_rules[r].from, n) != 0) continue;
            int k = snprintf(name, sizeof name, "%s%s", name_rules[r].to, have + n);
            if (k > 0 && (size_t)k < sizeof name && graph_find_tensor(g, name) &&
                st_rename(f, i, name)) {
                mapped++;
                break;
            }
        }
    }
    return mapped;
}

/* --------------------------------------------------------------------------------------- */
/* Checks */

/* The network's tensors, except those to re-initialize: each must be in the file, of its kind
 * (float, or I64 for the counters) and shape; a counter may be missing (filter->
 * counters_optional). A shape that differs is where a fine-tuning experiment usually goes
 * wrong (a classifier of other classes), so it gets a hint, once per layer. */
static void check_network(const struct graph *g, const struct st_file *f, const char *path,
                          const struct spec *s, const struct weights_filter *reinit,
                          struct diag *d)
{
    const char **names = malloc((st_count(f) + 1) * sizeof *names);
    for (size_t i = 0; names && i < st_count(f); i++) names[i] = st_tensor_at(f, i)->name;
    int hinted = -1; /* the layer last given the reinit hint */
    for (size_t i = 0; i < g->ntensors; i++) {
        const struct graph_tensor *gt = &g->tensors[i];
        if (weights_skipped(reinit, gt->name) || weights_counter_kept(reinit, gt, f)) continue;
        char a[SHAPE_TEXT * 2], b[SHAPE_TEXT * 2];
        st_shape_text(gt->t.rank, gt->t.dim, b, sizeof b);
        const struct st_tensor *t = st_find(f, gt->name);
        if (!t) {
            diag_error(d, (struct mark){0}, "%s: no tensor '%s' (shape %s in the network)", path,
                       gt->name, b);
            const char *best =
                names ? diag_closest(gt->name, (const char *const *)names, st_count(f)) : NULL;
            if (best) diag_hint(d, "did you mean '%s'?", best);
            continue;
        }
        bool want_i64 = gt->t.dtype == TENSOR_I64;
        if ((t->dtype == ST_I64) != want_i64) {
            diag_error(d, (struct mark){0}, "%s: tensor '%s': dtype %s, expected %s", path,
                       gt->name, st_dtype_name(t->dtype), want_i64 ? "I64" : "F32, F16 or BF16");
            continue;
        }
        bool same = t->rank == gt->t.rank;
        for (int k = 0; same && k < t->rank; k++) same = t->shape[k] == gt->t.dim[k];
        if (same) continue;
        diag_error(d, (struct mark){0}, "%s: tensor '%s': shape %s in the file, %s in the network",
                   path, gt->name, st_shape_text(t->rank, t->shape, a, sizeof a), b);
        if (gt->layer != hinted) {
            const char *layer = g->layers[gt->layer].name;
            char list[1024];
            diag_hint(d, "to train '%s' afresh instead of loading it, re-initialize it: "
                      "model.reinit: [%s]", layer, reinit_text(s, layer, list, sizeof list));
            hinted = gt->layer;
        }
    }
    free(names);
}

/* --------------------------------------------------------------------------------------- */

/* The line the run prints: what was read, and what was loaded. */
static void result_line(const struct spec *s, struct pretrained_result *out)
{
    const char *p = s->model.pretrained;
    char list[1024];
    FILE *f = fmemopen(out->line, sizeof out->line, "w"); /* cut short if it does not fit */
    if (!f) return;
    if (url_has_scheme(p)) fprintf(f, "pretrained: %s (%s): ", p, out->path);
    else fprintf(f, "pretrained: %s: ", out->path);
    fprintf(f, "%zu tensors loaded", out->loaded);
    if (s->model.reinit.n)
        fprintf(f, ", %zu re-initialized (%s)", out->reinit,
                reinit_text(s, NULL, list, sizeof list));
    if (out->counters)
        fprintf(f, ", %zu batchnorm counter%s not in the file (kept)", out->counters,
                out->counters == 1 ? "" : "s");
    if (out->mapped) fprintf(f, ", %zu found under other names", out->mapped);
    fclose(f);
}

enum status pretrained_load(struct plan *p, const struct spec *s,
                            const volatile sig_atomic_t *cancel, struct pretrained_result *out,
                            struct diag *d)
{
    struct pretrained_result local;
    if (!out) out = &local;
    *out = (struct pretrained_result){0};
    if (!s->model.pretrained) return STATUS_OK;
    enum status st = pretrained_fetch(s, cancel, d, out->path, sizeof out->path);
    if (st) return st;
    const char *path = out->path;
    struct st_file *f;
    if ((st = st_open(path, d, &f))) return st;
    const struct graph *g = p->g;
    int before = d->errors;
    out->mapped = pretrained_map_names(f, g);
    /* The file's tensors must each be the network's or lie under a reinit prefix. */
    struct weights_filter reinit = {.skip = s->model.reinit.v, .nskip = s->model.reinit.n,
                                    .counters_optional = true};
    check_network(g, f, path, s, &reinit, d);
    weights_check_extra(g, f, path, &reinit, d);
    if (d->errors == before) {
        /* Checked above; this sets the tensors (and would report anything missed). */
        st = weights_load_filtered(p, f, path, &reinit, d);
    } else {
        st = STATUS_CONFIG;
    }
    for (size_t i = 0; !st && i < g->ntensors; i++) {
        const struct graph_tensor *gt = &g->tensors[i];
        if (weights_skipped(&reinit, gt->name)) out->reinit++;
        else if (weights_counter_kept(&reinit, gt, f)) out->counters++;
        else out->loaded++;
    }
    st_close(f);
    if (st) return st;
    result_line(s, out);
    return STATUS_OK;
}
