/*
 * op.h: the ops C knows, in one table. A graph file (graph.h) names ops; everything about an
 * op (its YAML parameters with their ranges, its shape rule, its parameter tensors, its
 * multiply-add count) is found through op_table. Blocks, stages and ResNets are not here:
 * they are written in YAML.
 *
 *     enum op_kind k = op_find("conv");                 // OP_KIND_COUNT if unknown
 *     const struct op_def *op = op_table[k];
 *     union op_params p;                                // filled by validate_keys(op->params)
 *     struct shape out;
 *     char why[256];
 *     if (!op->infer(&p, &in, &out, why, sizeof why)) report(why);
 *
 * Each op lives in layers/<op>.h (its parameter struct and shape rule) and layers/<op>.c (its
 * table entry), and runs through one file per backend. To add an op, every place it touches:
 *   1. layers/<op>.h and layers/<op>.c; its OP_KIND_ constant and member of union op_params
 *      here; its row in op.c (tests/test_graph.c covers every shape rule, tensor list and
 *      count);
 *   2. the CPU: layers/<op>_cpu.c (a struct cpu_op: oneDNN primitives, or a kernel of its
 *      own), declared in cpu.h and put in backend_cpu.c's cpu_ops[];
 *   3. the GPU: layers/<op>_cuda.c (a struct gpu_lowering: which kernels it becomes, on which
 *      buffers), declared in gpu_lower.h and put in gpu_plan.c's gpu_ops[]; a kernel kind the
 *      others lack is a GPU_OP_ in gpu_plan.h (and its name in gpu_op_name), run in
 *      cuda_exec.c's cuda_run_step (and described in cuda_describe where cuDNN needs
 *      descriptors), its own kernels in gpu_kernels.cu with their element math in gpu_math.h;
 *   4. both .c files in CMakeLists.txt's RUNNER_SOURCES; its cases in tests/ops_cases.h
 *      (checked on each backend against tests/ref, which gets its reference kernel);
 *   5. the README's YAML reference, rewritten from `runner schema` by scripts/update_readme.sh
 *      (tests/test_schema.c holds the two equal).
 * An op without a backend's file is refused on that backend at its layer's position.
 */
#ifndef RUNNER_OP_H
#define RUNNER_OP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "shape.h"

#include "layers/add.h"
#include "layers/avgpool.h"
#include "layers/batchnorm.h"
#include "layers/conv.h"
#include "layers/dropout.h"
#include "layers/flatten.h"
#include "layers/global_avg_pool.h"
#include "layers/identity.h"
#include "layers/linear.h"
#include "layers/maxpool.h"
#include "layers/relu.h"

enum op_kind {
    OP_KIND_CONV,
    OP_KIND_BATCHNORM,
    OP_KIND_RELU,
    OP_KIND_ADD,
    OP_KIND_MAXPOOL,
    OP_KIND_AVGPOOL,
    OP_KIND_GLOBAL_AVG_POOL,
    OP_KIND_FLATTEN,
    OP_KIND_LINEAR,
    OP_KIND_DROPOUT,
    OP_KIND_IDENTITY,
    OP_KIND_COUNT,
};

/* An op's parameters: the member named after the op (pool for maxpool and avgpool). */
union op_params {
    struct conv_params conv;
    struct batchnorm_params batchnorm;
    struct pool_params pool;
    struct linear_params linear;
    struct dropout_params dropout;
};

#define OP_MAX_INPUTS 2
#define OP_MAX_TENSORS 5

struct schema_section;

struct op_def {
    const char *name; /* as written after `op:` */
    const char *doc;  /* one line: what it computes, and its shape rule */
    int arity;        /* inputs: 1, or 2 for add (the join of a block's two paths) */
    const struct schema_section *params; /* its YAML keys, offsets into union op_params */

    /*
     * The output shape for inputs in[0..arity-1] (all known). May complete p (a pooling
     * stride left at 0 becomes the kernel). False, with a message in why, when the input
     * does not fit (wrong rank, kernel larger than the padded input, channels not divisible
     * by groups, shapes that differ for add).
     */
    bool (*infer)(union op_params *p, const struct shape *in, struct shape *out, char *why,
                  size_t size);
    /* Its tensors (parameters and buffers), at most OP_MAX_TENSORS; NULL: none. */
    int (*tensors)(const union op_params *p, const struct shape *in, const struct shape *out,
                   struct op_tensor *t);
    /* Multiply-adds per image (conv and linear; NULL: 0). */
    uint64_t (*macs)(const union op_params *p, const struct shape *in, const struct shape *out);
    /* A short summary of the parameters for tables ("3x3/2 pad 1"); NULL: none. */
    void (*summary)(const union op_params *p, char *buf, size_t size);
};

extern const struct op_def *const op_table[OP_KIND_COUNT];

/* The shape rule of ops that keep their input's shape (relu, identity, dropout, batchnorm). */
bool op_infer_same(union op_params *p, const struct shape *in, struct shape *out, char *why,
                   size_t size);

/* The op called name, or OP_KIND_COUNT. */
enum op_kind op_find(const char *name);

/* Writes the reference of every op and its parameters as Markdown (part of `runner schema`). */
void op_write_markdown(FILE *out);

#endif
