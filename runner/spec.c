/*
 * spec.c: loading an experiment: the extends chain, command-line overrides, then validation
 * (validate.c). See spec.h; covered by tests/test_spec.c and tests/bad_yaml/.
 */
#include "spec.h"

#include <errno.h>

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "paths.h"
#include "schema.h"
#include "validate.h"
#include "yaml_load.h"

#ifndef RUNNER_HOOKS_DIR
#define RUNNER_HOOKS_DIR NULL
#endif

enum { SPEC_MAX_EXTENDS = 32 };

/* The files of an extends chain, child first, for cycle detection and messages. */
struct chain {
    const char *real; /* canonical path */
    const char *name; /* as shown */
    const struct chain *next;
};

const char *spec_hooks_dir(void)
{
    const char *env = getenv("RUNNER_HOOKS_DIR");
    return env && env[0] ? env : RUNNER_HOOKS_DIR;
}

/*
 * Merges the chain that starts with (src, root): the parent named by `extends:` first, then
 * this file on top. `chain` holds the files that extend this one.
 */
/*
 * Writes every section given by its shorthand in its long form, in place: `model: r18.yaml`
 * becomes `model: {graph: r18.yaml}`, so that merging a file or an override such as
 * model.pretrained=W over it adds to the section instead of replacing it.
 */
static void expand_shorthands(struct arena *a, struct node *root)
{
    const struct schema_section *top = &schema_experiment;
    for (size_t i = 0; i < top->nkeys; i++) {
        const struct schema_key *k = &top->keys[i];
        struct node *key, *v = node_map_get(root, k->name, &key);
        if (!v || k->type != SCHEMA_SECTION || !k->section->shorthand ||
            v->kind != NODE_SCALAR || node_is_null(v))
            continue;
        /* The new key stands where the section's key was written: errors about a file the
         * shorthand names still point at the key that names it. */
        struct node *m = node_map(a, v->mark);
        node_map_set(a, m, node_scalar(a, key->mark, k->section->shorthand, true), v);
        node_map_set(a, root, key, m);
    }
}

static enum status merge_chain(struct spec *s, struct diag *d, const struct source *src,
                               struct node *root, const struct chain *chain, int depth,
                               struct node **out)
{
    struct node *key;
    if (root->kind == NODE_MAP) expand_shorthands(&s->arena, root);
    struct node *ext = node_map_get(root, "extends", &key);
    if (!ext || node_is_null(ext)) {
        *out = root;
        return STATUS_OK;
    }
    if (ext->kind != NODE_SCALAR || ext->len == 0 || strlen(ext->text) != ext->len) {
        diag_error(d, ext->mark, "'extends' must be the path of a base experiment, got %s",
                   node_describe(&s->arena, ext));
        return STATUS_CONFIG;
    }
    const char *parent = path_join(&s->arena, src->dir, ext->text);
    char real[PATH_MAX];
    if (realpath(parent, real)) {
        for (const struct chain *c = chain; c; c = c->next)
            if (strcmp(c->real, real) == 0) {
                /* Spell the cycle out: the file extended again, down to this one, then it. */
                char msg[2048];
                size_t used = 0;
                const struct chain *names[SPEC_MAX_EXTENDS + 2];
                size_t k = 0;
                for (const struct chain *e = chain; e && k < ARRAY_LEN(names); e = e->next) {
                    names[k++] = e;
                    if (e == c) break;
                }
                msg[0] = '\0';
                while (k-- > 0 && used < sizeof msg)
                    used += (size_t)snprintf(msg + used, sizeof msg - used, "%s -> ",
                                             names[k]->name);
                if (used < sizeof msg)
                    snprintf(msg + used, sizeof msg - used, "%s", path_normalize(&s->arena, parent));
                diag_error(d, key->mark, "extends cycle: %s", msg);
                diag_hint(d, "a file cannot build on itself, directly or through others");
                return STATUS_CONFIG;
            }
    }
    if (depth >= SPEC_MAX_EXTENDS) {
        diag_error(d, key->mark, "more than %d files in the extends chain", SPEC_MAX_EXTENDS);
        return STATUS_CONFIG;
    }
    struct source *psrc;
    struct node *proot, *merged;
    enum status st = yaml_load_file(&s->arena, d, parent, key->mark, &psrc, &proot);
    if (st) return st;
    const char *preal = realpath(parent, real) ? arena_strdup(&s->arena, real) : psrc->name;
    struct chain link = {preal, psrc->name, chain};
    st = merge_chain(s, d, psrc, proot, &link, depth + 1, &merged);
    if (st) return st;
    if (depth == 0) s->extends = psrc->name;
    *out = node_merge(&s->arena, node_map_without(&s->arena, merged, "extends"),
                      node_map_without(&s->arena, root, "extends"));
    return STATUS_OK;
}

