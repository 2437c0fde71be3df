/*
 * layers/linear.c: the linear op's table entry. See linear.h.
 * Covered by tests/test_graph.c.
 */
#include "layers/linear.h"

#include "common.h"
#include "op.h"
#include "schema.h"

#define P(f) offsetof(struct linear_params, f)

static const struct schema_key linear_keys[] = {
    {.name = "out", .type = SCHEMA_INT, .offset = P(out), .flags = SK_REQUIRED | SK_MIN,
     .min = 1, .doc = "output features (`$classes`, the data's class count, for the last layer)"},
    {.name = "bias", .type = SCHEMA_BOOL, .offset = P(bias), .def = "true",
     .doc = "add a learned bias"},
};
static const struct schema_section linear_section = {
    .name = "linear", .keys = linear_keys, .nkeys = ARRAY_LEN(linear_keys)};

static bool linear_infer(union op_params *p, const struct shape *in, struct shape *out,
                         char *why, size_t size)
{
    if (in->rank != 1) {
        char sb[SHAPE_TEXT];
        snprintf(why, size, "linear needs a vector input, got %s; put global_avg_pool or "
                 "flatten before it", shape_format(in, sb, sizeof sb));
        return false;
    }
    *out = (struct shape){1, {p->linear.out}};
    return true;
}

static int linear_tensors(const union op_params *up, const struct shape *in,
                          const struct shape *out, struct op_tensor *t)
{
    (void)out;
    const struct linear_params *p = &up->linear;
    int64_t f = in->d[0];
    t[0] = (struct op_tensor){"weight", 2, {p->out, f}, TENSOR_PARAM, TENSOR_F32,
                              TENSOR_INIT_UNIFORM_FAN_IN, f, p->out};
    if (!p->bias) return 1;
    t[1] = (struct op_tensor){"bias", 1, {p->out}, TENSOR_PARAM, TENSOR_F32,
                              TENSOR_INIT_UNIFORM_FAN_IN, f, p->out};
    return 2;
}

static uint64_t linear_macs(const union op_params *up, const struct shape *in,
                            const struct shape *out)
{
    (void)out;
    return (uint64_t)in->d[0] * (uint64_t)up->linear.out;
}

static void linear_summary(const union op_params *up, char *buf, size_t size)
{
    snprintf(buf, size, "%s", up->linear.bias ? "" : "no bias");
}

const struct op_def op_linear = {
    .name = "linear",
    .doc = "fully connected (torch.nn.Linear): a vector of F -> out; weight (out, F), bias (out)",
    .arity = 1,
    .params = &linear_section,
    .infer = linear_infer,
    .tensors = linear_tensors,
    .macs = linear_macs,
    .summary = linear_summary,
};
