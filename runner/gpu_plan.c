/*
 * gpu_plan.c: the CUDA backend's planning on the host; see gpu_plan.h. Covered by
 * tests/test_gpu_plan.c.
 */
#include "gpu_plan.h"
#include "gpu_lower.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan.h"

#define ALIGN_FLOATS 64 /* trained tensors start on 256-byte boundaries */

static void *grow(void *p, size_t n, size_t size)
{
    /* capacities double at powers of two: n is the count before the new element */
    if (n & (n - 1)) return p;
    void *q = realloc(p, (n ? 2 * n : 1) * size);
    if (!q) abort();
    return q;
}

size_t gpu_dtype_size(enum gpu_dtype t)
{
    return t == GPU_F32 ? 4 : 2;
}

const char *gpu_dtype_name(enum gpu_dtype t)
{
    return t == GPU_F32 ? "fp32" : t == GPU_BF16 ? "bf16" : "fp16";
}

int64_t gpu_pad_channels(int64_t c, enum gpu_dtype t)
{
    int64_t m = t == GPU_F32 ? 4 : 8;
    return c < m ? m : (c + m - 1) / m * m;
}

const char *gpu_op_name(enum gpu_op op)
{
    static const char *const names[GPU_OP_COUNT] = {
        "input", "conv", "conv backward data", "conv backward filter", "batchnorm",
        "batchnorm (eval)", "batchnorm backward", "relu", "relu backward", "add", "copy",
        "gradient sum", "pool", "pool backward", "global_avg_pool",
        "global_avg_pool backward", "linear", "linear backward data",
        "linear backward weight", "dropout", "dropout backward", "output", "gradient pack"};
    return op < GPU_OP_COUNT ? names[op] : "?";
}

/* --------------------------------------------------------------------------------------- */
/* Building: the builder's own work (fusions, the programs' frames, the tensors' places), and
 * what the ops' lowerings (layers/<op>_cuda.c, gpu_lower.h) build with */

static const struct gpu_lowering *const gpu_ops[OP_KIND_COUNT] = {
    [OP_KIND_CONV] = &conv_cuda,
    [OP_KIND_BATCHNORM] = &batchnorm_cuda,
    [OP_KIND_RELU] = &relu_cuda,
    [OP_KIND_ADD] = &add_cuda,
    [OP_KIND_MAXPOOL] = &maxpool_cuda,
    [OP_KIND_AVGPOOL] = &avgpool_cuda,
    [OP_KIND_GLOBAL_AVG_POOL] = &global_avg_pool_cuda,
    [OP_KIND_FLATTEN] = &flatten_cuda,
    [OP_KIND_LINEAR] = &linear_cuda,
    [OP_KIND_DROPOUT] = &dropout_cuda,
    [OP_KIND_IDENTITY] = &identity_cuda,
};

bool gpu_plan_supports(const struct graph *g, const struct graph_layer *l, char *why,
                       size_t size)
{
    const struct gpu_lowering *op = l->op < OP_KIND_COUNT ? gpu_ops[l->op] : NULL;
    if (!op) {
        snprintf(why, size, "no GPU implementation of '%s'", op_table[l->op]->name);
        return false;
    }
    return !op->supports || op->supports(g, l, why, size);
}

int gpu_new_buf(struct gpu_builder *b, enum gpu_buf_kind kind, int64_t n)
{
    struct gpu_plan *gp = b->gp;
    gp->bufs = grow(gp->bufs, gp->nbufs, sizeof *gp->bufs);
    size_t bytes = kind == GPU_BUF_ACT ? (size_t)n * gpu_dtype_size(gp->cfg.dtype)
                   : kind == GPU_BUF_STAT || kind == GPU_BUF_F32 ? (size_t)n * 4
                                                                 : (size_t)n;
    gp->bufs[gp->nbufs] = (struct gpu_buf){kind, n, bytes, -1, -1, 0};
    return (int)gp->nbufs++;
}

struct gpu_step *gpu_emit(struct gpu_builder *b, enum gpu_prog pr, enum gpu_op op, int li)
{
    struct gpu_plan *gp = b->gp;
    gp->steps[pr] = grow(gp->steps[pr], gp->nsteps[pr], sizeof **gp->steps);
    struct gpu_step *s = &gp->steps[pr][gp->nsteps[pr]++];
    *s = (struct gpu_step){.op = op, .layer = li};
    for (int i = 0; i < GPU_MAX_ARGS; i++) s->args[i] = -1;
    return s;
}

