/*
 * yaml_load.c: libyaml's event parser driven by hand, so every node keeps its mark and what
 * the conventions forbid (anchors, aliases, merge keys, duplicates) is refused where it is
 * written. See yaml_load.h; covered by tests/test_yaml_load.c and tests/bad_yaml/.
 */
#include "yaml_load.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#include "paths.h"

struct loader {
    yaml_parser_t parser;
    struct arena *a;
    struct diag *d;
    const struct source *src;
    int line, col; /* where the parsed text starts in src (1-based) */
    size_t last_line; /* 0-based index of the text's last line */
    size_t last_cols; /* characters on it */
};

static struct mark to_mark(const struct loader *L, yaml_mark_t m)
{
    /* At the end of a text without a final newline, libyaml moves to a line that is not
     * there (for overrides, that is the next override): point after the last character. */
    if (m.line > L->last_line) {
        m.line = L->last_line;
        m.column = L->last_cols;
    }
    struct mark r = {L->src, L->line + (int)m.line, (int)m.column + 1};
    if (m.line == 0) r.col += L->col - 1;
    return r;
}

/* The 0-based line and column (in characters) of byte offset off of text. */
static yaml_mark_t text_mark(const char *text, size_t off)
{
    yaml_mark_t m = {0, 0, 0};
    for (size_t i = 0; i < off; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '\n') {
            m.line++;
            m.column = 0;
        } else if ((c & 0xC0) != 0x80) {
            m.column++;
        }
    }
    return m;
}

static enum status parser_error(struct loader *L, const char *text)
{
    yaml_parser_t *p = &L->parser;
    const char *problem = p->problem ? p->problem : "cannot parse";
    if (p->error == YAML_MEMORY_ERROR) {
        diag_error(L->d, (struct mark){L->src, 0, 0}, "out of memory while parsing YAML");
        return STATUS_RUNTIME;
    }
    if (p->error == YAML_READER_ERROR) {
        diag_error(L->d, to_mark(L, text_mark(text, p->problem_offset)), "invalid YAML: %s", problem);
        diag_hint(L->d, "a YAML file must be UTF-8 text without control characters");
        return STATUS_CONFIG;
    }
    struct mark m = to_mark(L, p->problem_mark);
    diag_error(L->d, m, "invalid YAML: %s", problem);
    size_t len;
    const char *line = diag_line(L->src, m.line, &len);
    size_t byte = 0;
    for (int chars = 0; line && byte < len && chars < m.col - 1; byte++)
        if (((unsigned char)line[byte] & 0xC0) != 0x80) chars++;
    while (line && byte < len && ((unsigned char)line[byte] & 0xC0) == 0x80) byte++;
    if (line && byte < len && line[byte] == '\t')
        diag_hint(L->d, "YAML does not allow tabs for indentation; use spaces");
    else if (p->context) {
        struct mark c = to_mark(L, p->context_mark);
        diag_hint(L->d, "%s at line %d, column %d", p->context, c.line, c.col);
    }
    return STATUS_CONFIG;
}

static enum status next_event(struct loader *L, yaml_event_t *ev, const char *text)
{
    if (!yaml_parser_parse(&L->parser, ev)) return parser_error(L, text);
    return STATUS_OK;
}

static int cmp_key_index(const void *pa, const void *pb, void *ctx)
{
    struct node *const *keys = ctx;
    size_t a = *(const size_t *)pa, b = *(const size_t *)pb;
    const struct node *ka = keys[a], *kb = keys[b];
    size_t n = ka->len < kb->len ? ka->len : kb->len;
    int c = memcmp(ka->text, kb->text, n);
    if (c) return c;
    if (ka->len != kb->len) return ka->len < kb->len ? -1 : 1;
    return a < b ? -1 : a > b;
}

