/*
 * weights.c: plan tensors to and from safetensors; see weights.h.
 */
#include "weights.h"

#include <stdlib.h>
#include <string.h>

/* The largest tensor of g, in elements (at least one: the counters). */
static size_t largest(const struct graph *g)
{
    size_t n = 1;
    for (size_t i = 0; i < g->ntensors; i++) {
        size_t k = (size_t)op_tensor_numel(&g->tensors[i].t);
        if (k > n) n = k;
    }
    return n;
}

enum status weights_load(struct plan *p, const struct st_file *f, const char *path,
                         struct diag *d)
{
    const struct graph *g = p->g;
    int before = d->errors;
    /* Names in the file that the graph does not have. */
    for (size_t i = 0; i < st_count(f); i++) {
        const char *name = st_tensor_at(f, i)->name;
        bool known = false;
        for (size_t t = 0; t < g->ntensors && !known; t++)
            known = strcmp(g->tensors[t].name, name) == 0;
        if (!known)
            diag_error(d, (struct mark){0}, "%s: tensor '%s' is not in the network", path, name);
    }
    float *buf = malloc(largest(g) * sizeof(float) + 8);
    if (!buf) abort();
    /* Every tensor checked first, then set: a file that does not fit leaves the plan as it was. */
    for (int set = 0; set < 2 && (!set || d->errors == before); set++)
        for (size_t t = 0; t < g->ntensors; t++) {
            const struct graph_tensor *gt = &g->tensors[t];
            enum status st =
                gt->t.dtype == TENSOR_I64
                    ? st_read_i64(f, gt->name, gt->t.rank, gt->t.dim, (int64_t *)(void *)buf, d)
                    : st_read_f32(f, gt->name, gt->t.rank, gt->t.dim, buf, d);
            if (set && st == STATUS_OK) plan_set_tensor(p, gt, buf);
        }
    free(buf);
    return d->errors == before ? STATUS_OK : STATUS_CONFIG;
}

enum status weights_save(struct plan *p, const char *path, enum st_dtype as, struct diag *d)
{
    const struct graph *g = p->g;
    /* One copy of every tensor in PyTorch's layout: the writer reads them all at once. */
    size_t floats = 0, counters = 0;
    for (size_t t = 0; t < g->ntensors; t++) {
        if (g->tensors[t].t.dtype == TENSOR_I64)
            counters++;
        else
            floats += (size_t)op_tensor_numel(&g->tensors[t].t);
    }
    float *all = malloc(floats * sizeof(float) + 1);
    int64_t *count = malloc(counters * sizeof(int64_t) + 1);
    if (!all || !count) {
        free(all), free(count);
        diag_error(d, (struct mark){0}, "%s: out of memory saving the weights", path);
        return STATUS_RUNTIME;
    }
    struct st_writer *w = st_writer_new();
    st_add_metadata(w, "format", "pt");
    float *at = all;
    int64_t *c = count;
    for (size_t t = 0; t < g->ntensors; t++) {
        const struct graph_tensor *gt = &g->tensors[t];
        if (gt->t.dtype == TENSOR_I64) {
            plan_get_tensor(p, gt, c);
            st_add_i64(w, gt->name, gt->t.rank, gt->t.dim, c++);
        } else {
            plan_get_tensor(p, gt, at);
            st_add_f32(w, gt->name, as, gt->t.rank, gt->t.dim, at);
            at += op_tensor_numel(&gt->t);
        }
    }
    enum status st = st_write(w, path, d);
    st_writer_free(w);
    free(all), free(count);
    return st;
}