/* Index into gp->layers of the producer `in` (GRAPH_INPUT: the extra entry). */
static int slot(const struct gpu_builder *b, int in)
{
    return in == GRAPH_INPUT ? (int)b->g->nlayers : in;
}

int gpu_buf_of(const struct gpu_builder *b, int producer)
{
    return b->gp->layers[slot(b, producer)].out;
}

int gpu_in(const struct gpu_builder *b, int li, int i)
{
    return gpu_buf_of(b, b->g->layers[li].in[i]);
}

int gpu_out(struct gpu_builder *b, int li)
{
    struct gpu_layer *gl = &b->gp->layers[li];
    if (gl->out < 0) gl->out = gpu_new_buf(b, GPU_BUF_ACT, gpu_out_numel(b, li));
    return gl->out;
}

void gpu_set_out(struct gpu_builder *b, int li, int buf)
{
    b->gp->layers[li].out = buf;
}

int64_t gpu_out_numel(const struct gpu_builder *b, int li)
{
    return b->gp->cfg.batch * shape_numel(&b->g->layers[li].out);
}

int64_t gpu_in_numel(const struct gpu_builder *b, int li, int i)
{
    return b->gp->cfg.batch * shape_numel(graph_input_shape(b->g, &b->g->layers[li], i));
}

/* Which batchnorms fuse with what follows them: bn -> relu, or bn -> add -> relu when each is
 * the only reader of the one before. The group's kernel runs at its last layer. */
static void find_fusions(struct gpu_builder *b)
{
    const struct graph *g = b->g;
    for (size_t li = 0; li <= g->nlayers; li++) {
        b->head[li] = b->tail[li] = -1;
        b->z[li] = GPU_NO_Z;
    }
    for (size_t li = 0; li < g->nlayers; li++) {
        if (g->layers[li].op != OP_KIND_BATCHNORM || b->consumers[li] != 1) continue;
        /* its only reader */
        int next = -1, at = -1;
        for (size_t k = li + 1; k < g->nlayers && next < 0; k++)
            for (int i = 0; i < g->layers[k].nin; i++)
                if (g->layers[k].in[i] == (int)li) {
                    next = (int)k;
                    at = i;
                }
        if (next < 0) continue;
        const struct graph_layer *n = &g->layers[next];
        if (n->op == OP_KIND_RELU) {
            b->head[next] = (int)li;
            b->tail[li] = next;
            continue;
        }
        if (n->op != OP_KIND_ADD || n->in[0] == n->in[1] || b->consumers[next] != 1) continue;
        int relu = -1;
        for (size_t k = (size_t)next + 1; k < g->nlayers && relu < 0; k++)
            if (g->layers[k].nin == 1 && g->layers[k].in[0] == next) relu = (int)k;
        if (relu < 0 || g->layers[relu].op != OP_KIND_RELU) continue;
        if (b->head[next] >= 0) continue; /* the add's other input, a batchnorm, has it */
        int other = n->in[1 - at];
        b->head[next] = b->head[relu] = (int)li;
        b->tail[li] = relu;
        b->z[li] = other;
    }
}

static void count_consumers(struct gpu_builder *b)
{
    const struct graph *g = b->g;
    for (size_t li = 0; li < g->nlayers; li++)
        for (int i = 0; i < g->layers[li].nin; i++) b->consumers[slot(b, g->layers[li].in[i])]++;
    b->consumers[g->output]++;
}

/* Whether layer op keeps its first input's device layout element for element (views,
 * pointwise ops, and an add, whose inputs are laid out alike: add_supports). */
static bool keeps_layout(enum op_kind op)
{
    return op == OP_KIND_FLATTEN || op == OP_KIND_IDENTITY || op == OP_KIND_DROPOUT ||
           op == OP_KIND_RELU || op == OP_KIND_ADD;
}

/* The layout of producer p's output on the device (GRAPH_INPUT: the input): NHWC of the
 * spatial map it is (or that a flatten, identity, dropout or relu made it from), as *ch
 * channels at *hw pixels; *hw 1 where that is PyTorch's order (vectors, 1x1 maps). Returns
 * the map's shape, or NULL for PyTorch's order. */
