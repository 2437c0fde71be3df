/*
 * backend_cpu.c: the CPU backend: oneDNN primitives (created once, in the layouts oneDNN
 * prefers) and plain C kernels, over arenas allocated once. See cpu.h for the structure and
 * plan.h for the contract. Covered by tests/test_ops_cpu.c and tests/test_plan.c.
 */
#include "cpu.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op.h"

struct cpu_buffer {
    size_t size;
    int first, last;
    size_t offset;
    bool shared; /* the gradient of two layers (cpu_grad_alias) */
};

struct cpu {
    struct plan *plan;
    const struct graph *g;
    struct diag *d;
    bool failed;
    dnnl_engine_t eng;
    dnnl_stream_t stream;
    struct onednn_mds mds; /* every memory descriptor the plan made (onednn.h) */

    struct cpu_layer *layers;
    dnnl_memory_desc_t in_md; /* the input batch, NCHW */
    int in_buf, in_grad;

    struct cpu_buffer *bufs;
    size_t nbufs, capbufs;
    struct cpu_step *steps[CPU_PHASES];
    size_t nsteps[CPU_PHASES], capsteps[CPU_PHASES];
    int loss_time;

    dnnl_memory_desc_t *tmd; /* per graph tensor: its arena layout */
    size_t *toff;            /* its offset in the parameter (and gradient) arena */
    size_t param_bytes;      /* the trained tensors come first: [0, param_bytes) */
    struct cpu_range *ranges; /* the trained tensors by weight decay's kind (optimizers) */
    size_t nranges;
    char *params, *grads, *optim, *act, *work;

    /* The output at the plan's edge: (N, F) in a plain layout, and its gradient. */
    int out_plain, grad_plain, row_loss;
    int32_t *labels;
    float *targets; /* (N, K) soft targets (mixup, cutmix), used when soft is set */
    bool soft;
    dnnl_primitive_attr_t attr;      /* user-managed scratchpad */
    dnnl_primitive_attr_t relu_attr; /* the same, with a relu post-op */
    double loss;
};

/* --------------------------------------------------------------------------------------- */
/* What the op builders use (cpu.h) */

bool cpu_ok(struct cpu *c, dnnl_status_t st, const struct graph_layer *l, const char *what)
{
    if (st == dnnl_success) return true;
    if (!c->failed || l) {
        struct mark m = l ? l->mark : (struct mark){0};
        diag_error(c->d, m, "%s%s%s: oneDNN %s failed (status %d)", l ? "layer '" : "",
                   l ? l->name : "", l ? "'" : "", what, (int)st);
    }
    c->failed = true;
    return false;
}

static void *grow(void *p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap) return p;
    size_t n = *cap ? *cap * 2 : 64;
    while (n < need) n *= 2;
    void *q = realloc(p, n * size);
    if (!q) abort();
    *cap = n;
    return q;
}

int cpu_buffer(struct cpu *c, size_t bytes)
{
    c->bufs = grow(c->bufs, &c->capbufs, c->nbufs + 1, sizeof *c->bufs);
    c->bufs[c->nbufs] = (struct cpu_buffer){bytes, INT_MAX, -1, 0, false};
    return (int)c->nbufs++;
}

static struct cpu_step *new_step(struct cpu *c, enum cpu_phase ph, const struct graph_layer *l)
{
    c->steps[ph] = grow(c->steps[ph], &c->capsteps[ph], c->nsteps[ph] + 1, sizeof(struct cpu_step));
    struct cpu_step *s = &c->steps[ph][c->nsteps[ph]];
    memset(s, 0, sizeof *s);
    s->layer = l;
    if (c->plan->opt.eval_only) /* lifetimes follow the evaluation program */
        s->time = ph == CPU_FWD_EVAL ? (int)c->nsteps[ph] : -1;
    else
        s->time = ph == CPU_FWD_TRAIN ? (int)c->nsteps[ph]
                  : ph == CPU_BWD     ? c->loss_time + 1 + (int)c->nsteps[ph]
                                      : -1;
    c->nsteps[ph]++;
    return s;
}

struct cpu_step *cpu_prim(struct cpu *c, enum cpu_phase ph, dnnl_primitive_desc_t pd,
                          const struct graph_layer *l)
{
    struct cpu_step *s = new_step(c, ph, l);
    if (!pd) {
        c->failed = true;
        return s;
    }
    s->scratch_md = cpu_query(c, pd, dnnl_query_scratchpad_md, 0);
    cpu_ok(c, dnnl_primitive_create(&s->prim, pd), l, "primitive creation");
    if (!l || pd != c->layers[l - c->g->layers].fwd_pd) dnnl_primitive_desc_destroy(pd);
    return s;
}

dnnl_primitive_desc_t cpu_pd(struct cpu *c, const struct onednn_op *op,
                             const_dnnl_primitive_desc_t hint, const struct graph_layer *l,
                             const char *what)
{
    dnnl_primitive_desc_t pd = NULL;
    if (!cpu_ok(c, onednn_pd_create(&pd, op, c->attr, c->eng, hint), l, what))
        return NULL;
    return pd;
}

