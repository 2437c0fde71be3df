/*
 * evaluate.h: a network's predictions over a whole set, and what they add up to: loss,
 * accuracy, the confusion matrix, precision, recall and F1 per class.
 *
 *     struct eval_result r;
 *     if (evaluate(eval_plan, test_loader, spec->eval.flip_tta, &r)) ...
 *     printf("test accuracy %.4f\n", r.acc);
 *     eval_result_free(&r);
 *
 * The loader goes through its set once in order (no shuffle, last batch padded); with flip
 * test-time augmentation the softmax probabilities of each image and its mirror are averaged.
 * The loss is the mean cross-entropy of the (averaged) probabilities, without label
 * smoothing; the prediction is the most probable class (the lowest index on ties), its
 * probability the confidence. Covered by tests/test_train.c.
 */
#ifndef RUNNER_EVALUATE_H
#define RUNNER_EVALUATE_H

#include <stdbool.h>
#include <stdint.h>

#include "common.h"
#include "loader.h"
#include "plan.h"

struct eval_result {
    int64_t n;
    int classes;
    int64_t *image;  /* per image, in set order: its dataset index */
    int32_t *label, *pred;
    float *conf;     /* probability of the predicted class */
    double loss, acc;
    int64_t *confusion; /* (classes, classes): [true][predicted] counts */
};

struct class_metrics {
    double precision, recall, f1; /* 0 where undefined (no prediction or no image) */
    int64_t support;              /* images of the class */
};

/* Evaluates p (batch = the loader's) on the loader's set, epoch 0. */
MUST_CHECK enum status evaluate(struct plan *p, struct loader *l, bool flip_tta,
                                struct eval_result *r);
/* m[classes] from the confusion matrix; returns the macro-averaged F1. */
double eval_per_class(const struct eval_result *r, struct class_metrics *m);
void eval_result_free(struct eval_result *r);

#endif
