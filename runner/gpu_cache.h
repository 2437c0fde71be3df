/*
 * gpu_cache.h: the convolution algorithms cuDNN's search chose, kept in a text file so that
 * a shape is searched once per GPU, cuDNN version and setting, not once per run. One line per
 * search: the key, then the algorithm, its math type and its workspace in bytes:
 *
 *     NVIDIA H100 80GB HBM3|sm90|cudnn91900|fwd|bf16|n256 c64 h32 w32|k64 r3 s3|p1 1|u1 1|d1 1|g1|fast 3 1 0
 *
 * Lines that do not parse are ignored (a file from another version, a torn write); a new
 * result is appended with one write. Plain C, tested on any machine by tests/test_gpu_plan.c.
 */
#ifndef RUNNER_GPU_CACHE_H
#define RUNNER_GPU_CACHE_H

#include <stdbool.h>
#include <stddef.h>

struct gpu_cache_entry {
    char *key;
    int algo, math;
    size_t workspace;
};

struct gpu_cache {
    char *path; /* NULL: nothing kept on disk */
    struct gpu_cache_entry *e;
    size_t n;
};

/* Loads path (a missing or unreadable file is an empty cache); path NULL: memory only. */
void gpu_cache_open(struct gpu_cache *c, const char *path);
void gpu_cache_close(struct gpu_cache *c);
/* The entry for key, or NULL (the last one wins when a key appears twice). */
const struct gpu_cache_entry *gpu_cache_get(const struct gpu_cache *c, const char *key);
/* Adds an entry, and appends it to the file (creating its directory); returns false when the
 * file could not be written (the entry is kept in memory regardless). */
bool gpu_cache_put(struct gpu_cache *c, const char *key, int algo, int math, size_t workspace);
/* The default file: path_cache_dir (paths.h: $RUNNER_CACHE_DIR, else $XDG_CACHE_HOME/runner,
 * else ~/.cache/runner), then /cudnn_algos.txt; false when none can be named. */
bool gpu_cache_default_path(char *buf, size_t size);

#endif