dnnl_primitive_desc_t cpu_pd_relu(struct cpu *c, const struct onednn_op *op,
                                  const struct graph_layer *l, const char *what)
{
    if (!c->relu_attr) {
        dnnl_post_ops_t po;
        if (!cpu_ok(c, dnnl_primitive_attr_clone(&c->relu_attr, c->attr), l, what) ||
            !cpu_ok(c, dnnl_post_ops_create(&po), l, what))
            return NULL;
        bool ok = cpu_ok(c, onednn_post_ops_append_relu(po), l, what) &&
                  cpu_ok(c, dnnl_primitive_attr_set_post_ops(c->relu_attr, po), l, what);
        dnnl_post_ops_destroy(po);
        if (!ok) return NULL;
    }
    dnnl_primitive_desc_t pd = NULL;
    if (!cpu_ok(c, onednn_pd_create(&pd, op, c->relu_attr, c->eng, NULL), l, what))
        return NULL;
    return pd;
}

dnnl_primitive_desc_t cpu_pd_try(struct cpu *c, const struct onednn_op *op,
                                 const_dnnl_primitive_desc_t hint)
{
    dnnl_primitive_desc_t pd = NULL;
    return onednn_pd_create(&pd, op, c->attr, c->eng, hint) == dnnl_success ? pd : NULL;
}

void cpu_keep_pd(struct cpu *c, size_t li, dnnl_primitive_desc_t pd)
{
    c->layers[li].fwd_pd = pd;
}

struct cpu_step *cpu_kernel(struct cpu *c, enum cpu_phase ph, cpu_kernel_fn fn,
                            const struct graph_layer *l)
{
    struct cpu_step *s = new_step(c, ph, l);
    s->kernel = fn;
    return s;
}

void cpu_weighted_forward(struct cpu *c, size_t li, dnnl_primitive_desc_t pd, bool bias)
{
    const struct graph_layer *l = &c->g->layers[li];
    dnnl_memory_desc_t src = *cpu_in_md(c, l, 0), dst = cpu_query(c, pd, dnnl_query_dst_md, 0);
    cpu_keep_pd(c, li, pd);
    cpu_output(c, li, &dst);
    dnnl_memory_desc_t w = cpu_query(c, pd, dnnl_query_weights_md, 0);
    cpu_tensor_md(c, l->tensor0, &w);
    if (bias) {
        dnnl_memory_desc_t b = cpu_query(c, pd, dnnl_query_weights_md, 1);
        cpu_tensor_md(c, l->tensor0 + 1, &b);
    }
    for (int ph = CPU_FWD_TRAIN; ph <= CPU_FWD_EVAL; ph++) {
        struct cpu_step *s = cpu_prim(c, (enum cpu_phase)ph, pd, l);
        cpu_act(c, s, DNNL_ARG_SRC, cpu_in_buf(c, l, 0), &src);
        cpu_tensor_arg(c, s, DNNL_ARG_WEIGHTS, l->tensor0, false);
        if (bias) cpu_tensor_arg(c, s, DNNL_ARG_BIAS, l->tensor0 + 1, false);
        cpu_act(c, s, DNNL_ARG_DST, c->layers[li].out, &dst);
    }
}

static void add_arg(struct cpu_step *s, int dnnl_arg, enum cpu_where w, int id,
                    const dnnl_memory_desc_t *md)
{
    if (s->nargs == CPU_MAX_ARGS) abort();
    s->args[s->nargs++] = (struct cpu_arg){.dnnl_arg = dnnl_arg, .where = w, .id = id, .md = *md};
}

void cpu_act(struct cpu *c, struct cpu_step *s, int dnnl_arg, int buf, const dnnl_memory_desc_t *md)
{
    add_arg(s, dnnl_arg, CPU_ACT, buf, md);
    if (s->time < 0) return;
    struct cpu_buffer *b = &c->bufs[buf];
    if (s->time < b->first) b->first = s->time;
    if (s->time > b->last) b->last = s->time;
}

void cpu_tensor_arg(struct cpu *c, struct cpu_step *s, int dnnl_arg, size_t tensor, bool grad)
{
    add_arg(s, dnnl_arg, grad ? CPU_GRAD : CPU_PARAM, (int)tensor, &c->tmd[tensor]);
}

void cpu_output(struct cpu *c, size_t li, const dnnl_memory_desc_t *md)
{
    c->layers[li].md = *md;
    c->layers[li].out = cpu_buffer(c, onednn_md_size(md));
}

void cpu_tensor_md(struct cpu *c, size_t t, const dnnl_memory_desc_t *md)
{
    c->tmd[t] = *md;
}

const dnnl_memory_desc_t *cpu_in_md(struct cpu *c, const struct graph_layer *l, int i)
{
    return l->in[i] == GRAPH_INPUT ? &c->in_md : &c->layers[l->in[i]].md;
}

int cpu_in_buf(struct cpu *c, const struct graph_layer *l, int i)
{
    return l->in[i] == GRAPH_INPUT ? c->in_buf : c->layers[l->in[i]].out;
}

struct cpu_layer *cpu_layer(struct cpu *c, const struct graph_layer *l)
{
    return &c->layers[l - c->g->layers];
}

const struct graph *cpu_graph(struct cpu *c)
{
    return c->g;
}

/* Classes: the width of the output. */
static int64_t cpu_classes(struct cpu *c)
{
    return shape_numel(&c->g->layers[c->g->output].out);
}

int64_t cpu_batch(struct cpu *c)
{
    return c->plan->opt.batch;
}

uint64_t cpu_seed(struct cpu *c)
{
    return plan_dropout_key(c->plan);
}

const struct plan_options *cpu_options(struct cpu *c)
{
    return &c->plan->opt;
}

