/*
 * test_util.h: helpers shared by the CMocka tests: writing and reading files, temporary
 * directories (a program's own: TMPDIR_FIXTURE), loading with the messages captured, rounding
 * to a compute type's precision, and whether a GPU test can run (gpu_test_gate).
 */
#ifndef RUNNER_TEST_UTIL_H
#define RUNNER_TEST_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "graph.h"
#include "spec.h"
#include "yaml_load.h"

/* What $classes is in the tests' graphs: CIFAR-10's class count, the shipped models' classifier
 * (torchvision's state dicts in tests/ref are for 10 classes). */
#define TEST_CLASSES 10

/* Writes text to dir/name; returns the path (static buffer, reused). */
static inline const char *write_file(const char *dir, const char *name, const char *text)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) abort();
    fputs(text, f);
    fclose(f);
    return path;
}

/* A fresh directory /tmp/runner_NAME_XXXXXX for a test's files, written into dir; 0 or -1. */
static inline int tmpdir_make(char *dir, size_t size, const char *name)
{
    snprintf(dir, size, "/tmp/runner_%s_XXXXXX", name);
    return mkdtemp(dir) ? 0 : -1;
}

/* dir/name, in one of four buffers used in turn (so a few can be held at once). */
static inline const char *tmpdir_path(const char *dir, const char *name)
{
    static char path[4][4096];
    static int k;
    k = (k + 1) % 4;
    snprintf(path[k], sizeof path[k], "%s/%s", dir, name);
    return path[k];
}

/* Removes dir and everything in it; 0 or -1. */
static inline int tmpdir_remove(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/*
 * The temporary directory of a test program whose tests share one, as file-scope names of
 * its own: dir, at(name) for dir/name (tmpdir_path), and the CMocka group setup and teardown
 * that make /tmp/runner_NAME_XXXXXX before its tests and remove it after them.
 *
 *     TMPDIR_FIXTURE("test_weights")
 *     ...
 *     return cmocka_run_group_tests(tests, setup, teardown);
 */
#define TMPDIR_FIXTURE(name)                                                                   \
    static char dir[256];                                                                      \
    static const char *at(const char *file)                                                    \
    {                                                                                          \
        return tmpdir_path(dir, file);                                                         \
    }                                                                                          \
    static int setup(void **state)                                                             \
    {                                                                                          \
        (void)state;                                                                           \
        return tmpdir_make(dir, sizeof dir, name);                                             \
    }                                                                                          \
    static int teardown(void **state)                                                          \
    {                                                                                          \
        (void)state;                                                                           \
        return tmpdir_remove(dir);                                                             \
    }

/* The whole file, NUL-terminated (caller frees), or NULL. */
static inline char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, f);
    buf[got] = '\0';
    fclose(f);
    return buf;
}

/* Loads path with overrides; the messages land in *msgs (caller frees). */
static inline enum status load_capture(const char *path, const char *const *ov, size_t n,
                                       struct spec **s, char **msgs)
{
    size_t len;
    FILE *mem = open_memstream(msgs, &len);
    struct diag d = {.out = mem};
    enum status st = spec_load(path, ov, n, &d, s);
    fclose(mem);
    return st;
}

/* v rounded to nearest (ties to even) with bits significand bits: 8 for bf16, 11 for fp16
 * (whose subnormals stop at 2^-24: no finer spacing), 24 or more leaves a float as it is.
 * Overflow is not modelled (the values rounded here are far from fp16's 65504). */
static inline float round_bits(double v, int bits)
{
    if (bits >= 24 || v == 0 || !isfinite(v)) return (float)v;
    int e;
    frexp(v, &e);
    int q = e - bits; /* the spacing of the values near v is 2^q */
    if (bits == 11 && q < -24) q = -24;
    return (float)ldexp(nearbyint(ldexp(v, -q)), q);
}

/*
 * Whether a GPU test can run: 0 when a GPU is usable. Otherwise it prints why and returns
 * what the test must exit with: 77 (CTest's skip, SKIP_RETURN_CODE) where there is no NVIDIA
 * driver (or no CUDA in the build), or 1, a failure, where a driver is installed but CUDA
 * cannot use it (device_cuda_broken: too old for the runtime, no GPU visible) or the
 * environment sets RUNNER_REQUIRE_GPU=1 (a machine that must run the GPU tests).
 *
 *     int gate = gpu_test_gate();
 *     if (gate) return gate;
 */
static inline int gpu_test_gate(void)
{
    char why[256];
    if (device_cuda_count(why, sizeof why) > 0) return 0;
    if (device_cuda_broken(why, sizeof why)) {
        fprintf(stderr, "the GPU cannot be used: %s\n", why);
        return 1;
    }
    const char *req = getenv("RUNNER_REQUIRE_GPU");
    if (req && strcmp(req, "1") == 0) {
        fprintf(stderr, "RUNNER_REQUIRE_GPU=1, but %s\n", why);
        return 1;
    }
    printf("skipped: %s\n", why);
    return 77;
}

/* The graph of yaml (a graph file's text, called name in messages) for TEST_CLASSES classes,
 * built in arena a; NULL, with the errors printed, when it does not build. yaml must outlive
 * the graph. */
static inline struct graph *graph_of_text(struct arena *a, const char *name, const char *yaml)
{
    struct source *src = arena_alloc(a, sizeof *src);
    *src = (struct source){name, ".", yaml, strlen(yaml)};
    struct diag d = {.out = stderr};
    struct node *root;
    struct graph *g = NULL;
    if (yaml_load_text(a, &d, src, yaml, strlen(yaml), 1, 1, &root) != STATUS_OK ||
        graph_build_for(root, NULL, TEST_CLASSES, &d, &g) != STATUS_OK)
        return NULL;
    return g;
}

#endif
