/*
 * model.h: an experiment's network: its graph expanded for the experiment's data, and checked
 * against it (image size after the transforms, number of classes, names to re-initialize).
 *
 *     struct graph *g;
 *     if (model_build(spec, &diag, &g)) return 2;   // errors at their YAML positions
 *     ...
 *     graph_free(g);                                // before spec_free(spec)
 *
 * Covered by tests/test_graph.c and tests/bad_yaml/ (graph cases).
 */
#ifndef RUNNER_MODEL_H
#define RUNNER_MODEL_H

#include "common.h"
#include "diag.h"
#include "graph.h"
#include "spec.h"

/* Classes of the experiment's dataset. */
int model_classes(const struct spec *s);

/* The image shape (C, H, W) that a list of transforms gives the network. */
struct shape model_image_shape(const struct spec *s, const struct spec_list *transforms);

/* Optimizer values kept per parameter: momentum 1, Adam 2 (+1 amsgrad), +1 with an EMA. */
int model_optimizer_slots(const struct spec *s);

MUST_CHECK enum status model_build(const struct spec *s, struct diag *d, struct graph **out);

#endif
