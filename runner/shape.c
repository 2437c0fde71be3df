/*
 * shape.c: shapes of activations and tensors. See shape.h. Covered by tests/test_graph.c.
 */
#include "shape.h"

#include <stdio.h>

bool shape_equal(const struct shape *a, const struct shape *b)
{
    if (a->rank != b->rank) return false;
    for (int i = 0; i < a->rank; i++)
        if (a->d[i] != b->d[i]) return false;
    return true;
}

int64_t shape_numel(const struct shape *s)
{
    int64_t n = 1;
    for (int i = 0; i < s->rank; i++) n *= s->d[i];
    return s->rank ? n : 0;
}

const char *shape_format(const struct shape *s, char *buf, size_t size)
{
    if (!s->rank) {
        snprintf(buf, size, "?");
        return buf;
    }
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < s->rank && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%lld", i ? "x" : "",
                                 (long long)s->d[i]);
    return buf;
}

int64_t op_tensor_numel(const struct op_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++) n *= t->dim[i];
    return n;
}

int64_t shape_window_out(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t dil,
                         bool ceil_mode)
{
    int64_t span = in + 2 * pad - (dil * (k - 1) + 1);
    if (span < 0) return 0;
    int64_t out = (ceil_mode ? (span + stride - 1) / stride : span / stride) + 1;
    if (ceil_mode && (out - 1) * stride >= in + pad) out--;
    return out;
}

void shape_pair(char *buf, size_t size, const long long v[2], const char *sep)
{
    if (v[0] == v[1])
        snprintf(buf, size, "%lld", v[0]);
    else
        snprintf(buf, size, "%lld%s%lld", v[0], sep, v[1]);
}
