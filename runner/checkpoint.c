/*
 * checkpoint.c: training state to and from safetensors; see checkpoint.h.
 */
#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "paths.h"
#include "safetensors.h"
#include "weights.h"

#define FORMAT "runner-checkpoint"

/* PyTorch's names for an optimizer's values; the slot after them is the weights' EMA. */
static const char *slot_name(const struct step_optimizer *o, int slot)
{
    static const char *const adam[] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
    if (slot == o->ema_slot) return "ema";
    if (o->type == SPEC_OPTIMIZER_SGD) return "momentum_buffer";
    return slot < 3 ? adam[slot] : "ema";
}

/* Step numbers of dir/checkpoints/step_<N>.safetensors, ascending; *n of them. */
static int64_t *list_steps(const char *dir, size_t *n)
{
    *n = 0;
    char sub[4200];
    snprintf(sub, sizeof sub, "%s/checkpoints", dir);
    DIR *dp = opendir(sub);
    if (!dp) return NULL;
    int64_t *steps = NULL;
    size_t cap = 0;
    for (struct dirent *e; (e = readdir(dp));) {
        long long step;
        int end = 0;
        if (sscanf(e->d_name, "step_%lld.safetensors%n", &step, &end) != 1 ||
            e->d_name[end] != 0 || step < 0)
            continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            int64_t *grown = realloc(steps, cap * sizeof *steps);
            if (!grown) abort();
            steps = grown;
        }
        steps[(*n)++] = step;
    }
    closedir(dp);
    for (size_t i = 1; i < *n; i++) /* insertion sort: a handful of files */
        for (size_t j = i; j > 0 && steps[j - 1] > steps[j]; j--) {
            int64_t t = steps[j];
            steps[j] = steps[j - 1];
            steps[j - 1] = t;
        }
    return steps;
}

static void file_of(const char *dir, int64_t step, char *path, size_t size)
{
    if (snprintf(path, size, "%s/checkpoints/step_%08lld.safetensors", dir, (long long)step) >=
        (int)size)
        path[0] = 0;
}

enum status checkpoint_save(struct plan *p, const struct step_optimizer *o,
                            const struct checkpoint_state *s, const char *dir, int64_t keep,
                            char *path, size_t size, struct diag *d)
{
    if (plan_status(p)) { /* the last good checkpoint stays the latest */
        diag_error(d, (struct mark){0}, "%s: no checkpoint written: the plan failed (%s)", dir,
                   plan_error(p));
        return STATUS_RUNTIME;
    }
    char sub[4200];
    snprintf(sub, sizeof sub, "%s/checkpoints", dir);
    if (!path_mkdirs(sub)) {
        diag_error(d, (struct mark){0}, "%s: cannot create: %s", sub, strerror(errno));
        return STATUS_RUNTIME;
    }
    file_of(dir, s->step, path, size);
    const struct graph *g = p->g;
    struct st_writer *w = st_writer_new();
    void *weights = weights_add(p, w, ST_F32);
    size_t floats = (size_t)g->nparams + 1; /* the trained tensors' values */
    int slots = p->opt.optimizer_slots;
    float *state = malloc(floats * (size_t)(slots > 0 ? slots : 1) * sizeof *state);
    if (!weights || !state) {
        free(weights);
        free(state);
        st_writer_free(w);
        diag_error(d, (struct mark){0}, "%s: out of memory saving a checkpoint", path);
        return STATUS_RUNTIME;
    }
    float *at = state;
    for (int k = 0; k < slots; k++)
        for (size_t t = 0; t < g->ntensors; t++) {
            const struct graph_tensor *gt = &g->tensors[t];
            if (gt->t.role != TENSOR_PARAM) continue;
            char name[320]; /* the writer keeps its own copy */
            snprintf(name, sizeof name, "optimizer.%s.%s", slot_name(o, k), gt->name);
            plan_get_state(p, gt, k, at);
            st_add_f32(w, name, ST_F32, gt->t.rank, gt->t.dim, at);
            at += op_tensor_numel(&gt->t);
        }
    char v[7][40];
    snprintf(v[0], sizeof v[0], "%lld", (long long)s->epoch);
    snprintf(v[1], sizeof v[1], "%lld", (long long)s->batch);
    snprintf(v[2], sizeof v[2], "%lld", (long long)s->step);
    snprintf(v[3], sizeof v[3], "%lld", (long long)o->updates);
    snprintf(v[4], sizeof v[4], "%lld", (long long)p->steps);
    snprintf(v[5], sizeof v[5], "%.17g", s->loss_sum);
    snprintf(v[6], sizeof v[6], "%lld %lld", (long long)s->correct, (long long)s->images);
    st_add_metadata(w, "format", FORMAT);
    st_add_metadata(w, "epoch", v[0]);
    st_add_metadata(w, "batch", v[1]);
    st_add_metadata(w, "step", v[2]);
    st_add_metadata(w, "optimizer_updates", v[3]);
    st_add_metadata(w, "training_forwards", v[4]);
    st_add_metadata(w, "epoch_loss_sum", v[5]);
    st_add_metadata(w, "epoch_correct_images", v[6]);
    /* a plan that failed while its tensors were read gave zeros: keep the last checkpoint */
    enum status st = plan_status(p) ? STATUS_RUNTIME : st_write(w, path, d);
    if (plan_status(p))
        diag_error(d, (struct mark){0}, "%s: not written: the plan failed (%s)", path,
                   plan_error(p));
    st_writer_free(w);
    free(weights);
    free(state);
    if (st || keep <= 0) return st;

    size_t n;
    int64_t *steps = list_steps(dir, &n);
    for (size_t i = 0; i + (size_t)keep < n; i++) {
        char old[4400];
        file_of(dir, steps[i], old, sizeof old);
        if (steps[i] != s->step && unlink(old) && errno != ENOENT)
            diag_error(d, (struct mark){0}, "%s: cannot remove an old checkpoint: %s", old,
                       strerror(errno));
    }
    free(steps);
    return STATUS_OK;
}

