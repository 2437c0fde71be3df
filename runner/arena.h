/*
 * arena.h: a bump allocator. Everything a loaded experiment owns (sources, YAML nodes, spec
 * strings and lists) lives in one arena and is released by one arena_free().
 *
 *     struct arena a = {0};
 *     char *s = arena_strdup(&a, "text");   // zeroed memory, never NULL (aborts on OOM)
 *     arena_free(&a);
 *
 * Allocation failure aborts with a message: these are small, configuration-sized objects, and
 * there is no state yet that could be lost. Covered by tests/test_yaml_load.c.
 */
#ifndef RUNNER_ARENA_H
#define RUNNER_ARENA_H

#include <stddef.h>

struct arena_chunk;
struct arena {
    struct arena_chunk *head;
};

void *arena_alloc(struct arena *a, size_t size);               /* zeroed, 16-byte aligned */
char *arena_strndup(struct arena *a, const char *s, size_t n); /* NUL-terminated copy */
char *arena_strdup(struct arena *a, const char *s);
char *arena_printf(struct arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void arena_free(struct arena *a);

#endif
