/*
 * test_util.h: helpers shared by the CMocka tests: a temporary directory to write YAML files
 * into, and loading with the messages captured.
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
