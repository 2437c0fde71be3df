/*
 * test_pretrained.c: model.pretrained and model.reinit (pretrained.c) on a small network of 10
 * classes and files written from the same network with 1000 (ImageNet's classifier). With
 * reinit: [fc] the load succeeds, every other tensor equals the file's bit for bit and fc keeps
 * its fresh initialization; without it the load fails with STATUS_CONFIG, naming the file,
 * fc.weight and fc.bias with both shapes and suggesting model.reinit: [fc]; a missing and an
 * unexpected tensor are listed together with the mis-shaped ones; a file tensor under a reinit
 * prefix is ignored whatever its shape ("fc" does not cover "fc2"); a failed load leaves the
 * plan unchanged; timm's naming (no batchnorm counters: kept, said in the line) and names
 * under "module." (mapped back) load; model.pretrained_sha256 on a local file (a wrong one an
 * error at the key, the file kept); and a whole run (train_run) starts from the file's
 * weights, or stops before its run directory when the file does not fit. URLs:
 * tests/test_pretrained_url.c.
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

#include "data.h"
#include "download.h"
#include "graph.h"
#include "model.h"
#include "plan.h"
#include "pretrained.h"
#include "safetensors.h"
#include "spec.h"
#include "test_util.h"
#include "train.h"
#include "weights.h"
#include "yaml_load.h"

#define BATCH 2

static char dir[256];

static const char *at(const char *name)
{
    return tmpdir_path(dir, name);
}

/* Tensors, in graph order: c1.weight, c1.bias, bn.weight, bn.bias, bn.running_mean,
 * bn.running_var, bn.num_batches_tracked, c2.weight, fc.weight (CLASSES, 5), fc.bias. */
#define NET_GRAPH(CLASSES)                                                                     \
    "graph:\n"                                                                                 \
    "  - {name: c1, op: conv, out: 6, kernel: 3, pad: 1, bias: true}\n"                        \
    "  - {name: bn, op: batchnorm}\n"                                                          \
    "  - relu\n"                                                                               \
    "  - {name: pool, op: avgpool, kernel: 2}\n"                                               \
    "  - {name: c2, op: conv, out: 5, kernel: 3, stride: 2, pad: 1}\n"                         \
    "  - global_avg_pool\n"                                                                    \
    "  - {name: fc, op: linear, out: " #CLASSES "}\n"
#define NTENSORS 10

static int setup(void **state)
{
    (void)state;
    if (tmpdir_make(dir, sizeof dir, "test_pretrained")) return -1;
    write_file(dir, "net.yaml", NET_GRAPH(10));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return tmpdir_remove(dir);
}

/* --------------------------------------------------------------------------------------- */
/* Networks */

struct net {
    struct arena a;
    struct spec *s; /* NULL for the source network */
    struct graph *g;
    struct plan *p;
};

/* The network of the experiment written with `model` as its model section (10 classes),
 * initialized from the experiment's seed. */
static void net_of_experiment(struct net *t, const char *model)
{
    memset(t, 0, sizeof *t);
    char text[1024];
    snprintf(text, sizeof text, "name: t\nseed: 1\nmodel: %s\noptimizer: {type: sgd, lr: 0.1}\n",
             model);
    write_file(dir, "exp.yaml", text);
    struct diag d = {.out = stderr};
    assert_int_equal(spec_load(at("exp.yaml"), NULL, 0, &d, &t->s), STATUS_OK);
    assert_int_equal(model_build(t->s, &d, &t->g), STATUS_OK);
    struct plan_options o = {.batch = BATCH, .seed = 1};
    assert_int_equal(plan_create(t->g, &backend_cpu, &o, &d, &t->p), STATUS_OK);
    plan_init_params(t->p, 1);
}

/* The network with ImageNet's 1000 classes, its tensors from seed 2 and one training forward
 * (running statistics and counter moved, so that every tensor differs from a fresh one). */
