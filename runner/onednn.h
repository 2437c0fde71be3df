/*
 * onednn.h: the one place where oneDNN 2.x (Debian 12: 2.6) and 3.x (Debian 13: 3.7) differ
 * for the CPU backend. Everything else (backend_cpu.c, layers/<op>_cpu.c) uses these
 * functions and never reads a memory descriptor's fields or an op descriptor directly.
 *
 *     dnnl_memory_desc_t md;
 *     struct onednn_mds made = {0};
 *     onednn_md_make(&made, &md, 4, dims, dnnl_f32, dnnl_format_tag_any);
 *     struct onednn_op op = {.kind = ONEDNN_CONV, .prop = dnnl_forward_training,
 *                            .alg = dnnl_convolution_direct, .src = &src, .weights = &md, ...};
 *     dnnl_primitive_desc_t pd;
 *     dnnl_status_t st = onednn_pd_create(&pd, &op, attr, engine, NULL);
 *     ...
 *     onednn_mds_free(&made);
 *
 * What differs:
 *  - memory descriptors: a plain struct in 2.x, an opaque handle to be created, queried and
 *    destroyed in 3.x. Here dnnl_memory_desc_t is copied by value either way; a descriptor
 *    made by onednn_md_make or onednn_md_query belongs to the struct onednn_mds it was made
 *    in, and stays valid until onednn_mds_free (with 2.x that list stays empty). A zeroed
 *    dnnl_memory_desc_t (calloc) is the zero descriptor in both: size 0, no dimensions.
 *  - primitive descriptors: 2.x initialises an op descriptor and then creates the primitive
 *    descriptor from it; 3.x has one creation function per primitive and no op descriptors.
 *    struct onednn_op says what is wanted in terms both understand.
 *  - post-ops: 2.x's eltwise post-op has a scale, 3.x's has none.
 *  - Winograd: 3.x has no Winograd convolution on x64 (onednn_winograd).
 *  - execution arguments: 3.x refuses one a primitive does not read (batch normalization
 *    backward's shift, which 2.x wants).
 *
 * Covered by tests/test_ops_cpu.c and tests/test_plan.c, built against whichever oneDNN the
 * system has (CI builds both, on Debian 12 and 13).
 */
#ifndef RUNNER_ONEDNN_H
#define RUNNER_ONEDNN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <oneapi/dnnl/dnnl.h>

/* The memory descriptors made for one owner (3.x handles; always empty with 2.x). */
struct onednn_mds {
    dnnl_memory_desc_t *v;
    size_t n, cap;
};

/* Destroys every descriptor in m (the handles become invalid) and empties it. */
void onednn_mds_free(struct onednn_mds *m);

/* A descriptor for ndims dims (at most DNNL_MAX_NDIMS) of type dt in layout tag, kept in m. */
__attribute__((warn_unused_result)) dnnl_status_t
onednn_md_make(struct onednn_mds *m, dnnl_memory_desc_t *md, int ndims, const int64_t *dims,
               dnnl_data_type_t dt, dnnl_format_tag_t tag);

/* A copy of the descriptor pd chose for `what` (dnnl_query_src_md, ...) at index, kept in m:
 * it outlives pd. The zero descriptor where pd has no such argument. */
__attribute__((warn_unused_result)) dnnl_status_t
onednn_md_query(struct onednn_mds *m, dnnl_memory_desc_t *md, const_dnnl_primitive_desc_t pd,
                dnnl_query_t what, int index);

/* Its rank, dims (valid as long as md is), element type, and bytes. */
int onednn_md_ndims(const dnnl_memory_desc_t *md);
const int64_t *onednn_md_dims(const dnnl_memory_desc_t *md);
dnnl_data_type_t onednn_md_data_type(const dnnl_memory_desc_t *md);
size_t onednn_md_size(const dnnl_memory_desc_t *md);
/* Whether a and b describe the same layout. */
bool onednn_md_equal(const dnnl_memory_desc_t *a, const dnnl_memory_desc_t *b);
/* Whether what pd wants for execution argument arg (DNNL_ARG_*) is laid out as md; false
 * when arg is not an argument of pd. */
