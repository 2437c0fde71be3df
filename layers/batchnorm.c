/*
 * layers/batchnorm.c: the batchnorm op's table entry. See batchnorm.h.
 * Covered by tests/test_graph.c.
 */
#include "layers/batchnorm.h"

#include "common.h"
#include "op.h"
#include "schema.h"

#define P(f) offsetof(struct batchnorm_params, f)

static const struct schema_key batchnorm_keys[] = {
    {.name = "eps", .type = SCHEMA_FLOAT, .offset = P(eps), .flags = SK_MIN | SK_MIN_OPEN,
     .min = 0, .def = "1.0e-5", .doc = "added to the variance before its square root"},
    {.name = "momentum", .type = SCHEMA_FLOAT, .offset = P(momentum), .flags = SK_MIN | SK_MAX,
     .min = 0, .max = 1, .def = "0.1",
     .doc = "weight of the batch in the running statistics (PyTorch's convention)"},
    {.name = "zero_init", .type = SCHEMA_BOOL, .offset = P(zero_init), .def = "false",
     .doc = "start gamma at 0 instead of 1, so a residual block starts as its shortcut"},
};
static const struct schema_section batchnorm_section = {
    .name = "batchnorm", .keys = batchnorm_keys, .nkeys = ARRAY_LEN(batchnorm_keys)};

static int batchnorm_tensors(const union op_params *up, const struct shape *in,
                             const struct shape *out, struct op_tensor *t)
{
    (void)out;
    int64_t c = in->d[0];
    enum tensor_init gamma = up->batchnorm.zero_init ? TENSOR_INIT_ZERO : TENSOR_INIT_ONE;
    t[0] = (struct op_tensor){"weight", 1, {c}, TENSOR_PARAM, TENSOR_F32, gamma, 0, 0};
    t[1] = (struct op_tensor){"bias", 1, {c}, TENSOR_PARAM, TENSOR_F32, TENSOR_INIT_ZERO, 0, 0};
    t[2] = (struct op_tensor){"running_mean", 1, {c}, TENSOR_BUFFER, TENSOR_F32,
                              TENSOR_INIT_ZERO, 0, 0};
    t[3] = (struct op_tensor){"running_var", 1, {c}, TENSOR_BUFFER, TENSOR_F32,
                              TENSOR_INIT_ONE, 0, 0};
    t[4] = (struct op_tensor){"num_batches_tracked", 0, {0}, TENSOR_BUFFER, TENSOR_I64,
                              TENSOR_INIT_ZERO, 0, 0};
    return 5;
}

static void batchnorm_summary(const union op_params *up, char *buf, size_t size)
{
    snprintf(buf, size, "%s", up->batchnorm.zero_init ? "gamma 0" : "");
}

const struct op_def op_batchnorm = {
    .name = "batchnorm",
    .doc = "batch normalization over channels (torch.nn.BatchNorm2d, or BatchNorm1d on a "
           "vector): shape unchanged; weight, bias (C) and the running mean and variance",
    .arity = 1,
    .params = &batchnorm_section,
    .infer = op_infer_same,
    .tensors = batchnorm_tensors,
    .summary = batchnorm_summary,
};
