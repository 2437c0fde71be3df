/*
 * safetensors.c: the .safetensors reader (the header parsed by json.c in its integers-only
 * mode, then the checks listed in safetensors.h) and the atomic, deterministic writer. See
 * safetensors.h.
 * Covered by tests/test_safetensors.c.
 */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arena.h"
#include "json.h"
#include "paths.h"

#define ST_SHAPE_TEXT (ST_MAX_RANK * 22 + 4)

/* ---------------------------------------------------------------------------------------- */
/* Dtypes, byte order and conversions */

static const char *const st_dtype_names[] = {"F32", "F16", "BF16", "I64"};
static const size_t st_dtype_sizes[] = {4, 2, 2, 8};
_Static_assert(ARRAY_LEN(st_dtype_names) == ST_DTYPE_COUNT, "a name for every dtype");
_Static_assert(ARRAY_LEN(st_dtype_sizes) == ST_DTYPE_COUNT, "a size for every dtype");

/* Dtypes of the format that this reader refuses by name rather than as unknown. */
static const char *const st_other_dtypes[] = {
    "BOOL", "U8", "I8", "U16", "I16", "U32", "I32", "U64", "F64", "C64",
    "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4"};

const char *st_dtype_name(enum st_dtype t) { return t < ST_DTYPE_COUNT ? st_dtype_names[t] : "?"; }
size_t st_dtype_size(enum st_dtype t) { return t < ST_DTYPE_COUNT ? st_dtype_sizes[t] : 0; }

/* n-byte little-endian integers, whatever the host's byte order. */
static uint64_t load_le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    while (n--) v = v << 8 | p[n];
    return v;
}
static void store_le(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++) p[i] = (unsigned char)(v >> 8 * i);
}

static uint32_t f32_bits(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    return x;
}
static float bits_f32(uint32_t x)
{
    float f;
    memcpy(&f, &x, 4);
    return f;
}

float st_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = h >> 10 & 0x1f, mant = h & 0x3ff;
    if (exp == 0x1f) return bits_f32(sign | 0x7f800000 | mant << 13); /* inf, NaN */
    if (exp) return bits_f32(sign | (exp + 112) << 23 | mant << 13);
    if (!mant) return bits_f32(sign);
    uint32_t e = 113; /* subnormal: normalize mant * 2^-24 */
    while (!(mant & 0x400)) {
        mant <<= 1;
        e--;
    }
    return bits_f32(sign | e << 23 | (mant & 0x3ff) << 13);
}

/* x >> shift, rounded to nearest, ties to even; 0 < shift < 32. */
static uint32_t shift_round(uint32_t x, int shift)
{
    uint32_t q = x >> shift, rem = x & ((1u << shift) - 1), half = 1u << (shift - 1);
    return q + (rem > half || (rem == half && (q & 1)));
}

uint16_t st_f32_to_f16(float f)
{
    uint32_t x = f32_bits(f), ax = x & 0x7fffffff;
    uint16_t sign = (uint16_t)(x >> 16 & 0x8000);
    if (ax > 0x7f800000) return (uint16_t)(sign | 0x7e00 | (ax >> 13 & 0x3ff)); /* quiet NaN */
    if (ax >= 0x47800000) return sign | 0x7c00; /* >= 65536 and inf */
    if (ax >= 0x38800000) /* normal: rebias the exponent; a carry may round up to inf */
        return (uint16_t)(sign | shift_round(ax - ((uint32_t)112 << 23), 13));
    int e = (int)(ax >> 23);
    if (e < 102) return sign; /* below 2^-25: rounds to zero */
    /* subnormal: (mant | implicit 1) * 2^(e - 150) in units of 2^-24 */
    return (uint16_t)(sign | shift_round((ax & 0x7fffff) | 0x800000, 126 - e));
}

float st_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t st_f32_to_bf16(float f)
{
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)(x >> 16 | 0x40); /* quiet NaN */
    return (uint16_t)((x + 0x7fff + (x >> 16 & 1)) >> 16);
}

