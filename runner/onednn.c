/*
 * onednn.c: the CPU backend's oneDNN calls that differ between 2.x and 3.x (see onednn.h),
 * each written once per version. Covered by tests/test_ops_cpu.c and tests/test_plan.c on
 * both versions (CI's Debian 12 and 13 roots).
 */
#include "onednn.h"

#include <stdlib.h>
#include <string.h>

#if DNNL_VERSION_MAJOR >= 3
#define ONEDNN_V3 1
#else
#define ONEDNN_V3 0
#endif

/* ------------------------------------------------------------------------------------------ */
/* Memory descriptors */

void onednn_mds_free(struct onednn_mds *m)
{
#if ONEDNN_V3
    for (size_t i = 0; i < m->n; i++) dnnl_memory_desc_destroy(m->v[i]);
#endif
    free(m->v);
    *m = (struct onednn_mds){0};
}

#if ONEDNN_V3
/* Keeps handle md in m (destroying it if m cannot grow). */
static dnnl_status_t keep(struct onednn_mds *m, dnnl_memory_desc_t md)
{
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        dnnl_memory_desc_t *v = realloc(m->v, cap * sizeof *v);
        if (!v) {
            dnnl_memory_desc_destroy(md);
            return dnnl_out_of_memory;
        }
        m->v = v;
        m->cap = cap;
    }
    m->v[m->n++] = md;
    return dnnl_success;
}
#endif

dnnl_status_t onednn_md_make(struct onednn_mds *m, dnnl_memory_desc_t *md, int ndims,
                             const int64_t *dims, dnnl_data_type_t dt, dnnl_format_tag_t tag)
{
    if (ndims < 1 || ndims > DNNL_MAX_NDIMS) return dnnl_invalid_arguments;
    dnnl_dims_t d = {0};
    memcpy(d, dims, (size_t)ndims * sizeof *dims);
#if ONEDNN_V3
    dnnl_memory_desc_t h = NULL;
    dnnl_status_t st = dnnl_memory_desc_create_with_tag(&h, ndims, d, dt, tag);
    if (st != dnnl_success) return st;
    *md = h;
    return keep(m, h);
#else
    (void)m;
    return dnnl_memory_desc_init_by_tag(md, ndims, d, dt, tag);
#endif
}

dnnl_status_t onednn_md_query(struct onednn_mds *m, dnnl_memory_desc_t *md,
                              const_dnnl_primitive_desc_t pd, dnnl_query_t what, int index)
{
#if ONEDNN_V3
    const_dnnl_memory_desc_t q = dnnl_primitive_desc_query_md(pd, what, index);
    if (!q) return dnnl_invalid_arguments;
    dnnl_memory_desc_t h = NULL;
    dnnl_status_t st = dnnl_memory_desc_clone(&h, q);
    if (st != dnnl_success) return st;
    *md = h;
    return keep(m, h);
#else
    (void)m;
    const dnnl_memory_desc_t *q = dnnl_primitive_desc_query_md(pd, what, index);
    if (!q) return dnnl_invalid_arguments;
    *md = *q;
    return dnnl_success;
#endif
}

#if ONEDNN_V3
static int32_t query_s32(const dnnl_memory_desc_t *md, dnnl_query_t what)
{
    int32_t v = 0;
    if (!*md || dnnl_memory_desc_query(*md, what, &v) != dnnl_success) return 0;
    return v;
}
#endif

int onednn_md_ndims(const dnnl_memory_desc_t *md)
{
#if ONEDNN_V3
    return query_s32(md, dnnl_query_ndims_s32);
#else
    return md->ndims;
#endif
}

const int64_t *onednn_md_dims(const dnnl_memory_desc_t *md)
{
#if ONEDNN_V3
    static const dnnl_dims_t none = {0}; /* read-only: the dims of the zero descriptor */
    dnnl_dims_t *d = NULL;
    if (!*md || dnnl_memory_desc_query(*md, dnnl_query_dims, &d) != dnnl_success || !d)
        return none;
    return *d;
#else
    return md->dims;
#endif
}

dnnl_data_type_t onednn_md_data_type(const dnnl_memory_desc_t *md)
{
#if ONEDNN_V3
    return (dnnl_data_type_t)query_s32(md, dnnl_query_data_type);
#else
    return md->data_type;
#endif
}

size_t onednn_md_size(const dnnl_memory_desc_t *md)
{
#if ONEDNN_V3
    return *md ? dnnl_memory_desc_get_size(*md) : 0;
#else
    return dnnl_memory_desc_get_size(md);
#endif
}

bool onednn_md_equal(const dnnl_memory_desc_t *a, const dnnl_memory_desc_t *b)
{
#if ONEDNN_V3
    if (!*a || !*b) /* the zero descriptor, as a NULL handle or a made one */
        return onednn_md_ndims(a) == 0 && onednn_md_ndims(b) == 0;
    return dnnl_memory_desc_equal(*a, *b) != 0;
#else
    return dnnl_memory_desc_equal(a, b) != 0;
#endif
}

