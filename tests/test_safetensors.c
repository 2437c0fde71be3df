/*
 * test_safetensors.c: the .safetensors reader and writer (safetensors.c): round trips of every
 * dtype with a scalar and an empty tensor, odd names and metadata; the writer's exact bytes
 * and their determinism; atomic replacement; a file laid out as the Python library writes it;
 * f16 and bf16 conversions against known bit patterns and an exhaustive reference; and one
 * case per malformed file, each asserting that st_open fails with a message that names the
 * file, the tensor where there is one, and what is wrong.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "safetensors.h"
#include "test_util.h"

#define CANARY 0x5EEDF00Du

TMPDIR_FIXTURE("test_safetensors")

/* --------------------------------------------------------------------------------------- */
/* Helpers */

static void write_bytes(const char *path, const void *bytes, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(bytes, 1, n, f) != n || fclose(f) != 0) fail_msg("cannot write %s", path);
}

static unsigned char *read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot read %s", path);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n + 1);
    if (fread(b, 1, *n, f) != *n) fail_msg("short read of %s", path);
    fclose(f);
    return b;
}

/* A file: the little-endian length of header, header, then data_len bytes of 0xAB. */
static unsigned char *make_file(const char *header, size_t data_len, size_t *n)
{
    size_t h = strlen(header);
    *n = 8 + h + data_len;
    unsigned char *b = malloc(*n);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)h >> (8 * i));
    memcpy(b + 8, header, h);
    memset(b + 8 + h, 0xAB, data_len);
    return b;
}

/* st_open with the messages captured in *msgs (caller frees); returns the error count. */
static int open_capture(const char *path, struct st_file **f, enum status *st, char **msgs)
{
    size_t len;
    FILE *mem = open_memstream(msgs, &len);
    struct diag d = {.out = mem};
    *st = st_open(path, &d, f);
    fclose(mem);
    return d.errors;
}

static struct st_file *open_ok(const char *path)
{
    struct st_file *f;
    enum status st;
    char *msgs;
    open_capture(path, &f, &st, &msgs);
    if (st != STATUS_OK) fail_msg("%s did not open:\n%s", path, msgs);
    free(msgs);
    return f;
}

static void expect_in(const char *msgs, const char *want)
{
    if (!strstr(msgs, want)) fail_msg("expected \"%s\" in the message:\n%s", want, msgs);
}

/* --------------------------------------------------------------------------------------- */
/* Conversions */

/* f16 code h (not inf or NaN) as a double, from the definition. */
static double f16_ref(uint16_t h)
{
    int e = h >> 10 & 0x1f, m = h & 0x3ff;
    double v = e ? ldexp(1024 + m, e - 25) : ldexp(m, -24);
    return h & 0x8000 ? -v : v;
}

static double bf16_ref(uint16_t h)
{
    int e = h >> 7 & 0xff, m = h & 0x7f;
    double v = e ? ldexp(128 + m, e - 134) : ldexp(m, -133);
    return h & 0x8000 ? -v : v;
}

static uint32_t bits(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    return x;
}

static void test_f16_known_bits(void **state)
{
    (void)state;
    static const struct { float f; uint16_t h; } cases[] = {
        {1.0f, 0x3c00}, {-2.0f, 0xc000}, {65504.0f, 0x7bff}, {0.0f, 0x0000}, {-0.0f, 0x8000},
        {0x1p-24f, 0x0001},             /* smallest subnormal */
        {0x3ffp-24f, 0x03ff},           /* largest subnormal */
        {0x1p-14f, 0x0400},             /* smallest normal */
        {INFINITY, 0x7c00}, {-INFINITY, 0xfc00},
        {65519.0f, 0x7bff},             /* just below the midpoint to inf */
        {65520.0f, 0x7c00},             /* the midpoint: ties to even, which is inf */
        {1e9f, 0x7c00},
        {1.0f + 0x1p-11f, 0x3c00},      /* tie between 0x3c00 and 0x3c01: even */
        {1.0f + 0x3p-11f, 0x3c02},      /* tie between 0x3c01 and 0x3c02: even */
        {1.0f + 0x1p-11f + 0x1p-23f, 0x3c01}, /* just above the tie */
        {0x1p-25f, 0x0000},             /* tie between 0 and the smallest subnormal */
        {0x3p-25f, 0x0002},             /* tie between 0x0001 and 0x0002 */
        {0x1.000002p-25f, 0x0001},      /* just above the first tie */
        {-0x1p-30f, 0x8000},            /* underflow keeps the sign */
        {0x7ffp-25f, 0x0400},           /* largest subnormal + half a step: up to normal */
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        uint16_t h = st_f32_to_f16(cases[i].f);
        if (h != cases[i].h)
            fail_msg("f32_to_f16(%a) = 0x%04x, expected 0x%04x", (double)cases[i].f, h, cases[i].h);
    }
    assert_true(st_f16_to_f32(0x3c00) == 1.0f);
    assert_true(st_f16_to_f32(0xc000) == -2.0f);
    assert_true(st_f16_to_f32(0x7bff) == 65504.0f);
    assert_true(st_f16_to_f32(0x0001) == 0x1p-24f);
    assert_int_equal(bits(st_f16_to_f32(0x8000)), 0x80000000u);
    assert_true(isinf(st_f16_to_f32(0xfc00)) && st_f16_to_f32(0xfc00) < 0);
    /* NaN stays NaN both ways, payloads included. */
    uint16_t hn = st_f32_to_f16(NAN);
    assert_true((hn & 0x7c00) == 0x7c00 && (hn & 0x3ff) != 0);
    float tiny_payload;
    uint32_t tp = 0x7f800001u; /* a NaN whose payload is below f16's mantissa */
    memcpy(&tiny_payload, &tp, 4);
    assert_true((st_f32_to_f16(tiny_payload) & 0x3ff) != 0);
    assert_true(isnan(st_f16_to_f32(0x7c01)) && isnan(st_f16_to_f32(0xfe00)));
}

