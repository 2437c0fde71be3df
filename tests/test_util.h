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