static void net_source(struct net *t)
{
    memset(t, 0, sizeof *t);
    static const char text[] = NET_GRAPH(1000);
    struct source *src = arena_alloc(&t->a, sizeof *src);
    *src = (struct source){"net1000.yaml", ".", text, strlen(text)};
    struct diag d = {.out = stderr};
    struct node *root;
    assert_int_equal(yaml_load_text(&t->a, &d, src, text, strlen(text), 1, 1, &root), STATUS_OK);
    struct shape image = {3, {3, 32, 32}};
    assert_int_equal(graph_build(root, &image, &d, &t->g), STATUS_OK);
    struct plan_options o = {.batch = BATCH, .seed = 2};
    assert_int_equal(plan_create(t->g, &backend_cpu, &o, &d, &t->p), STATUS_OK);
    plan_init_params(t->p, 2);
    size_t n = (size_t)BATCH * (size_t)shape_numel(&image);
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = (float)((i * 37) % 101) / 50.0f - 1;
    plan_set_input(t->p, x, NULL);
    plan_forward(t->p, true);
    free(x);
}

static void net_close(struct net *t)
{
    plan_free(t->p);
    graph_free(t->g);
    if (t->s) spec_free(t->s);
    arena_free(&t->a);
}

static size_t tensor_bytes(const struct graph_tensor *gt)
{
    return (size_t)op_tensor_numel(&gt->t) * (gt->t.dtype == TENSOR_I64 ? 8 : 4);
}

/* Tensor `name` of t as plan_get_tensor gives it (caller frees). */
static void *tensor_of(const struct net *t, const char *name)
{
    const struct graph_tensor *gt = graph_find_tensor(t->g, name);
    assert_non_null(gt);
    void *v = malloc(tensor_bytes(gt));
    plan_get_tensor(t->p, gt, v);
    return v;
}

/* Every tensor of t, one after another (caller frees). */
static unsigned char *tensors_of(const struct net *t)
{
    size_t n = 0;
    for (size_t i = 0; i < t->g->ntensors; i++) n += tensor_bytes(&t->g->tensors[i]);
    unsigned char *all = malloc(n), *p = all;
    for (size_t i = 0; i < t->g->ntensors; i++) {
        plan_get_tensor(t->p, &t->g->tensors[i], p);
        p += tensor_bytes(&t->g->tensors[i]);
    }
    return all;
}

static void expect_same_plan(const struct net *t, const unsigned char *before, const char *what)
{
    unsigned char *after = tensors_of(t);
    size_t off = 0;
    for (size_t i = 0; i < t->g->ntensors; i++) {
        const struct graph_tensor *gt = &t->g->tensors[i];
        if (memcmp(before + off, after + off, tensor_bytes(gt)))
            fail_msg("%s: tensor '%s' changed", what, gt->name);
        off += tensor_bytes(gt);
    }
    free(after);
}

/* --------------------------------------------------------------------------------------- */
/* Files */

struct extra {
    const char *name;
    int rank;
    int64_t shape[3];
};

/* The source network's tensors, without those named in drop, with the extra ones (zeros),
 * each name after prefix. */
struct edit {
    const char *drop[3];
    struct extra add[3];
    const char *prefix;
};

static bool dropped(const struct edit *e, const char *name)
{
    for (size_t i = 0; i < ARRAY_LEN(e->drop); i++)
        if (e->drop[i] && strcmp(e->drop[i], name) == 0) return true;
    return false;
}

static void write_source(const struct net *src, const char *path, const struct edit *e)
{
    static const float zeros[64];
    struct st_writer *w = st_writer_new();
    st_add_metadata(w, "format", "pt");
    void *keep[NTENSORS] = {0};
    assert_int_equal(src->g->ntensors, NTENSORS);
    char name[256];
    for (size_t i = 0; i < src->g->ntensors; i++) {
        const struct graph_tensor *gt = &src->g->tensors[i];
        if (dropped(e, gt->name)) continue;
        keep[i] = tensor_of(src, gt->name);
        snprintf(name, sizeof name, "%s%s", e->prefix ? e->prefix : "", gt->name);
        if (gt->t.dtype == TENSOR_I64) st_add_i64(w, name, gt->t.rank, gt->t.dim, keep[i]);
        else st_add_f32(w, name, ST_F32, gt->t.rank, gt->t.dim, keep[i]);
    }
    for (size_t i = 0; i < ARRAY_LEN(e->add) && e->add[i].name; i++) {
        snprintf(name, sizeof name, "%s%s", e->prefix ? e->prefix : "", e->add[i].name);
        st_add_f32(w, name, ST_F32, e->add[i].rank, e->add[i].shape, zeros);
    }
    struct diag d = {.out = stderr};
    assert_int_equal(st_write(w, path, &d), STATUS_OK);
    st_writer_free(w);
    for (size_t i = 0; i < NTENSORS; i++) free(keep[i]);
}