int cpu_grad_out(struct cpu *c, const struct graph_layer *l)
{
    return cpu_layer(c, l)->grad;
}

int cpu_grad_begin(struct cpu *c, const struct graph_layer *l, int i)
{
    int src = l->in[i];
    if (src == GRAPH_INPUT) {
        if (!c->plan->opt.input_grad) return -1;
        if (c->in_grad < 0) {
            c->in_grad = cpu_buffer(c, onednn_md_size(&c->in_md));
            return c->in_grad;
        }
        return cpu_buffer(c, onednn_md_size(&c->in_md));
    }
    struct cpu_layer *p = &c->layers[src];
    if (p->grad < 0) {
        p->grad = cpu_buffer(c, onednn_md_size(&p->md));
        return p->grad;
    }
    return cpu_buffer(c, onednn_md_size(&p->md));
}

int cpu_sole_consumer(struct cpu *c, size_t li)
{
    const struct graph *g = c->g;
    int found = -1;
    if ((int)li == g->output) return -1;
    for (size_t k = li + 1; k < g->nlayers; k++)
        for (int j = 0; j < g->layers[k].nin; j++)
            if (g->layers[k].in[j] == (int)li) {
                if (found >= 0) return -1;
                found = (int)k;
            }
    return found;
}

/* The last layer other than except reading layer p's output; -1 if none. */
static int last_consumer(const struct graph *g, int p, size_t except)
{
    int last = -1;
    for (size_t k = (size_t)p + 1; k < g->nlayers; k++)
        for (int j = 0; j < g->layers[k].nin; j++)
            if (g->layers[k].in[j] == p && k != except) last = (int)k;
    return last;
}

bool cpu_grad_alias(struct cpu *c, const struct graph_layer *l, int i, int buf,
                    const int *others, int n)
{
    int p = l->in[i];
    size_t li = (size_t)(l - c->g->layers);
    if (p == GRAPH_INPUT || c->layers[p].grad >= 0 || c->bufs[buf].shared ||
        !onednn_md_equal(&c->layers[p].md, &c->layers[li].md))
        return false;
    for (int k = 0; k < n; k++)
        if (last_consumer(c->g, p, li) > others[k] || last_consumer(c->g, others[k], li) > p)
            return false;
    c->layers[p].grad = buf;
    if (n) c->bufs[buf].shared = true;
    return true;
}

void cpu_grad_finish(struct cpu *c, const struct graph_layer *l, int i, int buf)
{
    int src = l->in[i];
    int target = src == GRAPH_INPUT ? c->in_grad : c->layers[src].grad;
    if (buf < 0 || buf == target) return;
    const dnnl_memory_desc_t *md = cpu_in_md(c, l, i);
    struct onednn_op sum = {.kind = ONEDNN_BINARY, .alg = dnnl_binary_add, .src = md, .src1 = md,
                            .dst = md};
    struct cpu_step *s = cpu_prim(c, CPU_BWD, cpu_pd(c, &sum, NULL, l, "gradient sum"), l);
    s->what = "gradient sum";
    cpu_act(c, s, DNNL_ARG_SRC_0, target, md);
    cpu_act(c, s, DNNL_ARG_SRC_1, buf, md);
    cpu_act(c, s, DNNL_ARG_DST, target, md);
}

static void copy_kernel(struct cpu *c, const struct cpu_step *s)
{
    (void)c;
    memcpy(s->args[1].ptr, s->args[0].ptr, (size_t)s->n);
}

void cpu_copy_step(struct cpu *c, enum cpu_phase ph, const struct graph_layer *l, int src,
                   int dst, const dnnl_memory_desc_t *md)
{
    struct cpu_step *s = cpu_kernel(c, ph, copy_kernel, l);
    s->what = "copy";
    s->n = (int64_t)onednn_md_size(md);
    cpu_act(c, s, 0, src, md);
    cpu_act(c, s, 1, dst, md);
}

/* A descriptor the plan keeps; a failure is a bug (the dims come from a checked plan) or out of
 * memory, and stops the process. */
static dnnl_memory_desc_t make_md(struct cpu *c, int ndims, const int64_t *dims,
                                  dnnl_data_type_t dt, dnnl_format_tag_t tag)
{
    dnnl_memory_desc_t md;
    if (onednn_md_make(&c->mds, &md, ndims, dims, dt, tag) != dnnl_success) abort();
    return md;
}

dnnl_memory_desc_t cpu_md(struct cpu *c, int ndims, const int64_t *dims, dnnl_format_tag_t tag)
{
    return make_md(c, ndims, dims, dnnl_f32, tag);
}

dnnl_memory_desc_t cpu_query(struct cpu *c, const_dnnl_primitive_desc_t pd, dnnl_query_t what,
                             int index)
{
    dnnl_memory_desc_t md;
    if (onednn_md_query(&c->mds, &md, pd, what, index) != dnnl_success)
        memset(&md, 0, sizeof md);
    return md;
}

int64_t cpu_md_dim(const dnnl_memory_desc_t *md, int i)
{
    return onednn_md_dims(md)[i];
}

int cpu_dims(struct cpu *c, const struct shape *s, int64_t *dims)
{
    dims[0] = cpu_batch(c);
    for (int i = 0; i < s->rank; i++) dims[1 + i] = s->d[i];
    return s->rank + 1;
}

