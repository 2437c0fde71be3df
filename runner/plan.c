/*
 * plan.c: what every backend's plan shares: the support check with its YAML positions, the
 * dispatch to the backend, parameter initialization, and the lifetime packing of buffers.
 * See plan.h. Covered by tests/test_plan.c.
 */
#include "plan.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "augment_gpu.h"
#include "rng.h"

double plan_clock(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* --------------------------------------------------------------------------------------- */
/* Failures and warnings */

enum status plan_status(const struct plan *p)
{
    return p->status;
}

const char *plan_error(const struct plan *p)
{
    return p->error;
}

static void message(struct plan *p, bool error, const char *line)
{
    if (p->opt.message)
        p->opt.message(p->opt.message_ctx, error, line);
    else
        fprintf(stderr, "runner: %s: %s\n", error ? "error" : "warning", line);
}

void plan_fail(struct plan *p, const char *fmt, ...)
{
    if (p->status) return; /* the first failure is the one that explains */
    p->status = STATUS_RUNTIME;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->error, sizeof p->error, fmt, ap);
    va_end(ap);
    message(p, true, p->error);
}

void plan_warn(struct plan *p, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    message(p, false, line);
}

/* Records a backend entry's result; true when the plan still works. */
static bool note(struct plan *p, enum status st)
{
    if (st && !p->status) plan_fail(p, "the %s backend failed", p->be->name);
    return !p->status;
}

/* Bytes of tensor t as it crosses the edge (f32, or the i64 counters). */
static size_t tensor_bytes(const struct graph_tensor *t)
{
    return (size_t)op_tensor_numel(&t->t) * (t->t.dtype == TENSOR_I64 ? 8 : 4);
}

/* Adds the time since t0 to pass ps. */
static void account(struct plan *p, enum plan_pass ps, double t0)
{
    p->pass_seconds[ps] += plan_clock() - t0;
    p->pass_calls[ps]++;
}

enum status plan_create(const struct graph *g, const struct backend *be,
                        const struct plan_options *o, struct diag *d, struct plan **out)
{
    *out = NULL;
    int before = d->errors;
    for (size_t i = 0; i < g->nlayers; i++) {
        char why[256] = "";
        if (!be->supports(g, &g->layers[i], why, sizeof why)) {
            diag_error(d, g->layers[i].mark, "layer '%s': the %s backend cannot run it: %s",
                       g->layers[i].name, be->name, why);
        }
    }
    if (d->errors != before) return STATUS_CONFIG;
    struct plan *p = calloc(1, sizeof *p);
    if (!p) return STATUS_RUNTIME;
    *p = (struct plan){.be = be, .g = g, .opt = *o};
    size_t classes = (size_t)shape_numel(&g->layers[g->output].out);
    p->labels = calloc((size_t)o->batch + 1, sizeof *p->labels);
    p->output = malloc(((size_t)o->batch * classes + 1) * sizeof *p->output);
    enum status st = p->labels && p->output ? be->create(p, d) : STATUS_RUNTIME;
    if (st) {
        be->destroy(p); /* what a failed create made: memory, handles, descriptors */
        free(p->labels);
        free(p->output);
        free(p);
        return st;
    }
    *out = p;
    return STATUS_OK;
}

void plan_free(struct plan *p)
{
    if (!p) return;
    p->be->destroy(p);
    free(p->labels);
    free(p->output);
    free(p->data_aug);
    free(p->data_x);
    free(p);
}

void plan_set_tensor(struct plan *p, const struct graph_tensor *t, const void *src)
{
    if (!p->status) note(p, p->be->set_tensor(p, t, false, src));
}

void plan_get_tensor(struct plan *p, const struct graph_tensor *t, void *dst)
{
    if (p->status || !note(p, p->be->get_tensor(p, t, false, dst)))
        memset(dst, 0, tensor_bytes(t));
}

