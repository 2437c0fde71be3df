/*
 * hooks_tables.c: the run directory's files parsed (config.yaml, metrics.jsonl, summary.json,
 * confusion_matrix.csv, per_class.csv, samples/index.csv) and turned into the Lua tables of
 * hooks/README.md: run, epoch and result (and, for hooks_sweep.c, a sweep point's history
 * and summary). Covered by tests/test_hooks.c and tests/test_sweep_report.c.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "hooks_impl.h"
#include "paths.h"
#include "yaml_load.h"

/* ---------------------------------------------------------------------------------------- */
/* Reading */

struct reader {
    struct hooks_files *f;
    const char *dir;
    char *err;
    size_t err_size;
    bool open_tail; /* metrics.jsonl may be being written: a last line without its newline
                       that does not parse is left out */
};

static bool fail(struct reader *r, const char *fmt, ...) PRINTF_LIKE(2, 3);
static bool fail(struct reader *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, r->err_size, fmt, ap);
    va_end(ap);
    return false;
}

/* dir/name's text into *text (arena copy), or NULL when the file is not there. */
static bool read_file(struct reader *r, const char *name, const char **text)
{
    *text = NULL;
    char *path = arena_printf(&r->f->arena, "%s/%s", r->dir, name);
    char *s = path_read_text(path);
    if (!s) return errno == ENOENT ? true : fail(r, "%s: cannot read: %s", path, strerror(errno));
    *text = arena_strdup(&r->f->arena, s);
    free(s);
    return true;
}

/* The next line of *p (without its \r\n), NUL-terminated in place; NULL at the end. */
static char *next_line(char **p)
{
    if (!**p) return NULL;
    char *line = *p, *nl = strchr(line, '\n');
    *p = nl ? nl + 1 : line + strlen(line);
    if (nl) *nl = '\0';
    size_t n = strlen(line);
    if (n && line[n - 1] == '\r') line[n - 1] = '\0';
    return line;
}

/* Splits line at commas in place into at most max fields; the count. */
static size_t split(char *line, char **field, size_t max)
{
    size_t n = 0;
    for (char *p = line; n < max;) {
        field[n++] = p;
        p = strchr(p, ',');
        if (!p) break;
        *p++ = '\0';
    }
    return n;
}

bool hooks_parse_int(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    *out = v;
    return *s && !*end && !errno;
}

static bool parse_num(const char *s, double *out)
{
    char *end;
    *out = strtod(s, &end);
    return *s && !*end && isfinite(*out);
}

static bool read_history(struct reader *r)
{
    const char *text;
    if (!read_file(r, "metrics.jsonl", &text)) return false;
    if (!text) return true;
    char *p = (char *)text, *line;
    size_t len = strlen(text), nlines = 1;
    bool open_end = len && text[len - 1] != '\n'; /* the last line is not finished */
    for (const char *c = text; *c; c++) nlines += *c == '\n';
    r->f->history = arena_alloc(&r->f->arena, nlines * sizeof *r->f->history);
    for (int ln = 1; (line = next_line(&p)); ln++) {
        if (!line[strspn(line, " \t")]) continue;
        struct json_parser jp = {.arena = &r->f->arena, .s = (const unsigned char *)line,
                                 .len = strlen(line), .full = true, .what = "the line"};
        const struct json *v = json_parse(&jp);
        if (!v && r->open_tail && open_end && !*p) break;
        if (!v) return fail(r, "%s/metrics.jsonl:%d:%zu: %s", r->dir, ln, jp.err_at + 1, jp.err);
        if (v->kind != JSON_OBJECT)
            return fail(r, "%s/metrics.jsonl:%d: expected an object, got %s", r->dir, ln,
                        json_describe(v));
        r->f->history[r->f->nhistory++] = v;
    }
    return true;
}

static bool read_summary(struct reader *r)
{
    const char *text;
    if (!read_file(r, "summary.json", &text)) return false;
    if (!text) return true;
    struct json_parser jp = {.arena = &r->f->arena, .s = (const unsigned char *)text,
                             .len = strlen(text), .full = true, .what = "the file"};
    const struct json *v = json_parse(&jp);
    if (!v) {
        int line = 1;
        size_t col = 1;
        for (size_t i = 0; i < jp.err_at; i++, col++)
            if (text[i] == '\n') {
                line++;
                col = 0;
            }
        return fail(r, "%s/summary.json:%d:%zu: %s", r->dir, line, col, jp.err);
    }
    if (v->kind != JSON_OBJECT)
        return fail(r, "%s/summary.json: expected an object, got %s", r->dir, json_describe(v));
    r->f->summary = v;
    return true;
}

