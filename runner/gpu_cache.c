/*
 * gpu_cache.c: the file of searched convolution algorithms; see gpu_cache.h. Covered by
 * tests/test_gpu_plan.c.
 */
#include "gpu_cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "paths.h"

static void add(struct gpu_cache *c, const char *key, int algo, int math, size_t ws)
{
    struct gpu_cache_entry *e = realloc(c->e, (c->n + 1) * sizeof *e);
    char *k = strdup(key);
    if (!e || !k) abort();
    c->e = e;
    c->e[c->n++] = (struct gpu_cache_entry){k, algo, math, ws};
}

/* A line: KEY, a space, three numbers; the key holds spaces itself, so the numbers are the
 * last three fields. */
static bool parse(char *line, struct gpu_cache *c)
{
    size_t len = strlen(line);
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
    char *p = line + len;
    long long v[3];
    for (int i = 2; i >= 0; i--) {
        while (p > line && p[-1] != ' ') p--;
        if (p == line) return false;
        char *end;
        v[i] = strtoll(p, &end, 10);
        if (*end || end == p || v[i] < 0) return false;
        *--p = 0;
    }
    if (!*line || !strchr(line, '|')) return false;
    add(c, line, (int)v[0], (int)v[1], (size_t)v[2]);
    return true;
}

void gpu_cache_open(struct gpu_cache *c, const char *path)
{
    *c = (struct gpu_cache){0};
    if (!path) return;
    c->path = strdup(path);
    if (!c->path) abort();
    FILE *f = fopen(path, "r");
    if (!f) return;
    char line[1024];
    while (fgets(line, sizeof line, f)) parse(line, c);
    fclose(f);
}

void gpu_cache_close(struct gpu_cache *c)
{
    for (size_t i = 0; i < c->n; i++) free(c->e[i].key);
    free(c->e);
    free(c->path);
    *c = (struct gpu_cache){0};
}

const struct gpu_cache_entry *gpu_cache_get(const struct gpu_cache *c, const char *key)
{
    for (size_t i = c->n; i-- > 0;)
        if (strcmp(c->e[i].key, key) == 0) return &c->e[i];
    return NULL;
}

bool gpu_cache_put(struct gpu_cache *c, const char *key, int algo, int math, size_t workspace)
{
    add(c, key, algo, math, workspace);
    if (!c->path) return true;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", c->path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = 0;
        if (!path_mkdirs(dir)) return false;
    }
    FILE *f = fopen(c->path, "a");
    if (!f) return false;
    char line[1100];
    int n = snprintf(line, sizeof line, "%s %d %d %zu\n", key, algo, math, workspace);
    bool ok = n > 0 && (size_t)n < sizeof line && fputs(line, f) >= 0;
    return fclose(f) == 0 && ok;
}

bool gpu_cache_default_path(char *buf, size_t size)
{
    return path_cache_dir("cudnn_algos.txt", buf, size);
}
