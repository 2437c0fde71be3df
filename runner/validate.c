/*
 * validate.c: the YAML tree -> typed structs, driven by the schema table. One generic walk:
 * a section's keys are matched against the table (unknown keys get a did-you-mean), each
 * value is converted by its type's converter (one function per schema type, in a table
 * indexed by the type), and absent keys get their default, parsed from the table's YAML text
 * by the same conversion. See validate.h.
 */
#include "validate.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "op.h"
#include "paths.h"
#include "schema.h"
#include "url.h"
#include "yaml_load.h"

struct vctx {
    struct arena *a;
    struct diag *d;
    const char *hooks_dir;
};

static const struct source default_source = {"<schema default>", ".", "", 0};

static char *join_path(struct vctx *v, const char *path, const char *key)
{
    return path[0] ? arena_printf(v->a, "%s.%s", path, key) : arena_strdup(v->a, key);
}

/* --------------------------------------------------------------------------------------- */
/* Checks shared by the converters */

static bool is_bool_text(const struct node *n)
{
    return n->plain && (strcmp(n->text, "true") == 0 || strcmp(n->text, "false") == 0);
}

static bool scalar_ok(const struct node *n)
{
    return n->kind == NODE_SCALAR && strlen(n->text) == n->len;
}

static bool in_range(const struct schema_key *k, double x)
{
    if (k->flags & SK_MIN && (k->flags & SK_MIN_OPEN ? !(x > k->min) : !(x >= k->min)))
        return false;
    if (k->flags & SK_MAX && (k->flags & SK_MAX_OPEN ? !(x < k->max) : !(x <= k->max)))
        return false;
    return true;
}

static void bad_value(struct vctx *v, const struct schema_key *k, const char *path,
                      const struct node *n)
{
    char want[512];
    diag_error(v->d, n->mark, "'%s' must be %s, got %s", path,
               schema_describe(k, want, sizeof want), node_describe(v->a, n));
}

/* Converts one number (an element of a list, or a whole value) into *out. */
static bool convert_number(struct vctx *v, const struct schema_key *k, enum schema_type t,
                           const char *path, const struct node *n, void *out)
{
    bool ok = scalar_ok(n) && n->plain;
    if (t == SCHEMA_INT) {
        ok = ok && node_text_is_int(n->text);
        errno = 0;
        long long x = ok ? strtoll(n->text, NULL, 10) : 0;
        if (!ok || errno == ERANGE || !in_range(k, (double)x)) {
            bad_value(v, k, path, n);
            return false;
        }
        *(long long *)out = x;
        return true;
    }
    ok = ok && node_text_is_float(n->text);
    double x = ok ? strtod(n->text, NULL) : 0;
    if (!ok || !isfinite(x) || !in_range(k, x)) {
        bad_value(v, k, path, n);
        if (ok && !isfinite(x)) diag_hint(v->d, "the number is too large to represent");
        return false;
    }
    *(double *)out = x;
    return true;
}

static void enum_hint(struct vctx *v, const char *const *choices, const char *text)
{
    size_t n = 0;
    while (choices[n]) n++;
    const char *best = diag_closest(text, choices, n);
    if (best) diag_hint(v->d, "did you mean '%s'?", best);
}

/* Checks that n is a string: a scalar, not null, not a boolean, not empty. */
static bool check_string(struct vctx *v, const struct schema_key *k, const char *path,
                         const struct node *n)
{
    if (!scalar_ok(n) || node_is_null(n) || is_bool_text(n) || n->len == 0) {
        bad_value(v, k, path, n);
        return false;
    }
    return true;
}

static bool file_readable(const char *path, const char **why)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        *why = strerror(errno);
        return false;
    }
    if (S_ISDIR(sb.st_mode)) {
        *why = "it is a directory";
        return false;
    }
    if (access(path, R_OK) != 0) {
        *why = strerror(errno);
        return false;
    }
    return true;
}

/* "path[i]": how messages name element i of a list. */
static const char *item_path(struct vctx *v, const char *path, size_t i)
{
    return arena_printf(v->a, "%s[%zu]", path, i);
}

/* The hint after a list of the wrong length: "3 values given" and then tail. */
static void count_hint(struct vctx *v, const struct node *seq, const char *tail)
{
    diag_hint(v->d, "%zu value%s given%s", seq->n, seq->n == 1 ? "" : "s", tail);
}

/* n's text as a path, resolved against the directory of the file that wrote it. */
static const char *resolve_path(struct vctx *v, const struct node *n)
{
    const char *dir = n->mark.src ? n->mark.src->dir : ".";
    return path_join(v->a, dir, n->text);
}

/* YAML 1.1's other spellings of booleans, which are plain strings here. */
static bool is_other_bool_word(const struct node *n)
{
    static const char *const words[] = {"yes",   "no",   "on",    "off", "True",
                                        "False", "TRUE", "FALSE", "y",   "n"};
    for (size_t i = 0; i < ARRAY_LEN(words); i++)
        if (strcmp(n->text, words[i]) == 0) return true;
    return false;
}