/* The plain (row-major) tag for ndims dimensions. */
static dnnl_format_tag_t plain_tag(int ndims)
{
    static const dnnl_format_tag_t tags[] = {dnnl_format_tag_undef, dnnl_a, dnnl_ab, dnnl_abc,
                                             dnnl_abcd, dnnl_abcde, dnnl_abcdef};
    return tags[ndims];
}

/* A plain layout with md's dims and type, kept in mds. */
static dnnl_status_t plain_md(struct onednn_mds *mds, dnnl_memory_desc_t *p,
                              const dnnl_memory_desc_t *md)
{
    int nd = onednn_md_ndims(md);
    return onednn_md_make(mds, p, nd, onednn_md_dims(md), onednn_md_data_type(md), plain_tag(nd));
}

dnnl_memory_desc_t cpu_plain_md(struct cpu *c, const dnnl_memory_desc_t *md)
{
    dnnl_memory_desc_t p;
    if (plain_md(&c->mds, &p, md) != dnnl_success) abort();
    return p;
}

/* --------------------------------------------------------------------------------------- */
/* The ops' CPU halves */

static const struct cpu_op *const cpu_ops[OP_KIND_COUNT] = {
    [OP_KIND_CONV] = &conv_cpu,
    [OP_KIND_BATCHNORM] = &batchnorm_cpu,
    [OP_KIND_RELU] = &relu_cpu,
    [OP_KIND_ADD] = &add_cpu,
    [OP_KIND_MAXPOOL] = &maxpool_cpu,
    [OP_KIND_AVGPOOL] = &avgpool_cpu,
    [OP_KIND_GLOBAL_AVG_POOL] = &global_avg_pool_cpu,
    [OP_KIND_FLATTEN] = &flatten_cpu,
    [OP_KIND_LINEAR] = &linear_cpu,
    [OP_KIND_DROPOUT] = &dropout_cpu,
    [OP_KIND_IDENTITY] = &identity_cpu,
};

static bool cpu_supports(const struct graph *g, const struct graph_layer *l, char *why,
                         size_t size)
{
    const struct cpu_op *op = cpu_ops[l->op];
    if (!op) {
        snprintf(why, size, "no CPU implementation of '%s'", op_table[l->op]->name);
        return false;
    }
    return !op->supports || op->supports(g, l, why, size);
}

/* --------------------------------------------------------------------------------------- */
/* Loss: softmax cross-entropy with label smoothing, on the plain (N, K) output */

/* logits, dlogits (N, K); the target of row i is labels[i] one-hot or, when targets is not
 * NULL, its row i (a distribution); either is smoothed as (1 - e) q + e / K, as PyTorch's
 * cross_entropy does. row_loss (N) scratch; returns the mean loss. */
static double loss_kernel(const float *logits, const int32_t *labels, const float *targets,
                          int64_t n, int64_t k, double smoothing, float *dlogits,
                          double *row_loss)
{
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        const float *z = logits + i * k;
        float *dz = dlogits + i * k;
        double mx = z[0];
        for (int64_t j = 1; j < k; j++) mx = z[j] > mx ? z[j] : mx;
        double sum = 0;
        for (int64_t j = 0; j < k; j++) sum += exp((double)z[j] - mx);
        double lse = mx + log(sum), loss = 0;
        int32_t y = labels[i];
        for (int64_t j = 0; j < k; j++) {
            double t = targets ? targets[i * k + j] : j == y;
            double q = smoothing / (double)k + (1 - smoothing) * t;
            double logp = (double)z[j] - lse;
            loss -= q * logp;
            dz[j] = (float)((exp(logp) - q) / (double)n);
        }
        row_loss[i] = loss;
    }
    double total = 0; /* in order: the same sum whatever the threads */
    for (int64_t i = 0; i < n; i++) total += row_loss[i];
    return total / (double)n;
}

/* --------------------------------------------------------------------------------------- */
/* Building the plan */

struct cpu_step *cpu_reorder(struct cpu *c, enum cpu_phase ph, const struct graph_layer *l,
                             const dnnl_memory_desc_t *smd, const dnnl_memory_desc_t *dmd)
{
    dnnl_primitive_desc_t pd = NULL;
    cpu_ok(c, onednn_reorder_pd(&pd, smd, dmd, c->eng, c->attr), l, "reorder");
    struct cpu_step *s = cpu_prim(c, ph, pd, NULL);
    s->layer = l;
    s->what = "reorder";
    return s;
}

void cpu_reorder_step(struct cpu *c, enum cpu_phase ph, const struct graph_layer *l, int src,
                      const dnnl_memory_desc_t *smd, int dst, const dnnl_memory_desc_t *dmd)
{
    struct cpu_step *s = cpu_reorder(c, ph, l, smd, dmd);
    cpu_act(c, s, DNNL_ARG_FROM, src, smd);
    cpu_act(c, s, DNNL_ARG_TO, dst, dmd);
}

/* Destroys the steps of program ph (an evaluation-only plan has no training program). */
static void free_program(struct cpu *c, enum cpu_phase ph)
{
    for (size_t i = 0; i < c->nsteps[ph]; i++) {
        struct cpu_step *s = &c->steps[ph][i];
        for (int a = 0; a < s->nargs; a++)
            if (s->args[a].mem) dnnl_memory_destroy(s->args[a].mem);
        if (s->scratch) dnnl_memory_destroy(s->scratch);
        if (s->prim) dnnl_primitive_destroy(s->prim);
    }
    c->nsteps[ph] = 0;
}