/* ---------------------------------------------------------------------------------------- */
/* Reading */

struct st_file {
    struct arena arena;               /* the tensors, names, metadata and indexes */
    const char *name;                 /* the path, for messages */
    unsigned char *owned;             /* the file's bytes when st_open read them */
    const unsigned char *data;        /* the data section */
    size_t data_size;
    struct st_tensor *tensors;        /* in header order */
    size_t n;
    const struct st_tensor **by_name; /* sorted by name, for st_find */
    const char **meta;                /* key, value, key, value, ... in header order */
    size_t nmeta;
};

/* Reports "FILE: tensor 'NAME': message", or "FILE: message" when tensor is NULL. */
static void st_error(struct diag *d, const char *file, const char *tensor, const char *fmt, ...)
    PRINTF_LIKE(4, 5);
static void st_error(struct diag *d, const char *file, const char *tensor, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (tensor) diag_error(d, (struct mark){0}, "%s: tensor '%s': %s", file, tensor, msg);
    else diag_error(d, (struct mark){0}, "%s: %s", file, msg);
}

const char *st_shape_text(int rank, const int64_t *shape, char *buf, size_t size)
{
    size_t k = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < rank && k < size; i++)
        k += (size_t)snprintf(buf + k, size - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < size) snprintf(buf + k, size - k, "]");
    return buf;
}

/* Fills t from the header entry v; reports each problem and returns false when there is one. */
static bool st_tensor_parse(const struct st_file *f, const struct json *v, struct st_tensor *t,
                            struct diag *d)
{
    const char *F = f->name, *N = v->key;
    *t = (struct st_tensor){.name = N, .dtype = ST_DTYPE_COUNT, .numel = 1};
    if (v->kind != JSON_OBJECT) {
        st_error(d, F, N, "expected an object with dtype, shape and data_offsets, got %s",
                 json_describe(v));
        return false;
    }
    const struct json *dt = NULL, *sh = NULL, *off = NULL;
    bool ok = true;
    for (const struct json *c = v->first; c; c = c->next) {
        if (!strcmp(c->key, "dtype")) dt = c;
        else if (!strcmp(c->key, "shape")) sh = c;
        else if (!strcmp(c->key, "data_offsets")) off = c;
        else {
            st_error(d, F, N, "unknown key '%s' (expected dtype, shape, data_offsets)", c->key);
            ok = false;
        }
    }
    const char *missing = !dt ? "dtype" : !sh ? "shape" : !off ? "data_offsets" : NULL;
    if (missing) {
        st_error(d, F, N, "missing '%s'", missing);
        return false;
    }
    bool known = false;
    for (int i = 0; dt->kind == JSON_STRING && i < ST_DTYPE_COUNT; i++)
        if (!strcmp(dt->str, st_dtype_names[i])) t->dtype = (enum st_dtype)i;
    for (size_t i = 0; dt->kind == JSON_STRING && i < ARRAY_LEN(st_other_dtypes); i++)
        known |= !strcmp(dt->str, st_other_dtypes[i]);
    if (dt->kind != JSON_STRING) {
        st_error(d, F, N, "dtype must be a string, got %s", json_describe(dt));
        ok = false;
    } else if (t->dtype == ST_DTYPE_COUNT) {
        st_error(d, F, N, "%s dtype '%s' (F32, F16, BF16 and I64 are supported)",
                 known ? "unsupported" : "unknown", dt->str);
        ok = false;
    }

