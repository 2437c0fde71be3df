/*
 * evaluate.c: predictions over a set and their metrics; see evaluate.h.
 */
#include "evaluate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"

/* Softmax of k logits into prob (doubles, for a stable average over the flip). */
static void softmax(const float *z, int k, double *prob)
{
    double mx = z[0], sum = 0;
    for (int j = 1; j < k; j++) mx = z[j] > mx ? z[j] : mx;
    for (int j = 0; j < k; j++) sum += prob[j] = exp((double)z[j] - mx);
    for (int j = 0; j < k; j++) prob[j] /= sum;
}

enum status evaluate(struct plan *p, struct loader *l, bool flip_tta, struct eval_result *r)
{
    const struct graph *g = p->g;
    int k = (int)shape_numel(&g->layers[g->output].out);
    int64_t batch = p->opt.batch, numel = shape_numel(&g->input);
    int64_t cap = loader_batches(l) * batch;
    *r = (struct eval_result){.classes = k};
    r->image = malloc((size_t)cap * sizeof *r->image);
    r->label = malloc((size_t)cap * sizeof *r->label);
    r->pred = malloc((size_t)cap * sizeof *r->pred);
    r->conf = malloc((size_t)cap * sizeof *r->conf);
    r->confusion = calloc((size_t)k * (size_t)k, sizeof *r->confusion);
    float *logits = malloc((size_t)(batch * k) * sizeof *logits);
    float *flipped = flip_tta ? malloc((size_t)(batch * numel) * sizeof *flipped) : NULL;
    double *prob = malloc((size_t)(batch * k) * sizeof *prob), *tmp = malloc((size_t)k * sizeof *tmp);
    if (!r->image || !r->label || !r->pred || !r->conf || !r->confusion || !logits || !prob ||
        !tmp || (flip_tta && !flipped)) {
        free(logits);
        free(flipped);
        free(prob);
        free(tmp);
        eval_result_free(r);
        return STATUS_RUNTIME;
    }
    double loss = 0;
    int64_t correct = 0;
    loader_start(l, 0);
    for (const struct batch *b; (b = loader_next(l));) {
        plan_set_input(p, b->x, NULL);
        plan_forward(p, false);
        plan_get_output(p, logits);
        for (int64_t i = 0; i < b->n; i++) softmax(logits + i * k, k, prob + i * k);
        if (flip_tta) {
            memcpy(flipped, b->x, (size_t)(batch * numel) * sizeof *flipped);
            augment_hflip_batch(flipped, batch, (int)g->input.d[0], (int)g->input.d[1],
                                (int)g->input.d[2]);
            plan_set_input(p, flipped, NULL);
            plan_forward(p, false);
            plan_get_output(p, logits);
            for (int64_t i = 0; i < b->n; i++) {
                softmax(logits + i * k, k, tmp);
                for (int j = 0; j < k; j++) prob[i * k + j] = (prob[i * k + j] + tmp[j]) / 2;
            }
        }
        for (int64_t i = 0; i < b->n; i++) {
            const double *q = prob + i * k;
            int best = 0;
            for (int j = 1; j < k; j++) best = q[j] > q[best] ? j : best;
            int32_t y = b->labels[i];
            int64_t at = r->n++;
            r->image[at] = b->image[i];
            r->label[at] = y;
            r->pred[at] = best;
            r->conf[at] = (float)q[best];
            loss -= log(q[y] > 1e-300 ? q[y] : 1e-300);
            correct += best == y;
            r->confusion[y * k + best]++;
        }
    }
    free(logits);
    free(flipped);
    free(prob);
    free(tmp);
    if (loader_error(l)) { /* an image could not be read: the caller says which */
        eval_result_free(r);
        return STATUS_RUNTIME;
    }
    r->loss = r->n ? loss / (double)r->n : 0;
    r->acc = r->n ? (double)correct / (double)r->n : 0;
    return STATUS_OK;
}

double eval_per_class(const struct eval_result *r, struct class_metrics *m)
{
    int k = r->classes;
    double f1 = 0;
    for (int c = 0; c < k; c++) {
        int64_t tp = r->confusion[c * k + c], predicted = 0, actual = 0;
        for (int j = 0; j < k; j++) predicted += r->confusion[j * k + c];
        for (int j = 0; j < k; j++) actual += r->confusion[c * k + j];
        struct class_metrics *x = &m[c];
        x->support = actual;
        x->precision = predicted ? (double)tp / (double)predicted : 0;
        x->recall = actual ? (double)tp / (double)actual : 0;
        x->f1 = x->precision + x->recall > 0
                    ? 2 * x->precision * x->recall / (x->precision + x->recall)
                    : 0;
        f1 += x->f1;
    }
    return k ? f1 / k : 0;
}

void eval_result_free(struct eval_result *r)
{
    free(r->image);
    free(r->label);
    free(r->pred);
    free(r->conf);
    free(r->confusion);
    *r = (struct eval_result){0};
}
