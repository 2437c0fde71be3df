/*
 * paths.h: lexical path helpers (no file system access; results live in the arena), and
 * path_mkdirs, path_read_text and path_cache_dir.
 *
 *     path_join(a, "experiments/sweeps", "../models/r50.yaml") -> "experiments/models/r50.yaml"
 *     path_dirname(a, "experiments/x.yaml") -> "experiments";  path_dirname(a, "x.yaml") -> "."
 *     path_stem("experiments/lr_3e-4.yaml") -> "lr_3e-4" (arena copy)
 *
 * Normalization removes "." components, repeated slashes and "dir/.." pairs; leading ".."
 * components are kept. Covered by tests/test_spec.c.
 */
#ifndef RUNNER_PATHS_H
#define RUNNER_PATHS_H

#include <stdbool.h>
#include <stddef.h>

#include "arena.h"

char *path_normalize(struct arena *a, const char *path);
char *path_join(struct arena *a, const char *dir, const char *rel);
char *path_dirname(struct arena *a, const char *path);
char *path_stem(struct arena *a, const char *path);

/* mkdir -p: creates path and its missing parents; false (errno set) when it cannot, or when
 * path exists and is not a directory. */
bool path_mkdirs(const char *path);

/* The whole file as a NUL-terminated string (the caller frees it), or NULL (errno set). */
char *path_read_text(const char *path);

/* The runner's cache folder, for what it keeps between runs (cuDNN's chosen algorithms,
 * downloaded weights): $RUNNER_CACHE_DIR, else $XDG_CACHE_HOME/runner, else
 * $HOME/.cache/runner (an empty variable counts as unset), then "/" and sub when sub is not
 * NULL; into buf. False when none can be named or it does not fit. Nothing is created. */
bool path_cache_dir(const char *sub, char *buf, size_t size);

#endif