    bool dims = sh->kind == JSON_ARRAY && sh->n <= ST_MAX_RANK;
    if (sh->kind != JSON_ARRAY)
        st_error(d, F, N, "shape must be a list of integers, got %s", json_describe(sh));
    else if (!dims)
        st_error(d, F, N, "%zu dimensions; at most %d are supported", sh->n, ST_MAX_RANK);
    ok = ok && dims;
    for (const struct json *c = dims ? sh->first : NULL; c; c = c->next, t->rank++) {
        if (c->kind != JSON_INT)
            st_error(d, F, N, "shape[%d] must be an integer, got %s", t->rank, json_describe(c));
        else if (c->num < 0)
            st_error(d, F, N, "shape[%d] is %lld; dimensions must be >= 0", t->rank,
                     (long long)c->num);
        else if (t->numel > 0 && c->num > INT64_MAX / 8 / t->numel) /* bytes fit in int64 */
            st_error(d, F, N, "the shape is too large");
        else {
            t->shape[t->rank] = c->num;
            t->numel *= c->num;
            continue;
        }
        ok = false;
        break;
    }

    const struct json *b = off->kind == JSON_ARRAY && off->n == 2 ? off->first : NULL;
    const struct json *e = b ? b->next : NULL;
    if (!b || b->kind != JSON_INT || e->kind != JSON_INT || b->num < 0 || e->num < 0) {
        st_error(d, F, N, "data_offsets must be [begin, end], two integers >= 0");
        return false;
    }
    if (e->num < b->num) {
        st_error(d, F, N, "data_offsets [%lld, %lld] end before they begin", (long long)b->num,
                 (long long)e->num);
        return false;
    }
    t->begin = (size_t)b->num;
    t->end = (size_t)e->num;
    uint64_t need = ok ? (uint64_t)t->numel * st_dtype_sizes[t->dtype] : 0;
    if (ok && t->end - t->begin != need) {
        char s[ST_SHAPE_TEXT];
        st_error(d, F, N, "%s %s needs %llu bytes but data_offsets [%zu, %zu] hold %zu",
                 st_dtype_names[t->dtype], st_shape_text(t->rank, t->shape, s, sizeof s),
                 (unsigned long long)need, t->begin, t->end, t->end - t->begin);
        ok = false;
    }
    return ok;
}

