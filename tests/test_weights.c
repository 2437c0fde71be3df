/*
 * test_weights.c: a plan's tensors to and from .safetensors files (weights.c), on a small
 * network with a biased convolution, a batchnorm, pooling and a linear layer. An F32 round trip
 * into a plan that holds other values gives every tensor back bit for bit, the batchnorm
 * counter included; BF16 and F16 saves load back as the values rounded, in half the data; the
 * same plan saved twice gives the same bytes, with no path or time in the header; and each kind
 * of bad file (a missing tensor, a wrong shape, a wrong dtype, an extra tensor, several at
 * once, a truncated file) fails with STATUS_CONFIG and messages that name the file, the tensor
 * and what is wrong.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "graph.h"
#include "plan.h"
#include "safetensors.h"
#include "test_net.h"
#include "test_util.h"
#include "weights.h"
#include "yaml_load.h"

#define BATCH 4

TMPDIR_FIXTURE("test_weights")

/* --------------------------------------------------------------------------------------- */
/* Helpers */

/* Tensors, in graph order: c1.weight, c1.bias, bn.weight, bn.bias, bn.running_mean,
 * bn.running_var, bn.num_batches_tracked, c2.weight, fc.weight, fc.bias. */
static const char *const net_yaml =
    "input: [3, 8, 8]\n"
    "graph:\n"
    "  - {name: c1, op: conv, out: 6, kernel: 3, pad: 1, bias: true}\n"
    "  - {name: bn, op: batchnorm}\n"
    "  - relu\n"
    "  - {name: pool, op: avgpool, kernel: 2}\n"
    "  - {name: c2, op: conv, out: 5, kernel: 3, stride: 2, pad: 1}\n"
    "  - global_avg_pool\n"
    "  - {name: fc, op: linear, out: 10}\n";

/* The network with its tensors initialized from seed. */
static void net_open(struct net *t, uint64_t seed)
{
    struct plan_options o = {.batch = BATCH, .seed = seed};
    net_open_text(t, net_yaml, NULL, &o);
    plan_init_params(t->p, seed);
}

/* One training forward: the running statistics move and the counters become 1. */
static void train_forward(struct net *t)
{
    float *x = malloc(t->in_n * sizeof *x);
    net_batch(t->in_n, 7, x);
    plan_set_input(t->p, x, NULL);
    plan_forward(t->p, true);
    free(x);
}

/* The evaluation output for a fixed batch (caller frees): (BATCH, 10). */
static float *eval_output(struct net *t)
{
    float *x = malloc(t->in_n * sizeof *x), *y = malloc(BATCH * 10 * sizeof *y);
    net_batch(t->in_n, 11, x);
    plan_set_input(t->p, x, NULL);
    plan_forward(t->p, false);
    plan_get_output(t->p, y);
    free(x);
    return y;
}

static size_t tensor_bytes(const struct graph_tensor *gt)
{
    return (size_t)op_tensor_numel(&gt->t) * (gt->t.dtype == TENSOR_I64 ? 8 : 4);
}

/* Every tensor of the plan, one after another as plan_get_tensor gives them (caller frees). */
static unsigned char *tensors_of(const struct net *t)
{
    size_t n = 0;
    for (size_t i = 0; i < t->g->ntensors; i++) n += tensor_bytes(&t->g->tensors[i]);
    unsigned char *all = malloc(n), *at = all;
    for (size_t i = 0; i < t->g->ntensors; i++) {
        plan_get_tensor(t->p, &t->g->tensors[i], at);
        at += tensor_bytes(&t->g->tensors[i]);
    }
    return all;
}