static void build(struct cpu *c)
{
    const struct graph *g = c->g;
    int64_t dims[4];
    cpu_dims(c, &g->input, dims);
    c->in_md = cpu_md(c, 4, dims, dnnl_nchw);
    c->in_buf = cpu_buffer(c, onednn_md_size(&c->in_md));
    c->in_grad = -1;
    for (size_t i = 0; i < g->nlayers && !c->failed; i++) {
        c->layers[i].grad = -1;
        cpu_ops[g->layers[i].op]->forward(c, i);
    }
    if (c->failed) return;

    /* The output at the edge: the plain (N, F) view the loss and the caller read. */
    struct cpu_layer *out = &c->layers[g->output];
    dnnl_memory_desc_t plain = cpu_plain_md(c, &out->md);
    bool same = onednn_md_equal(&plain, &out->md);
    c->out_plain = same ? out->out : cpu_buffer(c, onednn_md_size(&plain));
    if (!same) {
        cpu_reorder_step(c, CPU_FWD_TRAIN, NULL, out->out, &out->md, c->out_plain, &plain);
        cpu_reorder_step(c, CPU_FWD_EVAL, NULL, out->out, &out->md, c->out_plain, &plain);
    }
    if (c->plan->opt.eval_only) {
        free_program(c, CPU_FWD_TRAIN);
        c->bufs[c->out_plain].last = INT_MAX;
        c->bufs[c->in_buf].first = 0;
        c->bufs[c->in_buf].last = INT_MAX;
        return;
    }
    c->loss_time = (int)c->nsteps[CPU_FWD_TRAIN];
    c->grad_plain = cpu_buffer(c, onednn_md_size(&plain));
    int row_loss = c->row_loss = cpu_buffer(c, (size_t)cpu_batch(c) * sizeof(double));
    /* The loss reads the output and writes its gradient; a seam in time of its own. */
    c->bufs[c->out_plain].last = c->bufs[c->grad_plain].first = c->loss_time;
    c->bufs[row_loss].first = c->bufs[row_loss].last = c->loss_time;
    if (same) {
        out->grad = c->grad_plain;
    } else {
        out->grad = cpu_buffer(c, onednn_md_size(&out->md));
        cpu_reorder_step(c, CPU_BWD, NULL, c->grad_plain, &plain, out->grad, &out->md);
    }
    for (size_t i = g->nlayers; i-- > 0 && !c->failed;)
        if (c->layers[i].grad >= 0) /* an output nothing reads has no gradient */
            cpu_ops[g->layers[i].op]->backward(c, i);
    /* What the caller reads after a step stays until the end. */
    c->bufs[c->out_plain].last = INT_MAX;
    if (c->in_grad >= 0) c->bufs[c->in_grad].last = INT_MAX;
    /* The input stays as set (a forward may follow a backward without a new batch). */
    c->bufs[c->in_buf].first = 0;
    c->bufs[c->in_buf].last = INT_MAX;
}