static int cmp_by_offsets(const void *a, const void *b)
{
    const struct st_tensor *x = *(const struct st_tensor *const *)a;
    const struct st_tensor *y = *(const struct st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return (x > y) - (x < y);
}

static int cmp_by_name(const void *a, const void *b)
{
    return strcmp((*(const struct st_tensor *const *)a)->name,
                  (*(const struct st_tensor *const *)b)->name);
}

/* The tensors must tile the data section: sorted by offsets, each begins where the last ended. */
static bool st_check_coverage(struct st_file *f, struct diag *d)
{
    const char *F = f->name;
    const struct st_tensor *last = NULL;
    for (size_t i = 0; i < f->n; i++)
        if (!last || f->tensors[i].end > last->end) last = &f->tensors[i];
    if (last && last->end > f->data_size) {
        st_error(d, F, last->name, "ends at byte %zu of the data section, which has %zu bytes: "
                 "the file is truncated (%zu bytes missing)", last->end, f->data_size,
                 last->end - f->data_size);
        return false;
    }
    const struct st_tensor **order = f->by_name; /* scratch until sorted by name */
    for (size_t i = 0; i < f->n; i++) order[i] = &f->tensors[i];
    qsort(order, f->n, sizeof *order, cmp_by_offsets);
    size_t at = 0;
    for (size_t i = 0; i < f->n; i++) {
        const struct st_tensor *t = order[i], *prev = i ? order[i - 1] : NULL;
        if (t->begin < at) {
            st_error(d, F, NULL, "tensors '%s' [%zu, %zu) and '%s' [%zu, %zu) overlap",
                     prev->name, prev->begin, prev->end, t->name, t->begin, t->end);
            return false;
        }
        if (t->begin > at) {
            st_error(d, F, NULL, "bytes [%zu, %zu) of the data section, before tensor '%s', "
                     "belong to no tensor; the tensors must cover the data without gaps", at,
                     t->begin, t->name);
            return false;
        }
        at = t->end;
    }
    if (at < f->data_size) {
        st_error(d, F, NULL, "the last %zu bytes of the data section belong to no tensor; the "
                 "tensors must cover the data without gaps", f->data_size - at);
        return false;
    }
    return true;
}

static enum status st_parse(struct st_file *f, const unsigned char *bytes, size_t size,
                            struct diag *d)
{
    const char *F = f->name;
    if (size < 8) {
        st_error(d, F, NULL, "the file is %zu bytes, too short for the 8-byte header length; not "
                 "a safetensors file", size);
        return STATUS_CONFIG;
    }
    uint64_t hlen = load_le(bytes, 8);
    if (hlen > size - 8) {
        st_error(d, F, NULL, "the header length is %llu bytes but only %zu bytes follow it; not a "
                 "safetensors file, or truncated", (unsigned long long)hlen, size - 8);
        return STATUS_CONFIG;
    }
    if (hlen > ST_MAX_HEADER) {
        st_error(d, F, NULL, "the header is %llu bytes, more than the limit of %llu",
                 (unsigned long long)hlen, (unsigned long long)ST_MAX_HEADER);
        return STATUS_CONFIG;
    }
    struct json_parser p = {.arena = &f->arena, .s = bytes + 8, .len = (size_t)hlen,
                            .what = "the header"};
    struct json *root = json_parse(&p);
    if (!root) {
        st_error(d, F, NULL, "bad header JSON at byte %zu of the header: %s", p.err_at, p.err);
        return STATUS_CONFIG;
    }
    if (root->kind != JSON_OBJECT) {
        st_error(d, F, NULL, "the header must be a JSON object, got %s", json_describe(root));
        return STATUS_CONFIG;
    }
    f->data = bytes + 8 + hlen;
    f->data_size = size - 8 - (size_t)hlen;
    f->tensors = arena_alloc(&f->arena, (root->n + 1) * sizeof *f->tensors);
    f->by_name = arena_alloc(&f->arena, (root->n + 1) * sizeof *f->by_name);
    int errors = d->errors;
    for (const struct json *m = root->first; m; m = m->next) {
        if (strcmp(m->key, "__metadata__")) {
            f->n += st_tensor_parse(f, m, &f->tensors[f->n], d);
            continue;
        }
        if (m->kind != JSON_OBJECT) {
            st_error(d, F, NULL, "__metadata__ must be an object of strings, got %s",
                     json_describe(m));
            continue;
        }
        f->meta = arena_alloc(&f->arena, (2 * m->n + 1) * sizeof *f->meta);
        for (const struct json *c = m->first; c; c = c->next) {
            if (c->kind != JSON_STRING)
                st_error(d, F, NULL, "__metadata__ '%s' must be a string, got %s", c->key,
                         json_describe(c));
            f->meta[2 * f->nmeta] = c->key;
            f->meta[2 * f->nmeta++ + 1] = c->str;
        }
    }
    if (d->errors > errors || !st_check_coverage(f, d)) return STATUS_CONFIG;
    for (size_t i = 0; i < f->n; i++) f->by_name[i] = &f->tensors[i];
    qsort(f->by_name, f->n, sizeof *f->by_name, cmp_by_name);
    return STATUS_OK;
}

enum status st_open_memory(const char *name, const void *bytes, size_t size, struct diag *d,
                           struct st_file **out)
{
    *out = NULL;
    struct st_file *f = calloc(1, sizeof *f);
    if (!f) {
        st_error(d, name, NULL, "out of memory");
        return STATUS_RUNTIME;
    }
    f->name = arena_strdup(&f->arena, name);
    enum status st = st_parse(f, bytes, size, d);
    if (st) st_close(f);
    else *out = f;
    return st;
}

enum status st_open(const char *path, struct diag *d, struct st_file **out)
{
    *out = NULL;
    const char *why = NULL;
    enum status st = STATUS_CONFIG;
    struct stat sb;
    unsigned char *buf = NULL;
    size_t got = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp || fstat(fileno(fp), &sb) != 0) why = strerror(errno);
    else if (S_ISDIR(sb.st_mode)) why = "it is a directory";
    else if (!S_ISREG(sb.st_mode)) why = "it is not a regular file";
    else if (!(buf = malloc(sb.st_size ? (size_t)sb.st_size : 1))) {
        why = "out of memory";
        st = STATUS_RUNTIME;
    } else if ((got = fread(buf, 1, (size_t)sb.st_size, fp)) != (size_t)sb.st_size) {
        why = ferror(fp) ? strerror(errno) : "it changed while being read";
    }
    if (fp) fclose(fp);
    if (why) {
        free(buf);
        diag_error(d, (struct mark){0}, "cannot read '%s': %s", path, why);
        return st;
    }
    st = st_open_memory(path, buf, got, d, out);
    if (st) free(buf);
    else (*out)->owned = buf;
    return st;
}

