/*
 * layers/identity_cuda.c: identity on the GPU is a view: its input's buffer is its output,
 * and the gradient passes through. Covered by tests/test_gpu_plan.c.
 */
#include "gpu_lower.h"

const struct gpu_lowering identity_cuda = {.forward = gpu_view_forward,
                                           .backward = gpu_view_backward};