/* Insertion-free duplicate search: sort key indices, look at equal neighbours. */
static enum status check_duplicates(struct loader *L, const struct node *map)
{
    if (map->n < 2) return STATUS_OK;
    size_t *idx = malloc(map->n * sizeof *idx);
    if (!idx) abort();
    for (size_t i = 0; i < map->n; i++) idx[i] = i;
    /* qsort has no context argument in C11; a simple merge sort keeps this portable. */
    size_t *tmp = malloc(map->n * sizeof *tmp);
    if (!tmp) abort();
    for (size_t w = 1; w < map->n; w *= 2)
        for (size_t lo = 0; lo < map->n; lo += 2 * w) {
            size_t mid = lo + w < map->n ? lo + w : map->n;
            size_t hi = lo + 2 * w < map->n ? lo + 2 * w : map->n;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi)
                tmp[k++] = cmp_key_index(&idx[i], &idx[j], map->keys) <= 0 ? idx[i++] : idx[j++];
            while (i < mid) tmp[k++] = idx[i++];
            while (j < hi) tmp[k++] = idx[j++];
            memcpy(idx + lo, tmp + lo, (hi - lo) * sizeof *idx);
        }
    size_t dup = map->n, first = 0;
    for (size_t i = 1; i < map->n; i++) {
        const struct node *x = map->keys[idx[i - 1]], *y = map->keys[idx[i]];
        if (x->len == y->len && memcmp(x->text, y->text, x->len) == 0 && idx[i] < dup) {
            /* idx[i-1] is the earliest of its group only at the group's start */
            size_t g = i - 1;
            while (g > 0 && map->keys[idx[g - 1]]->len == x->len &&
                   memcmp(map->keys[idx[g - 1]]->text, x->text, x->len) == 0)
                g--;
            dup = idx[i];
            first = idx[g];
        }
    }
    free(idx);
    free(tmp);
    if (dup == map->n) return STATUS_OK;
    const struct node *k = map->keys[dup], *f = map->keys[first];
    diag_error(L->d, k->mark, "duplicate key '%s'", k->text);
    diag_hint(L->d, "'%s' is first given at line %d, column %d; a key may appear once in a mapping",
              k->text, f->mark.line, f->mark.col);
    return STATUS_CONFIG;
}

static enum status load_node(struct loader *L, yaml_event_t *ev, int depth, const char *text,
                             struct node **out);

static enum status refuse_properties(struct loader *L, yaml_event_t *ev, const yaml_char_t *anchor,
                                     const yaml_char_t *tag)
{
    struct mark m = to_mark(L, ev->start_mark);
    if (anchor) {
        diag_error(L->d, m, "anchors (&%s) are not allowed", (const char *)anchor);
        diag_hint(L->d, "write the value out, or share settings with 'extends:'");
        return STATUS_CONFIG;
    }
    if (tag) {
        diag_error(L->d, m, "tags (%s) are not allowed", (const char *)tag);
        diag_hint(L->d, "quote a value to make it a string");
        return STATUS_CONFIG;
    }
    return STATUS_OK;
}

static enum status load_children(struct loader *L, struct node *n, int depth, const char *text)
{
    size_t cap = 0;
    for (;;) {
        yaml_event_t ev;
        enum status st = next_event(L, &ev, text);
        if (st) return st;
        if (ev.type == YAML_SEQUENCE_END_EVENT || ev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        struct node *key = NULL, *child = NULL;
        if (n->kind == NODE_MAP) {
            st = load_node(L, &ev, depth + 1, text, &key);
            if (st) return st;
            if (key->kind != NODE_SCALAR) {
                diag_error(L->d, key->mark, "a mapping key must be a plain string, got %s",
                           node_describe(L->a, key));
                return STATUS_CONFIG;
            }
            if (key->plain && strcmp(key->text, "<<") == 0) {
                diag_error(L->d, key->mark, "merge keys (<<) are not allowed");
                diag_hint(L->d, "share settings between files with 'extends:'");
                return STATUS_CONFIG;
            }
            st = next_event(L, &ev, text);
            if (st) return st;
        }
        st = load_node(L, &ev, depth + 1, text, &child);
        if (st) return st;
        if (n->n == cap) {
            cap = cap ? cap * 2 : 4;
            struct node **items = arena_alloc(L->a, cap * sizeof *items);
            if (n->n) memcpy(items, n->items, n->n * sizeof *items);
            n->items = items;
            if (n->kind == NODE_MAP) {
                struct node **keys = arena_alloc(L->a, cap * sizeof *keys);
                if (n->n) memcpy(keys, n->keys, n->n * sizeof *keys);
                n->keys = keys;
            }
        }
        if (n->kind == NODE_MAP) n->keys[n->n] = key;
        n->items[n->n++] = child;
    }
    return n->kind == NODE_MAP ? check_duplicates(L, n) : STATUS_OK;
}

/* Builds the node that starts with *ev (which this function deletes). */
static enum status load_node(struct loader *L, yaml_event_t *ev, int depth, const char *text,
                             struct node **out)
{
    struct node *n = arena_alloc(L->a, sizeof *n);
    n->mark = to_mark(L, ev->start_mark);
    enum status st = STATUS_OK;
    if (depth > YAML_MAX_DEPTH) {
        diag_error(L->d, n->mark, "nesting deeper than %d levels", YAML_MAX_DEPTH);
        yaml_event_delete(ev);
        return STATUS_CONFIG;
    }
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        st = refuse_properties(L, ev, ev->data.scalar.anchor, ev->data.scalar.tag);
        n->kind = NODE_SCALAR;
        n->len = ev->data.scalar.length;
        n->text = arena_strndup(L->a, (const char *)ev->data.scalar.value, n->len);
        n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        yaml_event_delete(ev);
        break;
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        bool map = ev->type == YAML_MAPPING_START_EVENT;
        st = map ? refuse_properties(L, ev, ev->data.mapping_start.anchor,
                                     ev->data.mapping_start.tag)
                 : refuse_properties(L, ev, ev->data.sequence_start.anchor,
                                     ev->data.sequence_start.tag);
        yaml_event_delete(ev);
        n->kind = map ? NODE_MAP : NODE_SEQ;
        if (!st) st = load_children(L, n, depth, text);
        break;
    }
    case YAML_ALIAS_EVENT:
        diag_error(L->d, n->mark, "aliases (*%s) are not allowed",
                   (const char *)ev->data.alias.anchor);
        diag_hint(L->d, "write the value out, or share settings with 'extends:'");
        yaml_event_delete(ev);
        st = STATUS_CONFIG;
        break;
    default:
        diag_error(L->d, n->mark, "invalid YAML: unexpected event");
        yaml_event_delete(ev);
        st = STATUS_CONFIG;
    }
    *out = n;
    return st;
}