void st_close(struct st_file *f)
{
    if (!f) return;
    free(f->owned);
    arena_free(&f->arena);
    free(f);
}

size_t st_count(const struct st_file *f) { return f->n; }

const struct st_tensor *st_tensor_at(const struct st_file *f, size_t i)
{
    return i < f->n ? &f->tensors[i] : NULL;
}

static int cmp_name_key(const void *key, const void *elem)
{
    return strcmp(key, (*(const struct st_tensor *const *)elem)->name);
}

const struct st_tensor *st_find(const struct st_file *f, const char *name)
{
    const struct st_tensor *const *t = bsearch(name, f->by_name, f->n, sizeof *f->by_name,
                                               cmp_name_key);
    return t ? *t : NULL;
}

bool st_rename(struct st_file *f, size_t i, const char *name)
{
    if (i >= f->n || st_find(f, name)) return false;
    f->tensors[i].name = arena_strdup(&f->arena, name);
    qsort(f->by_name, f->n, sizeof *f->by_name, cmp_by_name);
    return true;
}

const char *st_metadata(const struct st_file *f, const char *key)
{
    for (size_t i = 0; i < f->nmeta; i++)
        if (!strcmp(f->meta[2 * i], key)) return f->meta[2 * i + 1];
    return NULL;
}

const void *st_data(const struct st_file *f, const struct st_tensor *t)
{
    return f->data + t->begin;
}

/* The tensor called name, when it is float (or I64) and its shape is (rank, shape); else an
 * error. */
static const struct st_tensor *st_expect(const struct st_file *f, const char *name, int rank,
                                         const int64_t *shape, bool want_float, struct diag *d)
{
    const struct st_tensor *t = st_find(f, name);
    if (!t) {
        st_error(d, f->name, NULL, "no tensor '%s'", name);
        const char **names = malloc((f->n + 1) * sizeof *names);
        for (size_t i = 0; names && i < f->n; i++) names[i] = f->tensors[i].name;
        const char *best = names ? diag_closest(name, (const char *const *)names, f->n) : NULL;
        if (best) diag_hint(d, "did you mean '%s'?", best);
        free(names);
        return NULL;
    }
    if (want_float ? t->dtype == ST_I64 : t->dtype != ST_I64) {
        st_error(d, f->name, name, "dtype %s, expected %s", st_dtype_names[t->dtype],
                 want_float ? "F32, F16 or BF16" : "I64");
        return NULL;
    }
    bool same = t->rank == rank;
    for (int i = 0; same && i < rank; i++) same = t->shape[i] == shape[i];
    if (!same) {
        char a[ST_SHAPE_TEXT], b[ST_SHAPE_TEXT];
        st_error(d, f->name, name, "shape %s, expected %s",
                 st_shape_text(t->rank, t->shape, a, sizeof a),
                 st_shape_text(rank < 0 || rank > ST_MAX_RANK ? 0 : rank, shape, b, sizeof b));
        return NULL;
    }
    return t;
}

