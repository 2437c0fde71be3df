/*
 * layers/pool.c: the shape rule maxpool and avgpool share. See pool.h.
 * Covered by tests/test_graph.c.
 */
#include "layers/pool.h"

#include "op.h"

bool pool_infer(union op_params *up, const struct shape *in, struct shape *out, char *why,
                size_t size)
{
    struct pool_params *p = &up->pool;
    char sb[SHAPE_TEXT];
    for (int i = 0; i < 2; i++)
        if (!p->stride[i]) p->stride[i] = p->kernel[i];
    if (in->rank != 3) {
        snprintf(why, size, "pooling needs a CxHxW input, got %s", shape_format(in, sb, sizeof sb));
        return false;
    }
    if (2 * p->pad[0] > p->kernel[0] || 2 * p->pad[1] > p->kernel[1]) {
        snprintf(why, size, "pad %lld is more than half the kernel %lldx%lld", p->pad[0],
                 p->kernel[0], p->kernel[1]);
        return false;
    }
    int64_t o[2];
    for (int i = 0; i < 2; i++)
        o[i] = shape_window_out(in->d[1 + i], p->kernel[i], p->stride[i], p->pad[i], 1,
                                p->ceil_mode);
    if (o[0] < 1 || o[1] < 1) {
        snprintf(why, size, "kernel %lldx%lld is larger than its padded input %lldx%lld",
                 p->kernel[0], p->kernel[1], (long long)(in->d[1] + 2 * p->pad[0]),
                 (long long)(in->d[2] + 2 * p->pad[1]));
        return false;
    }
    *out = (struct shape){3, {in->d[0], o[0], o[1]}};
    return true;
}

void pool_summary(const union op_params *up, char *buf, size_t size)
{
    const struct pool_params *p = &up->pool;
    char st[48], pad[48];
    shape_pair(st, sizeof st, p->stride, ",");
    shape_pair(pad, sizeof pad, p->pad, ",");
    bool padded = p->pad[0] || p->pad[1];
    snprintf(buf, size, "%lldx%lld/%s%s%s%s", p->kernel[0], p->kernel[1], st,
             padded ? " pad " : "", padded ? pad : "", p->ceil_mode ? " ceil" : "");
}
