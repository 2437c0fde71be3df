/*
 * layers/maxpool.c: the maxpool op's table entry. Shape rule: pool.c.
 * Covered by tests/test_graph.c.
 */
#include "layers/maxpool.h"

#include "common.h"
#include "op.h"
#include "schema.h"

#define P(f) offsetof(struct pool_params, f)

static const struct schema_key maxpool_keys[] = {
    {.name = "kernel", .type = SCHEMA_INT2, .offset = P(kernel), .flags = SK_REQUIRED | SK_MIN,
     .min = 1, .doc = "window size"},
    {.name = "stride", .type = SCHEMA_INT2, .offset = P(stride), .flags = SK_MIN, .min = 1,
     .doc = "step between windows; unset: the kernel size"},
    {.name = "pad", .type = SCHEMA_INT2, .offset = P(pad), .flags = SK_MIN, .min = 0,
     .def = "0", .doc = "padding on each side (never the maximum), at most half the kernel"},
    {.name = "ceil_mode", .type = SCHEMA_BOOL, .offset = P(ceil_mode), .def = "false",
     .doc = "round the output size up instead of down"},
};
static const struct schema_section maxpool_section = {
    .name = "maxpool", .keys = maxpool_keys, .nkeys = ARRAY_LEN(maxpool_keys)};

const struct op_def op_maxpool = {
    .name = "maxpool",
    .doc = "the maximum of each window (torch.nn.MaxPool2d): CxHxW -> CxPxQ",
    .arity = 1,
    .params = &maxpool_section,
    .infer = pool_infer,
    .summary = pool_summary,
};