/* Every f16 code decodes to its defined value and encodes back to itself; every midpoint
 * between neighbours rounds to the even one, and a hair either side to the nearer. */
static void test_f16_exhaustive(void **state)
{
    (void)state;
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = st_f16_to_f32((uint16_t)h);
        if ((h & 0x7c00) == 0x7c00) {
            assert_true((h & 0x3ff) ? isnan(f) : isinf(f));
            continue;
        }
        if ((double)f != f16_ref((uint16_t)h) || (h == 0x8000) != (bits(f) == 0x80000000u))
            fail_msg("f16_to_f32(0x%04x) = %a, expected %a", h, (double)f, f16_ref((uint16_t)h));
        if (st_f32_to_f16(f) != h) fail_msg("f16 0x%04x does not round-trip", h);
    }
    for (uint16_t h = 0; h < 0x7c00; h++) {
        double hi = h + 1 == 0x7c00 ? 65536.0 : f16_ref((uint16_t)(h + 1));
        float mid = (float)((f16_ref(h) + hi) / 2); /* exact in f32 */
        uint16_t even = h & 1 ? (uint16_t)(h + 1) : h;
        uint16_t got = st_f32_to_f16(mid), below = st_f32_to_f16(nextafterf(mid, 0));
        uint16_t above = st_f32_to_f16(nextafterf(mid, INFINITY));
        if (got != even || below != h || above != h + 1)
            fail_msg("around %a (between 0x%04x and 0x%04x): got 0x%04x, 0x%04x, 0x%04x",
                     (double)mid, h, h + 1, below, got, above);
        if (st_f32_to_f16(-mid) != (even | 0x8000)) fail_msg("-%a: sign lost", (double)mid);
    }
}

static void test_bf16(void **state)
{
    (void)state;
    static const struct { float f; uint16_t h; } cases[] = {
        {1.0f, 0x3f80}, {-2.0f, 0xc000}, {0.0f, 0x0000}, {-0.0f, 0x8000},
        {INFINITY, 0x7f80}, {-INFINITY, 0xff80},
        {1.0f + 0x1p-8f, 0x3f80},        /* tie: even */
        {1.0f + 0x3p-8f, 0x3f82},        /* tie: even */
        {1.0f + 0x1p-8f + 0x1p-23f, 0x3f81},
        {0x1.fffffep127f, 0x7f80},       /* FLT_MAX rounds up to inf */
        {0x1.fep127f, 0x7f7f},           /* the largest bf16 */
        {0x1p-133f, 0x0001},             /* a subnormal */
        {0x3p-149f, 0x0000},             /* below half the smallest bf16 subnormal */
        {3.0f * 0x1p-134f, 0x0002},      /* subnormal tie between 0x0001 and 0x0002 */
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        uint16_t h = st_f32_to_bf16(cases[i].f);
        if (h != cases[i].h)
            fail_msg("f32_to_bf16(%a) = 0x%04x, expected 0x%04x", (double)cases[i].f, h,
                     cases[i].h);
    }
    uint16_t hn = st_f32_to_bf16(NAN);
    assert_true((hn & 0x7f80) == 0x7f80 && (hn & 0x7f) != 0);
    float low_payload;
    uint32_t lp = 0xff800001u;
    memcpy(&low_payload, &lp, 4);
    hn = st_f32_to_bf16(low_payload);
    assert_true((hn & 0x7f) != 0 && (hn & 0x8000));
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = st_bf16_to_f32((uint16_t)h);
        if ((h & 0x7f80) == 0x7f80) {
            assert_true((h & 0x7f) ? isnan(f) : isinf(f));
            continue;
        }
        if ((double)f != bf16_ref((uint16_t)h)) fail_msg("bf16_to_f32(0x%04x) = %a", h, (double)f);
        if (st_f32_to_bf16(f) != h) fail_msg("bf16 0x%04x does not round-trip", h);
        if ((h & 0x7fff) < 0x7f80 - 1) {
            float mid = (float)((bf16_ref((uint16_t)h) + bf16_ref((uint16_t)(h + 1))) / 2);
            uint16_t want = h & 1 ? (uint16_t)(h + 1) : (uint16_t)h;
            if (st_f32_to_bf16(mid) != want)
                fail_msg("bf16 tie %a: got 0x%04x, expected 0x%04x", (double)mid,
                         st_f32_to_bf16(mid), want);
        }
    }
}