/* Letters, digits, '.', '_' and '-', at most 128 of them, not starting with '.'. */
static bool name_ok(const struct node *n)
{
    if (n->len > 128 || n->text[0] == '.') return false;
    for (size_t i = 0; i < n->len; i++) {
        char c = n->text[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok) return false;
    }
    return true;
}

/* auto, cpu, cuda or cuda:N (N of one or two digits) into *dev; false, *dev untouched, if not. */
static bool parse_device(const char *t, struct spec_device *dev)
{
    if (strcmp(t, "auto") == 0) {
        *dev = (struct spec_device){SPEC_DEVICE_AUTO, 0};
        return true;
    }
    if (strcmp(t, "cpu") == 0) {
        *dev = (struct spec_device){SPEC_DEVICE_CPU, 0};
        return true;
    }
    if (strcmp(t, "cuda") == 0) {
        *dev = (struct spec_device){SPEC_DEVICE_CUDA, 0};
        return true;
    }
    if (strncmp(t, "cuda:", 5) == 0 && t[5] && strlen(t + 5) <= 2 &&
        strspn(t + 5, "0123456789") == strlen(t + 5)) {
        *dev = (struct spec_device){SPEC_DEVICE_CUDA, atoi(t + 5)};
        return true;
    }
    return false;
}

/* For a path that must exist: *resolved if readable, else (hooks) the one in hooks_dir, put
 * into *resolved. Reports at key_mark and returns false when neither can be read. */
static bool find_readable(struct vctx *v, const struct schema_key *k, struct mark key_mark,
                          const struct node *n, const char **resolved)
{
    const char *why = NULL;
    if (file_readable(*resolved, &why)) return true;
    const char *alt = v->hooks_dir && k->flags & SK_HOOK && n->text[0] != '/'
                          ? path_join(v->a, v->hooks_dir, n->text)
                          : NULL;
    const char *why2 = NULL;
    if (alt && file_readable(alt, &why2)) {
        *resolved = alt;
        return true;
    }
    if (alt) {
        diag_error(v->d, key_mark, "cannot find hook '%s'", n->text);
        diag_hint(v->d, "looked for '%s' (%s) and '%s' (%s)", *resolved, why, alt, why2);
    } else {
        diag_error(v->d, key_mark, "cannot read '%s': %s", *resolved, why);
    }
    return false;
}

/* A list value: a sequence, of exactly k->count items when exact. Reports when not. */
static bool check_list(struct vctx *v, const struct schema_key *k, const char *path,
                       const struct node *n, bool exact)
{
    if (n->kind == NODE_SEQ && (!exact || n->n == (size_t)k->count)) return true;
    bad_value(v, k, path, n);
    if (n->kind == NODE_SEQ) count_hint(v, n, "");
    return false;
}

/* With SK_INCREASING: whether items[i] follows items[i - 1] upwards; reports at e if not. */
static bool check_increasing(struct vctx *v, const char *path, const struct node *e,
                             const long long *items, size_t i)
{
    if (items[i] > items[i - 1]) return true;
    diag_error(v->d, e->mark, "'%s' must be strictly increasing, but %lld follows %lld", path,
               items[i], items[i - 1]);
    return false;
}

/* Converts each item of the list n into items (long long or double, by t), k's bounds on each
 * one; true if all of them converted (and, with SK_INCREASING, increase). */
static bool convert_numbers(struct vctx *v, const struct schema_key *k, enum schema_type t,
                            const char *path, const struct node *n, void *items)
{
    struct schema_key ek = *k;
    ek.type = t;
    bool ok = true;
    bool prev_ok = false;
    for (size_t i = 0; i < n->n; i++) {
        const struct node *e = n->items[i];
        void *slot = t == SCHEMA_INT ? (void *)((long long *)items + i)
                                     : (void *)((double *)items + i);
        bool this_ok = convert_number(v, &ek, t, item_path(v, path, i), e, slot);
        bool compare = this_ok && prev_ok && t == SCHEMA_INT && k->flags & SK_INCREASING;
        if (!this_ok || (compare && !check_increasing(v, path, e, items, i))) ok = false;
        prev_ok = this_ok;
    }
    return ok;
}

/* --------------------------------------------------------------------------------------- */
/* Values: one converter per schema type, each filling the field f of key k from node n.
 * key_mark is where the key was written (n's own mark for defaults and list items). */

static void validate_section(struct vctx *v, const struct schema_section *s, const char *path,
                             struct mark where, const struct node *node, void *out,
                             struct mark *mark_out);
static void validate_variant_item(struct vctx *v, const struct schema_section *s,
                                  const char *path, const struct node *node, void *out);

typedef void convert_fn(struct vctx *v, const struct schema_key *k, const char *path,
                        struct mark key_mark, const struct node *n, void *f);