/* Fails naming the first tensor of t whose bytes in a and b differ. */
static void expect_same_tensors(const struct net *t, const unsigned char *a,
                                const unsigned char *b, const char *what)
{
    size_t off = 0;
    for (size_t i = 0; i < t->g->ntensors; i++) {
        const struct graph_tensor *gt = &t->g->tensors[i];
        size_t n = tensor_bytes(gt);
        if (memcmp(a + off, b + off, n) != 0)
            fail_msg("%s: tensor '%s' differs", what, gt->name);
        off += n;
    }
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

static void write_bytes(const char *path, const void *bytes, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(bytes, 1, n, f) != n || fclose(f) != 0) fail_msg("cannot write %s", path);
}

/* The header length N of a file's bytes (the little-endian u64 that opens it). */
static size_t header_len(const unsigned char *raw)
{
    uint64_t h = 0;
    for (int i = 0; i < 8; i++) h |= (uint64_t)raw[i] << (8 * i);
    return (size_t)h;
}

static void save_ok(struct net *t, const char *path, enum st_dtype as)
{
    struct diag d = {.out = stderr};
    assert_int_equal(weights_save(t->p, path, as, &d), STATUS_OK);
    assert_int_equal(d.errors, 0);
}

static struct st_file *open_ok(const char *path)
{
    struct diag d = {.out = stderr};
    struct st_file *f;
    assert_int_equal(st_open(path, &d, &f), STATUS_OK);
    return f;
}

static void load_ok(struct net *t, const char *path)
{
    struct st_file *f = open_ok(path);
    struct diag d = {.out = stderr};
    assert_int_equal(weights_load(t->p, f, path, &d), STATUS_OK);
    assert_int_equal(d.errors, 0);
    st_close(f);
}

static void expect_in(const char *msgs, const char *want)
{
    if (!strstr(msgs, want)) fail_msg("expected \"%s\" in the messages:\n%s", want, msgs);
}

/* --------------------------------------------------------------------------------------- */

/* Saved from one plan, loaded into another with other values: every tensor bit for bit. */
static void test_round_trip(void **state)
{
    (void)state;
    struct net a, b;
    net_open(&a, 1);
    train_forward(&a);
    net_open(&b, 2);
    unsigned char *want = tensors_of(&a), *before = tensors_of(&b);
    size_t c1 = tensor_bytes(graph_find_tensor(a.g, "c1.weight"));
    assert_memory_not_equal(want, before, c1); /* another seed, other values */

    int64_t steps = -1;
    plan_get_tensor(a.p, graph_find_tensor(a.g, "bn.num_batches_tracked"), &steps);
    assert_int_equal(steps, 1);
    plan_get_tensor(b.p, graph_find_tensor(b.g, "bn.num_batches_tracked"), &steps);
    assert_int_equal(steps, 0);
    float mean[6];
    plan_get_tensor(a.p, graph_find_tensor(a.g, "bn.running_mean"), mean);
    bool moved = false;
    for (int i = 0; i < 6; i++) moved |= mean[i] != 0;
    assert_true(moved);

    save_ok(&a, at("rt.safetensors"), ST_F32);
    struct st_file *f = open_ok(at("rt.safetensors"));
    assert_int_equal(st_count(f), a.g->ntensors);
    for (size_t i = 0; i < a.g->ntensors; i++) {
        const struct st_tensor *s = st_tensor_at(f, i);
        assert_string_equal(s->name, a.g->tensors[i].name); /* graph order */
        assert_int_equal(s->dtype, a.g->tensors[i].t.dtype == TENSOR_I64 ? ST_I64 : ST_F32);
    }
    assert_string_equal(st_metadata(f, "format"), "pt");
    st_close(f);

    load_ok(&b, at("rt.safetensors"));
    unsigned char *got = tensors_of(&b);
    expect_same_tensors(&a, want, got, "loaded from an F32 file");
    plan_get_tensor(b.p, graph_find_tensor(b.g, "bn.num_batches_tracked"), &steps);
    assert_int_equal(steps, 1);
    /* The backend's own layouts hold the same values: the same outputs. */
    float *ya = eval_output(&a), *yb = eval_output(&b);
    assert_memory_equal(ya, yb, BATCH * 10 * sizeof *ya);

    free(ya);
    free(yb);
    free(want);
    free(before);
    free(got);
    net_close(&a);
    net_close(&b);
}