enum status st_read_f32(const struct st_file *f, const char *name, int rank,
                        const int64_t *shape, float *dst, struct diag *d)
{
    const struct st_tensor *t = st_expect(f, name, rank, shape, true, d);
    if (!t) return STATUS_CONFIG;
    const unsigned char *p = f->data + t->begin;
    size_t n = (size_t)t->numel;
    switch (t->dtype) {
    case ST_F32:
        for (size_t i = 0; i < n; i++) dst[i] = bits_f32((uint32_t)load_le(p + 4 * i, 4));
        break;
    case ST_F16:
        for (size_t i = 0; i < n; i++) dst[i] = st_f16_to_f32((uint16_t)load_le(p + 2 * i, 2));
        break;
    case ST_BF16:
        for (size_t i = 0; i < n; i++) dst[i] = st_bf16_to_f32((uint16_t)load_le(p + 2 * i, 2));
        break;
    case ST_I64: case ST_DTYPE_COUNT: break;
    }
    return STATUS_OK;
}

enum status st_read_i64(const struct st_file *f, const char *name, int rank,
                        const int64_t *shape, int64_t *dst, struct diag *d)
{
    const struct st_tensor *t = st_expect(f, name, rank, shape, false, d);
    if (!t) return STATUS_CONFIG;
    for (size_t i = 0; i < (size_t)t->numel; i++)
        dst[i] = (int64_t)load_le(f->data + t->begin + 8 * i, 8);
    return STATUS_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Writing */

struct st_entry {
    struct st_entry *next;
    const char *name, *value; /* value: metadata only */
    const char *error;        /* a bad argument, reported by st_write */
    enum st_dtype dtype;
    int rank;
    int64_t shape[ST_MAX_RANK];
    const float *f32;
    const int64_t *i64;
    size_t bytes;
};

struct st_writer {
    struct arena arena;
    struct st_entry *tensors, **tensors_tail, *meta, **meta_tail;
    size_t ntensors, nmeta;
};

struct st_writer *st_writer_new(void)
{
    struct st_writer *w = calloc(1, sizeof *w);
    if (!w) {
        fprintf(stderr, "runner: out of memory (allocating a safetensors writer)\n");
        abort();
    }
    w->tensors_tail = &w->tensors;
    w->meta_tail = &w->meta;
    return w;
}

void st_writer_free(struct st_writer *w)
{
    if (!w) return;
    arena_free(&w->arena);
    free(w);
}

static struct st_entry *st_add(struct st_writer *w, const char *name, enum st_dtype as, int rank,
                               const int64_t *shape)
{
    struct st_entry *e = arena_alloc(&w->arena, sizeof *e);
    e->name = arena_strdup(&w->arena, name ? name : "(null)");
    e->dtype = as;
    if (!name) e->error = "the name is NULL";
    else if (!strcmp(name, "__metadata__")) e->error = "the name is reserved for the metadata";
    else if (rank < 0 || rank > ST_MAX_RANK || (rank && !shape))
        e->error = arena_printf(&w->arena, "rank %d (0 to %d dimensions are supported, with a "
                                "shape)", rank, ST_MAX_RANK);
    else
        for (e->rank = rank; rank-- > 0;) e->shape[rank] = shape[rank];
    *w->tensors_tail = e;
    w->tensors_tail = &e->next;
    w->ntensors++;
    return e;
}

void st_add_f32(struct st_writer *w, const char *name, enum st_dtype as, int rank,
                const int64_t *shape, const float *data)
{
    struct st_entry *e = st_add(w, name, as, rank, shape);
    e->f32 = data;
    if (!e->error && as != ST_F32 && as != ST_F16 && as != ST_BF16)
        e->error = arena_printf(&w->arena, "f32 data can be stored as F32, F16 or BF16, not %s",
                                st_dtype_name(as));
}

void st_add_i64(struct st_writer *w, const char *name, int rank, const int64_t *shape,
                const int64_t *data)
{
    st_add(w, name, ST_I64, rank, shape)->i64 = data;
}

void st_add_metadata(struct st_writer *w, const char *key, const char *value)
{
    struct st_entry *e = arena_alloc(&w->arena, sizeof *e);
    e->name = arena_strdup(&w->arena, key ? key : "(null)");
    e->value = arena_strdup(&w->arena, value ? value : "(null)");
    if (!key || !value) e->error = "a metadata key or value is NULL";
    *w->meta_tail = e;
    w->meta_tail = &e->next;
    w->nmeta++;
}

static int cmp_entry_name(const void *a, const void *b)
{
    return strcmp((*(const struct st_entry *const *)a)->name,
                  (*(const struct st_entry *const *)b)->name);
}

/* Reports the first name that appears twice in the list. */
static bool st_unique(const struct st_entry *list, size_t n, const char *what, const char *path,
                      struct diag *d)
{
    const struct st_entry **v = malloc((n + 1) * sizeof *v);
    if (!v) return false;
    size_t i = 0;
    for (const struct st_entry *e = list; e; e = e->next) v[i++] = e;
    qsort(v, n, sizeof *v, cmp_entry_name);
    for (i = 1; i < n && strcmp(v[i - 1]->name, v[i]->name); i++) {}
    if (i < n) st_error(d, path, NULL, "%s '%s' is added twice", what, v[i]->name);
    free(v);
    return i >= n;
}

/* Checks every argument and sizes each tensor. */
static bool st_writer_check(struct st_writer *w, const char *path, struct diag *d)
{
    int errors = d->errors;
    for (struct st_entry *e = w->meta; e; e = e->next) {
        if (e->error) st_error(d, path, NULL, "%s", e->error);
        else if (!json_utf8_valid(e->name) || !json_utf8_valid(e->value))
            st_error(d, path, NULL, "metadata '%s' is not valid UTF-8", e->name);
    }
    uint64_t total = 0;
    for (struct st_entry *e = w->tensors; e; e = e->next) {
        uint64_t n = st_dtype_size(e->dtype);
        for (int i = 0; i < e->rank && !e->error; i++) {
            if (e->shape[i] < 0) e->error = "a dimension is negative";
            else if (n && (uint64_t)e->shape[i] > (uint64_t)INT64_MAX / n) e->error = "too large";
            else n *= (uint64_t)e->shape[i];
        }
        e->bytes = (size_t)n;
        if (!e->error && n > (uint64_t)INT64_MAX - total) e->error = "too large";
        if (!e->error && n && !e->f32 && !e->i64) e->error = "the data is NULL";
        if (!e->error && !json_utf8_valid(e->name)) e->error = "the name is not valid UTF-8";
        if (e->error) st_error(d, path, e->name, "%s", e->error);
        else total += n;
    }
    if (d->errors > errors) return false;
    return st_unique(w->tensors, w->ntensors, "tensor", path, d) &&
           st_unique(w->meta, w->nmeta, "metadata key", path, d);
}

static void json_put_string(FILE *o, const char *s)
{
    fputc('"', o);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        const char *esc = strchr("\"\\\b\f\n\r\t", *p);
        if (esc) fprintf(o, "\\%c", "\"\\bfnrt"[esc - "\"\\\b\f\n\r\t"]);
        else if (*p < 0x20) fprintf(o, "\\u%04x", *p);
        else fputc(*p, o);
    }
    fputc('"', o);
}

