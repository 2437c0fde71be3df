/*
 * export.c: the expanded graph and its weights written as an ONNX ModelProto (protobuf-c,
 * generated at build time from onnx.proto). See export.h. Covered by tests/test_export.sh.
 */
#include "export.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "data.h"
#include "folder.h"
#include "model.h"
#include "safetensors.h"

#include "onnx/onnx.pb-c.h"

/* Everything of one export lives in its arena. */
struct onnx_out {
    struct arena a;
    Onnx__GraphProto graph;
    size_t cap_node, cap_init;
};

static void *grow(struct arena *a, void *old, size_t n, size_t *cap, size_t size)
{
    if (n < *cap) return old;
    size_t c = *cap ? *cap * 2 : 64;
    void *p = arena_alloc(a, c * size);
    if (old) memcpy(p, old, n * size);
    *cap = c;
    return p;
}

/* ---------------------------------------------------------------------------------------- */
/* Nodes and attributes */

static Onnx__NodeProto *node_add(struct onnx_out *o, const char *op, const char *name,
                                 const char *const *in, size_t nin, const char *out)
{
    Onnx__GraphProto *gr = &o->graph;
    gr->node = grow(&o->a, gr->node, gr->n_node, &o->cap_node, sizeof *gr->node);
    Onnx__NodeProto *n = arena_alloc(&o->a, sizeof *n);
    onnx__node_proto__init(n);
    n->op_type = arena_strdup(&o->a, op);
    n->name = arena_strdup(&o->a, name);
    n->n_input = nin;
    n->input = arena_alloc(&o->a, (nin ? nin : 1) * sizeof *n->input);
    for (size_t i = 0; i < nin; i++) n->input[i] = arena_strdup(&o->a, in[i]);
    n->n_output = 1;
    n->output = arena_alloc(&o->a, sizeof *n->output);
    n->output[0] = arena_strdup(&o->a, out);
    n->attribute = arena_alloc(&o->a, 8 * sizeof *n->attribute);
    gr->node[gr->n_node++] = n;
    return n;
}

static Onnx__AttributeProto *attr_new(struct onnx_out *o, Onnx__NodeProto *n, const char *name,
                                      Onnx__AttributeProto__AttributeType type)
{
    Onnx__AttributeProto *at = arena_alloc(&o->a, sizeof *at);
    onnx__attribute_proto__init(at);
    at->name = arena_strdup(&o->a, name);
    at->has_type = true;
    at->type = type;
    n->attribute[n->n_attribute++] = at;
    return at;
}