/* pretrained_load into t; the status, with the messages in *msgs (caller frees). */
static enum status load(struct net *t, struct pretrained_result *r, int *errors, char **msgs)
{
    size_t len;
    FILE *mem = open_memstream(msgs, &len);
    struct diag d = {.out = mem};
    enum status st = pretrained_load(t->p, t->s, NULL, r, &d);
    fclose(mem);
    *errors = d.errors;
    return st;
}

static void expect_in(const char *msgs, const char *want)
{
    if (!strstr(msgs, want)) fail_msg("expected \"%s\" in the messages:\n%s", want, msgs);
}

static int count_in(const char *msgs, const char *what)
{
    int n = 0;
    for (const char *p = msgs; (p = strstr(p, what)); p += strlen(what)) n++;
    return n;
}

/* Loads into the experiment's network with `model`, expecting failure with `errors` errors
 * and the plan unchanged; returns the messages (caller frees). */
static char *load_bad(const char *model, int errors)
{
    struct net t;
    net_of_experiment(&t, model);
    unsigned char *before = tensors_of(&t);
    struct pretrained_result r;
    char *msgs;
    int got;
    enum status st = load(&t, &r, &got, &msgs);
    if (st != STATUS_CONFIG || got != errors)
        fail_msg("%s: status %d with %d errors, expected %d with %d; messages:\n%s", model, st,
                 got, STATUS_CONFIG, errors, msgs);
    expect_same_plan(&t, before, "after a failed load");
    free(before);
    net_close(&t);
    return msgs;
}

/* --------------------------------------------------------------------------------------- */

/* ImageNet's classifier replaced: every other tensor from the file, fc as initialized. */
static void test_reinit_fc(void **state)
{
    (void)state;
    struct net src, t;
    net_source(&src);
    write_source(&src, at("r.safetensors"), &(struct edit){0});
    net_of_experiment(&t, "{graph: net.yaml, pretrained: r.safetensors, reinit: [fc]}");
    float *w0 = tensor_of(&t, "fc.weight"), *b0 = tensor_of(&t, "fc.bias");

    struct pretrained_result r;
    char *msgs;
    int errors;
    assert_int_equal(load(&t, &r, &errors, &msgs), STATUS_OK);
    assert_int_equal(errors, 0);
    assert_string_equal(msgs, "");
    assert_int_equal(r.loaded, NTENSORS - 2);
    assert_int_equal(r.reinit, 2);
    char want[4600];
    snprintf(want, sizeof want, "pretrained: %s: 8 tensors loaded, 2 re-initialized (fc)",
             t.s->model.pretrained);
    assert_string_equal(r.line, want);

    for (size_t i = 0; i < t.g->ntensors; i++) {
        const struct graph_tensor *gt = &t.g->tensors[i];
        if (weights_under(gt->name, "fc")) continue;
        void *a = tensor_of(&src, gt->name), *b = tensor_of(&t, gt->name);
        if (memcmp(a, b, tensor_bytes(gt))) fail_msg("'%s' differs from the file's", gt->name);
        free(a);
        free(b);
    }
    int64_t count;
    plan_get_tensor(t.p, graph_find_tensor(t.g, "bn.num_batches_tracked"), &count);
    assert_int_equal(count, 1); /* the source's one training forward */
    float *w1 = tensor_of(&t, "fc.weight"), *b1 = tensor_of(&t, "fc.bias");
    assert_memory_equal(w0, w1, 10 * 5 * sizeof *w0);
    assert_memory_equal(b0, b1, 10 * sizeof *b0);
    free(w0);
    free(b0);
    free(w1);
    free(b1);
    free(msgs);
    net_close(&t);
    net_close(&src);
}