const struct shape *gpu_layout(const struct graph *g, int p, int64_t *ch, int64_t *hw)
{
    const struct shape *s = p == GRAPH_INPUT ? &g->input : &g->layers[p].out;
    int64_t numel = shape_numel(s);
    while (p != GRAPH_INPUT && s->rank != 3 && keeps_layout(g->layers[p].op)) {
        p = g->layers[p].in[0];
        s = p == GRAPH_INPUT ? &g->input : &g->layers[p].out;
    }
    *ch = numel;
    *hw = 1;
    if (s->rank != 3 || s->d[1] * s->d[2] == 1) return NULL;
    *ch = s->d[0];
    *hw = s->d[1] * s->d[2];
    return s;
}

/* Channels of the graph input as stored: padded when only convolutions read it. */
static int64_t input_channels(const struct gpu_builder *b)
{
    const struct graph *g = b->g;
    if (g->input.rank != 3) return g->input.rank ? g->input.d[0] : 1;
    for (size_t li = 0; li < g->nlayers; li++)
        for (int i = 0; i < g->layers[li].nin; i++)
            if (g->layers[li].in[i] == GRAPH_INPUT &&
                (g->layers[li].op != OP_KIND_CONV || g->layers[li].p.conv.groups != 1))
                return g->input.d[0];
    return gpu_pad_channels(g->input.d[0], b->gp->cfg.dtype);
}

