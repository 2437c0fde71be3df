/*
 * sweep.c: a sweep's points from the command's request (files, grid or random draws), their
 * names, the sweep directory and its point files, and their validation; see sweep.h
 * (statuses and sweep.csv: sweep_status.c). Covered by tests/test_sweep.c.
 */
#include "sweep.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model.h"
#include "paths.h"
#include "rng.h"
#include "run_files.h"
#include "schema.h"
#include "spec.h"
#include "url.h"

enum { SWEEP_NAME_MAX = 200 };

/* --------------------------------------------------------------------------------------- */
/* Positions on the command line */

/* The command's arguments as one source, one per line, for messages. */
static const struct source *cmdline_source(struct arena *a, const struct sweep_request *rq)
{
    if (!rq->argv || rq->argc <= 0) return NULL;
    size_t len = 0;
    for (int i = 0; i < rq->argc; i++) len += strlen(rq->argv[i]) + 1;
    char *text = arena_alloc(a, len + 1), *o = text;
    for (int i = 0; i < rq->argc; i++) o += sprintf(o, "%s\n", rq->argv[i]);
    struct source *src = arena_alloc(a, sizeof *src);
    *src = (struct source){"<command line>", ".", text, len};
    return src;
}

/* The position of p, a pointer into one of the command's arguments ({0} when it is not). */
static struct mark arg_mark(const struct sweep_request *rq, const struct source *cl,
                            const char *p)
{
    for (int i = 0; cl && i < rq->argc; i++) {
        const char *a = rq->argv[i];
        if (p >= a && p <= a + strlen(a)) return (struct mark){cl, i + 1, (int)(p - a) + 1};
    }
    return (struct mark){0};
}

/* --------------------------------------------------------------------------------------- */
/* Keys and values */

static bool key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Whether k (n bytes) is names joined by dots, as an override's key must be. */
static bool key_ok(const char *k, size_t n)
{
    if (n == 0 || k[0] == '.' || k[n - 1] == '.') return false;
    for (size_t i = 0; i < n; i++)
        if (!(key_char(k[i]) || (k[i] == '.' && k[i + 1] != '.'))) return false;
    return true;
}

static const struct schema_key *find_key(const struct schema_section *s, const char *name,
                                         size_t n)
{
    for (size_t i = 0; i < s->nkeys; i++)
        if (strlen(s->keys[i].name) == n && strncmp(s->keys[i].name, name, n) == 0)
            return &s->keys[i];
    if (s->select == SCHEMA_SELECT_TYPE)
        for (size_t v = 0; v < s->nvariants; v++)
            for (size_t i = 0; i < s->variants[v].nkeys; i++) {
                const struct schema_key *k = &s->variants[v].keys[i];
                if (strlen(k->name) == n && strncmp(k->name, name, n) == 0) return k;
            }
    return NULL;
}

/* Whether the dotted key holds a path: a path key, a graph, or a section whose shorthand is
 * one (`model: r18.yaml`). Unknown keys are not paths (loading reports them). */
static bool key_is_path(const char *key)
{
    const struct schema_section *sec = &schema_experiment;
    const struct schema_key *k = NULL;
    for (const char *p = key;;) {
        size_t n = strcspn(p, ".");
        if (!sec || !(k = find_key(sec, p, n))) return false;
        if (!p[n]) break;
        sec = k->type == SCHEMA_SECTION ? k->section : NULL;
        p += n + 1;
    }
    if (k->type == SCHEMA_SECTION && k->section->shorthand)
        k = find_key(k->section, k->section->shorthand, strlen(k->section->shorthand));
    return k && (k->type == SCHEMA_PATH || k->type == SCHEMA_GRAPH);
}

/* Whether v is a plain YAML scalar that reads as a relative path (a URL, such as
 * model.pretrained's hf://OWNER/REPO, is none). */
static bool relative_path_value(const char *v)
{
    while (*v == ' ') v++;
    if (!*v || strchr("/{[\"'|>&*!%@`~#", v[0]) || url_has_scheme(v)) return false;
    return strcmp(v, "null") && strcmp(v, "Null") && strcmp(v, "NULL");
}

/* Characters kept in names; every other one becomes '-'. */
static bool name_char(char c)
{
    return key_char(c) || c == '.' || c == '-' || c == '+' || c == '=';
}

static char *sanitize(struct arena *a, const char *s)
{
    char *o = arena_strdup(a, s);
    for (char *p = o; *p; p++)
        if (!name_char(*p)) *p = '-';
    if (o[0] == '.' || o[0] == '-') o[0] = '_'; /* neither hidden nor option-like */
    return o;
}

static uint64_t fnv1a(const char *s, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
    return h;
}