static void convert_bool(struct vctx *v, const struct schema_key *k, const char *path,
                         struct mark key_mark, const struct node *n, void *f)
{
    (void)key_mark;
    if (is_bool_text(n)) {
        *(bool *)f = n->text[0] == 't';
        return;
    }
    bad_value(v, k, path, n);
    if (scalar_ok(n) && n->plain && is_other_bool_word(n))
        diag_hint(v->d, "only true and false are booleans here");
}

static void convert_int(struct vctx *v, const struct schema_key *k, const char *path,
                        struct mark key_mark, const struct node *n, void *f)
{
    (void)key_mark;
    convert_number(v, k, SCHEMA_INT, path, n, f);
}

static void convert_int2(struct vctx *v, const struct schema_key *k, const char *path,
                         struct mark key_mark, const struct node *n, void *f)
{
    (void)key_mark;
    long long *pair = f;
    if (n->kind == NODE_SEQ && n->n == 2) {
        for (size_t i = 0; i < 2; i++)
            convert_number(v, k, SCHEMA_INT, item_path(v, path, i), n->items[i], &pair[i]);
        return;
    }
    if (n->kind == NODE_SEQ) {
        bad_value(v, k, path, n);
        count_hint(v, n, "; a list is [h, w]");
        return;
    }
    if (convert_number(v, k, SCHEMA_INT, path, n, &pair[0])) pair[1] = pair[0];
}

static void convert_float(struct vctx *v, const struct schema_key *k, const char *path,
                          struct mark key_mark, const struct node *n, void *f)
{
    (void)key_mark;
    convert_number(v, k, SCHEMA_FLOAT, path, n, f);
}

static void convert_string(struct vctx *v, const struct schema_key *k, const char *path,
                           struct mark key_mark, const struct node *n, void *f)
{
    (void)key_mark;
    if (check_string(v, k, path, n)) *(const char **)f = n->text;
}

static void convert_name(struct vctx *v, const struct schema_key *k, const char *path,
                         struct mark key_mark, const struct node *n, void *f)
{
    (void)key_mark;
    if (!check_string(v, k, path, n)) return;
    if (!name_ok(n)) {
        bad_value(v, k, path, n);
        diag_hint(v->d, "the name becomes a directory name; at most 128 characters, not "
                        "starting with '.'");
        return;
    }
    *(const char **)f = n->text;
}

static void convert_enum(struct vctx *v, const struct schema_key *k, const char *path,
                         struct mark key_mark, const struct node *n, void *f)
{
    (void)key_mark;
    if (scalar_ok(n) && !node_is_null(n))
        for (int i = 0; k->choices[i]; i++)
            if (strcmp(n->text, k->choices[i]) == 0) {
                *(int *)f = i;
                return;
            }
    bad_value(v, k, path, n);
    if (scalar_ok(n)) enum_hint(v, k->choices, n->text);
}

static void convert_device(struct vctx *v, const struct schema_key *k, const char *path,
                           struct mark key_mark, const struct node *n, void *f)
{
    (void)key_mark;
    if (scalar_ok(n) && !node_is_null(n) && parse_device(n->text, f)) return;
    bad_value(v, k, path, n);
    if (scalar_ok(n) && strncmp(n->text, "gpu", 3) == 0) {
        diag_hint(v->d, "a GPU is 'cuda' (the first one) or 'cuda:N'");
    } else if (scalar_ok(n)) {
        static const char *const devs[] = {"auto", "cpu", "cuda", NULL};
        enum_hint(v, devs, n->text);
    }
}

static void convert_path(struct vctx *v, const struct schema_key *k, const char *path,
                         struct mark key_mark, const struct node *n, void *f)
{
    if (!check_string(v, k, path, n)) return;
    if (k->flags & SK_URL && url_has_scheme(n->text)) { /* as written, not looked for */
        const char *why = url_problem(n->text);
        if (why) {
            diag_error(v->d, n->mark, "'%s': %s, got \"%s\"", path, why, n->text);
            if (strncmp(n->text, "hf://", 5) == 0)
                diag_hint(v->d, "e.g. hf://timm/resnet50.tv_in1k, or "
                                "hf://timm/resnet50.tv_in1k/model.safetensors");
            return;
        }
        *(const char **)f = n->text;
        return;
    }
    const char *resolved = resolve_path(v, n);
    if (k->flags & SK_MUST_EXIST && !find_readable(v, k, key_mark, n, &resolved)) return;
    *(const char **)f = resolved;
}

static void convert_sha256(struct vctx *v, const struct schema_key *k, const char *path,
                           struct mark key_mark, const struct node *n, void *f)
{
    (void)key_mark;
    if (!check_string(v, k, path, n)) return;
    if (n->len != 64 || strspn(n->text, "0123456789abcdefABCDEF") != 64) {
        bad_value(v, k, path, n);
        if (n->len != 64)
            diag_hint(v->d, "sha256sum FILE prints it: 64 hex digits, not %zu characters",
                      n->len);
        else
            diag_hint(v->d, "hex digits are 0-9 and a-f (or A-F)");
        return;
    }
    *(const char **)f = n->text;
}