/* --------------------------------------------------------------------------------------- */
/* Round trips and the writer's bytes */

#define ODD_NAME "a \"quoted\" \\ name\n\twith \x01 and \xc3\xbc\xe5\x90\x8d" /* ü名 */

static void test_round_trip(void **state)
{
    (void)state;
    float w[2 * 3] = {1, -2, 0.5f, 3.25f, -0.0f, 1e-3f};              /* (2, 3) */
    float h[5] = {1, -2, 65504, 0x1p-24f, 1.0f + 0x3p-11f};          /* exact but the last */
    float b[4] = {1, -2, 0x1p-133f, 1.0f + 0x1p-8f};                  /* exact but the last */
    int64_t steps = 123456789012345, ids[3] = {-1, 0, INT64_MAX};
    int64_t sw[2] = {2, 3}, sh[1] = {5}, sb[3] = {1, 2, 2}, si[1] = {3}, se[2] = {0, 5};
    struct st_writer *wr = st_writer_new();
    st_add_metadata(wr, "format", "pt");
    st_add_metadata(wr, "note", "line 1\nline \"2\"");
    st_add_f32(wr, "fc.weight", ST_F32, 2, sw, w);
    st_add_f32(wr, ODD_NAME, ST_F16, 1, sh, h);
    st_add_f32(wr, "bn.running_var", ST_BF16, 3, sb, b);
    st_add_i64(wr, "layer1.0.downsample.1.num_batches_tracked", 0, NULL, &steps);
    st_add_i64(wr, "ids", 1, si, ids);
    st_add_f32(wr, "empty", ST_F32, 2, se, NULL);
    struct diag d = {.out = stderr};
    assert_int_equal(st_write(wr, at("rt.safetensors"), &d), STATUS_OK);
    st_writer_free(wr);
    assert_int_not_equal(access(at("rt.safetensors.tmp"), F_OK), 0);

    size_t n;
    unsigned char *raw = read_bytes(at("rt.safetensors"), &n);
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)raw[i] << (8 * i);
    assert_int_equal((8 + hlen) % 8, 0);
    assert_memory_equal(raw + 8, "{\"__metadata__\":{\"format\":\"pt\",\"note\":", 38);
    assert_int_equal(n, 8 + hlen + 6 * 4 + 5 * 2 + 4 * 2 + 8 + 3 * 8);
    free(raw);

    struct st_file *f = open_ok(at("rt.safetensors"));
    assert_int_equal(st_count(f), 6);
    const char *order[] = {"fc.weight", ODD_NAME, "bn.running_var",
                           "layer1.0.downsample.1.num_batches_tracked", "ids", "empty"};
    for (size_t i = 0; i < 6; i++) {
        assert_string_equal(st_tensor_at(f, i)->name, order[i]);
        assert_ptr_equal(st_find(f, order[i]), st_tensor_at(f, i));
    }
    assert_null(st_tensor_at(f, 6));
    assert_null(st_find(f, "fc"));
    assert_string_equal(st_metadata(f, "format"), "pt");
    assert_string_equal(st_metadata(f, "note"), "line 1\nline \"2\"");
    assert_null(st_metadata(f, "missing"));

    const struct st_tensor *t = st_find(f, "fc.weight");
    assert_int_equal(t->dtype, ST_F32);
    assert_int_equal(t->rank, 2);
    assert_int_equal(t->shape[1], 3);
    assert_int_equal(t->numel, 6);
    float got[8];
    memset(got, 0, sizeof got);
    float canary;
    uint32_t cw = CANARY;
    memcpy(&canary, &cw, 4);
    got[6] = canary;
    assert_int_equal(st_read_f32(f, "fc.weight", 2, sw, got, &d), STATUS_OK);
    assert_memory_equal(got, w, sizeof w); /* -0.0 included */
    assert_int_equal(bits(got[6]), CANARY);
    float direct;
    memcpy(&direct, (const char *)st_data(f, t) + 4, 4);
    assert_true(direct == -2.0f);

    t = st_find(f, ODD_NAME);
    assert_int_equal(t->dtype, ST_F16);
    assert_int_equal(t->end - t->begin, 10);
    got[5] = canary;
    assert_int_equal(st_read_f32(f, ODD_NAME, 1, sh, got, &d), STATUS_OK);
    for (int i = 0; i < 4; i++) assert_true(got[i] == h[i]);
    assert_true(got[4] == 1.0f + 0x1p-9f); /* the tie went to even */
    assert_int_equal(bits(got[5]), CANARY);

    assert_int_equal(st_find(f, "bn.running_var")->dtype, ST_BF16);
    assert_int_equal(st_read_f32(f, "bn.running_var", 3, sb, got, &d), STATUS_OK);
    for (int i = 0; i < 3; i++) assert_true(got[i] == b[i]);
    assert_true(got[3] == 1.0f);

    t = st_find(f, "layer1.0.downsample.1.num_batches_tracked");
    assert_int_equal(t->rank, 0);
    assert_int_equal(t->numel, 1);
    int64_t iv[4] = {0, 0, 0, CANARY};
    assert_int_equal(st_read_i64(f, t->name, 0, NULL, iv, &d), STATUS_OK);
    assert_int_equal(iv[0], steps);
    assert_int_equal(iv[1], 0);
    assert_int_equal(st_read_i64(f, "ids", 1, si, iv, &d), STATUS_OK);
    assert_memory_equal(iv, ids, sizeof ids);
    assert_int_equal(iv[3], CANARY);

    t = st_find(f, "empty");
    assert_int_equal(t->numel, 0);
    assert_int_equal(t->begin, t->end);
    got[0] = canary;
    assert_int_equal(st_read_f32(f, "empty", 2, se, got, &d), STATUS_OK);
    assert_int_equal(bits(got[0]), CANARY);
    assert_int_equal(d.errors, 0);
    st_close(f);
}

