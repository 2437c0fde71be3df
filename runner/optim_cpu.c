/*
 * optim_cpu.c: the optimizer kernels of the CPU backend, elementwise over the trained tensors
 * (PyTorch's semantics; see plan.h).
 *
 * The loops run over the whole arena of trained tensors, padding included: a padding element
 * has weight, gradient and state 0 and stays 0 under every update. Weight decay that skips
 * the tensors of rank <= 1 runs the same loops per range of tensors (struct cpu_range) inside
 * one parallel region, each range's loop split across the threads without a barrier. Scalars
 * are rounded to float as PyTorch's float32 kernels round them.
 */
#include <math.h>
#include <string.h>

#include "cpu.h"

/* The ranges an update runs over: the whole arena when every tensor decays alike. */
static const struct cpu_range *update_ranges(const struct cpu_trained *c, bool no_decay_vectors,
                                             struct cpu_range *whole, size_t *n)
{
    if (no_decay_vectors) {
        *n = c->nranges;
        return c->ranges;
    }
    *whole = (struct cpu_range){0, (int64_t)(c->param_bytes / sizeof(float)), false};
    *n = 1;
    return whole;
}

struct sgd_args {
    float *w, *buf;
    const float *g;
    float lr, mom, damp1; /* damp1: 1 - dampening */
    bool nesterov, first;
};

/* Elements [b, e) of one SGD step with weight decay wd; this thread's share (inside a
 * parallel region). */
static void sgd_range(const struct sgd_args *a, int64_t b, int64_t e, float wd)
{
    float *restrict w = a->w, *restrict buf = a->buf;
    const float *restrict g = a->g;
    const float lr = a->lr, mom = a->mom, damp1 = a->damp1;
    const bool nesterov = a->nesterov, first = a->first;
#pragma omp for simd schedule(static) nowait
    for (int64_t i = b; i < e; i++) {
        float d = g[i] + wd * w[i];
        if (mom != 0) {
            buf[i] = first ? d : mom * buf[i] + damp1 * d;
            d = nesterov ? d + mom * buf[i] : buf[i];
        }
        w[i] -= lr * d;
    }
}

static void sgd_step(struct plan *p, const struct plan_sgd *o, bool first)
{
    struct cpu_trained arenas, *c = &arenas;
    cpu_trained(p->impl, &arenas);
    struct sgd_args a = {.w = (float *)c->params, .g = (const float *)c->grads,
                         .buf = (float *)c->optim, .lr = (float)o->lr,
                         .mom = (float)o->momentum, .damp1 = (float)(1 - o->dampening),
                         .nesterov = o->nesterov, .first = first};
    struct cpu_range whole;
    size_t n;
    const struct cpu_range *r = update_ranges(c, o->no_decay_vectors, &whole, &n);
    const float wd = (float)o->weight_decay;
#pragma omp parallel
    for (size_t k = 0; k < n; k++) sgd_range(&a, r[k].begin, r[k].end, r[k].vector ? 0 : wd);
}

struct adam_args {
    float *w, *m, *v, *vmax;
    const float *g;
    float b1, b1c, b2, b2c; /* b1c: 1 - beta1; b2c: 1 - beta2 */
    float step, sc2, eps;   /* lr / (1 - beta1^t); sqrt(1 - beta2^t) */
};

/* Elements [b, e) of one Adam step: weight decay wd added to the gradient (Adam), or the
 * weights scaled by keep = 1 - lr * weight_decay first (AdamW; wd 0); with amsgrad, the
 * maximum of the second moments so far in vmax. This thread's share. Inlined for each
 * amsgrad, so neither loop tests it. */
static inline void adam_range(const struct adam_args *a, int64_t b, int64_t e, float wd,
                              float keep, bool amsgrad)
{
    float *restrict w = a->w, *restrict m = a->m, *restrict v = a->v,
                    *restrict vmax = a->vmax;
    const float *restrict g = a->g;
    const float b1 = a->b1, b1c = a->b1c, b2 = a->b2, b2c = a->b2c, step = a->step,
                sc2 = a->sc2, eps = a->eps;
#pragma omp for simd schedule(static) nowait
    for (int64_t i = b; i < e; i++) {
        float d = g[i] + wd * w[i];
        w[i] *= keep;
        m[i] = b1 * m[i] + b1c * d;
        v[i] = b2 * v[i] + b2c * d * d;
        float s = v[i];
        if (amsgrad) s = vmax[i] = vmax[i] > s ? vmax[i] : s; /* maxps; fmaxf is a call */
        w[i] -= step * m[i] / (sqrtf(s) / sc2 + eps);
    }
}

