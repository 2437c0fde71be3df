/*
 * pretrained.c: model.pretrained loaded into a plan, model.reinit left out; see pretrained.h.
 *
 * The file is checked here against the network first, so that each mismatch can say what to
 * do about it (add the layer to model.reinit), and only a file that fits is handed to
 * weights_load_filtered, which sets the tensors.
 */
#include "pretrained.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"
#include "weights.h"

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
/* Checks */

/* The network's tensors, except those to re-initialize: each must be in the file, of its kind
 * (float, or I64 for the counters) and shape. A shape that differs is where a fine-tuning
 * experiment usually goes wrong (a classifier of other classes), so it gets a hint, once per
 * layer. */
static void check_network(const struct graph *g, const struct st_file *f, const char *path,
                          const struct spec *s, const struct weights_filter *reinit,
                          struct diag *d)
{
    const char **names = malloc((st_count(f) + 1) * sizeof *names);
    for (size_t i = 0; names && i < st_count(f); i++) names[i] = st_tensor_at(f, i)->name;
    int hinted = -1; /* the layer last given the reinit hint */
    for (size_t i = 0; i < g->ntensors; i++) {
        const struct graph_tensor *gt = &g->tensors[i];
        if (weights_skipped(reinit, gt->name)) continue;
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

enum status pretrained_load(struct plan *p, const struct spec *s, struct pretrained_result *out,
                            struct diag *d)
{
    struct pretrained_result local;
    if (!out) out = &local;
    *out = (struct pretrained_result){0};
    const char *path = s->model.pretrained;
    if (!path) return STATUS_OK;
    struct st_file *f;
    enum status st = st_open(path, d, &f);
    if (st) return st;
    const struct graph *g = p->g;
    int before = d->errors;
    /* The file's tensors must each be the network's or lie under a reinit prefix. */
    struct weights_filter reinit = {.skip = s->model.reinit.v, .nskip = s->model.reinit.n};
    check_network(g, f, path, s, &reinit, d);
    weights_check_extra(g, f, path, &reinit, d);
    if (d->errors == before) {
        /* Checked above; this sets the tensors (and would report anything missed). */
        st = weights_load_filtered(p, f, path, &reinit, d);
    } else {
        st = STATUS_CONFIG;
    }
    st_close(f);
    if (st) return st;

    for (size_t i = 0; i < g->ntensors; i++) {
        if (weights_skipped(&reinit, g->tensors[i].name)) out->reinit++;
        else out->loaded++;
    }
    int k = snprintf(out->line, sizeof out->line, "pretrained: %s: %zu tensors loaded", path,
                     out->loaded);
    if (k > 0 && (size_t)k < sizeof out->line && s->model.reinit.n) {
        char list[1024];
        snprintf(out->line + k, sizeof out->line - (size_t)k, ", %zu re-initialized (%s)",
                 out->reinit, reinit_text(s, NULL, list, sizeof list));
    }
    return STATUS_OK;
}