static void convert_floats(struct vctx *v, const struct schema_key *k, const char *path,
                           struct mark key_mark, const struct node *n, void *f)
{
    (void)key_mark;
    if (!check_list(v, k, path, n, true)) return;
    convert_numbers(v, k, SCHEMA_FLOAT, path, n, f);
}

static void convert_ints(struct vctx *v, const struct schema_key *k, const char *path,
                         struct mark key_mark, const struct node *n, void *f)
{
    (void)key_mark;
    if (!check_list(v, k, path, n, false)) return;
    long long *items = arena_alloc(v->a, n->n * sizeof(long long) + 1);
    if (convert_numbers(v, k, SCHEMA_INT, path, n, items))
        *(struct spec_ints *)f = (struct spec_ints){items, n->n};
}

static void convert_strings(struct vctx *v, const struct schema_key *k, const char *path,
                            struct mark key_mark, const struct node *n, void *f)
{
    (void)key_mark;
    if (!check_list(v, k, path, n, false)) return;
    const char **items = arena_alloc(v->a, n->n * sizeof(char *) + 1);
    struct schema_key ek = {.type = SCHEMA_STRING};
    bool ok = true;
    for (size_t i = 0; i < n->n; i++) {
        const struct node *e = n->items[i];
        if (check_string(v, &ek, item_path(v, path, i), e))
            items[i] = e->text;
        else
            ok = false;
    }
    if (ok) *(struct spec_strings *)f = (struct spec_strings){items, n->n};
}

static void convert_section(struct vctx *v, const struct schema_key *k, const char *path,
                            struct mark key_mark, const struct node *n, void *f)
{
    validate_section(v, k->section, path, key_mark, n, f, (struct mark *)f);
}

static void convert_list(struct vctx *v, const struct schema_key *k, const char *path,
                         struct mark key_mark, const struct node *n, void *f)
{
    (void)key_mark;
    if (n->kind != NODE_SEQ) {
        bad_value(v, k, path, n);
        return;
    }
    struct spec_list *list = f;
    list->v = arena_alloc(v->a, n->n * k->item_size + 1);
    list->n = n->n;
    for (size_t i = 0; i < n->n; i++) {
        const char *ip = item_path(v, path, i);
        const struct node *e = n->items[i];
        void *item = (char *)list->v + i * k->item_size;
        if (k->section->select == SCHEMA_SELECT_SINGLE_KEY)
            validate_variant_item(v, k->section, ip, e, item);
        else
            validate_section(v, k->section, ip, e->mark, e, item, (struct mark *)item);
    }
}

static void convert_graph(struct vctx *v, const struct schema_key *k, const char *path,
                          struct mark key_mark, const struct node *n, void *f)
{
    struct spec_graph *g = f;
    if (n->kind == NODE_MAP) {
        g->tree = n;
        return;
    }
    if (!check_string(v, k, path, n)) {
        diag_hint(v->d, "name a graph file, e.g. models/resnet50.yaml, or write the graph "
                        "as a mapping");
        return;
    }
    const char *resolved = resolve_path(v, n);
    struct source *src;
    struct node *tree;
    if (yaml_load_file(v->a, v->d, resolved, key_mark, &src, &tree)) return;
    g->path = resolved;
    g->tree = tree;
}

static void convert_any(struct vctx *v, const struct schema_key *k, const char *path,
                        struct mark key_mark, const struct node *n, void *f)
{
    (void)key_mark;
    if (n->kind != NODE_MAP) {
        bad_value(v, k, path, n);
        return;
    }
    *(const struct node **)f = n;
}

static convert_fn *const converters[] = {
    [SCHEMA_BOOL] = convert_bool,
    [SCHEMA_INT] = convert_int,
    [SCHEMA_INT2] = convert_int2,
    [SCHEMA_FLOAT] = convert_float,
    [SCHEMA_STRING] = convert_string,
    [SCHEMA_NAME] = convert_name,
    [SCHEMA_ENUM] = convert_enum,
    [SCHEMA_DEVICE] = convert_device,
    [SCHEMA_PATH] = convert_path,
    [SCHEMA_SHA256] = convert_sha256,
    [SCHEMA_FLOATS] = convert_floats,
    [SCHEMA_INTS] = convert_ints,
    [SCHEMA_STRINGS] = convert_strings,
    [SCHEMA_SECTION] = convert_section,
    [SCHEMA_LIST] = convert_list,
    [SCHEMA_GRAPH] = convert_graph,
    [SCHEMA_ANY] = convert_any,
};
/* A missing last row fails to compile; a missing one before it is NULL, which
 * validate_schema_table reports (tests/test_schema.c). */
_Static_assert(ARRAY_LEN(converters) == SCHEMA_TYPE_COUNT, "one converter per schema type");

/* Converts n, the value of k (written at key, or NULL for a default), into k's field of out.
 * A null value of a nullable key leaves the field unset. */