static enum status bind(struct cpu *c)
{
    const struct graph *g = c->g;
    /* Parameters first (trained, then buffers), each at a 64-byte boundary. The trained ones
     * also make the optimizers' ranges, in floats, that tensors of rank <= 1 and the others
     * alternate in (weight decay by kind); adjacent tensors of one kind share a range. */
    c->ranges = calloc(g->ntensors + 1, sizeof *c->ranges);
    if (!c->ranges) abort();
    size_t off = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t t = 0; t < g->ntensors; t++) {
            if ((g->tensors[t].t.role == TENSOR_PARAM) != (pass == 0)) continue;
            c->toff[t] = off;
            off += (onednn_md_size(&c->tmd[t]) + 63) / 64 * 64;
            if (pass) continue;
            bool vector = g->tensors[t].t.rank <= 1;
            int64_t b = (int64_t)(c->toff[t] / sizeof(float)), e = (int64_t)(off / sizeof(float));
            if (c->nranges && c->ranges[c->nranges - 1].vector == vector)
                c->ranges[c->nranges - 1].end = e;
            else
                c->ranges[c->nranges++] = (struct cpu_range){b, e, vector};
        }
        if (pass == 0) c->param_bytes = off;
    }
    struct plan_sizes *sz = &c->plan->sizes;
    sz->params = off;
    bool train = !c->plan->opt.eval_only;
    sz->grads = train ? c->param_bytes : 0;
    sz->optimizer = train ? c->param_bytes * (size_t)c->plan->opt.optimizer_slots : 0;

    size_t *size = calloc(c->nbufs + 1, sizeof *size), *offs = calloc(c->nbufs + 1, sizeof *offs);
    int *first = calloc(c->nbufs + 1, sizeof *first), *last = calloc(c->nbufs + 1, sizeof *last);
    if (!size || !offs || !first || !last) abort();
    for (size_t i = 0; i < c->nbufs; i++) {
        size[i] = c->bufs[i].size;
        first[i] = c->bufs[i].first == INT_MAX ? 0 : c->bufs[i].first;
        last[i] = c->bufs[i].last < first[i] ? first[i] : c->bufs[i].last;
    }
    sz->activations = plan_pack(c->nbufs, size, first, last, 64, offs);
    for (size_t i = 0; i < c->nbufs; i++) c->bufs[i].offset = offs[i];
    free(size);
    free(offs);
    free(first);
    free(last);

    sz->workspace = 64;
    for (int ph = 0; ph < CPU_PHASES; ph++)
        for (size_t i = 0; i < c->nsteps[ph]; i++) {
            size_t w = onednn_md_size(&c->steps[ph][i].scratch_md);
            if (w > sz->workspace) sz->workspace = w;
        }

    if (c->plan->opt.sizes_only) return STATUS_OK;
    c->params = aligned_alloc(64, sz->params + 64);
    c->grads = aligned_alloc(64, sz->grads + 64);
    c->optim = aligned_alloc(64, sz->optimizer + 64);
    c->act = aligned_alloc(64, (sz->activations + 63) / 64 * 64 + 64);
    c->work = aligned_alloc(64, (sz->workspace + 63) / 64 * 64);
    c->labels = calloc((size_t)cpu_batch(c) + 1, sizeof *c->labels);
    c->targets = calloc((size_t)cpu_batch(c) * (size_t)cpu_classes(c) + 1, sizeof *c->targets);
    if (!c->params || !c->grads || !c->optim || !c->act || !c->work || !c->labels ||
        !c->targets) {
        diag_error(c->d, (struct mark){0}, "out of memory allocating the plan's arenas "
                   "(%.1f MiB of activations)", (double)sz->activations / (1 << 20));
        return STATUS_RUNTIME;
    }
    memset(c->params, 0, sz->params);
    memset(c->grads, 0, sz->grads);
    memset(c->optim, 0, sz->optimizer);
    memset(c->act, 0, sz->activations);

    for (int ph = 0; ph < CPU_PHASES; ph++)
        for (size_t i = 0; i < c->nsteps[ph]; i++) {
            struct cpu_step *s = &c->steps[ph][i];
            for (int a = 0; a < s->nargs; a++) {
                struct cpu_arg *arg = &s->args[a];
                arg->ptr = arg->where == CPU_ACT     ? c->act + c->bufs[arg->id].offset
                           : arg->where == CPU_PARAM ? c->params + c->toff[arg->id]
                                                     : c->grads + c->toff[arg->id];
                if (!s->prim) continue;
                if (!cpu_ok(c, onednn_memory_create(&arg->mem, &arg->md, c->eng, arg->ptr),
                            s->layer, "memory binding"))
                    return STATUS_RUNTIME;
                s->exec[a] = (dnnl_exec_arg_t){arg->dnnl_arg, arg->mem};
            }
            if (!s->prim) continue;
            if (!cpu_ok(c, onednn_memory_create(&s->scratch, &s->scratch_md, c->eng, c->work),
                        s->layer, "scratchpad binding"))
                return STATUS_RUNTIME;
            s->exec[s->nargs] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, s->scratch};
        }
    return STATUS_OK;
}

static void cpu_destroy(struct plan *p)
{
    struct cpu *c = p->impl;
    if (!c) return;
    for (int ph = 0; ph < CPU_PHASES; ph++) {
        free_program(c, (enum cpu_phase)ph);
        free(c->steps[ph]);
    }
    for (size_t i = 0; c->layers && i < c->g->nlayers; i++)
        if (c->layers[i].fwd_pd) dnnl_primitive_desc_destroy((dnnl_primitive_desc_t)c->layers[i].fwd_pd);
    if (c->attr) dnnl_primitive_attr_destroy(c->attr);
    if (c->relu_attr) dnnl_primitive_attr_destroy(c->relu_attr);
    if (c->stream) dnnl_stream_destroy(c->stream);
    if (c->eng) dnnl_engine_destroy(c->eng);
    onednn_mds_free(&c->mds);
    free(c->layers);
    free(c->bufs);
    free(c->tmd);
    free(c->toff);
    free(c->ranges);
    free(c->params);
    free(c->grads);
    free(c->optim);
    free(c->act);
    free(c->work);
    free(c->labels);
    free(c->targets);
    free(c);
    p->impl = NULL;
}

static enum status cpu_create(struct plan *p, struct diag *d)
{
    struct cpu *c = calloc(1, sizeof *c);
    if (!c) return STATUS_RUNTIME;
    p->impl = c;
    c->plan = p;
    c->g = p->g;
    c->d = d;
    c->layers = calloc(c->g->nlayers + 1, sizeof *c->layers);
    c->tmd = calloc(c->g->ntensors + 1, sizeof *c->tmd);
    c->toff = calloc(c->g->ntensors + 1, sizeof *c->toff);
    if (!c->layers || !c->tmd || !c->toff) abort();
    enum status st = STATUS_RUNTIME;
    if (cpu_ok(c, dnnl_engine_create(&c->eng, dnnl_cpu, 0), NULL, "engine creation") &&
        cpu_ok(c, dnnl_stream_create(&c->stream, c->eng, dnnl_stream_default_flags), NULL,
               "stream creation") &&
        cpu_ok(c, dnnl_primitive_attr_create(&c->attr), NULL, "attributes") &&
        cpu_ok(c, dnnl_primitive_attr_set_scratchpad_mode(c->attr, dnnl_scratchpad_mode_user),
               NULL, "scratchpad mode")) {
        /* Tensors no op lays out otherwise keep PyTorch's layout. */
        for (size_t t = 0; t < c->g->ntensors; t++) {
            const struct op_tensor *ot = &c->g->tensors[t].t;
            int64_t dims[DNNL_MAX_NDIMS] = {1};
            int nd = ot->rank ? ot->rank : 1;
            for (int i = 0; i < ot->rank; i++) dims[i] = ot->dim[i];
            if (ot->dtype == TENSOR_I64) { /* a counter: 8 bytes, never seen by oneDNN */
                nd = 1;
                dims[0] = 2;
            }
            c->tmd[t] = make_md(c, nd, dims, ot->dtype == TENSOR_I64 ? dnnl_s32 : dnnl_f32,
                                plain_tag(nd));
        }
        build(c);
        st = c->failed ? STATUS_RUNTIME : bind(c);
    }
    return st; /* on failure plan_create destroys what was made */
}