/* The header JSON, padded with spaces so that 8 + *len is a multiple of 8 (caller frees). */
static char *st_header(const struct st_writer *w, size_t *len)
{
    char *buf = NULL;
    FILE *o = open_memstream(&buf, len);
    if (!o) return NULL;
    fputc('{', o);
    if (w->meta) fputs("\"__metadata__\":{", o);
    for (const struct st_entry *e = w->meta; e; e = e->next) {
        json_put_string(o, e->name);
        fputc(':', o);
        json_put_string(o, e->value);
        fputs(e->next ? "," : w->tensors ? "}," : "}", o);
    }
    size_t at = 0;
    for (const struct st_entry *e = w->tensors; e; e = e->next) {
        json_put_string(o, e->name);
        fprintf(o, ":{\"dtype\":\"%s\",\"shape\":[", st_dtype_name(e->dtype));
        for (int i = 0; i < e->rank; i++)
            fprintf(o, "%s%lld", i ? "," : "", (long long)e->shape[i]);
        fprintf(o, "],\"data_offsets\":[%zu,%zu]}%s", at, at + e->bytes, e->next ? "," : "");
        at += e->bytes;
    }
    fputc('}', o);
    fflush(o);
    while (*len % 8) {
        fputc(' ', o);
        fflush(o);
    }
    if (ferror(o) | fclose(o)) {
        free(buf);
        return NULL;
    }
    return buf;
}

