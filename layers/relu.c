/*
 * layers/relu.c: the relu op's table entry. See relu.h. Covered by tests/test_graph.c.
 */
#include "layers/relu.h"

#include "op.h"
#include "schema.h"

static const struct schema_section relu_section = {.name = "relu"};

static bool relu_infer(union op_params *p, const struct shape *in, struct shape *out,
                       char *why, size_t size)
{
    (void)p, (void)why, (void)size;
    *out = *in;
    return true;
}

const struct op_def op_relu = {
    .name = "relu",
    .doc = "max(x, 0) elementwise: shape unchanged",
    .arity = 1,
    .params = &relu_section,
    .infer = relu_infer,
};