/* --------------------------------------------------------------------------------------- */
/* Running */

static enum status run(struct cpu *c, enum cpu_phase ph)
{
    bool profile = c->plan->opt.profile;
    for (size_t i = 0; i < c->nsteps[ph]; i++) {
        struct cpu_step *s = &c->steps[ph][i];
        double t0 = profile ? plan_clock() : 0;
        if (s->prim) {
            dnnl_status_t st = dnnl_primitive_execute(s->prim, c->stream, s->nargs + 1, s->exec);
            if (st != dnnl_success) {
                /* The arguments were checked when the plan was built: a bug, not bad input.
                 * What does not fit goes first, then the failure. */
                const_dnnl_primitive_desc_t pd;
                dnnl_primitive_get_primitive_desc(s->prim, &pd);
                for (int a = 0; a < s->nargs; a++)
                    if (!onednn_pd_arg_is(pd, s->args[a].dnnl_arg, &s->args[a].md))
                        fprintf(stderr, "  argument %d: not an argument of it, or laid out "
                                "otherwise\n", s->args[a].dnnl_arg);
                plan_fail(c->plan, "oneDNN failed (status %d) running %s%s%s", (int)st,
                          s->layer ? "layer '" : "a plan step", s->layer ? s->layer->name : "",
                          s->layer ? "'" : "");
                return STATUS_RUNTIME;
            }
        } else
            s->kernel(c, s);
        if (profile) {
            dnnl_stream_wait(c->stream);
            s->seconds += plan_clock() - t0;
            s->calls++;
        }
    }
    dnnl_stream_wait(c->stream);
    return STATUS_OK;
}

static void cpu_timings(struct plan *p, plan_timing_fn fn, void *ctx)
{
    struct cpu *c = p->impl;
    static const enum plan_pass pass[CPU_PHASES] = {
        [CPU_FWD_TRAIN] = PLAN_FORWARD, [CPU_FWD_EVAL] = PLAN_EVAL, [CPU_BWD] = PLAN_BACKWARD};
    for (int ph = 0; ph < CPU_PHASES; ph++)
        for (size_t i = 0; i < c->nsteps[ph]; i++) {
            struct cpu_step *s = &c->steps[ph][i];
            if (!fn) {
                s->seconds = 0;
                s->calls = 0;
                continue;
            }
            if (!s->calls) continue;
            const char *what = s->what ? s->what
                               : s->layer ? op_table[s->layer->op]->name
                                          : "output";
            struct plan_timing t = {.layer = s->layer, .what = what, .pass = pass[ph],
                                    .seconds = s->seconds, .calls = s->calls};
            fn(ctx, &t);
        }
}

static void *buf_ptr(struct cpu *c, int buf)
{
    return c->act + c->bufs[buf].offset;
}

/* Bytes of the plain (N, F) output. */
static size_t out_bytes(struct cpu *c)
{
    return (size_t)cpu_batch(c) * (size_t)shape_numel(&c->g->layers[c->g->output].out) *
           sizeof(float);
}

static enum status cpu_forward(struct plan *p, bool train)
{
    return run(p->impl, train ? CPU_FWD_TRAIN : CPU_FWD_EVAL);
}

static enum status cpu_loss(struct plan *p, double smoothing, double *loss)
{
    struct cpu *c = p->impl;
    *loss = loss_kernel(buf_ptr(c, c->out_plain), c->labels, c->soft ? c->targets : NULL,
                        cpu_batch(c), shape_numel(&c->g->layers[c->g->output].out), smoothing,
                        buf_ptr(c, c->grad_plain), buf_ptr(c, c->row_loss));
    return STATUS_OK;
}

static enum status cpu_backward(struct plan *p, const float *dy)
{
    struct cpu *c = p->impl;
    if (dy) memcpy(buf_ptr(c, c->grad_plain), dy, out_bytes(c));
    return run(c, CPU_BWD);
}

static enum status cpu_get_output(struct plan *p, float *y)
{
    struct cpu *c = p->impl;
    memcpy(y, buf_ptr(c, c->out_plain), out_bytes(c));
    return STATUS_OK;
}

