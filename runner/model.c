/*
 * model.c: the experiment's graph, expanded for its data and checked against it. See model.h.
 * Covered by tests/test_graph.c and tests/bad_yaml/.
 */
#include "model.h"

#include <stdio.h>
#include <string.h>

#include "augment.h"
#include "folder.h"

/* A folder's classes (its train/ subfolders), errors to d (NULL: silent); -1 on failure. */
static int folder_class_count(const struct spec *s, struct diag *d)
{
    struct diag quiet = {0};
    char **names;
    int n;
    if (!s->data.root ||
        folder_classes(s->data.root, spec_mark(s, "data.root"), &names, &n, d ? d : &quiet))
        return -1;
    folder_classes_free(names, n);
    return n;
}

int model_classes(const struct spec *s)
{
    switch (s->data.dataset) {
    case SPEC_DATASET_CIFAR10: return 10;
    case SPEC_DATASET_CIFAR100: return s->data.labels == SPEC_LABELS_COARSE ? 20 : 100;
    case SPEC_DATASET_FOLDER: return folder_class_count(s, NULL);
    }
    return 0;
}

/* The dataset as messages name it. */
static const char *dataset_text(const struct spec *s, char *buf, size_t size)
{
    switch (s->data.dataset) {
    case SPEC_DATASET_CIFAR10: snprintf(buf, size, "cifar10"); break;
    case SPEC_DATASET_CIFAR100:
        snprintf(buf, size, "cifar100 (%s labels)",
                 s->data.labels == SPEC_LABELS_COARSE ? "coarse" : "fine");
        break;
    case SPEC_DATASET_FOLDER: snprintf(buf, size, "the folder %s", s->data.root); break;
    }
    return buf;
}

struct shape model_image_shape(const struct spec *s, const struct spec_list *transforms)
{
    /* The CIFAR datasets' images are 32 x 32; a folder's may differ (0 x 0: unknown), and
     * then only the list can make them one size (0 x 0 out when it does not). */
    int side = s->data.dataset == SPEC_DATASET_FOLDER ? 0 : 32, h = 0, w = 0;
    if (!augment_output_size(transforms, side, side, &h, &w)) h = w = 0;
    return (struct shape){3, {3, h, w}};
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
    if (s->data.dataset == SPEC_DATASET_FOLDER && folder_class_count(s, d) < 0)
        return STATUS_CONFIG;
    struct shape tr = model_image_shape(s, &s->augment.train);
    struct shape ev = model_image_shape(s, &s->augment.eval);
    const char *lists[2] = {"augment.train", "augment.eval"};
    const struct shape *shapes[2] = {&tr, &ev};
    int before_size = d->errors;
    for (int i = 0; i < 2; i++)
        if (shapes[i]->d[1] == 0) {
            diag_error(d, spec_mark(s, lists[i]), "%s does not make the images one size: a "
                       "folder's images may differ, and the network takes one size", lists[i]);
            diag_hint(d, "end the list at a fixed size: resize: {size: N}, center_crop: N "
                         "(after resize: {size: N, mode: shorter_side}), random_resized_crop: "
                         "{size: N} or random_crop: {size: N}");
        }
    if (d->errors != before_size) return STATUS_CONFIG;
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
    char what[4200];
    if (last->out.d[0] != classes) {
        diag_error(d, last->mark, "the graph ends in %lld class scores but %s has %d classes",
                   (long long)last->out.d[0], dataset_text(s, what, sizeof what), classes);
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