static void convert(struct vctx *v, const struct schema_key *k, const char *path,
                    const struct node *key, const struct node *n, void *out)
{
    if (node_is_null(n) && k->flags & SK_NULLABLE) return;
    converters[k->type](v, k, path, key ? key->mark : n->mark, n, (char *)out + k->offset);
}

/* --------------------------------------------------------------------------------------- */
/* Sections */

static const struct schema_key *find_key(const struct schema_key *keys, size_t n,
                                         const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(keys[i].name, name) == 0) return &keys[i];
    return NULL;
}

static void unknown_key(struct vctx *v, const struct schema_section *s,
                        const struct schema_variant *var, const char *path,
                        const struct node *key)
{
    if (path[0])
        diag_error(v->d, key->mark, "unknown key '%s' in '%s'", key->text, path);
    else
        diag_error(v->d, key->mark, "unknown top-level key '%s'", key->text);
    const char *cands[64];
    size_t nc = 0;
    for (size_t i = 0; i < s->nkeys && nc < 64; i++) cands[nc++] = s->keys[i].name;
    for (size_t i = 0; var && i < var->nkeys && nc < 64; i++) cands[nc++] = var->keys[i].name;
    const char *best = diag_closest(key->text, cands, nc);
    if (best) {
        diag_hint(v->d, "did you mean '%s'?", best);
        return;
    }
    /* A key of another variant: say whose it is. */
    if (s->select == SCHEMA_SELECT_TYPE && var)
        for (size_t i = 0; i < s->nvariants; i++)
            if (find_key(s->variants[i].keys, s->variants[i].nkeys, key->text)) {
                diag_hint(v->d, "'%s' is a setting of %s type '%s', not '%s'", key->text,
                          path, s->variants[i].name, var->name);
                return;
            }
    /* At the top level: a key that belongs in a section. */
    if (!path[0])
        for (size_t i = 0; i < s->nkeys; i++) {
            const struct schema_section *sub = s->keys[i].section;
            if (s->keys[i].type != SCHEMA_SECTION) continue;
            bool found = find_key(sub->keys, sub->nkeys, key->text);
            for (size_t j = 0; !found && j < sub->nvariants; j++)
                found = find_key(sub->variants[j].keys, sub->variants[j].nkeys, key->text);
            if (found) {
                diag_hint(v->d, "did you mean '%s.%s'? ('%s' belongs in '%s')", sub->name,
                          key->text, key->text, sub->name);
                return;
            }
        }
    char list[512];
    size_t used = 0;
    list[0] = '\0';
    for (size_t i = 0; i < nc && used < sizeof list; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "",
                                 cands[i]);
    if (nc) diag_hint(v->d, "valid keys here: %s", list);
}

static const struct node *default_node(struct vctx *v, const struct schema_key *k)
{
    struct node *n = NULL;
    struct diag quiet = {0};
    if (yaml_load_text(v->a, &quiet, &default_source, k->def, strlen(k->def), 1, 1, &n))
        return NULL;
    return n;
}

/* Matches map's keys against common and var's keys, converts them, fills defaults. */
static void fill_keys(struct vctx *v, const struct schema_section *s,
                      const struct schema_variant *var, bool any_variant, const char *path,
                      struct mark where, const struct node *map, void *out)
{
    for (size_t i = 0; map && i < map->n; i++) {
        const struct node *key = map->keys[i];
        const struct schema_key *k = find_key(s->keys, s->nkeys, key->text);
        if (!k && var) k = find_key(var->keys, var->nkeys, key->text);
        if (!k && any_variant) {
            /* The type is missing or wrong (reported already): accept any variant's key. */
            bool in_variant = false;
            for (size_t j = 0; j < s->nvariants; j++)
                in_variant |= find_key(s->variants[j].keys, s->variants[j].nkeys, key->text) != NULL;
            if (in_variant) continue;
        }
        if (!k) {
            unknown_key(v, s, var, path, key);
            continue;
        }
        if (s->select == SCHEMA_SELECT_TYPE && k == &s->keys[0]) continue; /* done already */
        convert(v, k, join_path(v, path, key->text), key, map->items[i], out);
    }
    for (int pass = 0; pass < 2; pass++) {
        const struct schema_key *keys = pass ? (var ? var->keys : NULL) : s->keys;
        size_t n = pass ? (var ? var->nkeys : 0) : s->nkeys;
        for (size_t i = 0; i < n; i++) {
            const struct schema_key *k = &keys[i];
            if (node_map_get(map, k->name, NULL)) continue;
            if (s->select == SCHEMA_SELECT_TYPE && k == &s->keys[0]) continue;
            if (k->flags & SK_REQUIRED) {
                if (path[0])
                    diag_error(v->d, where, "missing required key '%s' in '%s'", k->name, path);
                else
                    diag_error(v->d, where, "missing required key '%s'", k->name);
                char want[512];
                if (k->type == SCHEMA_SECTION)
                    diag_hint(v->d, "'runner schema' lists the keys of '%s'", k->name);
                else
                    diag_hint(v->d, "'%s' is %s: %s", k->name,
                              schema_describe(k, want, sizeof want), k->doc);
            } else if (k->def) {
                const struct node *dn = default_node(v, k);
                if (dn) convert(v, k, join_path(v, path, k->name), NULL, dn, out);
            } else if (k->type == SCHEMA_SECTION) {
                validate_section(v, k->section, join_path(v, path, k->name), where, NULL,
                                 (char *)out + k->offset, (struct mark *)((char *)out + k->offset));
            }
        }
    }
}