bool onednn_pd_arg_is(const_dnnl_primitive_desc_t pd, int arg, const dnnl_memory_desc_t *md)
{
#if ONEDNN_V3
    const_dnnl_memory_desc_t want = dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, arg);
    return want && *md && dnnl_memory_desc_equal(want, *md);
#else
    const dnnl_memory_desc_t *want = dnnl_primitive_desc_query_md(pd, dnnl_query_exec_arg_md, arg);
    return want && dnnl_memory_desc_equal(want, md);
#endif
}

dnnl_status_t onednn_memory_create(dnnl_memory_t *mem, const dnnl_memory_desc_t *md,
                                   dnnl_engine_t eng, void *ptr)
{
#if ONEDNN_V3
    if (!*md) { /* the zero descriptor: a memory of no bytes, as 2.x makes it */
        dnnl_memory_desc_t zero = NULL;
        dnnl_dims_t d = {0};
        dnnl_status_t st = dnnl_memory_desc_create_with_tag(&zero, 1, d, dnnl_f32, dnnl_a);
        if (st != dnnl_success) return st;
        st = dnnl_memory_create(mem, zero, eng, ptr);
        dnnl_memory_desc_destroy(zero);
        return st;
    }
    return dnnl_memory_create(mem, *md, eng, ptr);
#else
    return dnnl_memory_create(mem, md, eng, ptr);
#endif
}

dnnl_status_t onednn_reorder_pd(dnnl_primitive_desc_t *pd, const dnnl_memory_desc_t *src,
                                const dnnl_memory_desc_t *dst, dnnl_engine_t eng,
                                const_dnnl_primitive_attr_t attr)
{
#if ONEDNN_V3
    return dnnl_reorder_primitive_desc_create(pd, *src, eng, *dst, eng, attr);
#else
    return dnnl_reorder_primitive_desc_create(pd, src, eng, dst, eng, attr);
#endif
}

dnnl_status_t onednn_post_ops_append_relu(dnnl_post_ops_t po)
{
#if ONEDNN_V3
    return dnnl_post_ops_append_eltwise(po, dnnl_eltwise_relu, 0, 0);
#else
    return dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0, 0);
#endif
}

bool onednn_winograd(void)
{
    return !ONEDNN_V3;
}

bool onednn_bnorm_backward_takes_shift(void)
{
    return !ONEDNN_V3;
}

/* ------------------------------------------------------------------------------------------ */
/* Primitive descriptors */

#if ONEDNN_V3

/* The handle behind an optional descriptor. */
static const_dnnl_memory_desc_t handle(const dnnl_memory_desc_t *md)
{
    return md ? *md : NULL;
}

dnnl_status_t onednn_pd_create(dnnl_primitive_desc_t *pd, const struct onednn_op *o,
                               const_dnnl_primitive_attr_t attr, dnnl_engine_t eng,
                               const_dnnl_primitive_desc_t hint)
{
    switch (o->kind) {
    case ONEDNN_CONV:
        return dnnl_convolution_forward_primitive_desc_create(
            pd, eng, o->prop, o->alg, handle(o->src), handle(o->weights), handle(o->bias), handle(o->dst),
            o->strides, o->dilation, o->pad_l, o->pad_r, attr);
    case ONEDNN_CONV_BWD_DATA:
        return dnnl_convolution_backward_data_primitive_desc_create(
            pd, eng, o->alg, handle(o->src), handle(o->weights), handle(o->dst), o->strides, o->dilation,
            o->pad_l, o->pad_r, hint, attr);
    case ONEDNN_CONV_BWD_WEIGHTS:
        return dnnl_convolution_backward_weights_primitive_desc_create(
            pd, eng, o->alg, handle(o->src), handle(o->weights), handle(o->bias), handle(o->dst), o->strides,
            o->dilation, o->pad_l, o->pad_r, hint, attr);
    case ONEDNN_BNORM:
        return dnnl_batch_normalization_forward_primitive_desc_create(
            pd, eng, o->prop, handle(o->src), handle(o->src), o->epsilon, o->flags, attr);
    case ONEDNN_BNORM_BWD:
        return dnnl_batch_normalization_backward_primitive_desc_create(
            pd, eng, o->prop, handle(o->dst), handle(o->dst), handle(o->src), o->epsilon, o->flags, hint, attr);
    case ONEDNN_ELTWISE:
        return dnnl_eltwise_forward_primitive_desc_create(pd, eng, o->prop, o->alg, handle(o->src),
                                                          handle(o->src), o->alpha, o->beta, attr);
    case ONEDNN_ELTWISE_BWD:
        return dnnl_eltwise_backward_primitive_desc_create(
            pd, eng, o->alg, handle(o->dst), handle(o->dst), handle(o->src), o->alpha, o->beta, hint, attr);
    case ONEDNN_POOL:
        return dnnl_pooling_forward_primitive_desc_create(
            pd, eng, o->prop, o->alg, handle(o->src), handle(o->dst), o->strides, o->kernel, o->dilation,
            o->pad_l, o->pad_r, attr);
    case ONEDNN_POOL_BWD:
        return dnnl_pooling_backward_primitive_desc_create(
            pd, eng, o->alg, handle(o->src), handle(o->dst), o->strides, o->kernel, o->dilation,
            o->pad_l, o->pad_r, hint, attr);
    case ONEDNN_INNER:
        return dnnl_inner_product_forward_primitive_desc_create(
            pd, eng, o->prop, handle(o->src), handle(o->weights), handle(o->bias), handle(o->dst), attr);
    case ONEDNN_INNER_BWD_DATA:
        return dnnl_inner_product_backward_data_primitive_desc_create(
            pd, eng, handle(o->src), handle(o->weights), handle(o->dst), hint, attr);
    case ONEDNN_INNER_BWD_WEIGHTS:
        return dnnl_inner_product_backward_weights_primitive_desc_create(
            pd, eng, handle(o->src), handle(o->weights), handle(o->bias), handle(o->dst), hint, attr);
    case ONEDNN_BINARY:
        return dnnl_binary_primitive_desc_create(pd, eng, o->alg, handle(o->src), handle(o->src1),
                                                 handle(o->dst), attr);
    }
    return dnnl_invalid_arguments;
}

