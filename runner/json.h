/*
 * json.h: a strict JSON parser into a tree in an arena, for the safetensors header and the
 * run directory's files (summary.json, metrics.jsonl), and the writer of a JSON string.
 *
 *     struct arena a = {0};
 *     struct json_parser p = {.arena = &a, .s = text, .len = n, .what = "the line",
 *                             .full = true};
 *     const struct json *v = json_parse(&p);
 *     if (!v) printf("byte %zu of the line: %s\n", p.err_at, p.err);
 *     const struct json *acc = json_get(v, "test_acc");
 *     arena_free(&a);
 *
 * Strict: RFC 8259 syntax only (no comments, trailing commas, single quotes or NaN), strings
 * valid UTF-8 without \u0000, unique keys, nesting at most JSON_MAX_DEPTH, nothing but
 * whitespace after the value. With .full unset only objects, arrays, strings and integers
 * are accepted (what a safetensors header holds): fractions, exponents, true, false and null
 * are errors. With .full set, a number without fraction or exponent that fits in int64 is a
 * JSON_INT and any other number a JSON_NUMBER.
 *
 * On failure json_parse returns NULL with the message in p.err and its byte offset in
 * p.err_at; what the parser allocated stays in the arena. Covered by tests/test_safetensors.c
 * and tests/test_hooks.c.
 */
#ifndef RUNNER_JSON_H
#define RUNNER_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include "arena.h"

#define JSON_MAX_DEPTH 16

enum json_kind {
    JSON_OBJECT,
    JSON_ARRAY,
    JSON_STRING,
    JSON_INT,    /* an integer that fits in int64 */
    JSON_NUMBER, /* any other number (full mode) */
    JSON_BOOL,
    JSON_NULL,
};

struct json {
    enum json_kind kind;
    size_t at;                 /* byte offset in the input */
    const char *key;           /* as an object member: its key */
    size_t key_at;
    const char *str;           /* JSON_STRING: decoded UTF-8, NUL-terminated */
    int64_t num;               /* JSON_INT */
    double real;               /* JSON_NUMBER */
    bool boolean;              /* JSON_BOOL */
    struct json *first, *next; /* an object's members or an array's items, in order */
    size_t n;
};

struct json_parser {
    struct arena *arena;    /* the tree lives here */
    const unsigned char *s; /* the input, len bytes (need not be NUL-terminated) */
    size_t len, pos;
    bool full;              /* accept every JSON value (see above) */
    const char *what;       /* the input in messages: "the header" ("the end of the header") */
    bool failed;
    size_t err_at;
    char err[160];
};

/* The one value of the input, or NULL (p->err, p->err_at). */
struct json *json_parse(struct json_parser *p);

/* "an object", "an array", "a string", "an integer", "a number", "a boolean", "null". */
const char *json_describe(const struct json *v);

/* The member `key` of an object, or NULL (absent, or v is not an object). */
const struct json *json_get(const struct json *v, const char *key);

/* Whether the NUL-terminated s is valid UTF-8. */
bool json_utf8_valid(const char *s);

/* s as a JSON string, quoted and escaped, onto f. */
void json_write_string(FILE *f, const char *s);

#endif
