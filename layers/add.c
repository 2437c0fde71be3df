/*
 * layers/add.c: the add op's table entry. See add.h. Covered by tests/test_graph.c.
 */
#include "layers/add.h"

#include "op.h"
#include "schema.h"

static const struct schema_section add_section = {.name = "add"};

static bool add_infer(union op_params *p, const struct shape *in, struct shape *out, char *why,
                      size_t size)
{
    (void)p;
    if (!shape_equal(&in[0], &in[1])) {
        char a[SHAPE_TEXT], b[SHAPE_TEXT];
        snprintf(why, size, "cannot add %s and %s: the shapes differ",
                 shape_format(&in[0], a, sizeof a), shape_format(&in[1], b, sizeof b));
        return false;
    }
    *out = in[0];
    return true;
}

const struct op_def op_add = {
    .name = "add",
    .doc = "the sum of a block's two paths (body and shortcut), which must have one shape; "
           "the first op of a block's join",
    .arity = 2,
    .params = &add_section,
    .infer = add_infer,
};
