/*
 * weights.c: plan tensors to and from safetensors; see weights.h.
 */
#include "weights.h"

#include <stdlib.h>
#include <string.h>

size_t weights_largest(const struct graph *g)
{
    size_t n = 1;
    for (size_t i = 0; i < g->ntensors; i++) {
        size_t k = (size_t)op_tensor_numel(&g->tensors[i].t);
        if (k > n) n = k;
    }
    return n;
}

/* Whether name is prefix or lies under it ("fc" covers "fc.weight", not "fc2.weight"). */
bool weights_under(const char *name, const char *prefix)
{
    size_t n = strlen(prefix);
    return strncmp(name, prefix, n) == 0 && (name[n] == 0 || name[n] == '.');
}

bool weights_skipped(const struct weights_filter *w, const char *name)
{
    for (size_t i = 0; w && i < w->nskip; i++)
        if (weights_under(name, w->skip[i])) return true;
    return false;
}

bool weights_counter_kept(const struct weights_filter *w, const struct graph_tensor *gt,
                          const struct st_file *f)
{
    return w && w->counters_optional && gt->t.dtype == TENSOR_I64 && !st_find(f, gt->name);
}

void weights_check_extra(const struct graph *g, const struct st_file *f, const char *path,
                         const struct weights_filter *w, struct diag *d)
{
    for (size_t i = 0; i < st_count(f); i++) {
        const char *name = st_tensor_at(f, i)->name;
        if (weights_skipped(w, name) || (w && w->extra && weights_under(name, w->extra)))
            continue;
        if (!graph_find_tensor(g, name))
            diag_error(d, (struct mark){0}, "%s: tensor '%s' is not in the network", path, name);
    }
}

enum status weights_load(struct plan *p, const struct st_file *f, const char *path,
                         struct diag *d)
{
    return weights_load_filtered(p, f, path, NULL, d);
}

enum status weights_load_filtered(struct plan *p, const struct st_file *f, const char *path,
                                  const struct weights_filter *w, struct diag *d)
{
    const struct graph *g = p->g;
    int before = d->errors;
    weights_check_extra(g, f, path, w, d);
    float *buf = malloc(weights_largest(g) * sizeof(float) + 8);
    if (!buf) abort();
    /* Every tensor checked first, then set: a file that does not fit leaves the plan as it was. */
    for (int set = 0; set < 2 && (!set || d->errors == before); set++)
        for (size_t t = 0; t < g->ntensors; t++) {
            const struct graph_tensor *gt = &g->tensors[t];
            if (weights_skipped(w, gt->name) || weights_counter_kept(w, gt, f)) continue;
            enum status st =
                gt->t.dtype == TENSOR_I64
                    ? st_read_i64(f, gt->name, gt->t.rank, gt->t.dim, (int64_t *)(void *)buf, d)
                    : st_read_f32(f, gt->name, gt->t.rank, gt->t.dim, buf, d);
            if (set && st == STATUS_OK) plan_set_tensor(p, gt, buf);
        }
    free(buf);
    return d->errors == before ? STATUS_OK : STATUS_CONFIG;
}

void *weights_add(struct plan *p, struct st_writer *w, enum st_dtype as)
{
    const struct graph *g = p->g;
    /* One copy of every tensor in PyTorch's layout: the writer reads them all at once. */
    size_t bytes = 8; /* each tensor starts at a multiple of 8 bytes (the counters are I64) */
    for (size_t t = 0; t < g->ntensors; t++)
        bytes += (size_t)op_tensor_numel(&g->tensors[t].t) *
                     (g->tensors[t].t.dtype == TENSOR_I64 ? 8 : sizeof(float)) + 8;
    char *all = malloc(bytes), *at = all;
    if (!all) return NULL;
    for (size_t t = 0; t < g->ntensors; t++) {
        const struct graph_tensor *gt = &g->tensors[t];
        plan_get_tensor(p, gt, at);
        if (gt->t.dtype == TENSOR_I64) {
            st_add_i64(w, gt->name, gt->t.rank, gt->t.dim, (const int64_t *)(void *)at);
            at += 8 * (size_t)op_tensor_numel(&gt->t);
        } else {
            st_add_f32(w, gt->name, as, gt->t.rank, gt->t.dim, (const float *)(void *)at);
            at += sizeof(float) * (size_t)op_tensor_numel(&gt->t);
        }
        at = all + ((size_t)(at - all) + 7) / 8 * 8;
    }
    return all;
}

enum status weights_save(struct plan *p, const char *path, enum st_dtype as, struct diag *d)
{
    if (plan_status(p)) { /* its tensors are lost: nothing true to save */
        diag_error(d, (struct mark){0}, "%s: not written: the plan failed (%s)", path,
                   plan_error(p));
        return STATUS_RUNTIME;
    }
    struct st_writer *w = st_writer_new();
    st_add_metadata(w, "format", "pt");
    void *data = weights_add(p, w, as);
    if (!data) {
        st_writer_free(w);
        diag_error(d, (struct mark){0}, "%s: out of memory saving the weights", path);
        return STATUS_RUNTIME;
    }
    /* a plan that failed while its tensors were read gave zeros */
    enum status st = plan_status(p) ? STATUS_RUNTIME : st_write(w, path, d);
    if (plan_status(p))
        diag_error(d, (struct mark){0}, "%s: not written: the plan failed (%s)", path,
                   plan_error(p));
    st_writer_free(w);
    free(data);
    return st;
}