void plan_set_grad(struct plan *p, const struct graph_tensor *t, const float *src)
{
    if (p->opt.eval_only || t->t.role != TENSOR_PARAM) abort();
    if (!p->status) note(p, p->be->set_tensor(p, t, true, src));
}

void plan_get_grad(struct plan *p, const struct graph_tensor *t, float *dst)
{
    if (p->opt.eval_only) abort();
    if (p->status || !note(p, p->be->get_tensor(p, t, true, dst)))
        memset(dst, 0, tensor_bytes(t));
}

void plan_init_params(struct plan *p, uint64_t seed)
{
    const struct graph *g = p->g;
    size_t cap = 0;
    for (size_t i = 0; i < g->ntensors; i++) {
        size_t n = (size_t)op_tensor_numel(&g->tensors[i].t);
        if (n > cap) cap = n;
    }
    float *buf = malloc((cap + 2) * sizeof(float)); /* at least 8 bytes: the i64 counters */
    if (!buf) abort();
    for (size_t i = 0; i < g->ntensors; i++) {
        const struct op_tensor *t = &g->tensors[i].t;
        int64_t n = op_tensor_numel(t);
        uint64_t key = rng_bits(seed, i);
        if (t->dtype == TENSOR_I64) {
            memset(buf, 0, 8);
        } else {
            for (int64_t j = 0; j < n; j++) {
                double v = 0;
                switch (t->init) {
                case TENSOR_INIT_ZERO: v = 0; break;
                case TENSOR_INIT_ONE: v = 1; break;
                case TENSOR_INIT_KAIMING_NORMAL:
                    v = rng_normal(key, (uint64_t)j) * sqrt(2.0 / (double)t->fan_out);
                    break;
                case TENSOR_INIT_UNIFORM_FAN_IN: {
                    double bound = 1.0 / sqrt((double)t->fan_in);
                    v = (2 * rng_uniform(key, (uint64_t)j) - 1) * bound;
                    break;
                }
                }
                buf[j] = (float)v;
            }
        }
        plan_set_tensor(p, &g->tensors[i], buf);
    }
    free(buf);
}

void plan_set_input(struct plan *p, const float *x, const int32_t *labels)
{
    if (labels) memcpy(p->labels, labels, (size_t)p->opt.batch * sizeof *labels);
    if (!p->status) note(p, p->be->set_input(p, x, labels));
}

bool plan_set_dataset(struct plan *p, const struct plan_dataset *ds, char *why, size_t size)
{
    if (p->opt.eval_only) abort();
    if (p->status) {
        snprintf(why, size, "%s", p->error);
        return false;
    }
    if (p->be->set_dataset) return p->be->set_dataset(p, ds, why, size);
    free(p->data_aug);
    free(p->data_x);
    p->data_aug = malloc(sizeof *p->data_aug);
    p->data_x = malloc((size_t)(p->opt.batch * shape_numel(&p->g->input)) * sizeof *p->data_x);
    if (!p->data_aug || !p->data_x) {
        snprintf(why, size, "out of memory for one batch");
        free(p->data_aug);
        free(p->data_x);
        p->data_aug = NULL;
        p->data_x = NULL;
        return false;
    }
    *p->data_aug = *ds->aug;
    p->data_pixels = ds->pixels;
    p->data_count = ds->count;
    return true;
}