static void hash8(const char *s, size_t n, char out[9])
{
    uint64_t h = fnv1a(s, n, 0xcbf29ce484222325ull);
    snprintf(out, 9, "%08x", (unsigned)((h ^ (h >> 32)) & 0xffffffffu));
}

/* --------------------------------------------------------------------------------------- */
/* Paths: lexical, against the current directory, as the YAML loader joins them */

static const char *absolute(struct arena *a, const char *path)
{
    if (path[0] == '/') return path_normalize(a, path);
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd)) snprintf(cwd, sizeof cwd, "/");
    return path_join(a, cwd, path);
}

/* The path of to_abs from the directory from_abs (both absolute, normalized). */
static const char *relative(struct arena *a, const char *from_abs, const char *to_abs)
{
    const char *f = from_abs, *t = to_abs;
    /* Skip the common leading components. */
    const char *fc = f, *tc = t;
    while (*f && *f == *t) {
        f++;
        t++;
        if ((*f == '/' || !*f) && (*t == '/' || !*t)) {
            fc = f;
            tc = t;
        }
    }
    if (strcmp(from_abs, "/") == 0) {
        fc = from_abs + 1;
        tc = to_abs + 1;
    }
    char *out = arena_alloc(a, 3 * strlen(from_abs) + strlen(to_abs) + 4), *o = out;
    for (const char *p = fc; *p; p++)
        if (*p == '/') o += sprintf(o, "../");
    if (*tc == '/') tc++;
    o += sprintf(o, "%s", tc);
    if (o > out && o[-1] == '/') *--o = 0;
    if (o == out) strcpy(out, ".");
    return out;
}

/* A scalar for a YAML file: as it is when plainly safe, else double-quoted. */
static void write_yaml_string(FILE *f, const char *s)
{
    bool plain = s[0] && s[0] != '-';
    for (const char *p = s; *p && plain; p++) plain = name_char(*p) || *p == '/';
    if (plain) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++)
        if (*s == '"' || *s == '\\')
            fprintf(f, "\\%c", *s);
        else
            fputc(*s, f);
    fputc('"', f);
}

/* --------------------------------------------------------------------------------------- */
/* Expansion */

struct expand {
    struct sweep *sw;
    const struct sweep_request *rq; /* what the sweep is expanded from */
    struct diag *d;
    const struct source *cl;
};

/* Key and value of "KEY=..." into the axis; reports a bad key. */
static bool parse_key(struct expand *x, const char *arg, const char *what, const char **key,
                      const char **rest)
{
    const char *eq = strchr(arg, '=');
    if (!eq || !key_ok(arg, (size_t)(eq - arg))) {
        diag_error(x->d, arg_mark(x->rq, x->cl, arg), "%s expects KEY=%s, got \"%s\"", what,
                   strcmp(what, "--grid") == 0 ? "V1,V2,..." : "[log:|int:]LO:HI", arg);
        diag_hint(x->d, strcmp(what, "--grid") == 0 ? "--grid optimizer.lr=1e-3,3e-4,1e-4"
                                                    : "--range optimizer.lr=1e-5:1e-2");
        return false;
    }
    *key = arena_strndup(&x->sw->arena, arg, (size_t)(eq - arg));
    *rest = eq + 1;
    if (strcmp(*key, "extends") == 0 || strncmp(*key, "extends.", 8) == 0) {
        diag_error(x->d, arg_mark(x->rq, x->cl, arg), "'extends' cannot be swept");
        diag_hint(x->d, "sweep over experiment files instead: runner sweep A.yaml B.yaml ...");
        return false;
    }
    return true;
}

/* Where the value after the one at p starts in a --grid list (after the next comma outside
 * brackets, braces and quotes), or the end. */
static const char *next_value(const char *p)
{
    int depth = 0;
    char quote = 0;
    for (; *p; p++) {
        if (quote) {
            if (*p == quote) quote = 0;
            else if (*p == '\\' && quote == '"' && p[1]) p++;
        } else if (*p == '"' || *p == '\'') {
            quote = *p;
        } else if (*p == '[' || *p == '{') {
            depth++;
        } else if ((*p == ']' || *p == '}') && depth > 0) {
            depth--;
        } else if (*p == ',' && depth == 0) {
            return p + 1;
        }
    }
    return p;
}

/* The values of a --grid list, without the spaces around them. */
static size_t split_values(struct arena *a, const char *v, const char ***out)
{
    size_t n = 1;
    for (const char *p = v; *p; p++) n += *p == ',';
    const char **vals = arena_alloc(a, n * sizeof *vals);
    size_t k = 0;
    for (const char *start = v;;) {
        const char *next = next_value(start);
        bool last = !*next && (next == start || next[-1] != ',');
        const char *end = last ? next : next - 1;
        while (start < end && *start == ' ') start++;
        while (end > start && end[-1] == ' ') end--;
        vals[k++] = arena_strndup(a, start, (size_t)(end - start));
        if (last) break;
        start = next;
    }
    *out = vals;
    return k;
}

