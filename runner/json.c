/*
 * json.c: the strict JSON parser; see json.h. Covered by tests/test_safetensors.c (the
 * integers-only mode and every syntax error) and tests/test_hooks.c (the full mode).
 */
#include "json.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

const char *json_describe(const struct json *v)
{
    static const char *const what[] = {"an object", "an array", "a string", "an integer",
                                       "a number", "a boolean", "null"};
    _Static_assert(ARRAY_LEN(what) == JSON_NULL + 1, "a description for every kind");
    return what[v->kind];
}

static const char *input_name(const struct json_parser *p)
{
    return p->what ? p->what : "the input";
}

static void *json_fail(struct json_parser *p, size_t at, const char *fmt, ...) PRINTF_LIKE(3, 4);
static void *json_fail(struct json_parser *p, size_t at, const char *fmt, ...)
{
    if (p->failed) return NULL;
    p->failed = true;
    p->err_at = at;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err, sizeof p->err, fmt, ap);
    va_end(ap);
    return NULL;
}

static int json_peek(const struct json_parser *p) { return p->pos < p->len ? p->s[p->pos] : -1; }

/* Fails at p->pos, saying what was expected and what is there. */
static void *json_expected(struct json_parser *p, const char *what)
{
    int c = json_peek(p);
    if (c < 0) return json_fail(p, p->pos, "expected %s, got the end of %s", what, input_name(p));
    return json_fail(p, p->pos, c >= 0x20 && c < 0x7f ? "expected %s, got '%c'"
                                                      : "expected %s, got byte 0x%02x", what, c);
}

static void json_ws(struct json_parser *p)
{
    for (int c; (c = json_peek(p)) == ' ' || c == '\t' || c == '\n' || c == '\r';) p->pos++;
}

/* The length of the valid UTF-8 sequence at s (at most n bytes), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0], lo = 0x80, hi = 0xbf;
    size_t len;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        lo = c == 0xe0 ? 0xa0 : lo;
        hi = c == 0xed ? 0x9f : hi;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        lo = c == 0xf0 ? 0x90 : lo;
        hi = c == 0xf4 ? 0x8f : hi;
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xc0) != 0x80) return 0;
    return len;
}

bool json_utf8_valid(const char *s)
{
    size_t n = strlen(s);
    for (size_t i = 0, k; i < n; i += k)
        if (!(k = utf8_len((const unsigned char *)s + i, n - i))) return false;
    return true;
}

static bool json_hex4(const struct json_parser *p, size_t at, size_t end, uint32_t *cp)
{
    *cp = 0;
    if (end - at < 4) return false;
    for (size_t i = at; i < at + 4; i++) {
        int c = p->s[i], v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                             : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (v < 0) return false;
        *cp = *cp << 4 | (uint32_t)v;
    }
    return true;
}

/* The string starting at the opening quote at p->pos, decoded into the arena. */
static const char *json_string(struct json_parser *p)
{
    size_t open = p->pos, end = open + 1;
    while (end < p->len && p->s[end] != '"') end += p->s[end] == '\\' ? 2 : 1;
    if (end >= p->len) return json_fail(p, open, "unterminated string");
    char *out = arena_alloc(p->arena, end - open), *o = out;
    size_t i = open + 1;
    while (i < end) {
        unsigned char c = p->s[i];
        if (c < 0x20) return json_fail(p, i, "control character 0x%02x in a string", c);
        if (c >= 0x80) {
            size_t k = utf8_len(p->s + i, end - i);
            if (!k) return json_fail(p, i, "invalid UTF-8 in a string");
            memcpy(o, p->s + i, k);
            o += k;
            i += k;
            continue;
        }
        if (c != '\\') {
            *o++ = (char)c;
            i++;
            continue;
        }
        unsigned char x = p->s[i + 1];
        const char *esc = x ? strchr("\"\\/bfnrt", x) : NULL;
        if (esc) {
            *o++ = "\"\\/\b\f\n\r\t"[esc - "\"\\/bfnrt"];
            i += 2;
            continue;
        }
        uint32_t cp, lo;
        if (x != 'u')
            return json_fail(p, i, x >= 0x20 && x < 0x7f ? "invalid escape '\\%c'"
                                                         : "invalid escape (byte 0x%02x)", x);
        if (!json_hex4(p, i + 2, end, &cp)) return json_fail(p, i, "\\u needs 4 hex digits");
        size_t at = i;
        i += 6;
        if (cp >= 0xd800 && cp <= 0xdbff) {
            if (end - i < 6 || p->s[i] != '\\' || p->s[i + 1] != 'u' ||
                !json_hex4(p, i + 2, end, &lo) || lo < 0xdc00 || lo > 0xdfff)
                return json_fail(p, at, "high surrogate \\u%04X without a low one", cp);
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            i += 6;
        } else if (cp >= 0xdc00 && cp <= 0xdfff) {
            return json_fail(p, at, "lone low surrogate \\u%04X", cp);
        } else if (cp == 0) {
            return json_fail(p, at, "\\u0000 is not allowed in a string");
        }
        if (cp < 0x80) {
            *o++ = (char)cp;
        } else if (cp < 0x800) {
            *o++ = (char)(0xc0 | cp >> 6);
            *o++ = (char)(0x80 | (cp & 0x3f));
        } else if (cp < 0x10000) {
            *o++ = (char)(0xe0 | cp >> 12);
            *o++ = (char)(0x80 | (cp >> 6 & 0x3f));
            *o++ = (char)(0x80 | (cp & 0x3f));
        } else {
            *o++ = (char)(0xf0 | cp >> 18);
            *o++ = (char)(0x80 | (cp >> 12 & 0x3f));
            *o++ = (char)(0x80 | (cp >> 6 & 0x3f));
            *o++ = (char)(0x80 | (cp & 0x3f));
        }
    }
    *o = '\0';
    p->pos = end + 1;
    return out;
}