/* A batch made on the host from the kept dataset, by the GPU kernel's own functions. */
static void host_batch(struct plan *p, const int64_t *image, const uint64_t *key)
{
    const struct augment_gpu_plan *a = p->data_aug;
    int64_t plane = (int64_t)a->out_h * a->out_w, numel = a->c * plane;
    size_t bytes = (size_t)a->c * (size_t)a->in_h * (size_t)a->in_w;
    for (int64_t i = 0; i < p->opt.batch; i++) {
        float *x = p->data_x + i * numel;
        if (image[i] < 0) {
            memset(x, 0, (size_t)numel * sizeof *x);
            continue;
        }
        if (image[i] >= p->data_count) abort();
        struct augment_gpu_image c;
        augment_gpu_choices(a, key[i], &c);
        const uint8_t *src = p->data_pixels + (size_t)image[i] * bytes;
        size_t in_plane = (size_t)a->in_h * (size_t)a->in_w;
        for (int y = 0; y < a->out_h; y++)
            for (int xx = 0; xx < a->out_w; xx++) { /* the walk once per pixel, as the kernel */
                int sy = 0, sx = 0;
                int from = augment_gpu_source(a, &c, y, xx, &sy, &sx);
                const uint8_t *at = src + (size_t)sy * a->in_w + sx;
                for (int ch = 0; ch < a->c; ch++) {
                    float v = from < 0 ? augment_draw_byte(at[ch * in_plane]) : 0.0f;
                    x[ch * plane + y * a->out_w + xx] = augment_gpu_value(a, from, ch, v);
                }
            }
    }
}

void plan_set_batch(struct plan *p, const int64_t *image, const uint64_t *key,
                    const int32_t *labels)
{
    memcpy(p->labels, labels, (size_t)p->opt.batch * sizeof *labels);
    if (p->status) return;
    if (p->be->set_batch) {
        note(p, p->be->set_batch(p, image, key, labels));
        return;
    }
    if (!p->data_aug) abort(); /* plan_set_dataset first */
    host_batch(p, image, key);
    note(p, p->be->set_input(p, p->data_x, labels));
}

void plan_get_state(struct plan *p, const struct graph_tensor *t, int slot, float *dst)
{
    if (t->t.role != TENSOR_PARAM || slot < 0 || slot >= p->opt.optimizer_slots) abort();
    if (p->status || !note(p, p->be->get_state(p, t, slot, dst)))
        memset(dst, 0, tensor_bytes(t));
}

void plan_set_state(struct plan *p, const struct graph_tensor *t, int slot, const float *src)
{
    if (t->t.role != TENSOR_PARAM || slot < 0 || slot >= p->opt.optimizer_slots) abort();
    if (!p->status) note(p, p->be->set_state(p, t, slot, src));
}

void plan_set_targets(struct plan *p, const float *q)
{
    if (!p->status) note(p, p->be->set_targets(p, q));
}

void plan_forward(struct plan *p, bool train)
{
    if (train && p->opt.eval_only) abort(); /* a caller's bug: see plan_options */
    double t0 = plan_clock();
    if (!p->status) note(p, p->be->forward(p, train));
    if (train) p->steps++;
    account(p, train ? PLAN_FORWARD : PLAN_EVAL, t0);
}

double plan_loss(struct plan *p, double smoothing)
{
    if (p->opt.eval_only) abort();
    double t0 = plan_clock(), loss = 0;
    if (!p->status && !note(p, p->be->loss(p, smoothing, &loss))) loss = 0;
    account(p, PLAN_LOSS, t0);
    return loss;
}

void plan_backward(struct plan *p, const float *dy)
{
    if (p->opt.eval_only) abort();
    double t0 = plan_clock();
    if (!p->status) note(p, p->be->backward(p, dy));
    account(p, PLAN_BACKWARD, t0);
}

void plan_get_output(struct plan *p, float *y)
{
    size_t n = (size_t)p->opt.batch * (size_t)shape_numel(&p->g->layers[p->g->output].out);
    if (p->status || !note(p, p->be->get_output(p, y))) memset(y, 0, n * sizeof *y);
}

void plan_get_input_grad(struct plan *p, float *dx)
{
    size_t n = (size_t)p->opt.batch * (size_t)shape_numel(&p->g->input);
    if (p->status || !note(p, p->be->get_input_grad(p, dx))) memset(dx, 0, n * sizeof *dx);
}

/* Optimizer slots an update of o uses. */
static int slots_of(const struct plan_optimizer *o)
{
    return o->kind == PLAN_OPT_ADAM ? 2 + o->u.adam.amsgrad : o->u.sgd.momentum != 0;
}

