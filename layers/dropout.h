/*
 * layers/dropout.h: dropout, as torch.nn.Dropout: in training, each element is zeroed with
 * probability p and the rest scaled by 1 / (1 - p); in evaluation, the identity.
 *
 *     in: any shape -> out: the same shape
 *
 * Covered by tests/test_graph.c.
 */
#ifndef RUNNER_LAYERS_DROPOUT_H
#define RUNNER_LAYERS_DROPOUT_H

struct dropout_params {
    double p; /* probability of zeroing an element, in [0, 1) */
};

extern const struct op_def op_dropout;

#endif