bool onednn_pd_arg_is(const_dnnl_primitive_desc_t pd, int arg, const dnnl_memory_desc_t *md);

/* Whether a batch normalization backward with dnnl_use_shift takes DNNL_ARG_SHIFT: 2.x asks
 * for it (though the shift does not enter any gradient), 3.x refuses it. */
bool onednn_bnorm_backward_takes_shift(void);

/* A memory object over ptr (not owned) laid out as md. */
__attribute__((warn_unused_result)) dnnl_status_t
onednn_memory_create(dnnl_memory_t *mem, const dnnl_memory_desc_t *md, dnnl_engine_t eng,
                     void *ptr);

/* A reorder from layout src to dst (attr may be NULL). */
__attribute__((warn_unused_result)) dnnl_status_t
onednn_reorder_pd(dnnl_primitive_desc_t *pd, const dnnl_memory_desc_t *src,
                  const dnnl_memory_desc_t *dst, dnnl_engine_t eng,
                  const_dnnl_primitive_attr_t attr);

/* Appends a relu (max(x, 0)) to post-ops po. */
__attribute__((warn_unused_result)) dnnl_status_t onednn_post_ops_append_relu(dnnl_post_ops_t po);

/* Whether this oneDNN can run Winograd convolutions at all (2.x on x64: yes, where the CPU
 * has AVX-512; 3.x: never). */
bool onednn_winograd(void);

/* ------------------------------------------------------------------------------------------ */
/* Primitive descriptors */

enum onednn_kind {
    ONEDNN_CONV,             /* src, weights, bias (or NULL), dst; geometry */
    ONEDNN_CONV_BWD_DATA,    /* src: diff_src, weights, dst: diff_dst; geometry */
    ONEDNN_CONV_BWD_WEIGHTS, /* src, weights: diff_weights, bias: diff_bias (or NULL), dst:
                                diff_dst; geometry */
    ONEDNN_BNORM,            /* src (dst alike); epsilon, flags */
    ONEDNN_BNORM_BWD,        /* src, dst: diff_dst (diff_src alike); epsilon, flags */
    ONEDNN_ELTWISE,          /* src (dst alike); alg, alpha, beta */
    ONEDNN_ELTWISE_BWD,      /* src: the data the algorithm reads (src or dst of the forward),
                                dst: diff_dst (diff_src alike); alg, alpha, beta */
    ONEDNN_POOL,             /* src, dst; alg, geometry with kernel */
    ONEDNN_POOL_BWD,         /* src: diff_src, dst: diff_dst; alg, geometry with kernel */
    ONEDNN_INNER,            /* src, weights, bias (or NULL), dst */
    ONEDNN_INNER_BWD_DATA,   /* src: diff_src, weights, dst: diff_dst */
    ONEDNN_INNER_BWD_WEIGHTS, /* src, weights: diff_weights, bias: diff_bias (or NULL), dst:
                                 diff_dst */
    ONEDNN_BINARY,           /* src, src1, dst; alg */
};

/* A primitive, described as both versions understand it. Roles as enum onednn_kind says:
 * in every backward kind dst is the output's gradient. Geometry: two spatial values each;
 * dilation counts from 0 (none), as oneDNN's does. prop: forward kinds and ONEDNN_BNORM_BWD. */
struct onednn_op {
    enum onednn_kind kind;
    dnnl_prop_kind_t prop;
    dnnl_alg_kind_t alg;
    const dnnl_memory_desc_t *src, *src1, *weights, *bias, *dst;
    const int64_t *strides, *kernel, *dilation, *pad_l, *pad_r;
    float epsilon, alpha, beta;
    unsigned flags;
};

/* The primitive descriptor for op with attributes attr (may be NULL); hint: the forward's
 * primitive descriptor, for backward kinds. */
__attribute__((warn_unused_result)) dnnl_status_t
onednn_pd_create(dnnl_primitive_desc_t *pd, const struct onednn_op *op,
                 const_dnnl_primitive_attr_t attr, dnnl_engine_t eng,
                 const_dnnl_primitive_desc_t hint);

#endif