/* The rows of dir/name, a CSV file that must start with the line `header`: each split at
 * commas into exactly ncols fields, *rows of them (blank lines skipped) in *fields,
 * row-major; none when the file is not there. No quoting: the runner writes none. */
static bool read_csv(struct reader *r, const char *name, const char *header, size_t ncols,
                     char ***fields, size_t *rows)
{
    *rows = 0;
    *fields = NULL;
    const char *text;
    if (!read_file(r, name, &text)) return false;
    if (!text) return true;
    char *p = (char *)text, *line = next_line(&p);
    if (!line || strcmp(line, header))
        return fail(r, "%s/%s:1: expected the header \"%s\"", r->dir, name, header);
    size_t nlines = 1;
    for (const char *c = p; *c; c++) nlines += *c == '\n';
    *fields = arena_alloc(&r->f->arena, nlines * ncols * sizeof **fields);
    for (int ln = 2; (line = next_line(&p)); ln++) {
        if (!*line) continue;
        char **row = *fields + *rows * ncols;
        size_t n = split(line, row, ncols);
        if (n != ncols || strchr(row[ncols - 1], ','))
            return fail(r, "%s/%s:%d: expected %zu fields", r->dir, name, ln, ncols);
        ++*rows;
    }
    return true;
}

static bool read_confusion(struct reader *r)
{
    const char *text;
    if (!read_file(r, "confusion_matrix.csv", &text)) return false;
    if (!text) return true;
    char *p = (char *)text, *line = next_line(&p);
    static const char corner[] = "true\\predicted,";
    if (!line || strncmp(line, corner, strlen(corner)))
        return fail(r, "%s/confusion_matrix.csv:1: expected the header \"%sCLASS,...\"",
                    r->dir, corner);
    size_t k = 1;
    for (const char *c = line + strlen(corner); *c; c++) k += *c == ',';
    struct hooks_files *f = r->f;
    f->classes = arena_alloc(&f->arena, (k + 1) * sizeof *f->classes);
    f->nconfusion = split(line + strlen(corner), (char **)f->classes, k);
    f->confusion = arena_alloc(&f->arena, k * k * sizeof *f->confusion);
    char **field = arena_alloc(&f->arena, (k + 2) * sizeof *field);
    size_t row = 0;
    for (int ln = 2; (line = next_line(&p)); ln++) {
        if (!*line) continue;
        if (row == k) return fail(r, "%s/confusion_matrix.csv:%d: more rows than the %zu "
                                  "classes of the header", r->dir, ln, k);
        if (split(line, field, k + 2) != k + 1)
            return fail(r, "%s/confusion_matrix.csv:%d: expected %zu fields", r->dir, ln, k + 1);
        for (size_t j = 0; j < k; j++)
            if (!hooks_parse_int(field[j + 1], &f->confusion[row * k + j]))
                return fail(r, "%s/confusion_matrix.csv:%d: field %zu must be an integer, "
                            "got \"%s\"", r->dir, ln, j + 2, field[j + 1]);
        row++;
    }
    if (row != k)
        return fail(r, "%s/confusion_matrix.csv: %zu rows for %zu classes", r->dir, row, k);
    return true;
}

static bool read_per_class(struct reader *r)
{
    char **c;
    size_t n;
    if (!read_csv(r, "per_class.csv", "class,precision,recall,f1,support", 5, &c, &n))
        return false;
    struct hooks_files *f = r->f;
    f->per_class = arena_alloc(&f->arena, (n + 1) * sizeof *f->per_class);
    for (size_t i = 0; i < n; i++, c += 5) {
        struct hooks_per_class *pc = &f->per_class[i];
        pc->name = c[0];
        if (!parse_num(c[1], &pc->precision) || !parse_num(c[2], &pc->recall) ||
            !parse_num(c[3], &pc->f1) || !hooks_parse_int(c[4], &pc->support))
            return fail(r, "%s/per_class.csv: class '%s': precision, recall and f1 must be "
                        "numbers and support an integer", r->dir, c[0]);
    }
    f->nper_class = n;
    return true;
}

static bool read_samples(struct reader *r)
{
    char **c;
    size_t n;
    if (!read_csv(r, "samples/index.csv", "file,index,true,predicted,confidence", 5, &c, &n))
        return false;
    struct hooks_files *f = r->f;
    f->samples = arena_alloc(&f->arena, (n + 1) * sizeof *f->samples);
    for (size_t i = 0; i < n; i++, c += 5) {
        struct hooks_sample *s = &f->samples[i];
        *s = (struct hooks_sample){.file = c[0], .true_label = c[2], .predicted = c[3]};
        if (!hooks_parse_int(c[1], &s->index) || !parse_num(c[4], &s->confidence))
            return fail(r, "%s/samples/index.csv: '%s': index must be an integer and "
                        "confidence a number", r->dir, c[0]);
    }
    f->nsamples = n;
    return true;
}