/* BF16 and F16: the values come back rounded to nearest even, in half the data. */
static void test_half_precision(void **state)
{
    (void)state;
    struct net a, b;
    net_open(&a, 1);
    train_forward(&a);
    save_ok(&a, at("f32.safetensors"), ST_F32);
    size_t n32;
    unsigned char *raw32 = read_bytes(at("f32.safetensors"), &n32);
    size_t data32 = n32 - 8 - header_len(raw32), floats = 0, counters = 0;
    for (size_t i = 0; i < a.g->ntensors; i++) {
        if (a.g->tensors[i].t.dtype == TENSOR_I64) counters++;
        else floats += (size_t)op_tensor_numel(&a.g->tensors[i].t);
    }
    assert_int_equal(data32, 4 * floats + 8 * counters);

    const enum st_dtype half[] = {ST_BF16, ST_F16};
    for (size_t h = 0; h < ARRAY_LEN(half); h++) {
        const char *name = half[h] == ST_BF16 ? "bf16.safetensors" : "f16.safetensors";
        save_ok(&a, at(name), half[h]);
        size_t n;
        unsigned char *raw = read_bytes(at(name), &n);
        assert_int_equal(n - 8 - header_len(raw), 2 * floats + 8 * counters);
        assert_true(n < n32 * 3 / 4);
        free(raw);

        net_open(&b, 2);
        load_ok(&b, at(name));
        int changed = 0; /* values that rounding moved: the test sees the precision */
        for (size_t i = 0; i < a.g->ntensors; i++) {
            const struct graph_tensor *gt = &a.g->tensors[i];
            size_t k = (size_t)op_tensor_numel(&gt->t);
            if (gt->t.dtype == TENSOR_I64) {
                int64_t va, vb;
                plan_get_tensor(a.p, gt, &va);
                plan_get_tensor(b.p, &b.g->tensors[i], &vb);
                assert_int_equal(va, vb);
                continue;
            }
            float *va = malloc(k * sizeof *va), *vb = malloc(k * sizeof *vb);
            plan_get_tensor(a.p, gt, va);
            plan_get_tensor(b.p, &b.g->tensors[i], vb);
            for (size_t e = 0; e < k; e++) {
                float want = half[h] == ST_BF16 ? st_bf16_to_f32(st_f32_to_bf16(va[e]))
                                                : st_f16_to_f32(st_f32_to_f16(va[e]));
                if (memcmp(&want, &vb[e], sizeof want) != 0)
                    fail_msg("%s: %s[%zu] is %.9g, expected %.9g (%.9g rounded)", name,
                             gt->name, e, vb[e], want, va[e]);
                changed += want != va[e];
            }
            free(va);
            free(vb);
        }
        assert_true(changed > 0);
        net_close(&b);
    }
    free(raw32);
    net_close(&a);
}

