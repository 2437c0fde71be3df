/* paths.c: see paths.h. */
#include "paths.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

char *path_normalize(struct arena *a, const char *path)
{
    size_t n = strlen(path);
    int absolute = path[0] == '/';
    /* Components as (start, len) pairs on a stack. */
    const char **comp = arena_alloc(a, (n / 2 + 2) * sizeof *comp);
    size_t *clen = arena_alloc(a, (n / 2 + 2) * sizeof *clen);
    size_t k = 0;
    for (const char *p = path; *p;) {
        while (*p == '/') p++;
        if (!*p) break;
        const char *s = p;
        while (*p && *p != '/') p++;
        size_t l = (size_t)(p - s);
        if (l == 1 && s[0] == '.') continue;
        if (l == 2 && s[0] == '.' && s[1] == '.') {
            if (k > 0 && !(clen[k - 1] == 2 && comp[k - 1][0] == '.' && comp[k - 1][1] == '.')) {
                k--;
                continue;
            }
            if (absolute) continue; /* "/.." is "/" */
        }
        comp[k] = s;
        clen[k] = l;
        k++;
    }
    char *out = arena_alloc(a, n + 2);
    char *o = out;
    if (absolute) *o++ = '/';
    for (size_t i = 0; i < k; i++) {
        if (i) *o++ = '/';
        memcpy(o, comp[i], clen[i]);
        o += clen[i];
    }
    if (o == out) *o++ = '.';
    *o = '\0';
    return out;
}

char *path_join(struct arena *a, const char *dir, const char *rel)
{
    if (rel[0] == '/' || !dir || !dir[0]) return path_normalize(a, rel);
    return path_normalize(a, arena_printf(a, "%s/%s", dir, rel));
}

char *path_dirname(struct arena *a, const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) return arena_strdup(a, ".");
    if (slash == path) return arena_strdup(a, "/");
    return path_normalize(a, arena_strndup(a, path, (size_t)(slash - path)));
}

char *path_stem(struct arena *a, const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    size_t n = dot && dot != base ? (size_t)(dot - base) : strlen(base);
    return arena_strndup(a, base, n);
}

bool path_mkdirs(const char *path)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        errno = ENAMETOOLONG;
        return false;
    }
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0777) && errno != EEXIST) return false;
            *p = '/';
        }
    if (mkdir(buf, 0777) && errno != EEXIST) return false;
    struct stat st;
    if (stat(buf, &st)) return false;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return false;
    }
    return true;
}

char *path_read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *text = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? 2 * cap : 8192;
            char *grown = realloc(text, cap);
            if (!grown) {
                free(text);
                fclose(f);
                errno = ENOMEM;
                return NULL;
            }
            text = grown;
        }
        size_t got = fread(text + len, 1, 4096, f);
        len += got;
        if (got < 4096) break;
    }
    bool bad = ferror(f) != 0;
    fclose(f);
    if (bad) {
        free(text);
        errno = EIO;
        return NULL;
    }
    text[len] = 0;
    return text;
}

bool path_cache_dir(const char *sub, char *buf, size_t size)
{
    const char *dir = getenv("RUNNER_CACHE_DIR"), *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    const char *tail = sub ? "/" : "", *s = sub ? sub : "";
    int n;
    if (dir && *dir)
        n = snprintf(buf, size, "%s%s%s", dir, tail, s);
    else if (xdg && *xdg)
        n = snprintf(buf, size, "%s/runner%s%s", xdg, tail, s);
    else if (home && *home)
        n = snprintf(buf, size, "%s/.cache/runner%s%s", home, tail, s);
    else
        return false;
    return n > 0 && (size_t)n < size;
}