/* The exact bytes for one tensor and one metadata entry: the Python library's layout. */
static void test_writer_bytes_and_determinism(void **state)
{
    (void)state;
    float v[2] = {1.5f, -2.0f};
    int64_t s[1] = {2};
    struct st_writer *w = st_writer_new();
    st_add_metadata(w, "format", "pt");
    st_add_f32(w, "a", ST_F32, 1, s, v);
    struct diag d = {.out = stderr};
    assert_int_equal(st_write(w, at("one.safetensors"), &d), STATUS_OK);
    const char *json = "{\"__metadata__\":{\"format\":\"pt\"},"
                       "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    size_t jl = strlen(json), hl = (jl + 7) / 8 * 8, n;
    unsigned char want[256] = {(unsigned char)hl};
    memcpy(want + 8, json, jl);
    memset(want + 8 + jl, ' ', hl - jl);
    memcpy(want + 8 + hl, "\x00\x00\xc0\x3f\x00\x00\x00\xc0", 8);
    unsigned char *got = read_bytes(at("one.safetensors"), &n);
    assert_int_equal(n, 16 + hl);
    assert_memory_equal(got, want, n);
    free(got);

    /* The same writer twice, and a fresh writer with the same contents: identical bytes. */
    assert_int_equal(st_write(w, at("two.safetensors"), &d), STATUS_OK);
    st_writer_free(w);
    w = st_writer_new();
    st_add_metadata(w, "format", "pt");
    st_add_f32(w, "a", ST_F32, 1, s, v);
    assert_int_equal(st_write(w, at("three.safetensors"), &d), STATUS_OK);
    st_writer_free(w);
    size_t n2, n3;
    unsigned char *a = read_bytes(at("one.safetensors"), &n);
    unsigned char *b = read_bytes(at("two.safetensors"), &n2);
    unsigned char *c = read_bytes(at("three.safetensors"), &n3);
    assert_int_equal(n, n2);
    assert_int_equal(n, n3);
    assert_memory_equal(a, b, n);
    assert_memory_equal(a, c, n);
    free(a);
    free(b);
    free(c);

    /* Without metadata there is no "__metadata__" key. */
    w = st_writer_new();
    st_add_i64(w, "k", 0, NULL, (const int64_t[]){7});
    assert_int_equal(st_write(w, at("nometa.safetensors"), &d), STATUS_OK);
    st_writer_free(w);
    got = read_bytes(at("nometa.safetensors"), &n);
    assert_int_equal(n, 8 + 56 + 8);
    assert_memory_equal(got + 8, "{\"k\":{\"dtype\":\"I64\",\"shape\":[],"
                                 "\"data_offsets\":[0,8]}}   ", 56);
    free(got);
}