static bool key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Applies "a.b.c=value" (line `line` of src) to *tree as if written in the experiment file. */
static enum status apply_override(struct spec *s, struct diag *d, const struct source *src,
                                  int line, const char *text, struct node **tree)
{
    struct arena *a = &s->arena;
    const char *eq = strchr(text, '=');
    if (!eq || eq == text) {
        diag_error(d, (struct mark){src, line, 1}, "expected KEY=VALUE, got \"%s\"", text);
        diag_hint(d, "override a key of the experiment like this: optimizer.lr=3e-4");
        return STATUS_CONFIG;
    }
    if (strchr(text, '\n')) {
        diag_error(d, (struct mark){src, line, (int)(strchr(text, '\n') - text) + 1},
                   "an override must be on one line");
        return STATUS_CONFIG;
    }
    /* Split the key at dots; every segment must be a plain key. */
    struct mark marks[YAML_MAX_DEPTH];
    const char *segs[YAML_MAX_DEPTH];
    size_t lens[YAML_MAX_DEPTH], n = 0;
    for (const char *p = text;;) {
        const char *q = p;
        while (q < eq && *q != '.') q++;
        struct mark m = {src, line, (int)(p - text) + 1};
        bool ok = q > p;
        for (const char *c = p; ok && c < q; c++) ok = key_char(*c);
        if (!ok || n == YAML_MAX_DEPTH) {
            diag_error(d, m, "invalid key in override: \"%.*s\"", (int)(eq - text), text);
            diag_hint(d, "keys are names joined by dots, like optimizer.lr or train.epochs");
            return STATUS_CONFIG;
        }
        marks[n] = m;
        segs[n] = p;
        lens[n++] = (size_t)(q - p);
        if (q == eq) break;
        p = q + 1;
    }
    if (lens[0] == 7 && strncmp(segs[0], "extends", 7) == 0) {
        diag_error(d, marks[0], "'extends' cannot be overridden on the command line");
        diag_hint(d, "write a new experiment file with 'extends:' instead");
        return STATUS_CONFIG;
    }
    struct node *value;
    int col = (int)(eq - text) + 2;
    enum status st = yaml_load_text(a, d, src, eq + 1, strlen(eq + 1), line, col, &value);
    if (st) return st;
    for (size_t i = n; i-- > 0;) {
        struct node *m = node_map(a, marks[i]);
        node_map_set(a, m, node_scalar(a, marks[i], arena_strndup(a, segs[i], lens[i]), true),
                     value);
        value = m;
    }
    expand_shorthands(a, value);
    *tree = node_merge(a, *tree, value);
    return STATUS_OK;
}

static enum status load(struct spec *s, struct source *src, struct node *root,
                        const char *const *overrides, size_t n, struct diag *d)
{
    s->file = src;
    char real[PATH_MAX];
    struct chain self = {realpath(src->name, real) ? arena_strdup(&s->arena, real) : src->name,
                         src->name, NULL};
    struct node *tree;
    enum status st = merge_chain(s, d, src, root, &self, 0, &tree);
    if (st) return st;
    if (n) {
        /* All overrides form one source, one per line, anchored in the experiment's folder. */
        struct source *cl = arena_alloc(&s->arena, sizeof *cl);
        size_t len = 0;
        for (size_t i = 0; i < n; i++) len += strlen(overrides[i]) + 1;
        char *text = arena_alloc(&s->arena, len + 1), *o = text;
        for (size_t i = 0; i < n; i++) o += sprintf(o, "%s\n", overrides[i]);
        cl->name = "<command line>";
        cl->dir = src->dir;
        cl->text = text;
        cl->len = len;
        for (size_t i = 0; i < n; i++) {
            st = apply_override(s, d, cl, (int)i + 1, overrides[i], &tree);
            if (st) return st;
        }
    }
    s->root = tree;
    st = validate_experiment(s, d, spec_hooks_dir());
    if (st) return st;
    if (!s->name) s->name = path_stem(&s->arena, src->name);
    return STATUS_OK;
}