/* The same file without reinit: both fc tensors named with both shapes, one hint. */
static void test_without_reinit(void **state)
{
    (void)state;
    struct net src;
    net_source(&src);
    const char *path = at("r.safetensors");
    char file[4096], want[8192];
    snprintf(file, sizeof file, "%s", path);
    write_source(&src, file, &(struct edit){0});
    net_close(&src);

    char *msgs = load_bad("{graph: net.yaml, pretrained: r.safetensors}", 2);
    snprintf(want, sizeof want,
             "runner: error: %s: tensor 'fc.weight': shape [1000, 5] in the file, [10, 5] in "
             "the network\nhint: to train 'fc' afresh instead of loading it, re-initialize it: "
             "model.reinit: [fc]\n", file);
    expect_in(msgs, want);
    snprintf(want, sizeof want,
             "runner: error: %s: tensor 'fc.bias': shape [1000] in the file, [10] in the network",
             file);
    expect_in(msgs, want);
    assert_int_equal(count_in(msgs, "hint:"), 1); /* once per layer */
    free(msgs);

    /* With another layer re-initialized already, the hint gives the whole list. */
    msgs = load_bad("{graph: net.yaml, pretrained: r.safetensors, reinit: [c2]}", 2);
    expect_in(msgs, "model.reinit: [c2, fc]");
    free(msgs);
}

/* A missing and an unexpected tensor, with or without the mis-shaped ones: all at once. */
static void test_missing_and_unexpected(void **state)
{
    (void)state;
    struct net src;
    net_source(&src);
    char file[4096], want[8192];
    snprintf(file, sizeof file, "%s", at("mu.safetensors"));
    write_source(&src, file,
                 &(struct edit){.drop = {"c1.bias"}, .add = {{"head.weight", 2, {3, 5}}}});
    net_close(&src);

    char *msgs = load_bad("{graph: net.yaml, pretrained: mu.safetensors, reinit: [fc]}", 2);
    snprintf(want, sizeof want, "%s: no tensor 'c1.bias' (shape [6] in the network)", file);
    expect_in(msgs, want);
    snprintf(want, sizeof want, "%s: tensor 'head.weight' is not in the network", file);
    expect_in(msgs, want);
    free(msgs);

    msgs = load_bad("{graph: net.yaml, pretrained: mu.safetensors}", 4);
    const char *each[] = {"no tensor 'c1.bias'", "tensor 'fc.weight': shape [1000, 5] in the file",
                          "tensor 'fc.bias': shape [1000] in the file",
                          "tensor 'head.weight' is not in the network"};
    for (size_t i = 0; i < ARRAY_LEN(each); i++) {
        snprintf(want, sizeof want, "%s: %s", file, each[i]);
        expect_in(msgs, want);
    }
    free(msgs);
}

/* Under a reinit prefix a file tensor may have any shape, or not be the network's at all;
 * "fc" covers fc.anything, not fc2. */
static void test_reinit_ignores_any_shape(void **state)
{
    (void)state;
    struct net src, t;
    net_source(&src);
    const struct edit odd = {.drop = {"fc.weight", "fc.bias"},
                             .add = {{"fc.weight", 1, {7}}, {"fc.bias", 3, {2, 2, 2}},
                                     {"fc.scale", 0, {0}}}};
    write_source(&src, at("odd.safetensors"), &odd);
    net_of_experiment(&t, "{graph: net.yaml, pretrained: odd.safetensors, reinit: [fc]}");
    unsigned char *fresh = tensors_of(&t);
    struct pretrained_result r;
    char *msgs;
    int errors;
    assert_int_equal(load(&t, &r, &errors, &msgs), STATUS_OK);
    assert_int_equal(errors, 0);
    assert_int_equal(r.loaded, 8);
    float *w = tensor_of(&t, "fc.weight");
    const struct graph_tensor *fw = graph_find_tensor(t.g, "fc.weight");
    size_t off = 0; /* fc.weight's place in the snapshot: after every tensor before it */
    for (const struct graph_tensor *g = t.g->tensors; g < fw; g++) off += tensor_bytes(g);
    assert_memory_equal(w, fresh + off, tensor_bytes(fw));
    free(w);
    free(fresh);
    free(msgs);
    net_close(&t);

    struct edit fc2 = odd;
    fc2.add[2] = (struct extra){"fc2.weight", 1, {7}};
    char file[4096], want[8192];
    snprintf(file, sizeof file, "%s", at("fc2.safetensors"));
    write_source(&src, file, &fc2);
    msgs = load_bad("{graph: net.yaml, pretrained: fc2.safetensors, reinit: [fc]}", 1);
    snprintf(want, sizeof want, "%s: tensor 'fc2.weight' is not in the network", file);
    expect_in(msgs, want);
    free(msgs);
    net_close(&src);
}

