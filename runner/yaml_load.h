/*
 * yaml_load.h: YAML text -> struct node tree (node.h), strictly.
 *
 *     struct source *src; struct node *root;
 *     if (yaml_load_file(&arena, &diag, "experiments/x.yaml", no_mark, &src, &root)) return ...;
 *
 * Rejected, each with its position: YAML syntax errors, anchors, aliases, `<<` merge keys,
 * explicit tags, non-scalar keys, duplicate keys, nesting deeper than YAML_MAX_DEPTH, more
 * than one document, and (for files) an empty document or one that is not a mapping.
 * Covered by tests/test_yaml_load.c and the bad-input suite tests/bad_yaml/.
 */
#ifndef RUNNER_YAML_LOAD_H
#define RUNNER_YAML_LOAD_H

#include "arena.h"
#include "common.h"
#include "diag.h"
#include "node.h"

enum { YAML_MAX_DEPTH = 64, YAML_MAX_FILE_BYTES = 16 << 20 };

/*
 * Reads and parses the file at path. The root must be a mapping. `from` is where the path was
 * written (the key that names it), used when the file cannot be read; a mark with no source
 * means the user named it on the command line. On success *src is the file's source (its
 * name is path, normalized) and *root its tree, both in the arena.
 */
MUST_CHECK enum status yaml_load_file(struct arena *a, struct diag *d, const char *path,
                                      struct mark from, struct source **src, struct node **root);

/*
 * Parses text written at (line, col) of src: marks are shifted there, so the text may be one
 * part of a source line (a command-line override's value). An empty text is a null scalar.
 */
MUST_CHECK enum status yaml_load_text(struct arena *a, struct diag *d, const struct source *src,
                                      const char *text, size_t len, int line, int col,
                                      struct node **root);

#endif