/* A file that fails to write leaves the old one in place, and no temporary behind. */
static void test_atomic_replace(void **state)
{
    (void)state;
    float v[1] = {1};
    int64_t s[1] = {1};
    struct st_writer *w = st_writer_new();
    st_add_f32(w, "x", ST_F32, 1, s, v);
    struct diag d = {.out = stderr};
    assert_int_equal(st_write(w, at("keep.safetensors"), &d), STATUS_OK);
    st_writer_free(w);
    size_t n0, n1;
    unsigned char *before = read_bytes(at("keep.safetensors"), &n0);

    mkdir(at("keep.safetensors.tmp"), 0755); /* the temporary cannot be created */
    w = st_writer_new();
    st_add_f32(w, "y", ST_F32, 1, s, v);
    char *msgs = NULL;
    size_t len;
    FILE *mem = open_memstream(&msgs, &len);
    d = (struct diag){.out = mem};
    assert_int_equal(st_write(w, at("keep.safetensors"), &d), STATUS_RUNTIME);
    fclose(mem);
    expect_in(msgs, "cannot write '");
    expect_in(msgs, "keep.safetensors.tmp': Is a directory");
    free(msgs);
    unsigned char *after = read_bytes(at("keep.safetensors"), &n1);
    assert_int_equal(n0, n1);
    assert_memory_equal(before, after, n0);
    free(after);
    rmdir(at("keep.safetensors.tmp"));

    /* A missing directory. */
    mem = open_memstream(&msgs, &len);
    d = (struct diag){.out = mem};
    assert_int_equal(st_write(w, at("no/such/dir.safetensors"), &d), STATUS_RUNTIME);
    fclose(mem);
    expect_in(msgs, "no/such/dir.safetensors.tmp': No such file or directory");
    free(msgs);

    /* Success replaces the file and removes the temporary. */
    d = (struct diag){.out = stderr};
    assert_int_equal(st_write(w, at("keep.safetensors"), &d), STATUS_OK);
    st_writer_free(w);
    assert_int_not_equal(access(at("keep.safetensors.tmp"), F_OK), 0);
    struct st_file *f = open_ok(at("keep.safetensors"));
    assert_non_null(st_find(f, "y"));
    assert_null(st_find(f, "x"));
    st_close(f);
    free(before);
}

static void test_writer_bad_arguments(void **state)
{
    (void)state;
    float v[4] = {0};
    int64_t s9[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1}, neg[2] = {2, -1}, s1[1] = {1}, s4[1] = {4};
    struct st_writer *w = st_writer_new();
    st_add_f32(w, "as_i64", ST_I64, 1, s1, v);
    st_add_f32(w, "rank9", ST_F32, 9, s9, v);
    st_add_f32(w, "negative", ST_F32, 2, neg, v);
    st_add_f32(w, "__metadata__", ST_F32, 1, s1, v);
    st_add_f32(w, "no_data", ST_BF16, 1, s4, NULL);
    st_add_f32(w, "bad\xff utf8", ST_F32, 1, s1, v);
    char *msgs = NULL;
    size_t len;
    FILE *mem = open_memstream(&msgs, &len);
    struct diag d = {.out = mem};
    assert_int_equal(st_write(w, at("bad_args.safetensors"), &d), STATUS_CONFIG);
    fclose(mem);
    st_writer_free(w);
    assert_int_equal(d.errors, 6);
    expect_in(msgs, "bad_args.safetensors: tensor 'as_i64': f32 data can be stored as F32, F16 "
              "or BF16, not I64");
    expect_in(msgs, "tensor 'rank9': rank 9 (0 to 8 dimensions are supported");
    expect_in(msgs, "tensor 'negative': a dimension is negative");
    expect_in(msgs, "tensor '__metadata__': the name is reserved");
    expect_in(msgs, "tensor 'no_data': the data is NULL");
    expect_in(msgs, "the name is not valid UTF-8");
    free(msgs);
    assert_int_not_equal(access(at("bad_args.safetensors"), F_OK), 0);

    w = st_writer_new();
    st_add_f32(w, "x", ST_F32, 1, s1, v);
    st_add_f32(w, "y", ST_F32, 1, s1, v);
    st_add_f32(w, "x", ST_F16, 1, s1, v);
    mem = open_memstream(&msgs, &len);
    d = (struct diag){.out = mem};
    assert_int_equal(st_write(w, at("dup.safetensors"), &d), STATUS_CONFIG);
    fclose(mem);
    st_writer_free(w);
    expect_in(msgs, "dup.safetensors: tensor 'x' is added twice");
    free(msgs);

    w = st_writer_new();
    st_add_metadata(w, "k", "1");
    st_add_metadata(w, "k", "2");
    mem = open_memstream(&msgs, &len);
    d = (struct diag){.out = mem};
    assert_int_equal(st_write(w, at("dupmeta.safetensors"), &d), STATUS_CONFIG);
    fclose(mem);
    st_writer_free(w);
    expect_in(msgs, "metadata key 'k' is added twice");
    free(msgs);
}