static void place_tensors(struct gpu_builder *b)
{
    struct gpu_plan *gp = b->gp;
    const struct graph *g = b->g;
    gp->tensors = calloc(g->ntensors + 1, sizeof *gp->tensors);
    gp->ranges = calloc(g->ntensors + 1, sizeof *gp->ranges);
    if (!gp->tensors || !gp->ranges) abort();
    bool half = gp->cfg.dtype != GPU_F32;
    for (size_t ti = 0; ti < g->ntensors; ti++) {
        const struct graph_tensor *gt = &g->tensors[ti];
        const struct graph_layer *l = &g->layers[gt->layer];
        struct gpu_tensor *t = &gp->tensors[ti];
        t->layout = GPU_LAYOUT_PLAIN;
        t->numel = op_tensor_numel(&gt->t);
        bool weight = ti == l->tensor0 && (l->op == OP_KIND_CONV || l->op == OP_KIND_LINEAR);
        if (weight && l->op == OP_KIND_CONV) {
            t->layout = GPU_LAYOUT_KRSC;
            memcpy(t->dim, gt->t.dim, sizeof t->dim);
            t->cpad = l->in[0] == GRAPH_INPUT ? gp->in_cpad : t->dim[1];
            t->numel = t->dim[0] * t->dim[2] * t->dim[3] * t->cpad;
        } else if (weight) {
            int64_t ch, hw;
            const struct shape *s = gpu_layout(b->g, l->in[0], &ch, &hw);
            if (s) { /* a linear layer reading a flattened map takes it as (H*W*C) */
                t->layout = GPU_LAYOUT_HWC_IN;
                t->dim[0] = gt->t.dim[0];
                t->dim[1] = s->d[0];
                t->dim[2] = s->d[1];
                t->dim[3] = s->d[2];
            }
        }
        if (gt->t.role == TENSOR_PARAM) {
            t->trained = true;
            t->half = half && weight;
            t->offset = gp->trained_floats;
            gp->ranges[gp->nranges++] = (struct gpu_range){
                t->offset, t->offset + t->numel, gt->t.rank <= 1, t->half};
            gp->trained_floats += (t->numel + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
        } else if (gt->t.dtype == TENSOR_F32) {
            t->offset = gp->state_floats;
            gp->state_floats += (t->numel + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
        } else {
            t->offset = -1; /* a counter: kept on the host */
        }
    }
    for (size_t r = 0; r < gp->nranges; r++)
        for (int64_t at = gp->ranges[r].begin; at < gp->ranges[r].end; at += GPU_CHUNK) {
            gp->chunks = grow(gp->chunks, gp->nchunks, sizeof *gp->chunks);
            int64_t end = at + GPU_CHUNK < gp->ranges[r].end ? at + GPU_CHUNK : gp->ranges[r].end;
            gp->chunks[gp->nchunks++] = (struct gpu_chunk){at, end, (int32_t)r};
        }
}

/* The forward program pr (training or evaluation): the input, every layer's lowering in
 * order (a fused group's at its last layer, when the add's other input is made), the output.
 * Layer outputs get their buffers on the first call and keep them (both programs share them). */
static void forward(struct gpu_builder *b, enum gpu_prog pr)
{
    struct gpu_plan *gp = b->gp;
    const struct graph *g = b->g;
    struct gpu_step *s = gpu_emit(b, pr, GPU_OP_INPUT, -1);
    s->args[0] = gp->input;
    s->n = gp->bufs[gp->input].n;
    for (size_t li = 0; li < g->nlayers; li++) {
        int bn = b->head[li];
        if (b->tail[li] >= 0 || (bn >= 0 && b->tail[bn] != (int)li)) continue; /* fused */
        int at = bn >= 0 ? bn : (int)li;
        gpu_ops[g->layers[at].op]->forward(b, pr, at);
    }
    s = gpu_emit(b, pr, GPU_OP_OUTPUT, g->output);
    s->args[0] = gp->layers[g->output].out;
    s->args[1] = gp->logits;
    s->n = gp->cfg.batch * gp->classes;
    gpu_layout(g, g->output, &s->ch, &s->hw);
}

/* --------------------------------------------------------------------------------------- */
/* The backward program: gradients flow from the loss to the input, in reverse layer order,
 * so that a layer's output gradient is complete (every reader's contribution in) before its
 * own backward kernels read it. */

int gpu_grad_begin(struct gpu_builder *b, int in, int64_t n, bool native, bool *accumulate,
                   int *sum)
{
    struct gpu_plan *gp = b->gp;
    struct gpu_layer *pl = &gp->layers[slot(b, in)];
    *accumulate = false;
    *sum = -1;
    if (in == GRAPH_INPUT && !gp->cfg.input_grad) return -1;
    /* the input's gradient as its kernels write it: with the padding channels */
    if (in == GRAPH_INPUT) n = gp->bufs[gp->input].n;
    if (pl->grad < 0) {
        pl->grad = gpu_new_buf(b, GPU_BUF_ACT, n);
        return pl->grad;
    }
    if (native) {
        *accumulate = true;
        return pl->grad;
    }
    *sum = pl->grad;
    return gpu_new_buf(b, GPU_BUF_ACT, n);
}

void gpu_grad_finish(struct gpu_builder *b, int tmp, int sum, int64_t n)
{
    if (sum < 0) return;
    struct gpu_step *s = gpu_emit(b, GPU_PROG_BWD, GPU_OP_ACCUM, -1);
    s->args[0] = tmp;
    s->args[1] = sum;
    s->n = n;
}

void gpu_grad_pass(struct gpu_builder *b, int in, int dy, int64_t n)
{
    struct gpu_plan *gp = b->gp;
    struct gpu_layer *pl = &gp->layers[slot(b, in)];
    if (in == GRAPH_INPUT && !gp->cfg.input_grad) return;
    if (pl->grad < 0 && b->consumers[slot(b, in)] == 1) {
        pl->grad = dy;
        return;
    }
    bool first = pl->grad < 0;
    if (first) pl->grad = gpu_new_buf(b, GPU_BUF_ACT, n);
    struct gpu_step *s = gpu_emit(b, GPU_PROG_BWD, first ? GPU_OP_COPY : GPU_OP_ACCUM, -1);
    s->args[0] = dy;
    s->args[1] = pl->grad;
    s->n = n;
}

struct gpu_step *gpu_emit_unary(struct gpu_builder *b, enum gpu_prog pr, enum gpu_op op, int li)
{
    int x = gpu_in(b, li, 0);
    struct gpu_step *s = gpu_emit(b, pr, op, li);
    s->args[0] = x;
    s->args[1] = gpu_out(b, li);
    s->n = gpu_out_numel(b, li);
    return s;
}

void gpu_emit_grad(struct gpu_builder *b, int li, enum gpu_op op, const int *args, int nargs,
                   int dx)
{
    bool acc;
    int sum;
    int64_t n = gpu_in_numel(b, li, 0);
    int g = gpu_grad_begin(b, b->g->layers[li].in[0], n, false, &acc, &sum);
    if (g < 0) return;
    struct gpu_step *s = gpu_emit(b, GPU_PROG_BWD, op, li);
    for (int i = 0; i < nargs; i++) s->args[i] = i == dx ? g : args[i];
    s->n = n;
    gpu_grad_finish(b, g, sum, n);
}

void gpu_view_forward(struct gpu_builder *b, enum gpu_prog pr, int li)
{
    (void)pr;
    gpu_set_out(b, li, gpu_in(b, li, 0));
}

void gpu_view_backward(struct gpu_builder *b, int li, int dy)
{
    gpu_grad_pass(b, b->g->layers[li].in[0], dy, gpu_in_numel(b, li, 0));
}

void gpu_weighted_backward(struct gpu_builder *b, int li, int dy, enum gpu_op wgrad,
                           enum gpu_op dgrad)
{
    struct gpu_step *s = gpu_emit(b, GPU_PROG_BWD, wgrad, li);
    s->args[0] = gpu_in(b, li, 0);
    s->args[1] = dy;
    bool acc;
    int sum;
    int64_t n = gpu_in_numel(b, li, 0);
    int dx = gpu_grad_begin(b, b->g->layers[li].in[0], n, true, &acc, &sum);
    if (dx < 0) return;
    s = gpu_emit(b, GPU_PROG_BWD, dgrad, li);
    s->args[0] = dy;
    s->args[1] = dx;
    s->accumulate = acc;
    s->n = n;
}

static void backward(struct gpu_builder *b)
{
    struct gpu_plan *gp = b->gp;
    const struct graph *g = b->g;
    gp->layers[g->output].grad = gp->dlogits;
    int64_t ch, hw;
    if (gpu_layout(b->g, g->output, &ch, &hw)) {
        /* a spatial output: its gradient arrives in PyTorch's order */
        struct gpu_step *s = gpu_emit(b, GPU_PROG_BWD, GPU_OP_GRAD_PACK, -1);
        gp->layers[g->output].grad = gpu_new_buf(b, GPU_BUF_ACT, gp->cfg.batch * gp->classes);
        s->args[0] = gp->dlogits;
        s->args[1] = gp->layers[g->output].grad;
        s->n = gp->cfg.batch * gp->classes;
        s->ch = ch;
        s->hw = hw;
    }
    for (size_t k = g->nlayers; k-- > 0;) {
        int bn = b->head[k];
        if (bn >= 0 && b->tail[bn] != (int)k) continue; /* inside a fused group */
        if (b->tail[k] >= 0) continue;                  /* a fused batchnorm: at its end */
        int dy = gp->layers[k].grad;
        if (dy < 0) continue; /* nothing downstream depends on it */
        int li = bn >= 0 ? bn : (int)k;
        gpu_ops[g->layers[li].op]->backward(b, li, dy);
    }
    gp->input_grad = gp->cfg.input_grad ? gp->layers[g->nlayers].grad : -1;
}

/* --------------------------------------------------------------------------------------- */

void gpu_plan_build(const struct graph *g, const struct gpu_plan_config *cfg, struct gpu_plan *gp)
{
    *gp = (struct gpu_plan){.g = g, .cfg = *cfg, .input_grad = -1};
    size_t n = g->nlayers + 1;
    struct gpu_builder b = {.gp = gp, .g = g};
    b.consumers = calloc(n, sizeof *b.consumers);
    b.head = calloc(n, sizeof *b.head);
    b.z = calloc(n, sizeof *b.z);
    b.tail = calloc(n, sizeof *b.tail);
    gp->layers = calloc(n, sizeof *gp->layers);
    if (!b.consumers || !b.head || !b.z || !b.tail || !gp->layers) abort();
    for (size_t i = 0; i < n; i++) gp->layers[i] = (struct gpu_layer){-1, -1};
    count_consumers(&b);
    find_fusions(&b);
    gp->in_cpad = input_channels(&b);
    const struct shape *os = &g->layers[g->output].out;
    gp->classes = shape_numel(os);
    int64_t per_image = shape_numel(&g->input) / (g->input.rank ? g->input.d[0] : 1);
    gp->input = gpu_new_buf(&b, GPU_BUF_ACT, cfg->batch * per_image * gp->in_cpad);
    gp->layers[g->nlayers].out = gp->input;
    gp->logits = gpu_new_buf(&b, GPU_BUF_F32, cfg->batch * gp->classes);
    place_tensors(&b);
    if (cfg->train) {
        gp->dlogits = gpu_new_buf(&b, GPU_BUF_ACT, cfg->batch * gp->classes);
        forward(&b, GPU_PROG_FWD_TRAIN);
    } else {
        gp->dlogits = -1;
    }
    forward(&b, GPU_PROG_FWD_EVAL);
    if (cfg->train) backward(&b);
    free(b.consumers);
    free(b.head);
    free(b.z);
    free(b.tail);
}

const struct gpu_step *gpu_plan_step_of(const struct gpu_plan *gp, enum gpu_prog pr, int li)
{
    for (size_t i = 0; i < gp->nsteps[pr]; i++)
        if (gp->steps[pr][i].layer == li && gp->steps[pr][i].op != GPU_OP_OUTPUT)
            return &gp->steps[pr][i];
    return NULL;
}

void gpu_plan_free(struct gpu_plan *gp)
{
    for (int p = 0; p < GPU_PROGS; p++) free(gp->steps[p]);
    free(gp->bufs);
    free(gp->layers);
    free(gp->tensors);
    free(gp->ranges);
    free(gp->chunks);
    *gp = (struct gpu_plan){0};
}

/* Marks buffer i as used at time t. */
static void use(struct gpu_plan *gp, int i, int t)
{
    if (i < 0) return;
    struct gpu_buf *bf = &gp->bufs[i];
    if (bf->first < 0 || t < bf->first) bf->first = t;
    if (t > bf->last) bf->last = t;
}

size_t gpu_plan_pack(struct gpu_plan *gp)
{
    /* The timeline: the training forward, the loss, the backward pass (an evaluation-only
     * plan: its forward). Logits, their gradient and the input's live to the end: they are
     * read from the host after the step. */
    enum gpu_prog first = gp->cfg.train ? GPU_PROG_FWD_TRAIN : GPU_PROG_FWD_EVAL;
    int t = 0;
    for (size_t i = 0; i < gp->nbufs; i++) gp->bufs[i].first = gp->bufs[i].last = -1;
    for (size_t i = 0; i < gp->nsteps[first]; i++, t++)
        for (int a = 0; a < GPU_MAX_ARGS; a++) use(gp, gp->steps[first][i].args[a], t);
    int loss = t++;
    use(gp, gp->logits, loss);
    use(gp, gp->dlogits, loss);
    if (gp->cfg.train)
        for (size_t i = 0; i < gp->nsteps[GPU_PROG_BWD]; i++, t++)
            for (int a = 0; a < GPU_MAX_ARGS; a++) use(gp, gp->steps[GPU_PROG_BWD][i].args[a], t);
    use(gp, gp->logits, t);
    use(gp, gp->input_grad, t);
    use(gp, gp->input, 0);
    size_t n = gp->nbufs;
    size_t *size = calloc(n + 1, sizeof *size), *offset = calloc(n + 1, sizeof *offset);
    int *f = calloc(n + 1, sizeof *f), *l = calloc(n + 1, sizeof *l);
    if (!size || !offset || !f || !l) abort();
    for (size_t i = 0; i < n; i++) {
        bool used = gp->bufs[i].first >= 0;
        size[i] = used ? gp->bufs[i].bytes : 0;
        f[i] = used ? gp->bufs[i].first : 0;
        l[i] = used ? gp->bufs[i].last : 0;
    }
    gp->act_bytes = plan_pack(n, size, f, l, 256, offset);
    for (size_t i = 0; i < n; i++) gp->bufs[i].offset = offset[i];
    free(size);
    free(offset);
    free(f);
    free(l);
    return gp->act_bytes;
}

/* --------------------------------------------------------------------------------------- */
/* Tensors at the edges */

/* The device index of PyTorch's element i of t. */
static int64_t device_index(const struct gpu_tensor *t, int64_t i)
{
    const int64_t *d = t->dim;
    switch (t->layout) {
    case GPU_LAYOUT_KRSC: { /* (k, c, r, s) -> (k, r, s, c) */
        int64_t s = i % d[3], r = i / d[3] % d[2], c = i / (d[3] * d[2]) % d[1];
        int64_t k = i / (d[3] * d[2] * d[1]);
        return ((k * d[2] + r) * d[3] + s) * t->cpad + c;
    }
    case GPU_LAYOUT_HWC_IN: { /* (o, c, h, w) -> (o, h, w, c) */
        int64_t w = i % d[3], h = i / d[3] % d[2], c = i / (d[3] * d[2]) % d[1];
        int64_t o = i / (d[3] * d[2] * d[1]);
        return ((o * d[2] + h) * d[3] + w) * d[1] + c;
    }
    default:
        return i;
    }
}

/* Elements of t in PyTorch's layout. */
static int64_t torch_numel(const struct gpu_tensor *t)
{
    return t->layout == GPU_LAYOUT_PLAIN ? t->numel : t->dim[0] * t->dim[1] * t->dim[2] * t->dim[3];
}

void gpu_tensor_to_device(const struct gpu_tensor *t, const float *src, float *dst)
{
    if (t->layout != GPU_LAYOUT_PLAIN) memset(dst, 0, (size_t)t->numel * sizeof *dst);
    for (int64_t i = 0, n = torch_numel(t); i < n; i++) dst[device_index(t, i)] = src[i];
}

void gpu_tensor_from_device(const struct gpu_tensor *t, const float *src, float *dst)
{
    for (int64_t i = 0, n = torch_numel(t); i < n; i++) dst[i] = src[device_index(t, i)];
}

/* --------------------------------------------------------------------------------------- */
/* Captured steps */

/* Whether a captured step can replay st: everything but the learning rate and the update's
 * number is baked into the graph. Field by field: padding bytes are not compared. */
static bool same_optimizer(const struct plan_optimizer *a, const struct plan_optimizer *b)
{
    if (a->kind != b->kind) return false;
    if (a->kind == PLAN_OPT_SGD) {
        const struct plan_sgd *x = &a->u.sgd, *y = &b->u.sgd;
        return x->momentum == y->momentum && x->dampening == y->dampening &&
               x->weight_decay == y->weight_decay && x->nesterov == y->nesterov &&
               x->no_decay_vectors == y->no_decay_vectors;
    }
    const struct plan_adam *x = &a->u.adam, *y = &b->u.adam;
    return x->beta1 == y->beta1 && x->beta2 == y->beta2 && x->eps == y->eps &&
           x->weight_decay == y->weight_decay && x->decoupled == y->decoupled &&
           x->amsgrad == y->amsgrad && x->no_decay_vectors == y->no_decay_vectors;
}

bool gpu_same_step(const struct plan_step *a, const struct plan_step *b)
{
    return a->smoothing == b->smoothing && a->clip_grad_norm == b->clip_grad_norm &&
           a->ema_slot == b->ema_slot && a->ema_decay == b->ema_decay &&
           same_optimizer(&a->opt, &b->opt);
}

/* --------------------------------------------------------------------------------------- */
/* Memory */

void gpu_plan_fixed_sizes(const struct gpu_plan *gp, int optimizer_slots, struct plan_sizes *s)
{
    size_t tf = (size_t)gp->trained_floats * 4, half = gp->cfg.dtype != GPU_F32 ? tf / 2 : 0;
    s->params = tf + half + (size_t)gp->state_floats * 4;
    s->grads = gp->cfg.train ? tf + half : 0;
    s->optimizer = gp->cfg.train ? tf * (size_t)optimizer_slots : 0;
}

void gpu_plan_memory(const struct gpu_plan *gp, int optimizer_slots, size_t workspace,
                     struct gpu_memory *m)
{
    struct plan_sizes s;
    gpu_plan_fixed_sizes(gp, optimizer_slots, &s);
    m->fixed = s.params + s.grads + s.optimizer;
    const struct shape *in = &gp->g->input;
    /* per batch: the activations, the uploaded input (f32), labels and soft targets */
    m->activations = gp->act_bytes + (size_t)(gp->cfg.batch * shape_numel(in)) * 4 +
                     (size_t)gp->cfg.batch * (4 + (size_t)gp->classes * 4);
    m->workspace = workspace;
    m->total = m->fixed + m->activations + m->workspace;
}

int64_t gpu_plan_largest_batch(const struct gpu_plan *gp, int optimizer_slots,
                               size_t workspace, size_t free)
{
    struct gpu_memory m;
    gpu_plan_memory(gp, optimizer_slots, workspace, &m);
    if (free <= m.fixed + m.workspace) return 0;
    double per_image = (double)m.activations / (double)gp->cfg.batch;
    return (int64_t)((double)(free - m.fixed - m.workspace) / per_image);
}

void gpu_plan_sizes(const struct graph *g, int64_t batch, enum gpu_dtype t, int optimizer_slots,
                    struct plan_sizes *out)
{
    struct gpu_plan gp;
    gpu_plan_build(g, &(struct gpu_plan_config){.batch = batch, .dtype = t, .train = true}, &gp);
    gpu_plan_pack(&gp);
    *out = (struct plan_sizes){.activations = gp.act_bytes};
    gpu_plan_fixed_sizes(&gp, optimizer_slots, out);
    gpu_plan_free(&gp);
}
