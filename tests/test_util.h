/*
 * test_util.h: helpers shared by the CMocka tests: writing and reading files, and loading
 * with the messages captured.
 */
#ifndef RUNNER_TEST_UTIL_H
#define RUNNER_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spec.h"

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

#endif
