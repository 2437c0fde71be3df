/*
 * validate.h: checks a merged YAML tree against the schema (schema.c) and fills struct spec,
 * defaults included, then applies the rules that tie keys together (nesterov needs
 * momentum, mixup is for training only, ...). Reports every error it finds to d.
 *
 * hooks_dir is the project's hooks/ folder, searched for hook files not found beside the
 * YAML file that names them (NULL: none). Covered by tests/test_spec.c, tests/bad_yaml/.
 */
#ifndef RUNNER_VALIDATE_H
#define RUNNER_VALIDATE_H

#include "common.h"
#include "diag.h"
#include "node.h"
#include "spec.h"

struct schema_section;

MUST_CHECK enum status validate_experiment(struct spec *s, struct diag *d, const char *hooks_dir);

/*
 * Checks map (a mapping, or NULL for an empty one) against the keys of s (a section without
 * variants) and fills out, defaults included; path names the mapping in messages ("'PATH.KEY'
 * must be ..."), where marks missing keys. Used for the settings of graph ops.
 */
MUST_CHECK enum status validate_keys(struct arena *a, struct diag *d,
                                     const struct schema_section *s, const char *path,
                                     struct mark where, const struct node *map, void *out);

/* Checks the schema table itself: every default converts and fits its range, every key is
 * described, typed sections list their variants in order; the same for every op's settings
 * (tests/test_schema.c). */
MUST_CHECK enum status validate_schema_table(struct diag *d);

#endif