bool hooks_files_read(struct hooks_files *f, const char *dir, const struct node *config,
                      bool results, char *err, size_t err_size)
{
    *f = (struct hooks_files){0};
    struct reader r = {.f = f, .dir = dir, .err = err, .err_size = err_size};
    if (!read_file(&r, "config.yaml", &f->config_text)) return false;
    f->config = config;
    if (!config && f->config_text) {
        char *msgs = NULL;
        size_t len = 0;
        FILE *mem = open_memstream(&msgs, &len);
        if (!mem) return fail(&r, "out of memory");
        struct diag d = {.out = mem, .max_shown = 1};
        struct source *src;
        struct node *root;
        char *path = arena_printf(&f->arena, "%s/config.yaml", dir);
        enum status st = yaml_load_file(&f->arena, &d, path, (struct mark){0}, &src, &root);
        fclose(mem);
        if (st) {
            size_t k = strcspn(msgs, "\n");
            fail(&r, "%.*s", (int)(k < 400 ? k : 400), msgs);
        }
        free(msgs);
        if (st) return false;
        f->config = root;
    }
    if (!read_history(&r) || !read_confusion(&r)) return false;
    return !results || (read_summary(&r) && read_per_class(&r) && read_samples(&r));
}

bool hooks_files_read_metrics(struct hooks_files *f, const char *dir, char *err,
                              size_t err_size)
{
    *f = (struct hooks_files){0};
    struct reader r = {.f = f, .dir = dir, .err = err, .err_size = err_size, .open_tail = true};
    return read_history(&r) && read_summary(&r);
}

void hooks_files_free(struct hooks_files *f) { arena_free(&f->arena); }

/* ---------------------------------------------------------------------------------------- */
/* Tables */

/* A YAML scalar as Lua reads it: plain integers, floats and booleans typed, null nothing
 * (returns false), anything else a string. */
static bool push_scalar(lua_State *L, const struct node *n)
{
    if (n->plain) {
        if (node_is_null(n)) return false;
        if (!strcmp(n->text, "true") || !strcmp(n->text, "false")) {
            lua_pushboolean(L, n->text[0] == 't');
            return true;
        }
        int64_t i;
        if (node_text_is_int(n->text) && hooks_parse_int(n->text, &i)) {
            lua_pushinteger(L, (lua_Integer)i);
            return true;
        }
        if (node_text_is_int(n->text) || node_text_is_float(n->text)) {
            lua_pushnumber(L, strtod(n->text, NULL));
            return true;
        }
    }
    lua_pushlstring(L, n->text, n->len);
    return true;
}

/* Pushes n as Lua reads it: a map or sequence as a table (null items left out), a scalar as
 * push_scalar types it (null: nil), no node (NULL) as an empty table. */
static void hooks_push_node(lua_State *L, const struct node *n)
{
    luaL_checkstack(L, 4, "configuration nested too deeply");
    if (!n) {
        lua_newtable(L);
        return;
    }
    if (n->kind == NODE_SCALAR) {
        if (!push_scalar(L, n)) lua_pushnil(L);
        return;
    }
    lua_createtable(L, n->kind == NODE_SEQ ? (int)n->n : 0, n->kind == NODE_MAP ? (int)n->n : 0);
    for (size_t i = 0; i < n->n; i++) {
        const struct node *v = n->items[i];
        if (v->kind == NODE_SCALAR && !push_scalar(L, v)) continue; /* null: absent */
        if (v->kind != NODE_SCALAR) hooks_push_node(L, v);
        if (n->kind == NODE_SEQ) lua_rawseti(L, -2, (lua_Integer)i + 1);
        else lua_setfield(L, -2, n->keys[i]->text);
    }
}

void hooks_push_json(lua_State *L, const struct json *v)
{
    luaL_checkstack(L, 4, "JSON nested too deeply");
    switch (v->kind) {
    case JSON_STRING: lua_pushstring(L, v->str); return;
    case JSON_INT: lua_pushinteger(L, (lua_Integer)v->num); return;
    case JSON_NUMBER: lua_pushnumber(L, v->real); return;
    case JSON_BOOL: lua_pushboolean(L, v->boolean); return;
    case JSON_NULL: lua_pushnil(L); return;
    case JSON_OBJECT:
    case JSON_ARRAY: break;
    }
    bool obj = v->kind == JSON_OBJECT;
    lua_createtable(L, obj ? 0 : (int)v->n, obj ? (int)v->n : 0);
    lua_Integer i = 1;
    for (const struct json *c = v->first; c; c = c->next, i++) {
        if (c->kind == JSON_NULL) continue;
        hooks_push_json(L, c);
        if (obj) lua_setfield(L, -2, c->key);
        else lua_rawseti(L, -2, i);
    }
}