static void validate_section(struct vctx *v, const struct schema_section *s, const char *path,
                             struct mark where, const struct node *node, void *out,
                             struct mark *mark_out)
{
    if (mark_out) *mark_out = where;
    const struct node *map = node;
    if (node && node_is_null(node)) {
        map = NULL;
    } else if (node && node->kind != NODE_MAP) {
        if (s->shorthand && node->kind == NODE_SCALAR) {
            struct node *m = node_map(v->a, node->mark);
            struct node *key = node_scalar(v->a, where, s->shorthand, true);
            node_map_set(v->a, m, key, (struct node *)node);
            map = m;
        } else {
            if (s->shorthand)
                diag_error(v->d, node->mark, "'%s' must be a mapping or a %s, got %s", path,
                           s->shorthand, node_describe(v->a, node));
            else
                diag_error(v->d, node->mark, "'%s' must be a mapping, got %s", path,
                           node_describe(v->a, node));
            return;
        }
    }
    const struct schema_variant *var = NULL;
    bool any_variant = false;
    if (s->select == SCHEMA_SELECT_TYPE) {
        const struct schema_key *tk = &s->keys[0];
        struct node *tkey;
        const struct node *t = node_map_get(map, "type", &tkey);
        int before = v->d->errors;
        if (t)
            convert(v, tk, join_path(v, path, "type"), tkey, t, out);
        else if (tk->def)
            convert(v, tk, join_path(v, path, "type"), NULL, default_node(v, tk), out);
        if (t || tk->def) {
            if (v->d->errors == before) var = &s->variants[*(int *)((char *)out + tk->offset)];
            else any_variant = true;
        } else {
            diag_error(v->d, where, "missing required key 'type' in '%s'", path);
            char want[512];
            diag_hint(v->d, "'type' is %s", schema_describe(tk, want, sizeof want));
            any_variant = true;
        }
    }
    fill_keys(v, s, var, any_variant, path, where, map, out);
}

/* A list item that names its variant: `name`, `{name: value}` or `{name: {key: value}}`. */
static void validate_variant_item(struct vctx *v, const struct schema_section *s,
                                  const char *path, const struct node *node, void *out)
{
    const struct node *name = NULL, *body = NULL;
    if (node->kind == NODE_SCALAR && !node_is_null(node) && scalar_ok(node)) {
        name = node;
    } else if (node->kind == NODE_MAP && node->n == 1) {
        name = node->keys[0];
        body = node->items[0];
    } else {
        if (node->kind == NODE_MAP)
            diag_error(v->d, node->mark, "'%s' must name one transform, got %zu keys", path,
                       node->n);
        else
            diag_error(v->d, node->mark, "'%s' must be a transform, got %s", path,
                       node_describe(v->a, node));
        diag_hint(v->d, "write each transform as its own list item, e.g. '- hflip: 0.5' or "
                        "'- random_crop: {size: 32, padding: 4}'");
        return;
    }
    *(struct mark *)out = name->mark;
    const struct schema_variant *var = NULL;
    for (size_t i = 0; i < s->nvariants; i++)
        if (strcmp(s->variants[i].name, name->text) == 0) var = &s->variants[i];
    if (!var) {
        diag_error(v->d, name->mark, "unknown transform '%s' in '%s'", name->text, path);
        const char *cands[32];
        size_t nc = 0;
        for (size_t i = 0; i < s->nvariants && nc < 32; i++) cands[nc++] = s->variants[i].name;
        const char *best = diag_closest(name->text, cands, nc);
        if (best)
            diag_hint(v->d, "did you mean '%s'?", best);
        else {
            char list[256];
            size_t used = 0;
            for (size_t i = 0; i < nc; i++)
                used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "",
                                         cands[i]);
            diag_hint(v->d, "transforms: %s", list);
        }
        return;
    }
    *(int *)((char *)out + s->variant_offset) = (int)(var - s->variants);
    const char *vpath = arena_printf(v->a, "%s.%s", path, var->name);
    const struct node *map = body;
    if (body && node_is_null(body)) {
        map = NULL;
    } else if (body && body->kind != NODE_MAP) {
        if (!var->shorthand) {
            diag_error(v->d, body->mark, "'%s' must be a mapping of its settings, got %s", vpath,
                       node_describe(v->a, body));
            return;
        }
        struct node *m = node_map(v->a, body->mark);
        node_map_set(v->a, m, node_scalar(v->a, body->mark, var->shorthand, true),
                     (struct node *)body);
        map = m;
    }
    struct schema_section one = {.name = vpath, .keys = var->keys, .nkeys = var->nkeys};
    fill_keys(v, &one, NULL, false, vpath, name->mark, map, out);
}

