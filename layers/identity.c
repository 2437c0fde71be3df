/*
 * layers/identity.c: the identity op's table entry. See identity.h.
 * Covered by tests/test_graph.c.
 */
#include "layers/identity.h"

#include "op.h"
#include "schema.h"

static const struct schema_section identity_section = {.name = "identity"};

const struct op_def op_identity = {
    .name = "identity",
    .doc = "the input unchanged",
    .arity = 1,
    .params = &identity_section,
    .infer = op_infer_same,
};