void hooks_set_string(lua_State *L, const char *key, const char *value)
{
    if (!value) return;
    lua_pushstring(L, value);
    lua_setfield(L, -2, key);
}

static void set_strings(lua_State *L, const char *key, const char *const *s, size_t n)
{
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_pushstring(L, s[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, key);
}

void hooks_push_history(lua_State *L, const struct hooks_files *f)
{
    lua_createtable(L, (int)f->nhistory, 0);
    for (size_t i = 0; i < f->nhistory; i++) {
        hooks_push_json(L, f->history[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
}

void hooks_push_run(lua_State *L, const struct hooks_files *f, const struct hooks_info *info,
                    const char *dir, const struct node *args)
{
    lua_createtable(L, 0, 12);
    hooks_set_string(L, "name", info->name);
    hooks_set_string(L, "dir", dir);
    hooks_push_node(L, f->config);
    lua_setfield(L, -2, "config");
    hooks_set_string(L, "config_text", f->config_text ? f->config_text : "");
    if (info->classes)
        set_strings(L, "classes", info->classes, info->nclasses > 0 ? (size_t)info->nclasses : 0);
    else
        set_strings(L, "classes", f->classes, f->nconfusion);
    hooks_set_string(L, "device", info->device);
    hooks_set_string(L, "precision", info->precision);
    hooks_set_string(L, "commit", info->commit);
    hooks_set_string(L, "started", info->started);
    lua_pushinteger(L, (lua_Integer)info->epochs);
    lua_setfield(L, -2, "epochs");
    hooks_push_history(L, f);
    lua_setfield(L, -2, "history");
    hooks_push_node(L, args && args->kind == NODE_MAP ? args : NULL);
    lua_setfield(L, -2, "args");
}

static void set_number(lua_State *L, const char *key, double v)
{
    lua_pushnumber(L, v);
    lua_setfield(L, -2, key);
}

void hooks_push_result(lua_State *L, const struct hooks_files *f, const char *stopped)
{
    static const char *const copied[] = {"test_acc", "test_loss", "macro_f1", "best_val_acc",
                                         "best_epoch", "final_val_acc", "seconds",
                                         "train_img_per_s"};
    lua_createtable(L, 0, 14);
    for (size_t i = 0; i < ARRAY_LEN(copied); i++) {
        const struct json *v = json_get(f->summary, copied[i]);
        if (!v || v->kind == JSON_NULL) continue;
        hooks_push_json(L, v);
        lua_setfield(L, -2, copied[i]);
    }
    if (f->summary) hooks_push_json(L, f->summary);
    else lua_newtable(L);
    lua_setfield(L, -2, "summary");

    size_t k = f->nconfusion;
    lua_createtable(L, (int)k, 0);
    for (size_t t = 0; t < k; t++) {
        lua_createtable(L, (int)k, 0);
        for (size_t p = 0; p < k; p++) {
            lua_pushinteger(L, (lua_Integer)f->confusion[t * k + p]);
            lua_rawseti(L, -2, (lua_Integer)p + 1);
        }
        lua_rawseti(L, -2, (lua_Integer)t + 1);
    }
    lua_setfield(L, -2, "confusion");

    lua_createtable(L, (int)f->nper_class, 0);
    for (size_t i = 0; i < f->nper_class; i++) {
        const struct hooks_per_class *pc = &f->per_class[i];
        lua_createtable(L, 0, 5);
        hooks_set_string(L, "class", pc->name);
        set_number(L, "precision", pc->precision);
        set_number(L, "recall", pc->recall);
        set_number(L, "f1", pc->f1);
        lua_pushinteger(L, (lua_Integer)pc->support);
        lua_setfield(L, -2, "support");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "per_class");

    lua_createtable(L, (int)f->nsamples, 0);
    for (size_t i = 0; i < f->nsamples; i++) {
        const struct hooks_sample *s = &f->samples[i];
        lua_createtable(L, 0, 6);
        lua_pushfstring(L, "samples/%s", s->file);
        lua_setfield(L, -2, "file");
        lua_pushinteger(L, (lua_Integer)s->index);
        lua_setfield(L, -2, "index");
        hooks_set_string(L, "true_label", s->true_label);
        hooks_set_string(L, "predicted", s->predicted);
        set_number(L, "confidence", s->confidence);
        lua_pushboolean(L, strcmp(s->true_label, s->predicted) == 0);
        lua_setfield(L, -2, "correct");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "samples");
    hooks_set_string(L, "stopped", stopped);
}
