/*
 * op.c: the table of ops (op.h); each entry is defined beside its op in layers/.
 * Covered by tests/test_graph.c (shape rules, tensors, counts) and tests/test_schema.c (the
 * parameter tables and their reference in the README).
 */
#include "op.h"

#include <string.h>

#include "common.h"
#include "schema.h"

const struct op_def *const op_table[] = {
    [OP_KIND_CONV] = &op_conv,
    [OP_KIND_BATCHNORM] = &op_batchnorm,
    [OP_KIND_RELU] = &op_relu,
    [OP_KIND_ADD] = &op_add,
    [OP_KIND_MAXPOOL] = &op_maxpool,
    [OP_KIND_AVGPOOL] = &op_avgpool,
    [OP_KIND_GLOBAL_AVG_POOL] = &op_global_avg_pool,
    [OP_KIND_FLATTEN] = &op_flatten,
    [OP_KIND_LINEAR] = &op_linear,
    [OP_KIND_DROPOUT] = &op_dropout,
    [OP_KIND_IDENTITY] = &op_identity,
};
/* With op.h declaring op_table[OP_KIND_COUNT], a missing last row fails to compile. */
_Static_assert(ARRAY_LEN(op_table) == OP_KIND_COUNT, "one op_table row per op kind");

bool op_infer_same(union op_params *p, const struct shape *in, struct shape *out, char *why,
                   size_t size)
{
    (void)p, (void)why, (void)size;
    *out = *in;
    return true;
}

enum op_kind op_find(const char *name)
{
    for (int k = 0; k < OP_KIND_COUNT; k++)
        if (op_table[k] && strcmp(op_table[k]->name, name) == 0) return (enum op_kind)k;
    return OP_KIND_COUNT;
}

void op_write_markdown(FILE *out)
{
    fprintf(out, "### Ops\n\n"
                 "A layer is `{op: NAME, key: value, ...}` (or the bare NAME when it has no "
                 "settings). Values may be `$param` expressions inside blocks, and use `$classes` "
                 "anywhere.\n\n");
    for (int k = 0; k < OP_KIND_COUNT; k++) {
        const struct op_def *op = op_table[k];
        fprintf(out, "`%s` — %s.", op->name, op->doc);
        if (!op->params->nkeys) {
            fprintf(out, " No settings.\n\n");
            continue;
        }
        fprintf(out, "\n\n| key | type | default | allowed | meaning |\n|---|---|---|---|---|\n");
        schema_write_keys(out, op->params->keys, op->params->nkeys);
        fputc('\n', out);
    }
}
