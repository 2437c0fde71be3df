/*
 * node.h: the YAML tree every later stage reads. yaml_load.c builds it from libyaml events;
 * spec.c merges trees (extends, overrides) and validate.c turns them into typed structs.
 *
 *     const struct node *key, *lr = node_map_get(opt, "lr", &key);
 *     if (lr && node_is_null(lr)) ...   // "lr:" with nothing after it
 *
 * Every node keeps the mark (source, line, column) where it was written, so an error found
 * at any stage points into the right file. Scalars keep their text and whether they were
 * plain: only plain scalars can be numbers, booleans or null (DESIGN.md, Scalars). Nodes live
 * in an arena and are shared, never freed one by one. Covered by tests/test_yaml_load.c.
 */
#ifndef RUNNER_NODE_H
#define RUNNER_NODE_H

#include <stdbool.h>
#include <stddef.h>

#include "arena.h"
#include "diag.h"

enum node_kind {
    NODE_SCALAR,
    NODE_SEQ,
    NODE_MAP,
};

struct node {
    enum node_kind kind;
    struct mark mark;    /* where the node starts */
    const char *text;    /* NODE_SCALAR: NUL-terminated (len bytes; may hold inner NULs) */
    size_t len;
    bool plain;          /* NODE_SCALAR: written without quotes or block style */
    size_t n;            /* NODE_SEQ: items; NODE_MAP: pairs */
    struct node **items; /* NODE_SEQ: the items; NODE_MAP: the values */
    struct node **keys;  /* NODE_MAP: the keys (always scalars, unique) */
};

/* Number syntax of plain scalars: [-+]?[0-9]+, and [-+]?(1|1.|1.5|.5)([eE][-+]?[0-9]+)?. */
bool node_text_is_int(const char *s);
bool node_text_is_float(const char *s);
/* A plain "", "~", "null", "Null" or "NULL" scalar. */
bool node_is_null(const struct node *n);
/* "a mapping", "a list", "null", "true", or the scalar quoted ("\"fast\""): for messages. */
const char *node_describe(struct arena *a, const struct node *n);
/* The value under key in a map (NULL if absent or n is not a map); its key node in *key. */
struct node *node_map_get(const struct node *n, const char *key, struct node **key_node);
/* A new scalar / map with no entries, at mark m. */
struct node *node_scalar(struct arena *a, struct mark m, const char *text, bool plain);
struct node *node_map(struct arena *a, struct mark m);
/* Sets map[key] = value, replacing an existing value (its key mark too) or appending. */
void node_map_set(struct arena *a, struct node *map, struct node *key, struct node *value);
/* A map equal to map without `key`. */
struct node *node_map_without(struct arena *a, const struct node *map, const char *key);

/*
 * Merges over into base (DESIGN.md, extends): maps merge recursively, anything else in over
 * replaces what base has, and a map whose scalar `type` differs from base's replaces base's
 * map whole. Neither input is modified; unchanged subtrees are shared.
 */
struct node *node_merge(struct arena *a, struct node *base, struct node *over);

#endif
