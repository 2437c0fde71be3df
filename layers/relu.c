/*
 * layers/relu.c: the relu op's table entry. See relu.h. Covered by tests/test_graph.c.
 */
#include "layers/relu.h"

#include "op.h"
#include "schema.h"

static const struct schema_section relu_section = {.name = "relu"};

const struct op_def op_relu = {
    .name = "relu",
    .doc = "max(x, 0) elementwise: shape unchanged",
    .arity = 1,
    .params = &relu_section,
    .infer = op_infer_same,
};