/* The header as the Python library writes it (tensors first here, "__metadata__" last). */
static void test_python_layout(void **state)
{
    (void)state;
    char header[128];
    snprintf(header, sizeof header, "%-88s", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],"
             "\"data_offsets\":[0,8]},\"__metadata__\":{\"format\":\"pt\"}}");
    size_t n;
    unsigned char *b = make_file(header, 8, &n);
    memcpy(b + n - 8, "\x00\x00\xc0\x3f\x00\x00\x00\xc0", 8); /* 1.5, -2 */
    write_bytes(at("py.safetensors"), b, n);

    struct st_file *f = open_ok(at("py.safetensors"));
    assert_int_equal(st_count(f), 1);
    assert_string_equal(st_metadata(f, "format"), "pt");
    const struct st_tensor *t = st_tensor_at(f, 0);
    assert_string_equal(t->name, "a");
    assert_int_equal(t->dtype, ST_F32);
    assert_int_equal(t->rank, 1);
    assert_int_equal(t->shape[0], 2);
    float v[2];
    struct diag d = {.out = stderr};
    assert_int_equal(st_read_f32(f, "a", 1, (const int64_t[]){2}, v, &d), STATUS_OK);
    assert_true(v[0] == 1.5f && v[1] == -2.0f);
    st_close(f);

    /* The same bytes from memory; the memory is the caller's. */
    assert_int_equal(st_open_memory("<memory>", b, n, &d, &f), STATUS_OK);
    assert_ptr_equal(st_data(f, st_tensor_at(f, 0)), b + 96);
    st_close(f);
    free(b);

    /* Escapes in keys and an empty file of tensors. */
    b = make_file("{\"\\u00fc\\ud83d\\ude00\\n\\/\":{\"dtype\":\"I64\",\"shape\":[0],"
                  "\"data_offsets\":[0,0]}}", 0, &n);
    assert_int_equal(st_open_memory("<memory>", b, n, &d, &f), STATUS_OK);
    assert_string_equal(st_tensor_at(f, 0)->name, "\xc3\xbc\xf0\x9f\x98\x80\n/");
    st_close(f);
    free(b);
    b = make_file("{}", 0, &n);
    assert_int_equal(st_open_memory("<memory>", b, n, &d, &f), STATUS_OK);
    assert_int_equal(st_count(f), 0);
    st_close(f);
    free(b);
}

static void test_read_errors(void **state)
{
    (void)state;
    float v[6] = {0};
    int64_t k = 1, s23[2] = {2, 3}, s32[2] = {3, 2};
    struct st_writer *w = st_writer_new();
    st_add_f32(w, "fc.weight", ST_F32, 2, s23, v);
    st_add_i64(w, "steps", 0, NULL, &k);
    struct diag d = {.out = stderr};
    assert_int_equal(st_write(w, at("re.safetensors"), &d), STATUS_OK);
    st_writer_free(w);
    struct st_file *f = open_ok(at("re.safetensors"));
    char *msgs = NULL;
    size_t len;
    FILE *mem = open_memstream(&msgs, &len);
    d = (struct diag){.out = mem};
    float dst[6] = {7, 7, 7, 7, 7, 7};
    int64_t idst[1] = {7};
    assert_int_equal(st_read_f32(f, "fc.wieght", 2, s23, dst, &d), STATUS_CONFIG);
    assert_int_equal(st_read_f32(f, "fc.weight", 2, s32, dst, &d), STATUS_CONFIG);
    assert_int_equal(st_read_f32(f, "fc.weight", 1, s23, dst, &d), STATUS_CONFIG);
    assert_int_equal(st_read_f32(f, "steps", 0, NULL, dst, &d), STATUS_CONFIG);
    assert_int_equal(st_read_i64(f, "fc.weight", 2, s23, idst, &d), STATUS_CONFIG);
    fclose(mem);
    assert_int_equal(d.errors, 5);
    const char *p = at("re.safetensors");
    char want[4200];
    snprintf(want, sizeof want, "%s: no tensor 'fc.wieght'\nhint: did you mean 'fc.weight'?", p);
    expect_in(msgs, want);
    snprintf(want, sizeof want, "%s: tensor 'fc.weight': shape [2, 3], expected [3, 2]", p);
    expect_in(msgs, want);
    expect_in(msgs, "tensor 'fc.weight': shape [2, 3], expected [2]");
    expect_in(msgs, "tensor 'steps': dtype I64, expected F32, F16 or BF16");
    expect_in(msgs, "tensor 'fc.weight': dtype F32, expected I64");
    for (int i = 0; i < 6; i++) assert_true(dst[i] == 7);
    assert_int_equal(idst[0], 7);
    free(msgs);
    st_close(f);

    /* Files that cannot be read at all. */
    enum status st;
    assert_int_equal(open_capture(at("absent.safetensors"), &f, &st, &msgs), 1);
    assert_int_equal(st, STATUS_CONFIG);
    assert_null(f);
    expect_in(msgs, "absent.safetensors': No such file or directory");
    free(msgs);
    mkdir(at("adir.safetensors"), 0755);
    assert_int_equal(open_capture(at("adir.safetensors"), &f, &st, &msgs), 1);
    expect_in(msgs, "adir.safetensors': it is a directory");
    free(msgs);
}

/* --------------------------------------------------------------------------------------- */
/* Malformed files: each fails with one message naming the file and the problem */

#define T_A(dtype, shape, off)                                                                   \
    "{\"a\":{\"dtype\":\"" dtype "\",\"shape\":" shape ",\"data_offsets\":" off "}}"
#define T_AB(sa, oa, sb, ob)                                                                     \
    "{\"a\":{\"dtype\":\"F32\",\"shape\":" sa ",\"data_offsets\":" oa "},"                        \
    "\"b\":{\"dtype\":\"F32\",\"shape\":" sb ",\"data_offsets\":" ob "}}"