#else /* oneDNN 2.x: an op descriptor, then the primitive descriptor */

union op_desc {
    dnnl_convolution_desc_t conv;
    dnnl_batch_normalization_desc_t bnorm;
    dnnl_eltwise_desc_t eltwise;
    dnnl_pooling_v2_desc_t pool;
    dnnl_inner_product_desc_t inner;
    dnnl_binary_desc_t binary;
};

/* Initialises d for o (in union member by kind). */
static dnnl_status_t op_desc_init(union op_desc *d, const struct onednn_op *o)
{
    switch (o->kind) {
    case ONEDNN_CONV:
        return dnnl_dilated_convolution_forward_desc_init(&d->conv, o->prop, o->alg, o->src,
                                                          o->weights, o->bias, o->dst,
                                                          o->strides, o->dilation, o->pad_l,
                                                          o->pad_r);
    case ONEDNN_CONV_BWD_DATA:
        return dnnl_dilated_convolution_backward_data_desc_init(
            &d->conv, o->alg, o->src, o->weights, o->dst, o->strides, o->dilation, o->pad_l,
            o->pad_r);
    case ONEDNN_CONV_BWD_WEIGHTS:
        return dnnl_dilated_convolution_backward_weights_desc_init(
            &d->conv, o->alg, o->src, o->weights, o->bias, o->dst, o->strides, o->dilation,
            o->pad_l, o->pad_r);
    case ONEDNN_BNORM:
        return dnnl_batch_normalization_forward_desc_init(&d->bnorm, o->prop, o->src,
                                                          o->epsilon, o->flags);
    case ONEDNN_BNORM_BWD:
        return dnnl_batch_normalization_backward_desc_init(&d->bnorm, o->prop, o->dst, o->src,
                                                           o->epsilon, o->flags);
    case ONEDNN_ELTWISE:
        return dnnl_eltwise_forward_desc_init(&d->eltwise, o->prop, o->alg, o->src, o->alpha,
                                              o->beta);
    case ONEDNN_ELTWISE_BWD:
        return dnnl_eltwise_backward_desc_init(&d->eltwise, o->alg, o->dst, o->src, o->alpha,
                                               o->beta);
    case ONEDNN_POOL:
        return dnnl_pooling_v2_forward_desc_init(&d->pool, o->prop, o->alg, o->src, o->dst,
                                                 o->strides, o->kernel, o->dilation, o->pad_l,
                                                 o->pad_r);
    case ONEDNN_POOL_BWD:
        return dnnl_pooling_v2_backward_desc_init(&d->pool, o->alg, o->src, o->dst, o->strides,
                                                  o->kernel, o->dilation, o->pad_l, o->pad_r);
    case ONEDNN_INNER:
        return dnnl_inner_product_forward_desc_init(&d->inner, o->prop, o->src, o->weights,
                                                    o->bias, o->dst);
    case ONEDNN_INNER_BWD_DATA:
        return dnnl_inner_product_backward_data_desc_init(&d->inner, o->src, o->weights, o->dst);
    case ONEDNN_INNER_BWD_WEIGHTS:
        return dnnl_inner_product_backward_weights_desc_init(&d->inner, o->src, o->weights,
                                                             o->bias, o->dst);
    case ONEDNN_BINARY:
        return dnnl_binary_desc_init(&d->binary, o->alg, o->src, o->src1, o->dst);
    }
    return dnnl_invalid_arguments;
}

dnnl_status_t onednn_pd_create(dnnl_primitive_desc_t *pd, const struct onednn_op *o,
                               const_dnnl_primitive_attr_t attr, dnnl_engine_t eng,
                               const_dnnl_primitive_desc_t hint)
{
    union op_desc d;
    dnnl_status_t st = op_desc_init(&d, o);
    if (st != dnnl_success) return st;
    return dnnl_primitive_desc_create(pd, &d, attr, eng, hint);
}

#endif