enum status yaml_load_text(struct arena *a, struct diag *d, const struct source *src,
                           const char *text, size_t len, int line, int col, struct node **root)
{
    struct loader L = {.a = a, .d = d, .src = src, .line = line, .col = col};
    yaml_mark_t end = text_mark(text, len);
    L.last_line = end.line;
    L.last_cols = end.column;
    *root = NULL;
    if (!yaml_parser_initialize(&L.parser)) {
        diag_error(d, (struct mark){src, 0, 0}, "out of memory while parsing YAML");
        return STATUS_RUNTIME;
    }
    yaml_parser_set_input_string(&L.parser, (const unsigned char *)text, len);
    enum status st = STATUS_OK;
    int docs = 0;
    for (;;) {
        yaml_event_t ev;
        st = next_event(&L, &ev, text);
        if (st) break;
        yaml_event_type_t type = ev.type;
        struct mark m = to_mark(&L, ev.start_mark);
        if (type == YAML_STREAM_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        if (type == YAML_STREAM_START_EVENT || type == YAML_DOCUMENT_END_EVENT) {
            yaml_event_delete(&ev);
            continue;
        }
        if (type == YAML_DOCUMENT_START_EVENT) {
            yaml_event_delete(&ev);
            if (++docs > 1) {
                diag_error(d, m, "a second YAML document ('---') is not allowed");
                diag_hint(d, "one file holds one experiment; use 'extends:' to build on another");
                st = STATUS_CONFIG;
                break;
            }
            continue;
        }
        st = load_node(&L, &ev, 1, text, root);
        if (st) break;
    }
    yaml_parser_delete(&L.parser);
    if (st) {
        *root = NULL;
        return st;
    }
    if (!*root) *root = node_scalar(a, (struct mark){src, line, col}, "", true);
    return STATUS_OK;
}

enum status yaml_load_file(struct arena *a, struct diag *d, const char *path, struct mark from,
                           struct source **src_out, struct node **root)
{
    const char *name = path_normalize(a, path);
    const char *why = NULL;
    char *text = NULL;
    size_t len = 0;
    FILE *f = fopen(path, "rb");
    struct stat sb;
    if (!f) {
        why = strerror(errno);
    } else if (fstat(fileno(f), &sb) != 0) {
        why = strerror(errno);
    } else if (S_ISDIR(sb.st_mode)) {
        why = "it is a directory";
    } else if (!S_ISREG(sb.st_mode)) {
        why = "it is not a regular file";
    } else if (sb.st_size > YAML_MAX_FILE_BYTES) {
        why = "it is larger than 16 MiB";
    } else {
        text = arena_alloc(a, (size_t)sb.st_size + 1);
        len = fread(text, 1, (size_t)sb.st_size, f);
        if (ferror(f)) why = strerror(errno);
        text[len] = '\0';
    }
    if (f) fclose(f);
    if (why) {
        if (from.src)
            diag_error(d, from, "cannot read '%s': %s", name, why);
        else
            diag_error(d, (struct mark){0}, "cannot read '%s': %s", name, why);
        return STATUS_CONFIG;
    }
    struct source *src = arena_alloc(a, sizeof *src);
    src->name = name;
    src->dir = path_dirname(a, name);
    src->text = text;
    src->len = len;
    *src_out = src;
    enum status st = yaml_load_text(a, d, src, text, len, 1, 1, root);
    if (st) return st;
    if (node_is_null(*root) && (*root)->mark.line == 1 && (*root)->mark.col == 1 &&
        (*root)->len == 0) {
        diag_error(d, (struct mark){src, 1, 1}, "the file is empty");
        diag_hint(d, "a YAML file here is a mapping of keys, e.g. 'name: my_run'");
        return STATUS_CONFIG;
    }
    if ((*root)->kind != NODE_MAP) {
        diag_error(d, (*root)->mark, "the top level must be a mapping of keys, got %s",
                   node_describe(a, *root));
        return STATUS_CONFIG;
    }
    return STATUS_OK;
}