static bool parse_grid(struct expand *x, const char *arg, struct sweep_axis *ax)
{
    const char *vals;
    if (!parse_key(x, arg, "--grid", &ax->key, &vals)) return false;
    ax->nvalues = split_values(&x->sw->arena, vals, &ax->values);
    const char *at = vals; /* where value i starts, for messages */
    for (size_t i = 0; i < ax->nvalues; i++) {
        const char *v = ax->values[i];
        if (i) at = next_value(at);
        if (!*v) {
            diag_error(x->d, arg_mark(x->rq, x->cl, at), "--grid %s: value %zu is empty",
                       ax->key, i + 1);
            diag_hint(x->d, "values are separated by commas: %s=1e-3,3e-4", ax->key);
            return false;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(ax->values[j], v) == 0) {
                diag_error(x->d, arg_mark(x->rq, x->cl, at), "--grid %s: value '%s' given twice",
                           ax->key, v);
                return false;
            }
    }
    return true;
}

/* A number of a --range; false when s is not one. */
static bool range_number(const char *s, size_t n, bool integer, double *out)
{
    char buf[64], *end;
    if (n == 0 || n >= sizeof buf) return false;
    memcpy(buf, s, n);
    buf[n] = 0;
    errno = 0;
    if (integer) {
        long long v = strtoll(buf, &end, 10);
        *out = (double)v;
    } else {
        *out = strtod(buf, &end);
    }
    return !*end && !errno && isfinite(*out);
}

static bool parse_range(struct expand *x, const char *arg, struct sweep_axis *ax)
{
    const char *spec;
    if (!parse_key(x, arg, "--range", &ax->key, &spec)) return false;
    const char *label = strrchr(ax->key, '.');
    label = label ? label + 1 : ax->key;
    size_t ll = strlen(label);
    bool lr = strcmp(label, "lr") == 0 || (ll > 3 && strcmp(label + ll - 3, "_lr") == 0);
    ax->kind = lr ? SWEEP_RANGE_LOG : SWEEP_RANGE_UNIFORM;
    const char *p = spec;
    if (strncmp(p, "log:", 4) == 0) {
        ax->kind = SWEEP_RANGE_LOG;
        p += 4;
    } else if (strncmp(p, "int:", 4) == 0) {
        ax->kind = SWEEP_RANGE_INT;
        p += 4;
    } else if (strncmp(p, "uniform:", 8) == 0) {
        ax->kind = SWEEP_RANGE_UNIFORM;
        p += 8;
    }
    const char *colon = strchr(p, ':');
    bool integer = ax->kind == SWEEP_RANGE_INT;
    if (!colon || !range_number(p, (size_t)(colon - p), integer, &ax->lo) ||
        !range_number(colon + 1, strlen(colon + 1), integer, &ax->hi)) {
        diag_error(x->d, arg_mark(x->rq, x->cl, spec),
                   "--range %s: expected [log:|int:|uniform:]LO:HI with %s bounds, got \"%s\"",
                   ax->key, integer ? "whole-number" : "numeric", spec);
        diag_hint(x->d, "--range optimizer.lr=1e-5:1e-2  --range train.batch_size=int:16:256");
        return false;
    }
    if (!(ax->lo < ax->hi) || (ax->kind == SWEEP_RANGE_LOG && ax->lo <= 0)) {
        diag_error(x->d, arg_mark(x->rq, x->cl, p), "--range %s: %s", ax->key,
                   ax->lo < ax->hi ? "a log-uniform range needs LO > 0" : "LO must be below HI");
        return false;
    }
    return true;
}

/* Value `point` of a random axis, as text: %.3g (in the range), or an integer. */
static const char *draw(struct arena *a, const struct sweep_axis *ax, uint64_t seed, long point)
{
    uint64_t key = rng_bits(seed, fnv1a(ax->key, strlen(ax->key), 0xcbf29ce484222325ull));
    double u = rng_uniform(key, (uint64_t)point), v;
    switch (ax->kind) {
    case SWEEP_RANGE_INT:
        v = ax->lo + floor(u * (ax->hi - ax->lo + 1));
        return arena_printf(a, "%lld", (long long)(v > ax->hi ? ax->hi : v));
    case SWEEP_RANGE_LOG: v = exp(log(ax->lo) + u * (log(ax->hi) - log(ax->lo))); break;
    default: v = ax->lo + u * (ax->hi - ax->lo); break;
    }
    for (int prec = 3; prec <= 17; prec++) {
        char *t = arena_printf(a, "%.*g", prec, v);
        double back = strtod(t, NULL);
        if (back >= ax->lo && back <= ax->hi) return t;
    }
    return arena_printf(a, "%.17g", v);
}