/* Every tensor but fc and the counters equals the source's; fc is as initialized (w0, b0). */
static void expect_from_source(const struct net *src, const struct net *t)
{
    for (size_t i = 0; i < t->g->ntensors; i++) {
        const struct graph_tensor *gt = &t->g->tensors[i];
        if (weights_under(gt->name, "fc") || gt->t.dtype == TENSOR_I64) continue;
        void *a = tensor_of(src, gt->name), *b = tensor_of(t, gt->name);
        if (memcmp(a, b, tensor_bytes(gt))) fail_msg("'%s' differs from the file's", gt->name);
        free(a);
        free(b);
    }
}

/* timm's naming: torchvision's names without the batchnorm counters. The file loads, the
 * counter keeps its value (0, fresh), the line says so; the same with every name under
 * "module." (a DataParallel state dict), mapped back, fc under it still re-initialized; a
 * "module." name that maps to nothing of the network is reported under its own name. */
static void test_timm_names(void **state)
{
    (void)state;
    struct net src, t;
    net_source(&src);
    write_source(&src, at("timm.safetensors"), &(struct edit){.drop = {"bn.num_batches_tracked"}});
    net_of_experiment(&t, "{graph: net.yaml, pretrained: timm.safetensors, reinit: [fc]}");
    struct pretrained_result r;
    char *msgs;
    int errors;
    assert_int_equal(load(&t, &r, &errors, &msgs), STATUS_OK);
    assert_int_equal(errors, 0);
    assert_string_equal(msgs, "");
    assert_int_equal(r.loaded, NTENSORS - 3);
    assert_int_equal(r.counters, 1);
    assert_int_equal(r.mapped, 0);
    char want[9100];
    snprintf(want, sizeof want, "pretrained: %s: 7 tensors loaded, 2 re-initialized (fc), 1 "
             "batchnorm counter not in the file (kept)", t.s->model.pretrained);
    assert_string_equal(r.line, want);
    expect_from_source(&src, &t);
    int64_t count = -1;
    plan_get_tensor(t.p, graph_find_tensor(t.g, "bn.num_batches_tracked"), &count);
    assert_int_equal(count, 0);
    free(msgs);
    net_close(&t);

    write_source(&src, at("module.safetensors"), &(struct edit){.prefix = "module."});
    net_of_experiment(&t, "{graph: net.yaml, pretrained: module.safetensors, reinit: [fc]}");
    float *w0 = tensor_of(&t, "fc.weight");
    assert_int_equal(load(&t, &r, &errors, &msgs), STATUS_OK);
    assert_int_equal(errors, 0);
    assert_int_equal(r.loaded, NTENSORS - 2);
    assert_int_equal(r.mapped, NTENSORS);
    assert_non_null(strstr(r.line, ", 10 found under other names"));
    expect_from_source(&src, &t);
    plan_get_tensor(t.p, graph_find_tensor(t.g, "bn.num_batches_tracked"), &count);
    assert_int_equal(count, 1);
    float *w1 = tensor_of(&t, "fc.weight");
    assert_memory_equal(w0, w1, 10 * 5 * sizeof *w0);
    free(w0);
    free(w1);
    free(msgs);
    net_close(&t);

    char file[4096];
    snprintf(file, sizeof file, "%s", at("module_extra.safetensors"));
    write_source(&src, file, &(struct edit){.prefix = "module.", .add = {{"head.weight", 1, {3}}}});
    msgs = load_bad("{graph: net.yaml, pretrained: module_extra.safetensors, reinit: [fc]}", 1);
    snprintf(want, sizeof want, "%s: tensor 'module.head.weight' is not in the network", file);
    expect_in(msgs, want);
    free(msgs);
    net_close(&src);
}