/* Copies between a plain buffer and memory laid out as md (a reorder: plan edges only). */
static enum status edge_copy(struct cpu *c, const dnnl_memory_desc_t *md, void *inside,
                             void *plain, bool in)
{
    struct onednn_mds tmp = {0}; /* the plain layout, made for this copy only */
    dnnl_memory_desc_t pmd;
    if (plain_md(&tmp, &pmd, md) != dnnl_success) abort();
    if (onednn_md_equal(&pmd, md)) {
        size_t n = onednn_md_size(md);
        if (in)
            memcpy(inside, plain, n);
        else
            memcpy(plain, inside, n);
        onednn_mds_free(&tmp);
        return STATUS_OK;
    }
    dnnl_memory_t a, b;
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t r;
    const dnnl_memory_desc_t *smd = in ? &pmd : md, *dmd = in ? md : &pmd;
    if (onednn_memory_create(&a, smd, c->eng, in ? plain : inside) ||
        onednn_memory_create(&b, dmd, c->eng, in ? inside : plain) ||
        onednn_reorder_pd(&pd, smd, dmd, c->eng, NULL) || dnnl_primitive_create(&r, pd)) {
        onednn_mds_free(&tmp);
        plan_fail(c->plan, "oneDNN's reorder at the plan's edge failed");
        return STATUS_RUNTIME;
    }
    dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, a}, {DNNL_ARG_TO, b}};
    dnnl_status_t st = dnnl_primitive_execute(r, c->stream, 2, args);
    dnnl_stream_wait(c->stream);
    dnnl_primitive_destroy(r);
    dnnl_primitive_desc_destroy(pd);
    dnnl_memory_destroy(a);
    dnnl_memory_destroy(b);
    onednn_mds_free(&tmp);
    if (st == dnnl_success) return STATUS_OK;
    plan_fail(c->plan, "oneDNN's reorder at the plan's edge failed (status %d)", (int)st);
    return STATUS_RUNTIME;
}

/* The input is laid out plain (NCHW, as build makes in_md): a batch is copied as it is. */
static enum status cpu_get_input_grad(struct plan *p, float *dx)
{
    struct cpu *c = p->impl;
    size_t n = onednn_md_size(&c->in_md);
    if (c->in_grad < 0)
        memset(dx, 0, n); /* nothing reaches the input */
    else
        memcpy(dx, buf_ptr(c, c->in_grad), n);
    return STATUS_OK;
}

static enum status cpu_set_input(struct plan *p, const float *x, const int32_t *labels)
{
    struct cpu *c = p->impl;
    memcpy(buf_ptr(c, c->in_buf), x, onednn_md_size(&c->in_md));
    if (labels) memcpy(c->labels, labels, (size_t)cpu_batch(c) * sizeof *labels);
    c->soft = false;
    return STATUS_OK;
}

static enum status cpu_set_targets(struct plan *p, const float *q)
{
    struct cpu *c = p->impl;
    if (q) memcpy(c->targets, q, (size_t)cpu_batch(c) * (size_t)cpu_classes(c) * sizeof *q);
    c->soft = q != NULL;
    return STATUS_OK;
}

static enum status cpu_set_tensor(struct plan *p, const struct graph_tensor *t, bool grad,
                                  const void *src)
{
    struct cpu *c = p->impl;
    size_t i = (size_t)(t - c->g->tensors);
    if (t->t.dtype == TENSOR_I64) {
        if (!grad) memcpy(c->params + c->toff[i], src, 8);
        return STATUS_OK;
    }
    return edge_copy(c, &c->tmd[i], (grad ? c->grads : c->params) + c->toff[i], (void *)src,
                     true);
}

static enum status cpu_get_tensor(struct plan *p, const struct graph_tensor *t, bool grad,
                                  void *dst)
{
    struct cpu *c = p->impl;
    size_t i = (size_t)(t - c->g->tensors);
    if (t->t.dtype == TENSOR_I64) {
        memcpy(dst, c->params + c->toff[i], 8);
        return STATUS_OK;
    }
    return edge_copy(c, &c->tmd[i], (grad ? c->grads : c->params) + c->toff[i], dst, false);
}

/* Optimizer slots follow the parameter arena's layout, one arena-sized block per slot. */
static enum status cpu_get_state(struct plan *p, const struct graph_tensor *t, int slot,
                                 float *dst)
{
    struct cpu *c = p->impl;
    size_t i = (size_t)(t - c->g->tensors);
    return edge_copy(c, &c->tmd[i], c->optim + (size_t)slot * c->param_bytes + c->toff[i], dst,
                     false);
}

static enum status cpu_set_state(struct plan *p, const struct graph_tensor *t, int slot,
                                 const float *src)
{
    struct cpu *c = p->impl;
    size_t i = (size_t)(t - c->g->tensors);
    return edge_copy(c, &c->tmd[i], c->optim + (size_t)slot * c->param_bytes + c->toff[i],
                     (void *)src, true);
}

/* --------------------------------------------------------------------------------------- */
/* The trained tensors, for the optimizer kernels (optim_cpu.c) */

void cpu_trained(struct cpu *c, struct cpu_trained *t)
{
    *t = (struct cpu_trained){.params = (float *)c->params, .grads = (float *)c->grads,
                              .optim = c->optim, .param_bytes = c->param_bytes,
                              .ranges = c->ranges, .nranges = c->nranges};
}

const struct backend backend_cpu = {
    .name = "cpu",
    .supports = cpu_supports,
    .create = cpu_create,
    .destroy = cpu_destroy,
    .set_tensor = cpu_set_tensor,
    .get_tensor = cpu_get_tensor,
    .set_input = cpu_set_input,
    .forward = cpu_forward,
    .loss = cpu_loss,
    .set_targets = cpu_set_targets,
    .backward = cpu_backward,
    .get_output = cpu_get_output,
    .get_input_grad = cpu_get_input_grad,
    .get_state = cpu_get_state,
    .set_state = cpu_set_state,
    .update = cpu_update,
    .clip_grad_norm = cpu_clip_grad_norm,
    .ema_update = cpu_ema_update,
    .timings = cpu_timings,
};