static enum status finish(struct spec *s, enum status st, struct spec **out)
{
    if (st) {
        spec_free(s);
        *out = NULL;
        return st;
    }
    *out = s;
    return STATUS_OK;
}

enum status spec_load(const char *path, const char *const *overrides, size_t n, struct diag *d,
                      struct spec **out)
{
    struct spec *s = calloc(1, sizeof *s);
    if (!s) return STATUS_RUNTIME;
    struct source *src;
    struct node *root;
    enum status st = yaml_load_file(&s->arena, d, path, (struct mark){0}, &src, &root);
    if (!st) st = load(s, src, root, overrides, n, d);
    return finish(s, st, out);
}

/* Text named `name` in messages, its relative paths anchored at dir (NULL: name's folder). */
static enum status load_text(const char *name, const char *dir, const char *text, size_t len,
                             const char *const *overrides, size_t n, struct diag *d,
                             struct spec **out)
{
    struct spec *s = calloc(1, sizeof *s);
    if (!s) return STATUS_RUNTIME;
    struct source *src = arena_alloc(&s->arena, sizeof *src);
    src->name = path_normalize(&s->arena, name);
    src->dir = dir ? path_normalize(&s->arena, dir) : path_dirname(&s->arena, src->name);
    src->text = arena_strndup(&s->arena, text, len);
    src->len = len;
    struct node *root;
    enum status st = yaml_load_text(&s->arena, d, src, src->text, len, 1, 1, &root);
    if (!st && root->kind != NODE_MAP) {
        diag_error(d, root->mark, "the top level must be a mapping of keys, got %s",
                   node_describe(&s->arena, root));
        st = STATUS_CONFIG;
    }
    if (!st) st = load(s, src, root, overrides, n, d);
    return finish(s, st, out);
}

enum status spec_load_text(const char *name, const char *text, size_t len,
                           const char *const *overrides, size_t n, struct diag *d,
                           struct spec **out)
{
    return load_text(name, NULL, text, len, overrides, n, d, out);
}

enum status spec_load_run(const char *run_dir, const char *const *overrides, size_t n,
                          struct diag *d, struct spec **out)
{
    *out = NULL;
    char path[4200];
    if (snprintf(path, sizeof path, "%s/config.yaml", run_dir) >= (int)sizeof path) {
        diag_error(d, (struct mark){0}, "%s: path too long", run_dir);
        return STATUS_CONFIG;
    }
    char *text = path_read_text(path);
    if (!text) {
        diag_error(d, (struct mark){0}, "%s: not a run directory (%s: %s)", run_dir, path,
                   strerror(errno));
        return STATUS_CONFIG;
    }
    enum status st = load_text(path, ".", text, strlen(text), overrides, n, d, out);
    free(text);
    return st;
}

void spec_free(struct spec *s)
{
    if (!s) return;
    arena_free(&s->arena);
    free(s);
}

struct mark spec_mark(const struct spec *s, const char *path)
{
    const struct node *cur = s->root;
    struct mark last = cur ? cur->mark : (struct mark){s->file, 1, 1};
    for (const char *p = path; cur && *p;) {
        const char *q = strchr(p, '.');
        size_t n = q ? (size_t)(q - p) : strlen(p);
        char seg[128];
        if (n >= sizeof seg) break;
        memcpy(seg, p, n);
        seg[n] = '\0';
        struct node *key;
        const struct node *child = node_map_get(cur, seg, &key);
        if (!child) break;
        if (!q) return child->mark;
        last = key->mark;
        cur = child;
        p = q + 1;
    }
    return last;
}
