/*
 * diag.h: positions in YAML sources and compiler-style error messages.
 *
 *     struct diag d = {.out = stderr};
 *     diag_error(&d, node->mark, "'%s' must be an integer, got \"%s\"", path, text);
 *     diag_hint(&d, "did you mean '%s'?", best);
 *     if (d.errors) return STATUS_CONFIG;
 *
 * prints
 *
 *     experiments/x.yaml:4:11: error: 'train.epochs' must be an integer, got "ten"
 *         4 |   epochs: ten
 *           |           ^
 *     hint: did you mean ...
 *
 * A struct source is one text the user wrote: a YAML file, or the command-line overrides (one
 * override per line, named "<command line>"). Sources must outlive every mark that points
 * into them; the spec's arena owns them. Lines and columns are 1-based; columns count
 * characters, as libyaml does. Covered by tests/test_bad_yaml.c and tests/test_spec.c.
 */
#ifndef RUNNER_DIAG_H
#define RUNNER_DIAG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "common.h"

struct source {
    const char *name; /* as shown in messages: the path as the user would type it */
    const char *dir;  /* directory that relative paths written in this source are relative to */
    const char *text; /* the whole text, NUL-terminated, for echoing lines */
    size_t len;
};

struct mark {
    const struct source *src; /* NULL: no position (a message about the whole program) */
    int line, col;            /* 1-based; 0 where unknown */
};

struct diag {
    FILE *out;      /* where messages go; NULL silences them (errors are still counted) */
    int errors;     /* errors reported so far */
    int max_shown;  /* stop printing after this many errors (0: 20) */
    bool last_shown; /* whether the last error was printed (hints follow it) */
};

/* Reports one error at m: "NAME:LINE:COL: error: ...", the line, and a caret under COL. */
void diag_error(struct diag *d, struct mark m, const char *fmt, ...) PRINTF_LIKE(3, 4);
/* Adds "hint: ..." under the error just reported. */
void diag_hint(struct diag *d, const char *fmt, ...) PRINTF_LIKE(2, 3);

/* The candidate closest to word by edit distance (transpositions count one), or NULL when
 * none is close enough to be a plausible typo. */
const char *diag_closest(const char *word, const char *const *cands, size_t n);

/* The text of line `line` (1-based) of src, and its length; NULL when out of range. */
const char *diag_line(const struct source *src, int line, size_t *len);

#endif
