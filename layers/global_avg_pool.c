/*
 * layers/global_avg_pool.c: the global_avg_pool op's table entry. See global_avg_pool.h.
 * Covered by tests/test_graph.c.
 */
#include "layers/global_avg_pool.h"

#include "op.h"
#include "schema.h"

static const struct schema_section global_avg_pool_section = {.name = "global_avg_pool"};

static bool global_avg_pool_infer(union op_params *p, const struct shape *in,
                                  struct shape *out, char *why, size_t size)
{
    (void)p;
    if (in->rank != 3) {
        char sb[SHAPE_TEXT];
        snprintf(why, size, "global_avg_pool needs a CxHxW input, got %s",
                 shape_format(in, sb, sizeof sb));
        return false;
    }
    *out = (struct shape){1, {in->d[0]}};
    return true;
}

const struct op_def op_global_avg_pool = {
    .name = "global_avg_pool",
    .doc = "the mean of each channel: CxHxW -> a vector of C (adaptive average pooling to "
           "1x1, then flatten)",
    .arity = 1,
    .params = &global_avg_pool_section,
    .infer = global_avg_pool_infer,
};
