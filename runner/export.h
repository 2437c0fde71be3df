/*
 * export.h: `runner export`: the network and its weights as an ONNX model.
 *
 *     runner export RUN_DIR [key=value ...] [--out FILE.onnx] [--batch N] [--opset N]
 *     runner export FILE.yaml model.pretrained=W.safetensors [...] [--normalize] [--fold-bn]
 *
 *     struct export_options o = {.opset = 17, .normalize = true};
 *     if (export_onnx(s, g, "model.safetensors", "model.onnx", &o, &d)) return 2;
 *
 * Every layer becomes its ONNX node (conv: Conv, batchnorm: BatchNormalization in its
 * inference form, relu: Relu, add: Add, maxpool: MaxPool, avgpool: AveragePool,
 * global_avg_pool: GlobalAveragePool + Flatten, flatten: Flatten, linear: Gemm with transB);
 * dropout and identity vanish, their consumers reading their input. Weights are initializers
 * under the runner's tensor names, read from the safetensors file (exact f32). The input is
 * `images` (N, C, H, W) float32, N symbolic unless batch is given; the output `logits`.
 * normalize folds augment.eval's normalize transform into the graph (Sub, Div), so the model
 * takes RGB in [0, 1]. fold_bn folds every batchnorm whose input is a conv read by nothing
 * else into that Conv: its weight, under the conv's name, scaled per output channel by
 * gamma / sqrt(running_var + eps), its bias "<conv>.bias" = beta + (bias - running_mean) *
 * that scale (computed in double); the batchnorm's tensors are left out. The experiment's
 * name and its class names go into metadata_props (CIFAR-100's from its names files under the
 * data root; empty, with a warning to d, when they are not there).
 * Errors (an opset outside 13..21, a missing or misshapen weight, no normalize transform for
 * normalize, a write failure) go to d. Covered by tests/test_export.sh.
 */
#ifndef RUNNER_EXPORT_H
#define RUNNER_EXPORT_H

#include <stdbool.h>

#include "common.h"
#include "diag.h"
#include "graph.h"
#include "spec.h"

#define EXPORT_OPSET_MIN 13
#define EXPORT_OPSET_MAX 21

struct export_options {
    int opset;      /* EXPORT_OPSET_MIN .. EXPORT_OPSET_MAX */
    long long batch; /* 0: symbolic ("N") */
    bool normalize;
    bool fold_bn;   /* each batchnorm that reads a conv (and only it reads the conv) folded
                       into that conv's weight and bias */
};

MUST_CHECK enum status export_onnx(const struct spec *s, const struct graph *g,
                                   const char *weights, const char *out,
                                   const struct export_options *o, struct diag *d);

#endif