/* The same plan saved twice: the same bytes, and nothing but the tensors and "format". */
static void test_determinism(void **state)
{
    (void)state;
    struct net a;
    net_open(&a, 1);
    train_forward(&a);
    save_ok(&a, at("one.safetensors"), ST_F32);
    save_ok(&a, at("two.safetensors"), ST_F32);
    size_t n1, n2;
    unsigned char *one = read_bytes(at("one.safetensors"), &n1);
    unsigned char *two = read_bytes(at("two.safetensors"), &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(one, two, n1);
    /* The strict reader allows no keys in a tensor's entry but dtype, shape and offsets; the
     * metadata is {"format": "pt"} alone; the directory's name appears nowhere. */
    size_t h = header_len(one);
    const char *meta = "{\"__metadata__\":{\"format\":\"pt\"},";
    assert_true(h > strlen(meta));
    assert_memory_equal(one + 8, meta, strlen(meta));
    const char *base = strrchr(dir, '/') + 1;
    assert_null(memmem(one, n1, dir, strlen(dir)));
    assert_null(memmem(one, n1, base, strlen(base)));
    assert_null(memmem(one, n1, "one.safetensors", 15));
    free(one);
    free(two);
    net_close(&a);
}

/* --------------------------------------------------------------------------------------- */
/* Bad files */

/* How a file differs from the network's tensors (NULL: no such change). */
struct edit {
    const char *drop[2]; /* left out */
    const char *reshape; /* written flat: (numel) */
    const char *as_i64;  /* written as I64, values truncated */
    const char *extra;   /* one more tensor, (1) F32 */
};

static bool named(const char *a, const char *b)
{
    return a && strcmp(a, b) == 0;
}

/* Writes t's tensors to path, changed as e says. */
static void write_edited(const struct net *t, const char *path, const struct edit *e)
{
    struct st_writer *w = st_writer_new();
    st_add_metadata(w, "format", "pt");
    void **keep = calloc(t->g->ntensors + 1, sizeof *keep);
    for (size_t i = 0; i < t->g->ntensors; i++) {
        const struct graph_tensor *gt = &t->g->tensors[i];
        if (named(e->drop[0], gt->name) || named(e->drop[1], gt->name)) continue;
        size_t n = (size_t)op_tensor_numel(&gt->t);
        keep[i] = malloc(tensor_bytes(gt));
        plan_get_tensor(t->p, gt, keep[i]);
        if (gt->t.dtype == TENSOR_I64) {
            st_add_i64(w, gt->name, gt->t.rank, gt->t.dim, keep[i]);
        } else if (named(e->as_i64, gt->name)) {
            int64_t *v = malloc(n * sizeof *v);
            for (size_t k = 0; k < n; k++) v[k] = (int64_t)((float *)keep[i])[k];
            free(keep[i]);
            keep[i] = v;
            st_add_i64(w, gt->name, gt->t.rank, gt->t.dim, v);
        } else if (named(e->reshape, gt->name)) {
            int64_t flat[1] = {(int64_t)n};
            st_add_f32(w, gt->name, ST_F32, 1, flat, keep[i]);
        } else {
            st_add_f32(w, gt->name, ST_F32, gt->t.rank, gt->t.dim, keep[i]);
        }
    }
    static const float one = 1;
    static const int64_t shape1[1] = {1};
    if (e->extra) st_add_f32(w, e->extra, ST_F32, 1, shape1, &one);
    struct diag d = {.out = stderr};
    assert_int_equal(st_write(w, path, &d), STATUS_OK);
    st_writer_free(w);
    for (size_t i = 0; i < t->g->ntensors; i++) free(keep[i]);
    free(keep);
}

/* Loads path (which must open) into t, expecting STATUS_CONFIG with `errors` errors; returns
 * the messages (caller frees). */
static char *load_bad(struct net *t, const char *path, int errors)
{
    struct st_file *f = open_ok(path);
    char *msgs;
    size_t len;
    FILE *mem = open_memstream(&msgs, &len);
    struct diag d = {.out = mem};
    enum status st = weights_load(t->p, f, path, &d);
    fclose(mem);
    st_close(f);
    if (st != STATUS_CONFIG || d.errors != errors)
        fail_msg("%s: status %d with %d errors, expected %d with %d; messages:\n%s", path, st,
                 d.errors, STATUS_CONFIG, errors, msgs);
    return msgs;
}

/* Each kind of mismatch alone: the message names the file, the tensor and the problem. */
static void test_bad_files(void **state)
{
    (void)state;
    struct net src, t;
    net_open(&src, 2);
    net_open(&t, 1);
    char want[4096 + 256];
    const struct {
        const char *file;
        struct edit e;
        const char *msg; /* after "PATH: " */
    } cases[] = {
        {"missing.safetensors", {.drop = {"c1.bias"}}, "no tensor 'c1.bias'"},
        {"shape.safetensors", {.reshape = "c2.weight"},
         "tensor 'c2.weight': shape [270], expected [5, 6, 3, 3]"},
        {"dtype.safetensors", {.as_i64 = "bn.weight"},
         "tensor 'bn.weight': dtype I64, expected F32, F16 or BF16"},
        {"extra.safetensors", {.extra = "fc.scale"}, "tensor 'fc.scale' is not in the network"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        const char *path = at(cases[i].file);
        write_edited(&src, path, &cases[i].e);
        unsigned char *before = tensors_of(&t);
        char *msgs = load_bad(&t, path, 1);
        snprintf(want, sizeof want, "%s: %s", path, cases[i].msg);
        expect_in(msgs, want);
        expect_in(msgs, "error: ");
        /* Everything is checked before anything is set: the plan keeps its values. */
        unsigned char *after = tensors_of(&t);
        expect_same_tensors(&t, before, after, "after a failed load");
        free(after);
        free(before);
        free(msgs);
    }
    net_close(&src);
    net_close(&t);
}

/* One load reports every problem of a file, not just the first. */
static void test_all_errors_at_once(void **state)
{
    (void)state;
    struct net src, t;
    net_open(&src, 2);
    net_open(&t, 1);
    char want[4096 + 256];

    const char *two = at("two_missing.safetensors");
    write_edited(&src, two, &(struct edit){.drop = {"c1.bias", "fc.bias"}});
    char *msgs = load_bad(&t, two, 2);
    snprintf(want, sizeof want, "%s: no tensor 'c1.bias'", two);
    expect_in(msgs, want);
    snprintf(want, sizeof want, "%s: no tensor 'fc.bias'", two);
    expect_in(msgs, want);
    free(msgs);

    const char *all = at("all_wrong.safetensors");
    write_edited(&src, all,
                 &(struct edit){.drop = {"bn.running_var"}, .reshape = "fc.weight",
                                .as_i64 = "c1.bias", .extra = "layer9.weight"});
    msgs = load_bad(&t, all, 4);
    const char *each[] = {"no tensor 'bn.running_var'",
                          "tensor 'fc.weight': shape [50], expected [10, 5]",
                          "tensor 'c1.bias': dtype I64",
                          "tensor 'layer9.weight' is not in the network"};
    for (size_t i = 0; i < ARRAY_LEN(each); i++) {
        snprintf(want, sizeof want, "%s: %s", all, each[i]);
        expect_in(msgs, want);
    }
    free(msgs);
    net_close(&src);
    net_close(&t);
}

/* A file cut short does not open, and the message names it. */
static void test_truncated(void **state)
{
    (void)state;
    struct net a;
    net_open(&a, 1);
    save_ok(&a, at("whole.safetensors"), ST_F32);
    size_t n;
    unsigned char *raw = read_bytes(at("whole.safetensors"), &n);
    const size_t cuts[] = {n / 2, n - 1, 8 + header_len(raw) / 2, 4};
    for (size_t i = 0; i < ARRAY_LEN(cuts); i++) {
        const char *path = at("cut.safetensors");
        write_bytes(path, raw, cuts[i]);
        char *msgs;
        size_t len;
        FILE *mem = open_memstream(&msgs, &len);
        struct diag d = {.out = mem};
        struct st_file *f;
        enum status st = st_open(path, &d, &f);
        fclose(mem);
        if (st != STATUS_CONFIG || f || d.errors < 1)
            fail_msg("%s cut to %zu of %zu bytes: status %d, %d errors", path, cuts[i], n, st,
                     d.errors);
        expect_in(msgs, path);
        free(msgs);
    }
    free(raw);
    net_close(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_half_precision),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_all_errors_at_once),
        cmocka_unit_test(test_truncated),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