/* Labels: each key's last component, or the whole key where two share it. */
static void set_labels(struct sweep *sw)
{
    for (size_t i = 0; i < sw->naxes; i++) {
        const char *dot = strrchr(sw->axes[i].key, '.');
        sw->axes[i].label = dot ? dot + 1 : sw->axes[i].key;
    }
    for (size_t i = 0; i < sw->naxes; i++)
        for (size_t j = 0; j < sw->naxes; j++) {
            const char *a = strrchr(sw->axes[i].key, '.'), *b = strrchr(sw->axes[j].key, '.');
            a = a ? a + 1 : sw->axes[i].key;
            b = b ? b + 1 : sw->axes[j].key;
            if (i != j && strcmp(a, b) == 0) sw->axes[i].label = sw->axes[i].key;
        }
}

/* Refuses a key given twice, or inside another given whole (optimizer and optimizer.lr). */
static bool keys_distinct(struct expand *x, const char *const *keys, const char *const *args,
                          size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < i; j++) {
            size_t li = strlen(keys[i]), lj = strlen(keys[j]), m = li < lj ? li : lj;
            const char *longer = li > lj ? keys[i] : keys[j];
            if (strncmp(keys[i], keys[j], m) || (li != lj && longer[m] != '.')) continue;
            if (li == lj)
                diag_error(x->d, arg_mark(x->rq, x->cl, args[i]), "'%s' is given twice",
                           keys[i]);
            else
                diag_error(x->d, arg_mark(x->rq, x->cl, args[i]),
                           "'%s' is inside '%s', which is also given", li > lj ? keys[i] : keys[j],
                           li > lj ? keys[j] : keys[i]);
            diag_hint(x->d, "a key is swept or set once per sweep");
            return false;
        }
    return true;
}

/* A value as a name shows it: a path or URL by its file's stem (models/resnet18.yaml and
 * hf://timm/resnet18.tv_in1k: resnet18) where that tells the axis's values apart, anything
 * else as typed. */
static const char *shown_value(struct sweep *sw, const struct sweep_axis *ax, const char *v)
{
    if (!ax->path || !(relative_path_value(v) || url_has_scheme(v))) return v;
    const char *stem = path_stem(&sw->arena, v);
    for (size_t j = 0; j < ax->nvalues; j++)
        if (strcmp(ax->values[j], v) && strcmp(path_stem(&sw->arena, ax->values[j]), stem) == 0)
            return v;
    return stem[0] ? stem : v;
}

/* The point's name from its values; made unique among the first i points. */
static const char *point_name(struct sweep *sw, size_t i, const char **values)
{
    struct arena *a = &sw->arena;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) abort();
    if (sw->mode == SWEEP_RANDOM) {
        int width = 3;
        for (size_t n = sw->npoints; n > 1000; n /= 10) width++;
        fprintf(f, "r%0*zu", width, i);
    }
    for (size_t k = 0; k < sw->naxes; k++)
        fprintf(f, "%s%s=%s", k || sw->mode == SWEEP_RANDOM ? "_" : "", sw->axes[k].label,
                shown_value(sw, &sw->axes[k], values[k]));
    fclose(f);
    char *name = sanitize(a, text);
    if (strlen(name) > SWEEP_NAME_MAX) {
        char h[9];
        hash8(text, len, h);
        name[SWEEP_NAME_MAX - 9] = 0;
        name = arena_printf(a, "%s-%s", name, h);
    }
    free(text);
    const char *unique = name;
    for (int n = 2;; n++) {
        bool taken = false;
        for (size_t j = 0; j < i && !taken; j++) taken = strcmp(sw->points[j].name, unique) == 0;
        if (!taken) return unique;
        unique = arena_printf(a, "%s-%d", name, n);
    }
}

struct entry {
    const char *key, *value;
};

/* What every point file of a grid or random sweep shares, computed once per sweep. */
struct point_files {
    const char *dir;      /* the sweep directory, absolute */
    const char *base_dir; /* the base experiment's folder, absolute */
    struct entry *fixed;  /* the fixed key=value settings as point files write them */
};

/* The point file's value for key: v, or a relative path rewritten to name the same file
 * from the sweep directory (a key=value is relative to the base experiment's folder). */