void plan_optimizer_step(struct plan *p, const struct plan_optimizer *o, int64_t t)
{
    if (p->opt.eval_only || p->opt.optimizer_slots < slots_of(o) || t < 1) abort();
    double t0 = plan_clock();
    if (!p->status) note(p, p->be->update(p, o, t));
    account(p, PLAN_UPDATE, t0);
}

void plan_sgd_step(struct plan *p, const struct plan_sgd *o, bool first)
{
    plan_optimizer_step(p, &(struct plan_optimizer){.kind = PLAN_OPT_SGD, .u.sgd = *o},
                        first ? 1 : 2);
}

void plan_adam_step(struct plan *p, const struct plan_adam *o, int64_t t)
{
    plan_optimizer_step(p, &(struct plan_optimizer){.kind = PLAN_OPT_ADAM, .u.adam = *o}, t);
}

/* Clipping and the EMA are parts of an update: their time counts in its pass, not a call. */
double plan_clip_grad_norm(struct plan *p, double max_norm)
{
    if (p->opt.eval_only || !(max_norm > 0)) abort();
    double t0 = plan_clock();
    double norm = 0;
    if (!p->status && !note(p, p->be->clip_grad_norm(p, max_norm, &norm))) norm = 0;
    p->pass_seconds[PLAN_UPDATE] += plan_clock() - t0;
    return norm;
}

void plan_ema_update(struct plan *p, int slot, double decay, bool first)
{
    if (p->opt.eval_only || slot < 0 || slot >= p->opt.optimizer_slots) abort();
    double t0 = plan_clock();
    if (!p->status) note(p, p->be->ema_update(p, slot, decay, first));
    p->pass_seconds[PLAN_UPDATE] += plan_clock() - t0;
}

/* Rows of the last output whose largest value (the first, on ties) is their label. */
static int64_t count_correct(struct plan *p)
{
    int64_t classes = shape_numel(&p->g->layers[p->g->output].out), right = 0;
    plan_get_output(p, p->output);
    for (int64_t i = 0; i < p->opt.batch; i++) {
        const float *y = p->output + i * classes;
        int64_t best = 0;
        for (int64_t k = 1; k < classes; k++)
            if (y[k] > y[best]) best = k;
        right += best == p->labels[i];
    }
    return right;
}

void plan_step_start(struct plan *p, const struct plan_step *st)
{
    if (p->opt.eval_only || p->started + p->ndone >= 2 || st->t < 1 ||
        p->opt.optimizer_slots < slots_of(&st->opt) || st->ema_slot >= p->opt.optimizer_slots)
        abort(); /* a caller's bug: see plan_options */
    if (p->be->step_start && !p->status) {
        double t0 = plan_clock();
        bool ok = note(p, p->be->step_start(p, st));
        p->steps++;
        p->pass_seconds[PLAN_FORWARD] += plan_clock() - t0; /* the whole step: one replay */
        if (ok) {
            p->started++;
            return;
        }
    }
    struct plan_step_result *r = &p->done[p->ndone++];
    *r = (struct plan_step_result){0};
    if (p->status) return; /* a failed plan: an empty result */
    plan_forward(p, true);
    r->loss = plan_loss(p, st->smoothing);
    r->correct = count_correct(p);
    plan_backward(p, NULL);
    r->grad_norm = plan_update(p, st);
    r->updates = st->t; /* every update applied */
}

void plan_step_wait(struct plan *p, struct plan_step_result *r)
{
    if (p->started) {
        double t0 = plan_clock();
        *r = (struct plan_step_result){0};
        if (!p->status && !note(p, p->be->step_wait(p, r))) *r = (struct plan_step_result){0};
        p->started--;
        account(p, PLAN_FORWARD, t0);
        return;
    }
    if (!p->ndone) abort(); /* nothing started */
    *r = p->done[0];
    p->done[0] = p->done[1];
    p->ndone--;
}

int plan_steps_pending(const struct plan *p)
{
    return p->started + p->ndone;
}

bool plan_steps_async(const struct plan *p)
{
    return p->be->step_start != NULL;
}