enum status validate_keys(struct arena *a, struct diag *d, const struct schema_section *s,
                          const char *path, struct mark where, const struct node *map, void *out)
{
    struct vctx v = {.a = a, .d = d};
    int before = d->errors;
    fill_keys(&v, s, NULL, false, path, where, map, out);
    return d->errors == before ? STATUS_OK : STATUS_CONFIG;
}

/* --------------------------------------------------------------------------------------- */
/* Rules between keys */

/* The mark of key's value in item i of the transform list `augment.<list>` as written, else of
 * the transform itself (a default is never at fault). */
static struct mark transform_value_mark(const struct spec *s, const char *list, size_t i,
                                        const char *key)
{
    const struct spec_list *l = strcmp(list, "train") == 0 ? &s->augment.train : &s->augment.eval;
    struct mark where = ((const struct spec_transform *)l->v)[i].mark;
    const struct node *aug = node_map_get(s->root, "augment", NULL);
    const struct node *seq = node_map_get(aug, list, NULL);
    if (!seq || seq->kind != NODE_SEQ || i >= seq->n) return where;
    const struct node *item = seq->items[i];
    if (item->kind != NODE_MAP || item->n != 1) return where;
    const struct node *value = node_map_get(item->items[0], key, NULL);
    return value ? value->mark : where;
}

/* random_resized_crop's ranges, [lo, hi] with lo <= hi (the schema bounds each end). */
static void check_transform_ranges(struct vctx *v, const struct spec *s, const char *list)
{
    const struct spec_list *l = strcmp(list, "train") == 0 ? &s->augment.train : &s->augment.eval;
    const struct spec_transform *t = l->v;
    for (size_t i = 0; i < l->n; i++) {
        if (t[i].kind != SPEC_TRANSFORM_RANDOM_RESIZED_CROP) continue;
        if (t[i].scale[0] > t[i].scale[1]) {
            diag_error(v->d, transform_value_mark(s, list, i, "scale"),
                       "random_resized_crop: scale [%g, %g] is not a range (lo > hi)",
                       t[i].scale[0], t[i].scale[1]);
            diag_hint(v->d, "write [lo, hi] with 0 < lo <= hi <= 1, e.g. [0.08, 1.0]");
        }
        if (t[i].ratio[0] > t[i].ratio[1]) {
            diag_error(v->d, transform_value_mark(s, list, i, "ratio"),
                       "random_resized_crop: ratio [%g, %g] is not a range (lo > hi)",
                       t[i].ratio[0], t[i].ratio[1]);
            diag_hint(v->d, "write [lo, hi] with 0 < lo <= hi, e.g. [0.75, 1.3333333333333333]");
        }
    }
}

static void check_rules(struct vctx *v, struct spec *s)
{
    if (s->model.pretrained_sha256 && !s->model.pretrained)
        diag_error(v->d, spec_mark(s, "model.pretrained_sha256"),
                   "model.pretrained_sha256 is given without model.pretrained");
    const struct spec_optimizer *o = &s->optimizer;
    if (o->type == SPEC_OPTIMIZER_SGD && o->nesterov && (o->momentum <= 0 || o->dampening != 0)) {
        diag_error(v->d, spec_mark(s, "optimizer.nesterov"),
                   "nesterov momentum needs optimizer.momentum > 0 and optimizer.dampening 0 "
                   "(momentum %g, dampening %g)", o->momentum, o->dampening);
    }
    const struct spec_schedule *sc = &s->schedule;
    if (sc->type == SPEC_SCHEDULE_ONECYCLE && sc->warmup_epochs > 0)
        diag_error(v->d, spec_mark(s, "schedule.warmup_epochs"),
                   "the onecycle schedule has its own warm-up (pct_start); remove warmup_epochs");
    if (sc->warmup_epochs > (double)s->train.epochs)
        diag_error(v->d, spec_mark(s, "schedule.warmup_epochs"),
                   "schedule.warmup_epochs (%g) is longer than the run (train.epochs %lld)",
                   sc->warmup_epochs, s->train.epochs);
    if (s->data.subset > 0 && s->data.val_split >= s->data.subset) {
        diag_error(v->d, spec_mark(s, "data.val_split"),
                   "data.val_split (%lld) leaves no training images out of data.subset (%lld)",
                   s->data.val_split, s->data.subset);
    }
    if (s->data.dataset == SPEC_DATASET_FOLDER && !s->data.root) {
        diag_error(v->d, spec_mark(s, "data.dataset"),
                   "a folder dataset needs data.root, the folder holding train/");
        diag_hint(v->d, "data: {dataset: folder, root: DIR}, DIR holding train/<class>/ (and "
                        "optionally val/<class>/, test/<class>/); RUNNER_DATA locates the CIFAR "
                        "datasets only");
    }
    const struct spec_transform *ev = s->augment.eval.v;
    for (size_t i = 0; i < s->augment.eval.n; i++)
        if (ev[i].kind == SPEC_TRANSFORM_MIXUP || ev[i].kind == SPEC_TRANSFORM_CUTMIX) {
            diag_error(v->d, ev[i].mark, "%s mixes labels and is for training only",
                       ev[i].kind == SPEC_TRANSFORM_MIXUP ? "mixup" : "cutmix");
            diag_hint(v->d, "move it to augment.train");
        }
    check_transform_ranges(v, s, "train");
    check_transform_ranges(v, s, "eval");
}