static const char *file_value(struct sweep *sw, const struct point_files *pf, const char *v,
                              bool path)
{
    if (!path || !relative_path_value(v)) return v;
    struct arena *a = &sw->arena;
    while (*v == ' ') v++;
    const char *to = path_join(a, pf->base_dir, v);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) abort();
    write_yaml_string(f, relative(a, pf->dir, to));
    fclose(f);
    const char *out = arena_strdup(a, text);
    free(text);
    return out;
}

/* The fixed key=value settings as entries of a point file. */
static struct entry *fixed_entries(struct sweep *sw, const struct point_files *pf)
{
    struct arena *a = &sw->arena;
    struct entry *e = arena_alloc(a, (sw->nfixed + 1) * sizeof *e);
    for (size_t k = 0; k < sw->nfixed; k++) {
        const char *eq = strchr(sw->fixed[k], '=');
        const char *key = arena_strndup(a, sw->fixed[k], (size_t)(eq - sw->fixed[k]));
        e[k] = (struct entry){key, file_value(sw, pf, eq + 1, key_is_path(key))};
    }
    return e;
}

/* Entries (their keys from offset off[i]) as nested block mappings. Keys are distinct and
 * none is inside another (keys_distinct), so a component is a leaf or a mapping throughout. */
static void write_level(FILE *f, const struct entry *e, size_t *idx, size_t n, size_t *off,
                        int indent)
{
    bool *done = calloc(n ? n : 1, sizeof *done);
    size_t *sub = malloc((n ? n : 1) * sizeof *sub);
    if (!done || !sub) abort();
    for (size_t i = 0; i < n; i++) {
        if (done[i]) continue;
        const char *k = e[idx[i]].key + off[idx[i]];
        size_t seg = strcspn(k, ".");
        if (!k[seg]) {
            fprintf(f, "%*s%s: %s\n", indent, "", k, e[idx[i]].value);
            continue;
        }
        fprintf(f, "%*s%.*s:\n", indent, "", (int)seg, k);
        size_t m = 0;
        for (size_t j = i; j < n; j++) {
            const char *kj = e[idx[j]].key + off[idx[j]];
            if (!done[j] && strncmp(kj, k, seg) == 0 && kj[seg] == '.') {
                done[j] = true;
                off[idx[j]] += seg + 1;
                sub[m++] = idx[j];
            }
        }
        write_level(f, e, sub, m, off, indent + 2);
    }
    free(done);
    free(sub);
}

/* The text of a point file: extends, then the point's values and the fixed ones. */
static char *point_text(struct sweep *sw, const struct point_files *pf,
                        const struct sweep_point *p)
{
    struct arena *a = &sw->arena;
    size_t n = sw->naxes + sw->nfixed;
    struct entry *e = arena_alloc(a, (n + 1) * sizeof *e);
    size_t *idx = arena_alloc(a, (n + 1) * sizeof *idx);
    size_t *off = arena_alloc(a, (n + 1) * sizeof *off);
    for (size_t k = 0; k < sw->naxes; k++)
        e[k] = (struct entry){sw->axes[k].key,
                              file_value(sw, pf, p->values[k], sw->axes[k].path)};
    for (size_t k = 0; k < sw->nfixed; k++) e[sw->naxes + k] = pf->fixed[k];
    for (size_t k = 0; k < n; k++) idx[k] = k;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) abort();
    fprintf(f, "# Point %s of a sweep: `runner sweep` writes this file (edits are replaced).\n",
            p->name);
    fputs("extends: ", f);
    write_yaml_string(f, sw->extends);
    fputc('\n', f);
    write_level(f, e, idx, n, off, 0);
    fclose(f);
    return text;
}

/* The sweep directory's default name for files: their stems' common start (without the
 * separators it ends in), else their common folder's name, else "files". */
static const char *files_slug(struct sweep *sw, const char *const *files, size_t n)
{
    struct arena *a = &sw->arena;
    const char *first = path_stem(a, files[0]);
    size_t common = strlen(first);
    for (size_t i = 1; i < n; i++) {
        const char *s = path_stem(a, files[i]);
        size_t k = 0;
        while (k < common && s[k] == first[k]) k++;
        common = k;
    }
    while (common > 0 && strchr("_-=.+", first[common - 1])) common--;
    if (common >= 2) return arena_strndup(a, first, common);
    const char *dir = path_dirname(a, absolute(a, files[0]));
    for (size_t i = 1; i < n; i++)
        if (strcmp(path_dirname(a, absolute(a, files[i])), dir)) return "files";
    const char *base = strrchr(dir, '/');
    return base && base[1] ? base + 1 : "files";
}