static int json_cmp_key(const void *a, const void *b)
{
    const struct json *x = *(const struct json *const *)a, *y = *(const struct json *const *)b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->at > y->at) - (x->at < y->at);
}

/* Fails on the first key (in sorted order) that appears twice, at its second occurrence. */
static bool json_unique_keys(struct json_parser *p, const struct json *obj)
{
    if (obj->n < 2) return true;
    const struct json **m = malloc(obj->n * sizeof *m);
    if (!m) {
        json_fail(p, obj->at, "out of memory");
        return false;
    }
    size_t i = 0;
    for (const struct json *c = obj->first; c; c = c->next) m[i++] = c;
    qsort(m, obj->n, sizeof *m, json_cmp_key);
    for (i = 1; i < obj->n && strcmp(m[i - 1]->key, m[i]->key); i++) {}
    if (i < obj->n) json_fail(p, m[i]->key_at, "duplicate key \"%.80s\"", m[i]->key);
    free(m);
    return !p->failed;
}

/* The number at p->pos into v: an integer, or (full mode) any JSON number. */
static bool json_number(struct json_parser *p, struct json *v)
{
    int c = json_peek(p);
    bool neg = c == '-', too_large = false;
    uint64_t n = 0;
    p->pos += neg;
    if (json_peek(p) < '0' || json_peek(p) > '9') return json_fail(p, v->at, "expected a digit");
    if (json_peek(p) == '0' && p->pos + 1 < p->len && p->s[p->pos + 1] >= '0' &&
        p->s[p->pos + 1] <= '9')
        return json_fail(p, v->at, "leading zeros are not allowed");
    for (; (c = json_peek(p)) >= '0' && c <= '9'; p->pos++) {
        if (n > ((uint64_t)INT64_MAX - (uint64_t)(c - '0')) / 10) too_large = true;
        else n = n * 10 + (uint64_t)(c - '0');
    }
    if (!p->full) {
        if (too_large) return json_fail(p, v->at, "integer too large");
        if (c == '.' || c == 'e' || c == 'E')
            return json_fail(p, v->at, "only integers are allowed, not fractions or exponents");
    }
    bool real = too_large;
    if (c == '.') {
        p->pos++;
        if (json_peek(p) < '0' || json_peek(p) > '9')
            return json_fail(p, p->pos, "expected a digit after '.'");
        while ((c = json_peek(p)) >= '0' && c <= '9') p->pos++;
        real = true;
    }
    if (c == 'e' || c == 'E') {
        p->pos++;
        if (json_peek(p) == '+' || json_peek(p) == '-') p->pos++;
        if (json_peek(p) < '0' || json_peek(p) > '9')
            return json_fail(p, p->pos, "expected a digit in the exponent");
        while ((c = json_peek(p)) >= '0' && c <= '9') p->pos++;
        real = true;
    }
    if (!real) {
        v->kind = JSON_INT;
        v->num = neg ? -(int64_t)n : (int64_t)n;
        return true;
    }
    char buf[64];
    size_t len = p->pos - v->at;
    if (len >= sizeof buf) return json_fail(p, v->at, "number longer than %zu characters",
                                            sizeof buf - 1);
    memcpy(buf, p->s + v->at, len);
    buf[len] = '\0';
    v->kind = JSON_NUMBER;
    v->real = strtod(buf, NULL);
    if (!isfinite(v->real)) return json_fail(p, v->at, "number out of range");
    return true;
}