enum status validate_experiment(struct spec *s, struct diag *d, const char *hooks_dir)
{
    struct vctx v = {.a = &s->arena, .d = d, .hooks_dir = hooks_dir};
    int before = d->errors;
    struct node *root = node_map_without(&s->arena, s->root, "extends");
    validate_section(&v, &schema_experiment, "", s->root->mark, root, s, NULL);
    if (d->errors == before) check_rules(&v, s);
    return d->errors == before ? STATUS_OK : STATUS_CONFIG;
}

/* --------------------------------------------------------------------------------------- */
/* The table's own consistency (tests/test_schema.c). */

static void check_keys(struct vctx *v, const char *where, const struct schema_key *keys,
                       size_t n, void *scratch);

static void check_section(struct vctx *v, const struct schema_section *s, void *scratch)
{
    check_keys(v, s->name, s->keys, s->nkeys, scratch);
    if (s->select == SCHEMA_SELECT_TYPE) {
        const struct schema_key *t = &s->keys[0];
        bool ok = s->nkeys > 0 && strcmp(t->name, "type") == 0 && t->type == SCHEMA_ENUM;
        for (size_t i = 0; ok && i < s->nvariants; i++)
            ok = t->choices[i] && strcmp(t->choices[i], s->variants[i].name) == 0;
        if (!ok || t->choices[s->nvariants])
            diag_error(v->d, (struct mark){0}, "schema: section '%s': its first key must be "
                       "'type', choosing among the variants in order", s->name);
    }
    for (size_t i = 0; i < s->nvariants; i++) {
        const struct schema_variant *var = &s->variants[i];
        check_keys(v, var->name, var->keys, var->nkeys, scratch);
        if (var->shorthand && !find_key(var->keys, var->nkeys, var->shorthand))
            diag_error(v->d, (struct mark){0}, "schema: '%s': shorthand '%s' is not a key",
                       var->name, var->shorthand);
    }
    if (s->shorthand && !find_key(s->keys, s->nkeys, s->shorthand))
        diag_error(v->d, (struct mark){0}, "schema: '%s': shorthand '%s' is not a key", s->name,
                   s->shorthand);
}

static void check_keys(struct vctx *v, const char *where, const struct schema_key *keys,
                       size_t n, void *scratch)
{
    for (size_t i = 0; i < n; i++) {
        const struct schema_key *k = &keys[i];
        if (!k->doc || !k->doc[0])
            diag_error(v->d, (struct mark){0}, "schema: '%s.%s' has no description", where,
                       k->name);
        if (k->def && k->flags & SK_REQUIRED)
            diag_error(v->d, (struct mark){0}, "schema: '%s.%s' is required and has a default",
                       where, k->name);
        if (k->def) {
            const struct node *dn = default_node(v, k);
            if (!dn)
                diag_error(v->d, (struct mark){0}, "schema: '%s.%s': default is not YAML", where,
                           k->name);
            else
                convert(v, k, arena_printf(v->a, "%s.%s", where, k->name), NULL, dn, scratch);
        }
        if ((k->type == SCHEMA_SECTION || k->type == SCHEMA_LIST) && k->section)
            check_section(v, k->section, scratch);
    }
}

enum status validate_schema_table(struct diag *d)
{
    struct arena a = {0};
    struct vctx v = {.a = &a, .d = d};
    void *scratch = arena_alloc(&a, sizeof(struct spec) + 4096);
    int before = d->errors;
    for (int t = 0; t < SCHEMA_TYPE_COUNT; t++)
        if (!converters[t]) diag_error(d, (struct mark){0}, "schema: type %d has no converter", t);
    check_section(&v, &schema_experiment, scratch);
    for (int k = 0; k < OP_KIND_COUNT; k++) {
        if (!op_table[k] || !op_table[k]->params) {
            diag_error(d, (struct mark){0}, "schema: op %d has no table entry", k);
            continue;
        }
        memset(scratch, 0, sizeof(union op_params));
        check_section(&v, op_table[k]->params, scratch);
    }
    arena_free(&a);
    return d->errors == before ? STATUS_OK : STATUS_CONFIG;
}