/* The request as one text: what makes two requests the same sweep. */
static void canonical(const struct sweep *sw, const struct sweep_request *rq, char *hash)
{
    struct arena tmp = {0};
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) abort();
    static const char *const modes[] = {"files", "grid", "random"};
    fprintf(f, "runner sweep\x1fmode %s\n", modes[rq->mode]);
    for (size_t i = 0; i < rq->nfiles; i++)
        fprintf(f, "file %s\n", path_normalize(&tmp, rq->files[i]));
    for (size_t i = 0; i < sw->naxes; i++) {
        const struct sweep_axis *ax = &sw->axes[i];
        fprintf(f, "axis %s", ax->key);
        if (rq->mode == SWEEP_GRID)
            for (size_t j = 0; j < ax->nvalues; j++) fprintf(f, "\x1f%s", ax->values[j]);
        else
            fprintf(f, "\x1f%d\x1f%.17g\x1f%.17g", (int)ax->kind, ax->lo, ax->hi);
        fputc('\n', f);
    }
    if (rq->mode == SWEEP_RANDOM)
        fprintf(f, "random %ld seed %llu\n", rq->npoints, (unsigned long long)rq->seed);
    for (size_t i = 0; i < rq->nfixed; i++) fprintf(f, "fixed %s\n", rq->fixed[i]);
    fclose(f);
    hash8(text, len, hash);
    free(text);
    arena_free(&tmp);
}

static void set_paths(struct sweep *sw, struct sweep_point *p)
{
    struct arena *a = &sw->arena;
    if (!p->file) p->file = arena_printf(a, "%s/%s.yaml", sw->dir, p->name);
    p->run_dir = arena_printf(a, "%s/runs/%s", sw->dir, p->name);
    p->log = arena_printf(a, "%s/logs/%s.log", sw->dir, p->name);
}

static enum status expand_files(struct expand *x)
{
    struct sweep *sw = x->sw;
    const struct sweep_request *rq = x->rq;
    sw->npoints = rq->nfiles;
    sw->points = arena_alloc(&sw->arena, rq->nfiles * sizeof *sw->points);
    for (size_t i = 0; i < rq->nfiles; i++) {
        struct sweep_point *p = &sw->points[i];
        p->name = sanitize(&sw->arena, path_stem(&sw->arena, rq->files[i]));
        p->file = rq->files[i];
        for (size_t j = 0; j < i; j++)
            if (strcmp(sw->points[j].name, p->name) == 0) {
                diag_error(x->d, arg_mark(rq, x->cl, rq->files[i]),
                           "'%s' and '%s' would both be point '%s'", sw->points[j].file,
                           rq->files[i], p->name);
                diag_hint(x->d, "a point is named by its file's name; rename one of them");
                return STATUS_CONFIG;
            }
    }
    return STATUS_OK;
}

static enum status expand_axes(struct expand *x)
{
    struct sweep *sw = x->sw;
    const struct sweep_request *rq = x->rq;
    struct arena *a = &sw->arena;
    bool grid = rq->mode == SWEEP_GRID;
    sw->naxes = grid ? rq->ngrid : rq->nranges;
    sw->axes = arena_alloc(a, (sw->naxes + 1) * sizeof *sw->axes);
    size_t total = 1;
    for (size_t i = 0; i < sw->naxes; i++) {
        struct sweep_axis *ax = &sw->axes[i];
        if (grid ? !parse_grid(x, rq->grid[i], ax) : !parse_range(x, rq->ranges[i], ax))
            return STATUS_CONFIG;
        ax->path = key_is_path(ax->key);
        total = grid ? total * ax->nvalues : total;
        if (total > SWEEP_MAX_POINTS) {
            diag_error(x->d, arg_mark(rq, x->cl, rq->grid[i]), "the grid has more than %d points",
                       SWEEP_MAX_POINTS);
            return STATUS_CONFIG;
        }
    }
    /* Every key once: swept keys, then the fixed ones. */
    size_t nk = sw->naxes + rq->nfixed;
    const char **keys = arena_alloc(a, (nk + 1) * sizeof *keys);
    const char **args = arena_alloc(a, (nk + 1) * sizeof *args);
    for (size_t i = 0; i < sw->naxes; i++) {
        keys[i] = sw->axes[i].key;
        args[i] = grid ? rq->grid[i] : rq->ranges[i];
    }
    for (size_t i = 0; i < rq->nfixed; i++) {
        const char *eq = strchr(rq->fixed[i], '=');
        if (!eq || !key_ok(rq->fixed[i], (size_t)(eq - rq->fixed[i]))) {
            diag_error(x->d, arg_mark(rq, x->cl, rq->fixed[i]), "expected KEY=VALUE, got \"%s\"",
                       rq->fixed[i]);
            return STATUS_CONFIG;
        }
        keys[sw->naxes + i] = arena_strndup(a, rq->fixed[i], (size_t)(eq - rq->fixed[i]));
        args[sw->naxes + i] = rq->fixed[i];
        if (strcmp(keys[sw->naxes + i], "extends") == 0) {
            diag_error(x->d, arg_mark(rq, x->cl, rq->fixed[i]),
                       "'extends' cannot be overridden on the command line");
            return STATUS_CONFIG;
        }
    }
    if (!keys_distinct(x, keys, args, nk)) return STATUS_CONFIG;
    set_labels(sw);
    sw->npoints = grid ? total : (size_t)rq->npoints;
    sw->points = arena_alloc(a, sw->npoints * sizeof *sw->points);
    for (size_t i = 0; i < sw->npoints; i++) {
        struct sweep_point *p = &sw->points[i];
        p->values = arena_alloc(a, (sw->naxes + 1) * sizeof *p->values);
        /* Grid: the last axis varies fastest. */
        size_t rest = i;
        for (size_t k = sw->naxes; k-- > 0;) {
            const struct sweep_axis *ax = &sw->axes[k];
            if (grid) {
                p->values[k] = ax->values[rest % ax->nvalues];
                rest /= ax->nvalues;
            } else {
                p->values[k] = draw(a, ax, rq->seed, (long)i);
            }
        }
        p->name = point_name(sw, i, p->values);
    }
    return STATUS_OK;
}

