/*
 * layers/flatten.c: the flatten op's table entry. See flatten.h.
 * Covered by tests/test_graph.c.
 */
#include "layers/flatten.h"

#include "op.h"
#include "schema.h"

static const struct schema_section flatten_section = {.name = "flatten"};

static bool flatten_infer(union op_params *p, const struct shape *in, struct shape *out,
                          char *why, size_t size)
{
    (void)p, (void)why, (void)size;
    *out = (struct shape){1, {shape_numel(in)}};
    return true;
}

const struct op_def op_flatten = {
    .name = "flatten",
    .doc = "CxHxW -> a vector of C*H*W (torch.flatten(x, 1))",
    .arity = 1,
    .params = &flatten_section,
    .infer = flatten_infer,
};