void plan_train_step(struct plan *p, const struct plan_step *st, struct plan_step_result *r)
{
    plan_step_start(p, st);
    plan_step_wait(p, r);
}

double plan_update(struct plan *p, const struct plan_step *st)
{
    double norm = 0;
    if (st->clip_grad_norm > 0) norm = plan_clip_grad_norm(p, st->clip_grad_norm);
    plan_optimizer_step(p, &st->opt, st->t);
    /* AveragedModel copies the weights on its first update_parameters. */
    if (st->ema_slot >= 0) plan_ema_update(p, st->ema_slot, st->ema_decay, st->t == 1);
    return norm;
}

uint64_t plan_dropout_key(const struct plan *p)
{
    return p->opt.seed ^ ((uint64_t)p->steps * 0x9E3779B97F4A7C15ull);
}

void plan_timings_reset(struct plan *p)
{
    memset(p->pass_seconds, 0, sizeof p->pass_seconds);
    memset(p->pass_calls, 0, sizeof p->pass_calls);
    if (p->opt.profile) p->be->timings(p, NULL, NULL);
}

void plan_timings(struct plan *p, plan_timing_fn fn, void *ctx)
{
    if (p->opt.profile) p->be->timings(p, fn, ctx);
    static const char *const what[] = {[PLAN_LOSS] = "loss", [PLAN_UPDATE] = "optimizer"};
    for (int ps = PLAN_LOSS; ps <= PLAN_UPDATE; ps += PLAN_UPDATE - PLAN_LOSS) {
        struct plan_timing t = {.what = what[ps], .pass = (enum plan_pass)ps,
                                .seconds = p->pass_seconds[ps], .calls = p->pass_calls[ps]};
        if (t.calls) fn(ctx, &t);
    }
}

/* --------------------------------------------------------------------------------------- */
/* Packing buffers by lifetime */

struct pack_item {
    size_t size, offset;
    int first, last;
    size_t index;
};

static int by_size_desc(const void *a, const void *b)
{
    const struct pack_item *x = a, *y = b;
    if (x->size != y->size) return x->size < y->size ? 1 : -1;
    return x->index < y->index ? -1 : x->index > y->index;
}

static int by_offset(const void *a, const void *b)
{
    const struct pack_item *const *x = a, *const *y = b;
    return (*x)->offset < (*y)->offset ? -1 : (*x)->offset > (*y)->offset;
}

size_t plan_pack(size_t n, const size_t *size, const int *first, const int *last, size_t align,
                 size_t *offset)
{
    struct pack_item *it = calloc(n + 1, sizeof *it);
    const struct pack_item **placed = calloc(n + 1, sizeof *placed);
    if (!it || !placed) abort();
    for (size_t i = 0; i < n; i++)
        it[i] = (struct pack_item){(size[i] + align - 1) / align * align, 0, first[i], last[i], i};
    qsort(it, n, sizeof *it, by_size_desc);
    const struct pack_item **live = calloc(n + 1, sizeof *live);
    if (!live) abort();
    size_t total = 0, nplaced = 0;
    for (size_t i = 0; i < n; i++) {
        /* The placed buffers whose lifetimes meet this one, by offset: take the first gap. */
        size_t k = 0;
        for (size_t j = 0; j < nplaced; j++)
            if (placed[j]->first <= it[i].last && it[i].first <= placed[j]->last)
                live[k++] = placed[j];
        qsort(live, k, sizeof *live, by_offset);
        size_t at = 0;
        for (size_t j = 0; j < k; j++) {
            if (live[j]->offset >= at + it[i].size) break;
            size_t end = live[j]->offset + live[j]->size;
            if (end > at) at = end;
        }
        it[i].offset = at;
        placed[nplaced++] = &it[i];
        if (at + it[i].size > total) total = at + it[i].size;
    }
    for (size_t i = 0; i < n; i++) offset[it[i].index] = it[i].offset;
    free(it);
    free(placed);
    free(live);
    return total;
}
