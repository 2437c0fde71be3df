/*
 * layers/avgpool.c: the avgpool op's table entry. Shape rule: pool.c.
 * Covered by tests/test_graph.c.
 */
#include "layers/avgpool.h"

#include "common.h"
#include "op.h"
#include "schema.h"

#define P(f) offsetof(struct pool_params, f)

static const struct schema_key avgpool_keys[] = {
    {.name = "kernel", .type = SCHEMA_INT2, .offset = P(kernel), .flags = SK_REQUIRED | SK_MIN,
     .min = 1, .doc = "window size"},
    {.name = "stride", .type = SCHEMA_INT2, .offset = P(stride), .flags = SK_MIN, .min = 1,
     .doc = "step between windows; unset: the kernel size"},
    {.name = "pad", .type = SCHEMA_INT2, .offset = P(pad), .flags = SK_MIN, .min = 0,
     .def = "0", .doc = "zero padding on each side, at most half the kernel"},
    {.name = "ceil_mode", .type = SCHEMA_BOOL, .offset = P(ceil_mode), .def = "false",
     .doc = "round the output size up instead of down"},
    {.name = "count_include_pad", .type = SCHEMA_BOOL, .offset = P(count_include_pad),
     .def = "true", .doc = "count the padded zeros in each mean (PyTorch's default)"},
};
static const struct schema_section avgpool_section = {
    .name = "avgpool", .keys = avgpool_keys, .nkeys = ARRAY_LEN(avgpool_keys)};

const struct op_def op_avgpool = {
    .name = "avgpool",
    .doc = "the mean of each window (torch.nn.AvgPool2d): CxHxW -> CxPxQ",
    .arity = 1,
    .params = &avgpool_section,
    .infer = pool_infer,
    .summary = pool_summary,
};