static void adam_step(struct plan *p, const struct plan_adam *o, int64_t t)
{
    struct cpu_trained arenas, *c = &arenas;
    cpu_trained(p->impl, &arenas);
    int64_t n = (int64_t)(c->param_bytes / sizeof(float));
    float *m = (float *)c->optim;
    struct adam_args a = {.w = (float *)c->params, .g = (const float *)c->grads, .m = m,
                          .v = m + n, .vmax = m + 2 * n, .b1 = (float)o->beta1,
                          .b1c = (float)(1 - o->beta1), .b2 = (float)o->beta2,
                          .b2c = (float)(1 - o->beta2), .eps = (float)o->eps,
                          .step = (float)(o->lr / (1 - pow(o->beta1, (double)t))),
                          .sc2 = (float)sqrt(1 - pow(o->beta2, (double)t))};
    struct cpu_range whole;
    size_t nr;
    const struct cpu_range *r = update_ranges(c, o->no_decay_vectors, &whole, &nr);
    /* Per kind of range: L2 on the gradient (Adam) or decoupled (AdamW), or neither. */
    const float wd = o->decoupled ? 0 : (float)o->weight_decay;
    const float keep = o->decoupled ? (float)(1 - o->lr * o->weight_decay) : 1;
    const bool amsgrad = o->amsgrad;
#pragma omp parallel
    for (size_t k = 0; k < nr; k++) {
        float wd_k = r[k].vector ? 0 : wd, keep_k = r[k].vector ? 1 : keep;
        if (amsgrad)
            adam_range(&a, r[k].begin, r[k].end, wd_k, keep_k, true);
        else
            adam_range(&a, r[k].begin, r[k].end, wd_k, keep_k, false);
    }
}

/* Chunks of the norm's sum: a fixed split, so the sum's order (and bits) does not depend on
 * the threads that compute it. */
#define NORM_CHUNKS 256

enum status cpu_clip_grad_norm(struct plan *p, double max_norm, double *out)
{
    struct cpu_trained arenas, *c = &arenas;
    cpu_trained(p->impl, &arenas);
    int64_t n = (int64_t)(c->param_bytes / sizeof(float));
    float *g = (float *)c->grads;
    double part[NORM_CHUNKS];
    int64_t chunk = (n + NORM_CHUNKS - 1) / NORM_CHUNKS;
#pragma omp parallel for schedule(static)
    for (int k = 0; k < NORM_CHUNKS; k++) {
        int64_t b = k * chunk, e = b + chunk < n ? b + chunk : n;
        double sum = 0;
#pragma omp simd reduction(+ : sum)
        for (int64_t i = b; i < e; i++) sum += (double)g[i] * (double)g[i];
        part[k] = sum;
    }
    double sum = 0;
    for (int k = 0; k < NORM_CHUNKS; k++) sum += part[k];
    double norm = sqrt(sum), coef = max_norm / (norm + 1e-6);
    if (coef < 1) {
        const float f = (float)coef;
#pragma omp parallel for simd schedule(static)
        for (int64_t i = 0; i < n; i++) g[i] *= f;
    }
    *out = norm;
    return STATUS_OK;
}

enum status cpu_update(struct plan *p, const struct plan_optimizer *o, int64_t t)
{
    if (o->kind == PLAN_OPT_SGD)
        sgd_step(p, &o->u.sgd, t == 1);
    else
        adam_step(p, &o->u.adam, t);
    return STATUS_OK;
}

enum status cpu_ema_update(struct plan *p, int slot, double decay, bool first)
{
    struct cpu_trained arenas, *c = &arenas;
    cpu_trained(p->impl, &arenas);
    int64_t n = (int64_t)(c->param_bytes / sizeof(float));
    const float *restrict w = (const float *)c->params;
    float *restrict ema = (float *)(c->optim + (size_t)slot * c->param_bytes);
    if (first) {
        memcpy(ema, w, c->param_bytes);
        return STATUS_OK;
    }
    const float d = (float)decay, d1 = (float)(1 - decay);
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) ema[i] = d * ema[i] + d1 * w[i];
    return STATUS_OK;
}