enum status sweep_expand(const struct sweep_request *rq, struct diag *d, struct sweep **out)
{
    *out = NULL;
    struct sweep *sw = calloc(1, sizeof *sw);
    if (!sw) return STATUS_RUNTIME;
    sw->mode = rq->mode;
    sw->fixed = rq->fixed;
    sw->nfixed = rq->nfixed;
    struct expand x = {sw, rq, d, cmdline_source(&sw->arena, rq)};
    enum status st = STATUS_OK;
    if (rq->nfiles == 0 || (rq->mode != SWEEP_FILES && rq->nfiles != 1)) {
        diag_error(d, (struct mark){0}, "%s", rq->nfiles ? "--grid and --random sweep one base "
                                                           "experiment; several files were given"
                                                         : "no experiment file given");
        st = STATUS_CONFIG;
    } else if (rq->mode == SWEEP_RANDOM && (rq->npoints < 1 || rq->npoints > SWEEP_MAX_POINTS)) {
        diag_error(d, (struct mark){0}, "--random takes 1 to %d points", SWEEP_MAX_POINTS);
        st = STATUS_CONFIG;
    } else if (rq->mode != SWEEP_FILES) {
        sw->base = rq->files[0];
        st = expand_axes(&x);
    } else {
        st = expand_files(&x);
    }
    if (st) {
        sweep_free(sw);
        return st;
    }
    if (rq->out) {
        sw->dir = path_normalize(&sw->arena, rq->out);
    } else {
        char hash[9]; /* of the request's canonical text */
        canonical(sw, rq, hash);
        char *slug = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&slug, &len);
        if (!f) abort();
        if (rq->mode == SWEEP_FILES) {
            fputs(files_slug(sw, rq->files, rq->nfiles), f);
        } else {
            fputs(path_stem(&sw->arena, sw->base), f);
            for (size_t i = 0; i < sw->naxes; i++) fprintf(f, "-%s", sw->axes[i].label);
            if (rq->mode == SWEEP_RANDOM)
                fprintf(f, "-random%ld-seed%llu", rq->npoints, (unsigned long long)rq->seed);
        }
        fclose(f);
        sw->dir = arena_printf(&sw->arena, "results/sweeps/%s-%s", sanitize(&sw->arena, slug),
                               hash);
        free(slug);
    }
    struct point_files pf = {0};
    if (sw->base) { /* grid and random */
        const char *base = absolute(&sw->arena, sw->base);
        pf.dir = absolute(&sw->arena, sw->dir);
        pf.base_dir = path_dirname(&sw->arena, base);
        sw->extends = relative(&sw->arena, pf.dir, base);
        pf.fixed = fixed_entries(sw, &pf);
    }
    for (size_t i = 0; i < sw->npoints; i++) {
        set_paths(sw, &sw->points[i]);
        if (rq->mode != SWEEP_FILES) sw->points[i].text = point_text(sw, &pf, &sw->points[i]);
    }
    *out = sw;
    return STATUS_OK;
}

void sweep_free(struct sweep *sw)
{
    if (!sw) return;
    for (size_t i = 0; i < sw->npoints; i++) free(sw->points[i].text);
    arena_free(&sw->arena);
    free(sw);
}

/* --------------------------------------------------------------------------------------- */
/* Validation */


