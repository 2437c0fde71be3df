/*
 * model.c: the experiment's graph, expanded for its data and checked against it. See model.h.
 * Covered by tests/test_graph.c and tests/bad_yaml/.
 */
#include "model.h"

#include <string.h>

int model_classes(const struct spec *s)
{
    switch (s->data.dataset) {
    case SPEC_DATASET_CIFAR10: return 10;
    }
    return 0;
}

struct shape model_image_shape(const struct spec *s, const struct spec_list *transforms)
{
    (void)s; /* CIFAR-10: 3x32x32 */
    struct shape sh = {3, {3, 32, 32}};
    const struct spec_transform *t = transforms->v;
    for (size_t i = 0; i < transforms->n; i++)
        if (t[i].kind == SPEC_TRANSFORM_RANDOM_CROP || t[i].kind == SPEC_TRANSFORM_RESIZE)
            sh.d[1] = sh.d[2] = t[i].size;
    return sh;
}

int model_optimizer_slots(const struct spec *s)
{
    const struct spec_optimizer *o = &s->optimizer;
    int n = 0;
    switch (o->type) {
    case SPEC_OPTIMIZER_SGD: n = o->momentum > 0; break;
    case SPEC_OPTIMIZER_ADAM:
    case SPEC_OPTIMIZER_ADAMW: n = 2 + o->amsgrad; break;
    }
    return n + (o->ema_decay > 0);
}

/* The mark of model.reinit[i] as written, else of model.reinit. */
static struct mark reinit_mark(const struct spec *s, size_t i)
{
    const struct node *m = node_map_get(s->root, "model", NULL);
    const struct node *r = node_map_get(m, "reinit", NULL);
    if (r && r->kind == NODE_SEQ && i < r->n) return r->items[i]->mark;
    return spec_mark(s, "model.reinit");
}

enum status model_build(const struct spec *s, struct diag *d, struct graph **out)
{
    *out = NULL;
    struct shape tr = model_image_shape(s, &s->augment.train);
    struct shape ev = model_image_shape(s, &s->augment.eval);
    if (!shape_equal(&tr, &ev)) {
        char a[SHAPE_TEXT], b[SHAPE_TEXT];
        diag_error(d, spec_mark(s, "augment.eval"), "augment.train gives %s images but "
                   "augment.eval gives %s; the network takes one size",
                   shape_format(&tr, a, sizeof a), shape_format(&ev, b, sizeof b));
        diag_hint(d, "resize (or crop) both lists to the same size");
        return STATUS_CONFIG;
    }
    struct graph *g;
    enum status st = graph_build_for(s->model.graph.tree, &tr, model_classes(s), d, &g);
    if (st) return st;
    int before = d->errors;
    const struct graph_layer *last = &g->layers[g->output];
    int classes = model_classes(s);
    if (last->out.d[0] != classes) {
        diag_error(d, last->mark, "the graph ends in %lld class scores but %s has %d classes",
                   (long long)last->out.d[0], "cifar10", classes);
        diag_hint(d, "set out: %d in the last layer ('%s')", classes, last->name);
    }
    for (size_t i = 0; i < s->model.reinit.n; i++) {
        const char *p = s->model.reinit.v[i];
        size_t n = strlen(p);
        bool found = false;
        for (size_t j = 0; !found && j < g->nlayers; j++) {
            const char *name = g->layers[j].name;
            found = strncmp(name, p, n) == 0 && (name[n] == '\0' || name[n] == '.') &&
                    g->layers[j].ntensors;
        }
        if (!found) {
            diag_error(d, reinit_mark(s, i), "model.reinit: no layer with parameters is called "
                       "'%s' (or starts with '%s.')", p, p);
            diag_hint(d, "'runner plan' lists the layers; e.g. reinit: [%s]", last->name);
        }
    }
    if (d->errors != before) {
        graph_free(g);
        return STATUS_CONFIG;
    }
    *out = g;
    return STATUS_OK;
}