struct bad_case {
    const char *name;   /* the test's name, and the file's */
    const char *header; /* the JSON, or NULL for raw */
    size_t data;        /* bytes after the header */
    const char *raw;    /* the whole file when header is NULL */
    size_t raw_len;
    const char *want[3]; /* the message contains each */
};

static const struct bad_case bad_cases[] = {
    {"short_file", NULL, 0, "\x05\x00\x00", 3, {"is 3 bytes, too short for the 8-byte header"}},
    {"header_longer_than_file", NULL, 0, "\xe8\x03\x00\x00\x00\x00\x00\x00{}", 10,
     {"the header length is 1000 bytes but only 2 bytes follow it"}},
    {"json_missing_colon", "{\"a\" {}}", 0, NULL, 0,
     {"bad header JSON at byte 5 of the header: expected ':' after a key, got '{'"}},
    {"json_trailing_garbage", "{} x", 0, NULL, 0,
     {"bad header JSON at byte 3 of the header: unexpected data after the header's object"}},
    {"json_duplicate_key", "{\"__metadata__\":{},\"__metadata__\":{}}", 0, NULL, 0,
     {"at byte 19 of the header: duplicate key \"__metadata__\""}},
    {"json_fraction", T_A("F32", "[2.0]", "[0,8]"), 8, NULL, 0,
     {"at byte 29 of the header: only integers are allowed"}},
    {"json_leading_zero", T_A("F32", "[02]", "[0,8]"), 8, NULL, 0, {"leading zeros"}},
    {"json_null", "{\"__metadata__\":null}", 0, NULL, 0,
     {"at byte 16 of the header: true, false and null are not allowed"}},
    {"json_bad_escape", "{\"a\\q\":1}", 0, NULL, 0,
     {"at byte 3 of the header: invalid escape '\\q'"}},
    {"json_lone_surrogate", "{\"\\udc00\":1}", 0, NULL, 0, {"lone low surrogate \\uDC00"}},
    {"json_high_surrogate", "{\"\\ud800x\":1}", 0, NULL, 0,
     {"high surrogate \\uD800 without a low"}},
    {"json_nul_escape", "{\"a\\u0000\":1}", 0, NULL, 0, {"\\u0000 is not allowed"}},
    {"json_bad_utf8", "{\"a\xc3(\":1}", 0, NULL, 0, {"at byte 3 of the header: invalid UTF-8"}},
    {"json_control_char", "{\"a\tb\":1}", 0, NULL, 0, {"control character 0x09 in a string"}},
    {"json_unterminated", "{\"abc", 0, NULL, 0, {"at byte 1 of the header: unterminated string"}},
    {"json_truncated", "{\"a\":{\"dtype\":\"F32\"", 0, NULL, 0,
     {"expected ',' or '}', got the end of the header"}},
    {"json_deep", "[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]", 0, NULL, 0,
     {"at byte 16 of the header: nested deeper than 16 levels"}},
    {"json_huge_integer", T_A("F32", "[99999999999999999999]", "[0,8]"), 8, NULL, 0,
     {"integer too large"}},
    {"json_huge_fraction", T_A("F32", "[99999999999999999999.5]", "[0,8]"), 8, NULL, 0,
     {"at byte 29 of the header: integer too large"}},
    {"header_not_object", "[1]", 0, NULL, 0, {"the header must be a JSON object, got an array"}},
    {"tensor_not_object", "{\"a\":[1]}", 0, NULL, 0,
     {"tensor 'a': expected an object with dtype, shape and data_offsets, got an array"}},
    {"missing_key", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,0]}}", 0, NULL, 0,
     {"tensor 'a': missing 'shape'"}},
    {"unknown_key", "{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4],\"x\":1}}",
     4, NULL, 0, {"tensor 'a': unknown key 'x'"}},
    {"unknown_dtype", T_A("Q7", "[1]", "[0,4]"), 4, NULL, 0,
     {"tensor 'a': unknown dtype 'Q7' (F32, F16, BF16 and I64 are supported)"}},
    {"unsupported_dtype", T_A("F64", "[1]", "[0,8]"), 8, NULL, 0,
     {"tensor 'a': unsupported dtype 'F64'"}},
    {"dtype_not_string", "{\"a\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, NULL,
     0, {"tensor 'a': dtype must be a string, got an integer"}},
    {"negative_dim", T_A("F32", "[2,-3]", "[0,0]"), 0, NULL, 0,
     {"tensor 'a': shape[1] is -3; dimensions must be >= 0"}},
    {"shape_not_list", T_A("F32", "3", "[0,12]"), 12, NULL, 0,
     {"tensor 'a': shape must be a list of integers, got an integer"}},
    {"too_many_dims", T_A("F32", "[1,1,1,1,1,1,1,1,1]", "[0,4]"), 4, NULL, 0,
     {"tensor 'a': 9 dimensions; at most 8 are supported"}},
    {"shape_too_large", T_A("F32", "[4294967296,4294967296]", "[0,0]"), 0, NULL, 0,
     {"tensor 'a': the shape is too large"}},
    {"offsets_not_pair", T_A("F32", "[1]", "[4]"), 4, NULL, 0,
     {"tensor 'a': data_offsets must be [begin, end], two integers >= 0"}},
    {"offsets_negative", T_A("F32", "[1]", "[-4,0]"), 4, NULL, 0,
     {"tensor 'a': data_offsets must be [begin, end]"}},
    {"offsets_reversed", T_A("F32", "[0]", "[8,0]"), 8, NULL, 0,
     {"tensor 'a': data_offsets [8, 0] end before they begin"}},
    {"byte_length",
     "{\"layer1.0.downsample.1.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],"
     "\"data_offsets\":[0,4]}}", 4, NULL, 0,
     {"tensor 'layer1.0.downsample.1.num_batches_tracked': I64 [] needs 8 bytes but "
      "data_offsets [0, 4] hold 4"}},
    {"truncated", T_AB("[2]", "[0,8]", "[4]", "[8,24]"), 14, NULL, 0,
     {"tensor 'b': ends at byte 24 of the data section, which has 14 bytes",
      "the file is truncated (10 bytes missing)"}},
    {"overlap", T_AB("[2]", "[0,8]", "[2]", "[4,12]"), 12, NULL, 0,
     {"tensors 'a' [0, 8) and 'b' [4, 12) overlap"}},
    {"gap", T_AB("[2]", "[0,8]", "[2]", "[12,20]"), 20, NULL, 0,
     {"bytes [8, 12) of the data section, before tensor 'b', belong to no tensor"}},
    {"gap_at_start", T_A("F32", "[1]", "[4,8]"), 8, NULL, 0, {"bytes [0, 4) of the data section"}},
    {"unused_tail", T_A("F32", "[2]", "[0,8]"), 12, NULL, 0,
     {"the last 4 bytes of the data section belong to no tensor"}},
    {"metadata_not_string", "{\"__metadata__\":{\"format\":\"pt\",\"epoch\":3}}", 0, NULL, 0,
     {"__metadata__ 'epoch' must be a string, got an integer"}},
    {"metadata_not_object", "{\"__metadata__\":[\"pt\"]}", 0, NULL, 0,
     {"__metadata__ must be an object of strings, got an array"}},
};