/* Whether point p's file (loaded as ps) resolves as the base with the point's overrides. */
static enum status same_as_command(struct sweep *sw, const struct sweep_point *p,
                                   struct spec *ps, struct diag *d)
{
    struct arena *a = &sw->arena;
    size_t n = sw->naxes + sw->nfixed;
    const char **ov = arena_alloc(a, (n + 1) * sizeof *ov);
    for (size_t k = 0; k < sw->naxes; k++)
        ov[k] = arena_printf(a, "%s=%s", sw->axes[k].key, p->values[k]);
    for (size_t k = 0; k < sw->nfixed; k++) ov[sw->naxes + k] = sw->fixed[k];
    /* The base as the point file reaches it, so that paths resolve to the same spelling. */
    const char *base = path_join(a, path_dirname(a, p->file), sw->extends);
    struct diag quiet = {.out = NULL};
    struct spec *cs;
    struct mark m = {ps->file, 0, 0};
    if (spec_load(base, ov, n, &quiet, &cs)) {
        diag_error(d, m, "point %s: %s with these overrides does not load", p->name, sw->base);
        diag_hint(d, "runner check %s with the point's key=value overrides shows why", sw->base);
        return STATUS_CONFIG;
    }
    cs->name = ps->name;
    char *want = spec_yaml_text(cs), *got = spec_yaml_text(ps);
    enum status st = STATUS_OK;
    if (strcmp(want, got)) {
        const char *w = want, *g = got;
        int line = 1;
        while (*w && *w == *g) {
            line += *w++ == '\n';
            g++;
        }
        while (w > want && w[-1] != '\n') {
            w--;
            g--;
        }
        diag_error(d, m,
                   "point %s does not resolve as %s with its overrides: line %d of the resolved "
                   "configuration is \"%.*s\", not \"%.*s\"",
                   p->name, sw->base, line, (int)strcspn(g, "\n"), g, (int)strcspn(w, "\n"), w);
        diag_hint(d, "quote the value so that it reads the same in a YAML file, or set the key "
                     "in the base experiment");
        st = STATUS_CONFIG;
    }
    free(want);
    free(got);
    spec_free(cs);
    return st;
}

enum status sweep_validate(struct sweep *sw, struct diag *d)
{
    struct spec *s;
    if (sw->mode != SWEEP_FILES) { /* the base's own errors once, not once per point */
        if (spec_load(sw->base, NULL, 0, d, &s)) return STATUS_CONFIG;
        spec_free(s);
    }
    size_t bad = 0;
    for (size_t i = 0; i < sw->npoints; i++) {
        struct sweep_point *p = &sw->points[i];
        enum status st = p->text ? spec_load_text(p->file, p->text, strlen(p->text), NULL, 0, d, &s)
                                 : spec_load(p->file, sw->fixed, sw->nfixed, d, &s);
        if (!st) {
            struct graph *g;
            st = model_build(s, d, &g);
            if (!st) graph_free(g);
            if (!st && p->text) st = same_as_command(sw, p, s, d);
            p->threads = s->train.threads;
            p->workers = s->data.workers;
            p->device = s->device;
            p->tensorboard = s->tensorboard;
            spec_free(s);
        }
        if (st == STATUS_RUNTIME) return st;
        if (st && ++bad == 3 && i + 1 < sw->npoints) {
            fprintf(d->out ? d->out : stderr, "(the other %zu points were not checked)\n",
                    sw->npoints - i - 1);
            break;
        }
    }
    return bad ? STATUS_CONFIG : STATUS_OK;
}

/* --------------------------------------------------------------------------------------- */
/* Files */

enum status sweep_write_files(const struct sweep *sw, struct diag *d)
{
    struct arena a = {0};
    enum status st = STATUS_OK;
    if (run_files_mkdirs(sw->dir, d) || run_files_mkdirs(arena_printf(&a, "%s/logs", sw->dir), d) ||
        run_files_mkdirs(arena_printf(&a, "%s/runs", sw->dir), d))
        st = STATUS_RUNTIME;
    for (size_t i = 0; i < sw->npoints && !st; i++) {
        const struct sweep_point *p = &sw->points[i];
        if (!p->text) continue;
        char *was = path_read_text(p->file);
        bool same = was && strcmp(was, p->text) == 0;
        free(was);
        if (same) continue;
        const char *name = arena_printf(&a, "%s.yaml", p->name);
        FILE *f = run_files_begin(sw->dir, name, d);
        if (!f) {
            st = STATUS_RUNTIME;
            break;
        }
        fputs(p->text, f);
        st = run_files_end(f, sw->dir, name, d);
    }
    arena_free(&a);
    return st;
}