/* A metadata integer; false (reported) when missing or malformed. */
static bool meta_int(const struct st_file *f, const char *path, const char *key, int64_t *out,
                     struct diag *d)
{
    const char *v = st_metadata(f, key);
    char *end;
    long long x = v ? strtoll(v, &end, 10) : 0;
    if (!v || end == v || *end || x < 0) {
        diag_error(d, (struct mark){0}, "%s: metadata '%s' is %s", path, key,
                   v ? "not a count" : "missing");
        return false;
    }
    *out = x;
    return true;
}

/* Reads the optimizer's values of f (each present, with its shape), into p when set; buf holds
 * any tensor. */
static void optimizer_values(struct plan *p, const struct step_optimizer *o,
                             const struct st_file *f, bool set, float *buf, struct diag *d)
{
    const struct graph *g = p->g;
    for (int k = 0; k < p->opt.optimizer_slots; k++)
        for (size_t t = 0; t < g->ntensors; t++) {
            const struct graph_tensor *gt = &g->tensors[t];
            if (gt->t.role != TENSOR_PARAM) continue;
            char name[320];
            snprintf(name, sizeof name, "optimizer.%s.%s", slot_name(o, k), gt->name);
            if (st_read_f32(f, name, gt->t.rank, gt->t.dim, buf, d) == STATUS_OK && set)
                plan_set_state(p, gt, k, buf);
        }
}

/* Reads one checkpoint into p, o and s; nothing in p changes when the file does not fit. */
static enum status load_one(struct plan *p, struct step_optimizer *o, const char *path,
                            struct checkpoint_state *s, struct diag *d)
{
    struct st_file *f;
    if (st_open(path, d, &f)) return STATUS_RUNTIME;
    int before = d->errors;
    const char *format = st_metadata(f, "format");
    if (!format || strcmp(format, FORMAT)) {
        diag_error(d, (struct mark){0}, "%s: not a runner checkpoint (format '%s')", path,
                   format ? format : "");
        st_close(f);
        return STATUS_RUNTIME;
    }
    struct checkpoint_state x = {0};
    int64_t updates = 0, forwards = 0;
    const char *loss = st_metadata(f, "epoch_loss_sum"), *ci = st_metadata(f, "epoch_correct_images");
    long long correct, images;
    if (meta_int(f, path, "epoch", &x.epoch, d) && meta_int(f, path, "batch", &x.batch, d) &&
        meta_int(f, path, "step", &x.step, d) &&
        meta_int(f, path, "optimizer_updates", &updates, d) &&
        meta_int(f, path, "training_forwards", &forwards, d)) {
        if (!loss || !ci || sscanf(ci, "%lld %lld", &correct, &images) != 2) {
            diag_error(d, (struct mark){0}, "%s: the epoch's running metrics are missing", path);
        } else {
            x.loss_sum = strtod(loss, NULL);
            x.correct = correct;
            x.images = images;
        }
    }
    /* The optimizer's values all present with their shapes, then the weights (checked, then
     * set), then the optimizer's values set: nothing is set from a file that does not fit. */
    float *buf = malloc(weights_largest(p->g) * sizeof *buf);
    if (!buf) abort();
    if (d->errors == before) optimizer_values(p, o, f, false, buf, d);
    struct weights_filter wf = {.extra = "optimizer"};
    enum status st = d->errors == before ? weights_load_filtered(p, f, path, &wf, d)
                                         : STATUS_RUNTIME;
    if (!st && d->errors == before) optimizer_values(p, o, f, true, buf, d);
    free(buf);
    st_close(f);
    if (st || d->errors != before) return STATUS_RUNTIME;
    o->updates = updates;
    p->steps = forwards;
    *s = x;
    return STATUS_OK;
}

enum status checkpoint_resume(struct plan *p, struct step_optimizer *o, const char *dir,
                              struct checkpoint_state *s, char *path, size_t size,
                              struct diag *d)
{
    size_t n;
    int64_t *steps = list_steps(dir, &n);
    for (size_t i = n; i-- > 0;) {
        file_of(dir, steps[i], path, size);
        /* A damaged file is reported, then the one before it tried. */
        if (load_one(p, o, path, s, d) == STATUS_OK) {
            if (i + 1 < n) diag_hint(d, "resuming from the previous checkpoint, %s", path);
            free(steps);
            return STATUS_OK;
        }
    }
    free(steps);
    diag_error(d, (struct mark){0}, "%s/checkpoints: no checkpoint to resume from", dir);
    diag_hint(d, "checkpoints are written every checkpoint.every_epochs epochs and when a run "
                 "is stopped by SIGINT or SIGTERM");
    return STATUS_RUNTIME;
}