/* model.pretrained_sha256 on a local file: the right digest loads; a wrong one is an error
 * (STATUS_RUNTIME) at the key, naming the file and both digests, the file left in place and
 * the plan unchanged. */
static void test_local_sha256(void **state)
{
    (void)state;
    struct net src, t;
    net_source(&src);
    write_source(&src, at("sha.safetensors"), &(struct edit){0});
    net_close(&src);
    char sha[65], model[512];
    struct diag d = {.out = stderr};
    assert_int_equal(download_sha256_file(at("sha.safetensors"), sha, &d), STATUS_OK);
    snprintf(model, sizeof model, "{graph: net.yaml, pretrained: sha.safetensors, "
             "pretrained_sha256: %s, reinit: [fc]}", sha);
    net_of_experiment(&t, model);
    struct pretrained_result r;
    char *msgs, want[9100];
    int errors;
    assert_int_equal(load(&t, &r, &errors, &msgs), STATUS_OK);
    assert_int_equal(r.loaded, NTENSORS - 2);
    free(msgs);
    net_close(&t);

    const char *wrong = "ab00000000000000000000000000000000000000000000000000000000000000";
    snprintf(model, sizeof model, "{graph: net.yaml, pretrained: sha.safetensors, "
             "pretrained_sha256: %s, reinit: [fc]}", wrong);
    net_of_experiment(&t, model);
    unsigned char *before = tensors_of(&t);
    assert_int_equal(load(&t, &r, &errors, &msgs), STATUS_RUNTIME);
    assert_int_equal(errors, 1);
    snprintf(want, sizeof want, "exp.yaml:3:74: error: %s: SHA-256 mismatch: got %s, expected "
             "%s (model.pretrained_sha256)", t.s->model.pretrained, sha, wrong);
    expect_in(msgs, want);
    expect_same_plan(&t, before, "after a wrong SHA-256");
    struct stat sb;
    assert_int_equal(stat(at("sha.safetensors"), &sb), 0);
    free(before);
    free(msgs);
    net_close(&t);
}

/* No model.pretrained: nothing happens. */
static void test_no_pretrained(void **state)
{
    (void)state;
    struct net t;
    net_of_experiment(&t, "{graph: net.yaml, reinit: [fc]}");
    unsigned char *before = tensors_of(&t);
    struct pretrained_result r;
    char *msgs;
    int errors;
    assert_int_equal(load(&t, &r, &errors, &msgs), STATUS_OK);
    assert_int_equal(errors, 0);
    assert_int_equal(r.loaded, 0);
    assert_string_equal(r.line, "");
    expect_same_plan(&t, before, "without model.pretrained");
    assert_int_equal(pretrained_load(t.p, t.s, NULL, NULL, &(struct diag){.out = stderr}),
                     STATUS_OK);
    free(before);
    free(msgs);
    net_close(&t);
}

/* --------------------------------------------------------------------------------------- */
/* A whole run */

/* Synthetic CIFAR-10 files: label i % 10, pixels from the index. */
static void write_cifar(void)
{
    mkdir(at("data"), 0777);
    mkdir(at("data/cifar-10-batches-bin"), 0777);
    size_t n = CIFAR_FILE_RECORDS * (size_t)CIFAR_RECORD_BYTES;
    uint8_t *buf = malloc(n);
    for (size_t i = 0; i < CIFAR_FILE_RECORDS; i++) {
        uint8_t *r = buf + i * CIFAR_RECORD_BYTES;
        r[0] = (uint8_t)(i % 10);
        for (size_t p = 0; p < CIFAR_IMAGE_BYTES; p++) r[1 + p] = (uint8_t)((i * 7 + p) & 0xff);
    }
    const char *names[] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                           "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"};
    char path[512];
    for (size_t k = 0; k < ARRAY_LEN(names); k++) {
        snprintf(path, sizeof path, "data/cifar-10-batches-bin/%s", names[k]);
        FILE *f = fopen(at(path), "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(buf, 1, n, f), n);
        fclose(f);
    }
    free(buf);
    write_file(dir, "data/cifar-10-batches-bin/batches.meta.txt",
               "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n");
}

