/*
 * layers/dropout.c: the dropout op's table entry. See dropout.h.
 * Covered by tests/test_graph.c.
 */
#include "layers/dropout.h"

#include "common.h"
#include "op.h"
#include "schema.h"

static const struct schema_key dropout_keys[] = {
    {.name = "p", .type = SCHEMA_FLOAT, .offset = offsetof(struct dropout_params, p),
     .flags = SK_MIN | SK_MAX | SK_MAX_OPEN, .min = 0, .max = 1, .def = "0.5",
     .doc = "probability of zeroing an element while training"},
};
static const struct schema_section dropout_section = {
    .name = "dropout", .keys = dropout_keys, .nkeys = ARRAY_LEN(dropout_keys)};

static void dropout_summary(const union op_params *up, char *buf, size_t size)
{
    snprintf(buf, size, "p %g", up->dropout.p);
}

const struct op_def op_dropout = {
    .name = "dropout",
    .doc = "zeroes elements with probability p while training (scaling the rest by 1/(1-p)); "
           "the identity in evaluation",
    .arity = 1,
    .params = &dropout_section,
    .infer = op_infer_same,
    .summary = dropout_summary,
};