/* true, false or null at p->pos into v (full mode); false, p unchanged, when none is there. */
static bool json_literal(struct json_parser *p, struct json *v)
{
    static const char *const words[] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++) {
        size_t k = strlen(words[i]);
        if (p->len - p->pos < k || memcmp(p->s + p->pos, words[i], k)) continue;
        v->kind = i == 2 ? JSON_NULL : JSON_BOOL;
        v->boolean = i == 0;
        p->pos += k;
        return true;
    }
    return false;
}

static struct json *json_value(struct json_parser *p, int depth)
{
    json_ws(p);
    int c = json_peek(p);
    if (c < 0) return json_fail(p, p->pos, "unexpected end of %s", input_name(p));
    struct json *v = arena_alloc(p->arena, sizeof *v);
    v->at = p->pos;
    if (c == '"') {
        v->kind = JSON_STRING;
        return (v->str = json_string(p)) ? v : NULL;
    }
    if (c == '-' || (c >= '0' && c <= '9')) return json_number(p, v) ? v : NULL;
    if (p->full && json_literal(p, v)) return v;
    if (c != '{' && c != '[') {
        if (!p->full && (c == 't' || c == 'f' || c == 'n'))
            return json_fail(p, v->at, "true, false and null are not allowed");
        return json_fail(p, v->at, c >= 0x20 && c < 0x7f ? "unexpected '%c'"
                                                         : "unexpected byte 0x%02x", c);
    }
    if (depth >= JSON_MAX_DEPTH)
        return json_fail(p, v->at, "nested deeper than %d levels", JSON_MAX_DEPTH);
    bool obj = c == '{';
    char close = obj ? '}' : ']';
    v->kind = obj ? JSON_OBJECT : JSON_ARRAY;
    p->pos++;
    json_ws(p);
    if (json_peek(p) == close) {
        p->pos++;
        return v;
    }
    for (struct json **tail = &v->first;; json_ws(p)) {
        const char *key = NULL;
        size_t key_at = p->pos;
        if (obj) {
            if (json_peek(p) != '"') return json_expected(p, "a string key");
            if (!(key = json_string(p))) return NULL;
            json_ws(p);
            if (json_peek(p) != ':') return json_expected(p, "':' after a key");
            p->pos++;
        }
        struct json *item = json_value(p, depth + 1);
        if (!item) return NULL;
        item->key = key;
        item->key_at = key_at;
        *tail = item;
        tail = &item->next;
        v->n++;
        json_ws(p);
        if (json_peek(p) == close) break;
        if (json_peek(p) != ',') return json_expected(p, obj ? "',' or '}'" : "',' or ']'");
        p->pos++;
    }
    p->pos++;
    return obj && !json_unique_keys(p, v) ? NULL : v;
}

struct json *json_parse(struct json_parser *p)
{
    struct json *root = json_value(p, 0);
    json_ws(p);
    if (root && p->pos < p->len) {
        /* json_describe's words without the article: "an object" -> "object", "null" */
        const char *noun = json_describe(root), *space = strchr(noun, ' ');
        if (space) noun = space + 1;
        json_fail(p, p->pos, "unexpected data after %s's %s", input_name(p), noun);
    }
    return p->failed ? NULL : root;
}

const struct json *json_get(const struct json *v, const char *key)
{
    if (!v || v->kind != JSON_OBJECT) return NULL;
    for (const struct json *c = v->first; c; c = c->next)
        if (strcmp(c->key, key) == 0) return c;
    return NULL;
}

void json_write_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}