static bool write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            errno = k < 0 ? errno : EIO;
            return false;
        }
        p += k;
        n -= (size_t)k;
    }
    return true;
}

/* Writes e's data little-endian, in the stored dtype, through a fixed staging buffer. */
static bool st_write_data(int fd, const struct st_entry *e)
{
    unsigned char buf[16384];
    size_t size = st_dtype_size(e->dtype), n = e->bytes / size, chunk = sizeof buf / size;
    for (size_t i0 = 0; i0 < n; i0 += chunk) {
        size_t m = n - i0 < chunk ? n - i0 : chunk;
        const float *f = e->f32;
        const int64_t *v = e->i64;
        for (size_t i = 0; i < m; i++) {
            switch (e->dtype) {
            case ST_F32: store_le(buf + 4 * i, f32_bits(f[i0 + i]), 4); break;
            case ST_F16: store_le(buf + 2 * i, st_f32_to_f16(f[i0 + i]), 2); break;
            case ST_BF16: store_le(buf + 2 * i, st_f32_to_bf16(f[i0 + i]), 2); break;
            case ST_I64: store_le(buf + 8 * i, (uint64_t)v[i0 + i], 8); break;
            case ST_DTYPE_COUNT: errno = EINVAL; return false;
            }
        }
        if (!write_all(fd, buf, m * size)) return false;
    }
    return true;
}

enum status st_write(struct st_writer *w, const char *path, struct diag *d)
{
    if (!st_writer_check(w, path, d)) return STATUS_CONFIG;
    size_t hlen;
    char *header = st_header(w, &hlen);
    if (!header) {
        diag_error(d, (struct mark){0}, "cannot write '%s': out of memory", path);
        return STATUS_RUNTIME;
    }
    if (hlen > ST_MAX_HEADER) {
        diag_error(d, (struct mark){0}, "cannot write '%s': the header would be %zu bytes, more "
                   "than the limit of %llu", path, hlen, (unsigned long long)ST_MAX_HEADER);
        free(header);
        return STATUS_CONFIG;
    }
    const char *tmp = arena_printf(&w->arena, "%s.tmp", path);
    unsigned char len8[8];
    store_le(len8, hlen, 8);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        diag_error(d, (struct mark){0}, "cannot write '%s': %s", tmp, strerror(errno));
        free(header);
        return STATUS_RUNTIME;
    }
    bool ok = write_all(fd, len8, 8) && write_all(fd, header, hlen);
    for (const struct st_entry *e = w->tensors; ok && e; e = e->next) ok = st_write_data(fd, e);
    ok = ok && fsync(fd) == 0;
    int err = errno;
    if (close(fd) != 0 && ok) {
        ok = false;
        err = errno;
    }
    if (ok && rename(tmp, path) != 0) {
        ok = false;
        err = errno;
    }
    free(header);
    if (!ok) {
        unlink(tmp);
        diag_error(d, (struct mark){0}, "cannot write '%s': %s", path, strerror(err));
        return STATUS_RUNTIME;
    }
    int dir = open(path_dirname(&w->arena, path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir >= 0) {
        (void)fsync(dir); /* makes the rename durable; some file systems refuse, harmlessly */
        close(dir);
    }
    return STATUS_OK;
}
