/* node.c: see node.h. */
#include "node.h"

#include <stdio.h>
#include <string.h>

bool node_text_is_int(const char *s)
{
    if (*s == '-' || *s == '+') s++;
    if (!*s) return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return false;
    return true;
}

bool node_text_is_float(const char *s)
{
    if (*s == '-' || *s == '+') s++;
    size_t digits = 0;
    while (*s >= '0' && *s <= '9') {
        s++;
        digits++;
    }
    if (*s == '.') {
        s++;
        while (*s >= '0' && *s <= '9') {
            s++;
            digits++;
        }
    }
    if (!digits) return false;
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '-' || *s == '+') s++;
        if (!(*s >= '0' && *s <= '9')) return false;
        while (*s >= '0' && *s <= '9') s++;
    }
    return *s == '\0';
}

bool node_is_null(const struct node *n)
{
    if (!n || n->kind != NODE_SCALAR || !n->plain) return false;
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
    for (size_t i = 0; i < sizeof nulls / sizeof nulls[0]; i++)
        if (strcmp(n->text, nulls[i]) == 0 && n->len == strlen(nulls[i])) return true;
    return false;
}

const char *node_describe(struct arena *a, const struct node *n)
{
    if (!n) return "nothing";
    if (n->kind == NODE_MAP) return "a mapping";
    if (n->kind == NODE_SEQ) return "a list";
    if (node_is_null(n)) return "null";
    if (n->plain && (strcmp(n->text, "true") == 0 || strcmp(n->text, "false") == 0 ||
                     (n->len < 40 && node_text_is_float(n->text))))
        return n->text;
    /* Quote, escaping what would confuse a terminal; long scalars are shortened. */
    size_t max = n->len > 60 ? 57 : n->len;
    char *out = arena_alloc(a, max * 4 + 8), *o = out;
    *o++ = '"';
    for (size_t i = 0; i < max; i++) {
        unsigned char c = (unsigned char)n->text[i];
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            o += sprintf(o, "\\x%02x", c);
        } else {
            *o++ = (char)c;
        }
    }
    if (max < n->len) o += sprintf(o, "...");
    *o++ = '"';
    *o = '\0';
    return out;
}

struct node *node_map_get(const struct node *n, const char *key, struct node **key_node)
{
    if (key_node) *key_node = NULL;
    if (!n || n->kind != NODE_MAP) return NULL;
    size_t kl = strlen(key);
    for (size_t i = 0; i < n->n; i++)
        if (n->keys[i]->len == kl && memcmp(n->keys[i]->text, key, kl) == 0) {
            if (key_node) *key_node = n->keys[i];
            return n->items[i];
        }
    return NULL;
}

struct node *node_scalar(struct arena *a, struct mark m, const char *text, bool plain)
{
    struct node *s = arena_alloc(a, sizeof *s);
    s->kind = NODE_SCALAR;
    s->mark = m;
    s->len = strlen(text);
    s->text = arena_strndup(a, text, s->len);
    s->plain = plain;
    return s;
}

struct node *node_map(struct arena *a, struct mark m)
{
    struct node *map = arena_alloc(a, sizeof *map);
    map->kind = NODE_MAP;
    map->mark = m;
    return map;
}

static void map_append(struct arena *a, struct node *map, struct node *key, struct node *value)
{
    /* Capacity is the next power of two at or above n; grow by copying (arena memory). */
    size_t n = map->n;
    if ((n & (n - 1)) == 0) {
        size_t cap = n ? n * 2 : 4;
        struct node **k = arena_alloc(a, cap * sizeof *k), **v = arena_alloc(a, cap * sizeof *v);
        if (n) {
            memcpy(k, map->keys, n * sizeof *k);
            memcpy(v, map->items, n * sizeof *v);
        }
        map->keys = k;
        map->items = v;
    }
    map->keys[n] = key;
    map->items[n] = value;
    map->n = n + 1;
}

void node_map_set(struct arena *a, struct node *map, struct node *key, struct node *value)
{
    for (size_t i = 0; i < map->n; i++)
        if (map->keys[i]->len == key->len && memcmp(map->keys[i]->text, key->text, key->len) == 0) {
            map->keys[i] = key;
            map->items[i] = value;
            return;
        }
    map_append(a, map, key, value);
}

struct node *node_map_without(struct arena *a, const struct node *map, const char *key)
{
    struct node *out = node_map(a, map->mark);
    size_t kl = strlen(key);
    for (size_t i = 0; i < map->n; i++)
        if (!(map->keys[i]->len == kl && memcmp(map->keys[i]->text, key, kl) == 0))
            map_append(a, out, map->keys[i], map->items[i]);
    return out;
}

static bool type_changes(const struct node *base, const struct node *over)
{
    const struct node *bt = node_map_get(base, "type", NULL);
    const struct node *ot = node_map_get(over, "type", NULL);
    if (!bt || !ot || bt->kind != NODE_SCALAR || ot->kind != NODE_SCALAR) return false;
    return bt->len != ot->len || memcmp(bt->text, ot->text, bt->len) != 0;
}

struct node *node_merge(struct arena *a, struct node *base, struct node *over)
{
    if (!base || base->kind != NODE_MAP || !over || over->kind != NODE_MAP ||
        type_changes(base, over))
        return over;
    struct node *out = node_map(a, over->mark);
    for (size_t i = 0; i < base->n; i++) map_append(a, out, base->keys[i], base->items[i]);
    for (size_t i = 0; i < over->n; i++) {
        struct node *b = node_map_get(out, over->keys[i]->text, NULL);
        node_map_set(a, out, over->keys[i], b ? node_merge(a, b, over->items[i]) : over->items[i]);
    }
    return out;
}