static enum status run(const char *reinit, const char *out)
{
    char text[2048];
    snprintf(text, sizeof text,
             "name: run\nseed: 4\ndevice: cpu\n"
             "model: {graph: net.yaml, pretrained: r.safetensors, reinit: %s}\n"
             "data: {root: data, subset: 200, val_split: 100, download: false, workers: 1}\n"
             "augment: {train: [hflip], eval: []}\n"
             "optimizer: {type: adam, lr: 1.0e-12}\n"
             "train: {epochs: 1, batch_size: 50, threads: 1}\n"
             "eval: {batch_size: 50, samples: 0}\n"
             "checkpoint: {every_epochs: 0}\n", reinit);
    write_file(dir, "run.yaml", text);
    struct diag d = {.out = stderr};
    struct spec *s;
    struct graph *g;
    assert_int_equal(spec_load(at("run.yaml"), NULL, 0, &d, &s), STATUS_OK);
    assert_int_equal(model_build(s, &d, &g), STATUS_OK);
    unsetenv("RUNNER_DATA");
    struct train_options o = {.out = out};
    enum status st = train_run(s, g, &o);
    graph_free(g);
    spec_free(s);
    return st;
}

/* train_run starts from the file (fc aside): after two Adam steps of lr 1e-12 the saved model
 * still holds the file's weights and the fresh fc; a file that does not fit stops the run
 * before its directory exists. */
static void test_run(void **state)
{
    (void)state;
    write_cifar();
    struct net src, fresh;
    net_source(&src);
    write_source(&src, at("r.safetensors"), &(struct edit){0});
    net_of_experiment(&fresh, "{graph: net.yaml}");
    plan_init_params(fresh.p, 4); /* the run's seed */

    char out[512];
    snprintf(out, sizeof out, "%s", at("run_ok"));
    assert_int_equal(run("[fc]", out), STATUS_OK);
    char model[600];
    snprintf(model, sizeof model, "%s/model.safetensors", out);
    struct diag d = {.out = stderr};
    struct st_file *f;
    assert_int_equal(st_open(model, &d, &f), STATUS_OK);
    const char *names[] = {"c1.weight", "c1.bias", "c2.weight", "bn.weight", "fc.weight",
                           "fc.bias"};
    for (size_t k = 0; k < ARRAY_LEN(names); k++) {
        bool fc = weights_under(names[k], "fc");
        const struct graph_tensor *gt = graph_find_tensor(fresh.g, names[k]);
        int64_t n = op_tensor_numel(&gt->t);
        float *got = malloc((size_t)n * sizeof *got);
        float *want = tensor_of(fc ? &fresh : &src, names[k]);
        assert_int_equal(st_read_f32(f, names[k], gt->t.rank, gt->t.dim, got, &d), STATUS_OK);
        for (int64_t i = 0; i < n; i++)
            if (!(fabsf(got[i] - want[i]) <= 1e-6f))
                fail_msg("%s[%lld]: %.9g after the run, %.9g in the %s", names[k], (long long)i,
                         got[i], want[i], fc ? "fresh initialization" : "file");
        free(got);
        free(want);
    }
    st_close(f);

    snprintf(out, sizeof out, "%s", at("run_bad"));
    assert_int_equal(run("[]", out), STATUS_CONFIG);
    struct stat sb;
    assert_int_not_equal(stat(out, &sb), 0);
    net_close(&fresh);
    net_close(&src);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reinit_fc),
        cmocka_unit_test(test_without_reinit),
        cmocka_unit_test(test_missing_and_unexpected),
        cmocka_unit_test(test_reinit_ignores_any_shape),
        cmocka_unit_test(test_timm_names),
        cmocka_unit_test(test_local_sha256),
        cmocka_unit_test(test_no_pretrained),
        cmocka_unit_test(test_run),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