static void attr_int(struct onnx_out *o, Onnx__NodeProto *n, const char *name, int64_t v)
{
    Onnx__AttributeProto *at = attr_new(o, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    at->has_i = true;
    at->i = v;
}

static void attr_float(struct onnx_out *o, Onnx__NodeProto *n, const char *name, float v)
{
    Onnx__AttributeProto *at =
        attr_new(o, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    at->has_f = true;
    at->f = v;
}

static void attr_ints(struct onnx_out *o, Onnx__NodeProto *n, const char *name,
                      const int64_t *v, size_t count)
{
    Onnx__AttributeProto *at = attr_new(o, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    at->n_ints = count;
    at->ints = arena_alloc(&o->a, count * sizeof *at->ints);
    memcpy(at->ints, v, count * sizeof *v);
}

/* kernel_shape, strides, pads (top, left, bottom, right) of a 2-D window. */
static void attr_window(struct onnx_out *o, Onnx__NodeProto *n, const long long k[2],
                        const long long st[2], const long long pad[2])
{
    int64_t kk[2] = {k[0], k[1]}, ss[2] = {st[0], st[1]};
    int64_t pp[4] = {pad[0], pad[1], pad[0], pad[1]};
    attr_ints(o, n, "kernel_shape", kk, 2);
    attr_ints(o, n, "strides", ss, 2);
    attr_ints(o, n, "pads", pp, 4);
}

/* ---------------------------------------------------------------------------------------- */
/* Initializers, values, metadata */

static float *init_add(struct onnx_out *o, const char *name, int rank, const int64_t *dim)
{
    Onnx__GraphProto *gr = &o->graph;
    gr->initializer =
        grow(&o->a, gr->initializer, gr->n_initializer, &o->cap_init, sizeof *gr->initializer);
    Onnx__TensorProto *t = arena_alloc(&o->a, sizeof *t);
    onnx__tensor_proto__init(t);
    t->name = arena_strdup(&o->a, name);
    t->has_data_type = true;
    t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    t->n_dims = (size_t)rank;
    t->dims = arena_alloc(&o->a, (rank ? (size_t)rank : 1) * sizeof *t->dims);
    size_t count = 1;
    for (int i = 0; i < rank; i++) {
        t->dims[i] = dim[i];
        count *= (size_t)dim[i];
    }
    t->n_float_data = count;
    t->float_data = arena_alloc(&o->a, count * sizeof(float));
    gr->initializer[gr->n_initializer++] = t;
    return t->float_data;
}

static Onnx__ValueInfoProto *value_new(struct onnx_out *o, const char *name,
                                       const struct shape *image, long long batch)
{
    Onnx__ValueInfoProto *v = arena_alloc(&o->a, sizeof *v);
    onnx__value_info_proto__init(v);
    v->name = arena_strdup(&o->a, name);
    Onnx__TypeProto *ty = arena_alloc(&o->a, sizeof *ty);
    onnx__type_proto__init(ty);
    Onnx__TypeProto__Tensor *tt = arena_alloc(&o->a, sizeof *tt);
    onnx__type_proto__tensor__init(tt);
    tt->has_elem_type = true;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    Onnx__TensorShapeProto *sh = arena_alloc(&o->a, sizeof *sh);
    onnx__tensor_shape_proto__init(sh);
    sh->n_dim = 1 + (size_t)image->rank;
    sh->dim = arena_alloc(&o->a, sh->n_dim * sizeof *sh->dim);
    for (size_t i = 0; i < sh->n_dim; i++) {
        Onnx__TensorShapeProto__Dimension *dm = arena_alloc(&o->a, sizeof *dm);
        onnx__tensor_shape_proto__dimension__init(dm);
        if (i == 0 && !batch) {
            dm->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            dm->dim_param = arena_strdup(&o->a, "N");
        } else {
            dm->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            dm->dim_value = i == 0 ? batch : image->d[i - 1];
        }
        sh->dim[i] = dm;
    }
    tt->shape = sh;
    ty->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    ty->tensor_type = tt;
    v->type = ty;
    return v;
}

static Onnx__StringStringEntryProto *meta_new(struct onnx_out *o, const char *key,
                                              const char *value)
{
    Onnx__StringStringEntryProto *e = arena_alloc(&o->a, sizeof *e);
    onnx__string_string_entry_proto__init(e);
    e->key = arena_strdup(&o->a, key);
    e->value = arena_strdup(&o->a, value);
    return e;
}

/* The class names joined by commas: CIFAR-10's, CIFAR-100's (fine or coarse, from the names
 * files of its folder under the data root, no image read) or a folder dataset's. "" when the
 * data is not there to name them; for CIFAR-100 a warning to d says so. */
static char *class_names(struct onnx_out *o, const struct spec *s, struct diag *d)
{
    char **names = NULL;
    int n = 0;
    struct data c100 = {0};
    if (s->data.dataset == SPEC_DATASET_FOLDER) {
        struct diag quiet = {0};
        if (folder_classes(s->data.root, spec_mark(s, "data.root"), &names, &n, &quiet))
            return arena_strdup(&o->a, "");
    } else if (s->data.dataset == SPEC_DATASET_CIFAR100) {
        char root[4096];
        data_root(&s->data, root, sizeof root);
        bool coarse = s->data.labels == SPEC_LABELS_COARSE;
        struct diag quiet = {0};
        if (cifar100_names(root, coarse, &quiet, &c100)) {
            if (d->out)
                fprintf(d->out, "runner: warning: no CIFAR-100 class names in %s/cifar-100-binary/"
                        "%s (the data root from %s): metadata_props classes left empty\n", root,
                        coarse ? "coarse_label_names.txt" : "fine_label_names.txt",
                        data_root_source(&s->data));
            return arena_strdup(&o->a, "");
        }
        names = c100.class_names;
        n = c100.classes;
    } else if (s->data.dataset == SPEC_DATASET_CIFAR10) {
        n = CIFAR_CLASSES;
    }
    size_t len = 1;
    for (int i = 0; i < n; i++) len += strlen(names ? names[i] : data_cifar10_name(i)) + 1;
    char *text = arena_alloc(&o->a, len), *p = text;
    for (int i = 0; i < n; i++)
        p += sprintf(p, "%s%s", i ? "," : "", names ? names[i] : data_cifar10_name(i));
    if (c100.class_names)
        data_free(&c100);
    else if (names)
        folder_classes_free(names, n);
    return text;
}

/* ---------------------------------------------------------------------------------------- */
/* The graph */

/* The weights of layer l as initializers; false (reported) when one is missing or misshapen. */
static bool layer_weights(struct onnx_out *o, const struct graph *g, const struct graph_layer *l,
                          const struct st_file *f, struct diag *d)
{
    for (size_t i = l->tensor0; i < l->tensor0 + l->ntensors; i++) {
        const struct graph_tensor *t = &g->tensors[i];
        if (t->t.dtype != TENSOR_F32) continue; /* num_batches_tracked: unused by inference */
        float *dst = init_add(o, t->name, t->t.rank, t->t.dim);
        if (st_read_f32(f, t->name, t->t.rank, t->t.dim, dst, d)) return false;
    }
    return true;
}

/* Conv layer c and the batchnorm b that reads it as one Conv's initializers, computed in
 * double: c's weight (K, C / groups, R, S) under its own name, each output channel k scaled by
 * gamma[k] / sqrt(var[k] + eps), and the bias "<c>.bias" (K): beta[k] + (bias[k] - mean[k]) *
 * that scale, c's bias being 0 when it has none. false (reported) when a tensor is missing or
 * misshapen. */
static bool fold_weights(struct onnx_out *o, const struct graph *g, const struct graph_layer *c,
                         const struct graph_layer *b, const struct st_file *f, struct diag *d)
{
    const struct graph_tensor *wt = &g->tensors[c->tensor0]; /* weight, then bias if any */
    int64_t k = wt->t.dim[0], kd[1] = {k};
    size_t per = 1;
    for (int i = 1; i < wt->t.rank; i++) per *= (size_t)wt->t.dim[i];
    float *w = init_add(o, wt->name, wt->t.rank, wt->t.dim);
    float *bias = init_add(o, arena_printf(&o->a, "%s.bias", c->name), 1, kd);
    float *bn = arena_alloc(&o->a, 4 * (size_t)k * sizeof *bn); /* gamma, beta, mean, var */
    static const char *const suffix[4] = {"weight", "bias", "running_mean", "running_var"};
    if (st_read_f32(f, wt->name, wt->t.rank, wt->t.dim, w, d)) return false;
    if (c->p.conv.bias && st_read_f32(f, arena_printf(&o->a, "%s.bias", c->name), 1, kd, bias, d))
        return false;
    for (int i = 0; i < 4; i++)
        if (st_read_f32(f, arena_printf(&o->a, "%s.%s", b->name, suffix[i]), 1, kd,
                        bn + (size_t)i * (size_t)k, d))
            return false;
    double eps = b->p.batchnorm.eps;
    for (int64_t j = 0; j < k; j++) {
        double scale = (double)bn[j] / sqrt((double)bn[3 * k + j] + eps);
        double old = c->p.conv.bias ? (double)bias[j] : 0.0;
        bias[j] = (float)((double)bn[k + j] + (old - (double)bn[2 * k + j]) * scale);
        for (size_t i = (size_t)j * per; i < (size_t)(j + 1) * per; i++)
            w[i] = (float)((double)w[i] * scale);
    }
    return true;
}

/* With fold: pair[conv] = the batchnorm that folds into it, pair[batchnorm] = its conv, -1
 * elsewhere. A batchnorm folds when its input is a conv that nothing else reads. */
static int *fold_pairs(struct onnx_out *o, const struct graph *g, bool fold)
{
    size_t n = g->nlayers ? g->nlayers : 1;
    int *pair = arena_alloc(&o->a, n * sizeof *pair), *uses = arena_alloc(&o->a, n * sizeof *uses);
    for (size_t i = 0; i < g->nlayers; i++) {
        pair[i] = -1;
        for (int j = 0; j < g->layers[i].nin; j++)
            if (g->layers[i].in[j] != GRAPH_INPUT) uses[g->layers[i].in[j]]++;
    }
    if (g->output != GRAPH_INPUT) uses[g->output]++;
    for (size_t i = 0; fold && i < g->nlayers; i++) {
        const struct graph_layer *l = &g->layers[i];
        int c = l->in[0];
        if (l->op == OP_KIND_BATCHNORM && c != GRAPH_INPUT && g->layers[c].op == OP_KIND_CONV &&
            uses[c] == 1) {
            pair[c] = (int)i;
            pair[i] = c;
        }
    }
    return pair;
}

/* The ONNX value each layer's output is (a dropout's or identity's: its input's). */
static const char *input_name(const char *const *value, int producer, const char *images)
{
    return producer == GRAPH_INPUT ? images : value[producer];
}

enum status export_onnx(const struct spec *s, const struct graph *g, const char *weights,
                        const char *out, const struct export_options *opt, struct diag *d)
{
    if (opt->opset < EXPORT_OPSET_MIN || opt->opset > EXPORT_OPSET_MAX) {
        diag_error(d, spec_mark(s, "model"), "opset %d is not supported; use %d to %d",
                   opt->opset, EXPORT_OPSET_MIN, EXPORT_OPSET_MAX);
        return STATUS_CONFIG;
    }
    const struct spec_transform *norm = NULL;
    const struct spec_transform *tr = s->augment.eval.v;
    for (size_t i = 0; i < s->augment.eval.n; i++)
        if (tr[i].kind == SPEC_TRANSFORM_NORMALIZE) norm = &tr[i];
    if (opt->normalize && (!norm || g->input.d[0] != 3)) {
        diag_error(d, spec_mark(s, "augment.eval"),
                   "--normalize needs a normalize transform in augment.eval for 3 channels");
        return STATUS_CONFIG;
    }
    struct st_file *f;
    if (st_open(weights, d, &f)) return STATUS_CONFIG;
    struct onnx_out o = {0};
    onnx__graph_proto__init(&o.graph);
    o.graph.name = arena_strdup(&o.a, s->name);
    const char *images = "images";
    if (opt->normalize) {
        int64_t dim[4] = {1, 3, 1, 1};
        float *mean = init_add(&o, "normalize.mean", 4, dim);
        float *std = init_add(&o, "normalize.std", 4, dim);
        for (int c = 0; c < 3; c++) {
            mean[c] = (float)norm->mean[c];
            std[c] = (float)norm->std[c];
        }
        const char *sub[2] = {"images", "normalize.mean"};
        node_add(&o, "Sub", "normalize.sub", sub, 2, "normalize.centered");
        const char *div[2] = {"normalize.centered", "normalize.std"};
        node_add(&o, "Div", "normalize.div", div, 2, "normalize.out");
        images = "normalize.out";
    }

    /* The layer whose output is the logits, through dropout and identity. */
    int last = g->output;
    while (last != GRAPH_INPUT && (g->layers[last].op == OP_KIND_DROPOUT ||
                                   g->layers[last].op == OP_KIND_IDENTITY))
        last = g->layers[last].in[0];
    const char **value = arena_alloc(&o.a, (g->nlayers ? g->nlayers : 1) * sizeof *value);
    const int *pair = fold_pairs(&o, g, opt->fold_bn);
    enum status st = STATUS_OK;
    for (size_t li = 0; li < g->nlayers && !st; li++) {
        const struct graph_layer *l = &g->layers[li];
        const char *in[3];
        for (int i = 0; i < l->nin; i++) in[i] = input_name(value, l->in[i], images);
        bool folded = pair[li] >= 0;
        const char *y = (int)li == last || (folded && l->op == OP_KIND_CONV && pair[li] == last)
                            ? "logits"
                            : l->name;
        value[li] = y;
        const union op_params *p = &l->p;
        Onnx__NodeProto *n;
        char tmp[600];
        switch (l->op) {
        case OP_KIND_CONV: {
            const char *ci[3] = {in[0], arena_printf(&o.a, "%s.weight", l->name),
                                 arena_printf(&o.a, "%s.bias", l->name)};
            n = node_add(&o, "Conv", l->name, ci, p->conv.bias || folded ? 3 : 2, y);
            attr_window(&o, n, p->conv.kernel, p->conv.stride, p->conv.pad);
            int64_t dil[2] = {p->conv.dilation[0], p->conv.dilation[1]};
            attr_ints(&o, n, "dilations", dil, 2);
            attr_int(&o, n, "group", p->conv.groups);
            break;
        }
        case OP_KIND_BATCHNORM: {
            if (folded) { /* its conv's output is already normalized */
                value[li] = value[pair[li]];
                break;
            }
            const char *bi[5] = {in[0], arena_printf(&o.a, "%s.weight", l->name),
                                 arena_printf(&o.a, "%s.bias", l->name),
                                 arena_printf(&o.a, "%s.running_mean", l->name),
                                 arena_printf(&o.a, "%s.running_var", l->name)};
            n = node_add(&o, "BatchNormalization", l->name, bi, 5, y);
            attr_float(&o, n, "epsilon", (float)p->batchnorm.eps);
            break;
        }
        case OP_KIND_RELU: node_add(&o, "Relu", l->name, in, 1, y); break;
        case OP_KIND_ADD: node_add(&o, "Add", l->name, in, 2, y); break;
        case OP_KIND_MAXPOOL:
        case OP_KIND_AVGPOOL:
            n = node_add(&o, l->op == OP_KIND_MAXPOOL ? "MaxPool" : "AveragePool", l->name, in,
                         1, y);
            attr_window(&o, n, p->pool.kernel, p->pool.stride, p->pool.pad);
            attr_int(&o, n, "ceil_mode", p->pool.ceil_mode);
            if (l->op == OP_KIND_AVGPOOL)
                attr_int(&o, n, "count_include_pad", p->pool.count_include_pad);
            break;
        case OP_KIND_GLOBAL_AVG_POOL:
            snprintf(tmp, sizeof tmp, "%s.pooled", l->name);
            node_add(&o, "GlobalAveragePool", l->name, in, 1, l->out.rank == 1 ? tmp : y);
            if (l->out.rank == 1) {
                const char *fi[1] = {tmp};
                n = node_add(&o, "Flatten", arena_printf(&o.a, "%s.flatten", l->name), fi, 1, y);
                attr_int(&o, n, "axis", 1);
            }
            break;
        case OP_KIND_FLATTEN:
            n = node_add(&o, "Flatten", l->name, in, 1, y);
            attr_int(&o, n, "axis", 1);
            break;
        case OP_KIND_LINEAR: {
            const char *gi[3] = {in[0], arena_printf(&o.a, "%s.weight", l->name),
                                 arena_printf(&o.a, "%s.bias", l->name)};
            n = node_add(&o, "Gemm", l->name, gi, p->linear.bias ? 3 : 2, y);
            attr_int(&o, n, "transB", 1);
            break;
        }
        case OP_KIND_DROPOUT:
        case OP_KIND_IDENTITY: value[li] = in[0]; break;
        default:
            diag_error(d, l->mark, "layer '%s': its op has no ONNX form", l->name);
            st = STATUS_CONFIG;
        }
        if (!st && !(folded ? l->op != OP_KIND_CONV ||
                                  fold_weights(&o, g, l, &g->layers[pair[li]], f, d)
                            : layer_weights(&o, g, l, f, d)))
            st = STATUS_CONFIG;
    }
    if (!st && last == GRAPH_INPUT) {
        const char *ii[1] = {images};
        node_add(&o, "Identity", "output", ii, 1, "logits");
    }
    st_close(f);

    if (!st) {
        o.graph.n_input = 1;
        o.graph.input = arena_alloc(&o.a, sizeof *o.graph.input);
        o.graph.input[0] = value_new(&o, "images", &g->input, opt->batch);
        o.graph.n_output = 1;
        o.graph.output = arena_alloc(&o.a, sizeof *o.graph.output);
        o.graph.output[0] =
            value_new(&o, "logits", &g->layers[g->output].out, opt->batch);

        Onnx__ModelProto m;
        onnx__model_proto__init(&m);
        m.has_ir_version = true;
        m.ir_version = opt->opset >= 21 ? 10 : opt->opset >= 19 ? 9 : 8;
        Onnx__OperatorSetIdProto ops;
        onnx__operator_set_id_proto__init(&ops);
        ops.domain = "";
        ops.has_version = true;
        ops.version = opt->opset;
        Onnx__OperatorSetIdProto *opsp = &ops;
        m.n_opset_import = 1;
        m.opset_import = &opsp;
        m.producer_name = "runner";
        m.producer_version = RUNNER_VERSION;
        m.graph = &o.graph;
        Onnx__StringStringEntryProto *meta[2] = {meta_new(&o, "name", s->name),
                                                 meta_new(&o, "classes", class_names(&o, s, d))};
        m.n_metadata_props = 2;
        m.metadata_props = meta;

        size_t size = onnx__model_proto__get_packed_size(&m);
        uint8_t *buf = malloc(size ? size : 1);
        FILE *fp = buf ? fopen(out, "wb") : NULL;
        if (!buf || !fp) {
            diag_error(d, spec_mark(s, "model"), "cannot write %s: %s", out, strerror(errno));
            st = STATUS_RUNTIME;
        } else {
            onnx__model_proto__pack(&m, buf);
            if (fwrite(buf, 1, size, fp) != size) st = STATUS_RUNTIME;
            if (fclose(fp)) st = STATUS_RUNTIME;
            fp = NULL;
            if (st) diag_error(d, spec_mark(s, "model"), "cannot write %s", out);
        }
        if (fp) fclose(fp);
        free(buf);
    }
    arena_free(&o.a);
    return st;
}
