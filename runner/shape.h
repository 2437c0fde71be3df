/*
 * shape.h: the shape of one image's activation (the batch dimension is the plan's), and the
 * description of a parameter or buffer tensor, as ops declare them (op.h, layers/).
 *
 *     struct shape s = {3, {64, 32, 32}};      // (C, H, W)
 *     char buf[SHAPE_TEXT];
 *     shape_format(&s, buf, sizeof buf);       // "64x32x32"
 *
 * Covered by tests/test_graph.c.
 */
#ifndef RUNNER_SHAPE_H
#define RUNNER_SHAPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SHAPE_MAX_RANK 3
#define SHAPE_TEXT 64

/* (C, H, W) for images and feature maps, (F) for vectors; rank 0: not known (after an error). */
struct shape {
    int rank;
    int64_t d[SHAPE_MAX_RANK];
};

enum tensor_role {
    TENSOR_PARAM,  /* trained: has a gradient and optimizer state */
    TENSOR_BUFFER, /* saved with the model but not trained (batchnorm running statistics) */
};

enum tensor_dtype { TENSOR_F32, TENSOR_I64 };

/* How a tensor starts before training (torchvision's choices for ResNets). */
enum tensor_init {
    TENSOR_INIT_ZERO,
    TENSOR_INIT_ONE,
    TENSOR_INIT_KAIMING_NORMAL, /* N(0, 2 / fan_out): conv weights */
    TENSOR_INIT_UNIFORM_FAN_IN, /* U(-1/sqrt(fan_in), 1/sqrt(fan_in)): linear weight, bias */
};

#define TENSOR_MAX_RANK 4

struct op_tensor {
    const char *suffix; /* joined to the layer's name: "weight", "running_mean" */
    int rank;           /* 0 for a scalar (num_batches_tracked) */
    int64_t dim[TENSOR_MAX_RANK];
    enum tensor_role role;
    enum tensor_dtype dtype;
    enum tensor_init init;
    int64_t fan_in, fan_out; /* for the initializers that need them */
};

bool shape_equal(const struct shape *a, const struct shape *b);
/* Elements of one image's activation. */
int64_t shape_numel(const struct shape *s);
/* "64x32x32", "10", or "?" when unknown. */
const char *shape_format(const struct shape *s, char *buf, size_t size);
/* Elements of a tensor (1 for a scalar). */
int64_t op_tensor_numel(const struct op_tensor *t);

/* Output size of a sliding window: floor((in + 2 pad - (dil (k - 1) + 1)) / stride) + 1, or
 * with ceil_mode the ceiling (a last window must start inside the input or its left pad, as
 * PyTorch has it); < 1 when the window does not fit. */
int64_t shape_window_out(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t dil,
                         bool ceil_mode);

/* "3" when both values are equal, else "3<sep>1" (kernel, stride and pad summaries). */
void shape_pair(char *buf, size_t size, const long long v[2], const char *sep);

#endif