static void run_bad_case(void **state)
{
    const struct bad_case *c = *state;
    char name[128];
    snprintf(name, sizeof name, "%s.safetensors", c->name);
    const char *path = at(name);
    size_t n = c->raw_len;
    unsigned char *b = c->header ? make_file(c->header, c->data, &n) : NULL;
    write_bytes(path, b ? b : (const unsigned char *)c->raw, n);
    struct st_file *f = (struct st_file *)1;
    enum status st;
    char *msgs = NULL;
    int errors = open_capture(path, &f, &st, &msgs);
    assert_int_equal(st, STATUS_CONFIG);
    assert_null(f);
    if (errors != 1) fail_msg("%s: %d errors, expected 1:\n%s", c->name, errors, msgs);
    char prefix[4200];
    snprintf(prefix, sizeof prefix, "runner: error: %s: ", path);
    if (strncmp(msgs, prefix, strlen(prefix)) != 0)
        fail_msg("%s: the message does not start with \"%s\":\n%s", c->name, prefix, msgs);
    for (int i = 0; i < 3 && c->want[i]; i++) expect_in(msgs, c->want[i]);
    free(msgs);
    /* From memory: the same verdict, under the given name. */
    size_t len;
    FILE *mem = open_memstream(&msgs, &len);
    struct diag d = {.out = mem};
    assert_int_equal(st_open_memory("<mem>", b ? b : (const unsigned char *)c->raw, n, &d, &f),
                     STATUS_CONFIG);
    fclose(mem);
    assert_null(f);
    expect_in(msgs, "runner: error: <mem>: ");
    for (int i = 0; i < 3 && c->want[i]; i++) expect_in(msgs, c->want[i]);
    free(msgs);
    free(b);
}

int main(void)
{
    static const struct CMUnitTest fixed[] = {
        cmocka_unit_test(test_f16_known_bits),
        cmocka_unit_test(test_f16_exhaustive),
        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_writer_bytes_and_determinism),
        cmocka_unit_test(test_atomic_replace),
        cmocka_unit_test(test_writer_bad_arguments),
        cmocka_unit_test(test_python_layout),
        cmocka_unit_test(test_read_errors),
    };
    size_t nf = ARRAY_LEN(fixed), n = nf + ARRAY_LEN(bad_cases);
    struct CMUnitTest *tests = calloc(n, sizeof *tests);
    memcpy(tests, fixed, sizeof fixed);
    for (size_t i = 0; i < ARRAY_LEN(bad_cases); i++) {
        tests[nf + i].name = bad_cases[i].name;
        tests[nf + i].test_func = run_bad_case;
        tests[nf + i].initial_state = (void *)&bad_cases[i];
    }
    int failed = _cmocka_run_group_tests("safetensors", tests, n, setup, teardown);
    free(tests);
    return failed;
}
