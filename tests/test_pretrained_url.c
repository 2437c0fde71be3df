/*
 * test_pretrained_url.c: model.pretrained as a URL (url.c, pretrained.c), against the HTTP/1.1
 * server of tests/http_server.h on 127.0.0.1, with RUNNER_CACHE_DIR in the test's folder. The
 * file served is the experiment's own small network, saved from another seed. Covered: the
 * URL helpers (the syntax, hf:// through HF_ENDPOINT, cache names that tell URLs apart, the
 * cache folder's precedence); a download (200) into the cache, the weights loaded equal to the
 * file's and the line naming URL and cache path; the same load with the server stopped, from
 * the cache, with no request; 404 (an error naming the URL and the cache path, nothing kept);
 * a wrong model.pretrained_sha256 (both digests, the URL and the cache path named, nothing
 * kept), the right one, and a cached copy of the wrong digest replaced; a transfer cut short
 * and resumed with Range in the next try, and one cancelled (as by SIGINT) with its .part kept
 * and resumed by the next load; hf:// through HF_ENDPOINT (the request path
 * /OWNER/REPO/resolve/main/FILE, FILE defaulting to model.safetensors); no connection and no
 * cached copy (an error naming both); and `runner check`, `runner config` and `runner plan`
 * of an experiment with an hf:// URL making no request (HF_ENDPOINT at the live server, then
 * at a closed port). Nothing leaves 127.0.0.1.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli.h"
#include "download.h"
#include "http_server.h"
#include "model.h"
#include "paths.h"
#include "plan.h"
#include "pretrained.h"
#include "safetensors.h"
#include "spec.h"
#include "test_util.h"
#include "url.h"
#include "weights.h"

#define NET_GRAPH                                                                              \
    "graph:\n"                                                                                 \
    "  - {name: c1, op: conv, out: 6, kernel: 3, pad: 1, bias: true}\n"                        \
    "  - {name: bn, op: batchnorm}\n"                                                          \
    "  - relu\n"                                                                               \
    "  - global_avg_pool\n"                                                                    \
    "  - {name: fc, op: linear, out: 10}\n"

static char dir[256];
static unsigned char *weights; /* the file served, as bytes */
static size_t weights_len;
static char weights_sha[65];

static const char *at(const char *name)
{
    return tmpdir_path(dir, name);
}

/* --------------------------------------------------------------------------------------- */
/* The experiment and its network */

struct net {
    struct spec *s;
    struct graph *g;
    struct plan *p;
};

/* The experiment with `extra` in its model section, its network built and initialized from
 * seed 1. */
static void net_open(struct net *t, const char *pretrained, const char *extra)
{
    char text[2048];
    snprintf(text, sizeof text, "name: t\nseed: 1\nmodel: {graph: net.yaml, pretrained: \"%s\"%s}"
             "\noptimizer: {type: sgd, lr: 0.1}\n", pretrained, extra ? extra : "");
    write_file(dir, "exp.yaml", text);
    struct diag d = {.out = stderr};
    assert_int_equal(spec_load(at("exp.yaml"), NULL, 0, &d, &t->s), STATUS_OK);
    assert_int_equal(model_build(t->s, &d, &t->g), STATUS_OK);
    struct plan_options o = {.batch = 2, .seed = 1};
    assert_int_equal(plan_create(t->g, &backend_cpu, &o, &d, &t->p), STATUS_OK);
    plan_init_params(t->p, 1);
}

static void net_close(struct net *t)
{
    plan_free(t->p);
    graph_free(t->g);
    spec_free(t->s);
}

/* pretrained_load into t (cancel may be NULL), the messages in *msgs (caller frees). */
static enum status load(struct net *t, const volatile sig_atomic_t *cancel,
                        struct pretrained_result *r, char **msgs)
{
    size_t len;
    FILE *mem = open_memstream(msgs, &len);
    struct diag d = {.out = mem};
    enum status st = pretrained_load(t->p, t->s, cancel, r, &d);
    fclose(mem);
    return st;
}

/* Every tensor of t equals the served file's. */
static void expect_file_weights(const struct net *t)
{
    struct st_file *f;
    struct diag d = {.out = stderr};
    assert_int_equal(st_open_memory("served", weights, weights_len, &d, &f), STATUS_OK);
    for (size_t i = 0; i < t->g->ntensors; i++) {
        const struct graph_tensor *gt = &t->g->tensors[i];
        size_t n = (size_t)op_tensor_numel(&gt->t) * 8;
        unsigned char *a = malloc(n), *b = malloc(n);
        memset(a, 0, n);
        memset(b, 0, n);
        plan_get_tensor(t->p, gt, a);
        if (gt->t.dtype == TENSOR_I64)
            assert_int_equal(st_read_i64(f, gt->name, gt->t.rank, gt->t.dim, (void *)b, &d), 0);
        else
            assert_int_equal(st_read_f32(f, gt->name, gt->t.rank, gt->t.dim, (void *)b, &d), 0);
        if (memcmp(a, b, n)) fail_msg("'%s' differs from the file's", gt->name);
        free(a);
        free(b);
    }
    st_close(f);
}

static void expect_in(const char *msgs, const char *want)
{
    if (!strstr(msgs, want)) fail_msg("expected \"%s\" in the messages:\n%s", want, msgs);
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static const char *cache_of(const char *url)
{
    static char path[4][4400];
    static int k;
    k = (k + 1) % 4;
    assert_true(pretrained_cache_path(url, path[k], sizeof path[k]));
    return path[k];
}

/* --------------------------------------------------------------------------------------- */
/* Setup */

/* The served file: the network from seed 2, saved as a run saves its model. */
static int make_weights(void)
{
    struct arena a = {0};
    struct graph *g = graph_of_text(&a, "net.yaml", "input: [3, 32, 32]\n" NET_GRAPH);
    struct plan_options o = {.batch = 2, .seed = 2};
    struct plan *p;
    struct diag d = {.out = stderr};
    if (!g || plan_create(g, &backend_cpu, &o, &d, &p)) return -1;
    plan_init_params(p, 2);
    enum status st = weights_save(p, at("served.safetensors"), ST_F32, &d);
    plan_free(p);
    graph_free(g);
    arena_free(&a);
    if (st) return -1;
    struct stat sb;
    if (stat(at("served.safetensors"), &sb)) return -1;
    weights_len = (size_t)sb.st_size;
    weights = (unsigned char *)slurp(at("served.safetensors"));
    return download_sha256_file(at("served.safetensors"), weights_sha, &d) ? -1 : 0;
}

/* The file at path in a copy the server owns. */
static void serve_copy(const char *path)
{
    unsigned char *b = malloc(weights_len);
    if (!b) abort();
    memcpy(b, weights, weights_len);
    serve_file(path, b, weights_len);
}

static int setup(void **state)
{
    (void)state;
    const char *proxies[] = {"http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY",
                             "all_proxy", "ALL_PROXY", "HF_ENDPOINT"};
    for (size_t i = 0; i < ARRAY_LEN(proxies); i++) unsetenv(proxies[i]);
    if (tmpdir_make(dir, sizeof dir, "test_pretrained_url")) return -1;
    write_file(dir, "net.yaml", "input: [3, 32, 32]\n" NET_GRAPH);
    setenv("RUNNER_CACHE_DIR", at("cache"), 1);
    if (make_weights()) return -1;
    serve_copy("/w/r.safetensors");
    serve_copy("/w/sha.safetensors");
    serve_copy("/timm/net/resolve/main/model.safetensors");
    serve_copy("/timm/net/resolve/main/sub/dir/w.safetensors");
    return server_start();
}

static int teardown(void **state)
{
    (void)state;
    server_stop();
    server_free_files();
    free(weights);
    return tmpdir_remove(dir);
}

/* --------------------------------------------------------------------------------------- */
/* URLs, without the network */

static void test_url_helpers(void **state)
{
    (void)state;
    assert_true(url_has_scheme("hf://a/b") && url_has_scheme("HTTPS://x") &&
                url_has_scheme("s3://b/k"));
    assert_false(url_has_scheme("models/r50.safetensors") || url_has_scheme("a:b") ||
                 url_has_scheme("/x://y") || url_has_scheme("://x"));
    const char *good[] = {"https://huggingface.co/x", "http://127.0.0.1:8/a?b=1",
                          "hf://timm/resnet50.tv_in1k", "hf://o/r/a/b/c.safetensors"};
    for (size_t i = 0; i < ARRAY_LEN(good); i++)
        if (url_problem(good[i])) fail_msg("%s: %s", good[i], url_problem(good[i]));
    const char *bad[] = {"hf://timm",   "hf://timm/",    "hf://o//r",   "hf://o/r/../x",
                         "hf://o/r/f/", "https:///path", "ftp://x/y",  "https://a b/c",
                         "hf://o/r?x"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        if (!url_problem(bad[i])) fail_msg("%s taken as a URL", bad[i]);

    char buf[512];
    assert_true(url_resolve("hf://timm/resnet50.tv_in1k", buf, sizeof buf));
    assert_string_equal(buf, "https://huggingface.co/timm/resnet50.tv_in1k/resolve/main/"
                             "model.safetensors");
    setenv("HF_ENDPOINT", "http://127.0.0.1:9/mirror//", 1);
    assert_true(url_resolve("hf://o/r/a/b.safetensors", buf, sizeof buf));
    assert_string_equal(buf, "http://127.0.0.1:9/mirror/o/r/resolve/main/a/b.safetensors");
    unsetenv("HF_ENDPOINT");
    assert_true(url_resolve("https://x/y?z", buf, sizeof buf));
    assert_string_equal(buf, "https://x/y?z");
    assert_false(url_resolve("hf://o/r", buf, 10));

    /* Cache names: readable, and different wherever the URLs are. */
    char a[256], b[256];
    assert_true(url_cache_name("hf://timm/resnet50.tv_in1k", a, sizeof a));
    if (strncmp(a, "timm--resnet50.tv_in1k--model-", 30) || strlen(a) != 30 + 16 + 12 ||
        strcmp(a + 46, ".safetensors"))
        fail_msg("cache name %s", a);
    setenv("HF_ENDPOINT", "http://127.0.0.1:9", 1);
    assert_true(url_cache_name("hf://timm/resnet50.tv_in1k", b, sizeof b));
    unsetenv("HF_ENDPOINT");
    assert_string_not_equal(a, b);
    assert_true(url_cache_name("https://h/x/w.safetensors?v=1", a, sizeof a));
    assert_true(url_cache_name("https://h/x/w.safetensors?v=2", b, sizeof b));
    assert_string_not_equal(a, b);
    assert_true(strncmp(a, "w-", 2) == 0 && strlen(a) == 2 + 16 + 12); /* the query aside */
    assert_true(url_cache_name("https://host.example/", a, sizeof a));
    assert_true(strncmp(a, "host.example-", 13) == 0);
    assert_true(url_cache_name("hf://o/r/sub/dir/w.safetensors", a, sizeof a));
    assert_true(strncmp(a, "o--r--sub--dir--w-", 18) == 0);

    /* The cache folder: RUNNER_CACHE_DIR, else XDG_CACHE_HOME/runner, else ~/.cache/runner. */
    char keep[512], home[512];
    snprintf(keep, sizeof keep, "%s", getenv("RUNNER_CACHE_DIR"));
    snprintf(home, sizeof home, "%s", getenv("HOME") ? getenv("HOME") : "");
    assert_true(path_cache_dir("pretrained", buf, sizeof buf));
    assert_string_equal(buf, at("cache/pretrained"));
    setenv("RUNNER_CACHE_DIR", "", 1);
    setenv("XDG_CACHE_HOME", "/xdg", 1);
    assert_true(path_cache_dir(NULL, buf, sizeof buf));
    assert_string_equal(buf, "/xdg/runner");
    unsetenv("XDG_CACHE_HOME");
    setenv("HOME", "/home/u", 1);
    assert_true(path_cache_dir("cudnn_algos.txt", buf, sizeof buf));
    assert_string_equal(buf, "/home/u/.cache/runner/cudnn_algos.txt");
    unsetenv("HOME");
    assert_false(path_cache_dir("x", buf, sizeof buf));
    if (home[0]) setenv("HOME", home, 1);
    setenv("RUNNER_CACHE_DIR", keep, 1);
}

/* --------------------------------------------------------------------------------------- */
/* Downloads */

/* 200: downloaded into the cache and loaded; then, the server stopped, from the cache with no
 * request and no message. */
static void test_download_then_offline(void **state)
{
    (void)state;
    server_reset();
    const char *url = url_of("/w/r.safetensors");
    const char *path = cache_of(url);
    struct net t;
    struct pretrained_result r;
    char *msgs, want[9200];
    net_open(&t, url, NULL);
    if (load(&t, NULL, &r, &msgs)) fail_msg("%s", msgs);
    assert_int_equal(requests(), 1);
    assert_string_equal(path_of(0), "/w/r.safetensors");
    snprintf(want, sizeof want, "runner: downloading %s into %s", url, at("cache/pretrained"));
    expect_in(msgs, want);
    assert_true(exists(path));
    assert_string_equal(r.path, path);
    snprintf(want, sizeof want, "pretrained: %s (%s): %zu tensors loaded", url, path,
             t.g->ntensors);
    assert_string_equal(r.line, want);
    expect_file_weights(&t);
    free(msgs);
    net_close(&t);

    server_stop();
    net_open(&t, url, NULL);
    if (load(&t, NULL, &r, &msgs)) fail_msg("offline, from the cache:\n%s", msgs);
    assert_string_equal(msgs, "");
    assert_int_equal(requests(), 1);
    expect_file_weights(&t);
    free(msgs);
    net_close(&t);
    assert_int_equal(server_start(), 0); /* on another port: the cached URL is not served */
}

/* 404: the URL and the cache path named, nothing left in the cache. */
static void test_not_found(void **state)
{
    (void)state;
    server_reset();
    const char *url = url_of("/w/missing.safetensors");
    const char *path = cache_of(url);
    struct net t;
    char *msgs, want[9200];
    net_open(&t, url, NULL);
    assert_int_equal(load(&t, NULL, NULL, &msgs), STATUS_RUNTIME);
    snprintf(want, sizeof want, "runner: error: cannot download %s: the server answered HTTP "
             "404\n", url);
    expect_in(msgs, want);
    snprintf(want, sizeof want, "hint: model.pretrained is %s; nothing was kept in the cache "
             "(%s)", url, path);
    expect_in(msgs, want);
    assert_int_equal(requests(), 1);
    assert_false(exists(path));
    free(msgs);
    net_close(&t);
}

/* model.pretrained_sha256: a wrong one deletes the download and names both digests, the URL
 * and the cache path; the right one keeps it; a cached copy is checked on every load, with no
 * request when right, deleted and downloaded again when not. */
static void test_sha256(void **state)
{
    (void)state;
    server_reset();
    const char *url = url_of("/w/sha.safetensors");
    const char *path = cache_of(url);
    const char *wrong = "00000000000000000000000000000000000000000000000000000000000000aa";
    char extra[128], *msgs, want[9200];
    struct net t;
    snprintf(extra, sizeof extra, ", pretrained_sha256: %s", wrong);
    net_open(&t, url, extra);
    float before[10];
    plan_get_tensor(t.p, graph_find_tensor(t.g, "fc.bias"), before);
    assert_int_equal(load(&t, NULL, NULL, &msgs), STATUS_RUNTIME);
    snprintf(want, sizeof want, "runner: error: %s: SHA-256 mismatch: got %s, expected %s: the "
             "download is damaged or not the file expected (deleted, not kept as %s)", url,
             weights_sha, wrong, path);
    expect_in(msgs, want);
    assert_false(exists(path));
    char part[4500];
    snprintf(part, sizeof part, "%s.part", path);
    assert_false(exists(part));
    float after[10];
    plan_get_tensor(t.p, graph_find_tensor(t.g, "fc.bias"), after);
    assert_memory_equal(before, after, sizeof before);
    free(msgs);
    net_close(&t);

    snprintf(extra, sizeof extra, ", pretrained_sha256: %s", weights_sha);
    net_open(&t, url, extra);
    if (load(&t, NULL, NULL, &msgs)) fail_msg("%s", msgs);
    expect_in(msgs, "SHA-256 checked");
    expect_file_weights(&t);
    free(msgs);
    net_close(&t);
    assert_int_equal(requests(), 2);
    net_open(&t, url, extra); /* a cache hit, checked */
    if (load(&t, NULL, NULL, &msgs)) fail_msg("%s", msgs);
    assert_string_equal(msgs, "");
    assert_int_equal(requests(), 2);
    free(msgs);
    net_close(&t);

    snprintf(extra, sizeof extra, ", pretrained_sha256: %s", wrong);
    net_open(&t, url, extra); /* the cached copy is not this digest's */
    assert_int_equal(load(&t, NULL, NULL, &msgs), STATUS_RUNTIME);
    snprintf(want, sizeof want, "runner: %s: SHA-256 %s, expected %s: deleted, downloading it "
             "again", path, weights_sha, wrong);
    expect_in(msgs, want);
    expect_in(msgs, "SHA-256 mismatch");
    assert_int_equal(requests(), 3);
    assert_false(exists(path));
    free(msgs);
    net_close(&t);
}

/* A transfer cut short: the next try asks for the rest (Range from the byte received) and
 * the file loads. Then one cancelled mid-way, as SIGINT would: the .part stays and the next
 * load resumes from it. */
static void test_resume(void **state)
{
    (void)state;
    server_reset();
    long long cut = (long long)weights_len / 2;
    srv.cut_times = 1;
    srv.cut_at = cut;
    const char *url = url_of("/timm/net/resolve/main/sub/dir/w.safetensors");
    const char *path = cache_of(url);
    struct net t;
    char *msgs, want[128], part[4500];
    net_open(&t, url, NULL);
    if (load(&t, NULL, NULL, &msgs)) fail_msg("%s", msgs);
    assert_int_equal(requests(), 2);
    assert_string_equal(range_of(0), "");
    snprintf(want, sizeof want, "bytes=%lld-", cut);
    assert_string_equal(range_of(1), want);
    expect_in(msgs, "trying again");
    expect_file_weights(&t);
    free(msgs);
    net_close(&t);
    assert_int_equal(remove(path), 0);

    server_reset();
    static volatile sig_atomic_t cancel;
    cancel = 0;
    srv.cut_times = 1;
    srv.cut_at = cut;
    srv.stall = true;
    srv.cancel = &cancel;
    net_open(&t, url, NULL);
    assert_int_equal(load(&t, &cancel, NULL, &msgs), STATUS_RUNTIME);
    expect_in(msgs, "download interrupted");
    expect_in(msgs, "the next run resumes it");
    snprintf(part, sizeof part, "%s.part", path);
    struct stat sb;
    assert_int_equal(stat(part, &sb), 0);
    assert_int_equal(sb.st_size, cut);
    assert_false(exists(path));
    free(msgs);
    net_close(&t);

    cancel = 0;
    net_open(&t, url, NULL);
    if (load(&t, &cancel, NULL, &msgs)) fail_msg("%s", msgs);
    expect_in(msgs, "resuming after the");
    assert_int_equal(requests(), 2);
    assert_string_equal(range_of(1), want);
    assert_false(exists(part));
    expect_file_weights(&t);
    free(msgs);
    net_close(&t);
}

/* hf:// through HF_ENDPOINT: OWNER/REPO/resolve/main/FILE, model.safetensors by default; the
 * cache names tell the two apart. */
static void test_hf(void **state)
{
    (void)state;
    server_reset();
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d/", srv.port);
    setenv("HF_ENDPOINT", endpoint, 1);
    struct net t;
    struct pretrained_result r;
    char *msgs, want[9200];
    net_open(&t, "hf://timm/net", ", reinit: [fc]");
    if (load(&t, NULL, &r, &msgs)) fail_msg("%s", msgs);
    assert_int_equal(requests(), 1);
    assert_string_equal(path_of(0), "/timm/net/resolve/main/model.safetensors");
    snprintf(want, sizeof want, "pretrained: hf://timm/net (%s): %zu tensors loaded, 2 "
             "re-initialized (fc)", cache_of("hf://timm/net"), t.g->ntensors - 2);
    assert_string_equal(r.line, want);
    const char *slash = strrchr(r.path, '/');
    assert_true(strncmp(slash, "/timm--net--model-", 18) == 0);
    free(msgs);
    net_close(&t);

    net_open(&t, "hf://timm/net/sub/dir/w.safetensors", NULL);
    if (load(&t, NULL, &r, &msgs)) fail_msg("%s", msgs);
    assert_int_equal(requests(), 2);
    assert_string_equal(path_of(1), "/timm/net/resolve/main/sub/dir/w.safetensors");
    assert_string_not_equal(r.path, cache_of("hf://timm/net"));
    expect_file_weights(&t);
    free(msgs);
    net_close(&t);
    unsetenv("HF_ENDPOINT");
}

/* A port nothing listens on: no connection, no cached copy; the error names the URL and the
 * cache path and says the machine may be offline. */
static void test_offline_no_cache(void **state)
{
    (void)state;
    int port = 0, fd = bind_local(&port); /* bound, not listening: refused */
    assert_true(fd >= 0);
    char endpoint[64], url[256], want[9200], *msgs;
    snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d", port);
    setenv("HF_ENDPOINT", endpoint, 1);
    snprintf(url, sizeof url, "%s/timm/other/resolve/main/model.safetensors", endpoint);
    struct net t;
    net_open(&t, "hf://timm/other", NULL);
    assert_int_equal(load(&t, NULL, NULL, &msgs), STATUS_RUNTIME);
    snprintf(want, sizeof want, "runner: error: cannot download %s: ", url);
    expect_in(msgs, want);
    expect_in(msgs, "hint: the machine may be offline");
    snprintf(want, sizeof want, "hint: model.pretrained is hf://timm/other, and the cache has no "
             "copy of it (%s)", cache_of("hf://timm/other"));
    expect_in(msgs, want);
    assert_false(exists(cache_of("hf://timm/other")));
    free(msgs);
    net_close(&t);
    close(fd);
    unsetenv("HF_ENDPOINT");
}

/* --------------------------------------------------------------------------------------- */
/* Commands that never download */

/* runner ARGS through cli_main, its exit code; stdout goes to the test's output. */
static int runner(const char *cmd, const char *file)
{
    char *argv[] = {"runner", (char *)cmd, (char *)file, NULL};
    fflush(stdout);
    int rc = cli_main(3, argv);
    fflush(stdout);
    return rc;
}

static void test_check_plan_no_network(void **state)
{
    (void)state;
    server_reset();
    write_file(dir, "hf.yaml", "name: hf\ndevice: cpu\n"
               "model: {graph: net.yaml, pretrained: hf://timm/never, reinit: [fc]}\n"
               "optimizer: {type: adam, lr: 1.0e-3}\n");
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d", srv.port);
    setenv("HF_ENDPOINT", endpoint, 1);
    const char *cmds[] = {"check", "config", "plan"};
    for (size_t i = 0; i < ARRAY_LEN(cmds); i++) {
        int rc = runner(cmds[i], at("hf.yaml"));
        if (rc) fail_msg("runner %s: exit %d", cmds[i], rc);
    }
    assert_int_equal(requests(), 0);
    int port = 0, fd = bind_local(&port);
    assert_true(fd >= 0);
    snprintf(endpoint, sizeof endpoint, "http://127.0.0.1:%d", port);
    setenv("HF_ENDPOINT", endpoint, 1);
    for (size_t i = 0; i < ARRAY_LEN(cmds); i++) {
        int rc = runner(cmds[i], at("hf.yaml"));
        if (rc) fail_msg("runner %s with HF_ENDPOINT at a closed port: exit %d", cmds[i], rc);
    }
    close(fd);
    unsetenv("HF_ENDPOINT");
    assert_false(exists(cache_of("hf://timm/never")));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_helpers),
        cmocka_unit_test(test_download_then_offline),
        cmocka_unit_test(test_not_found),
        cmocka_unit_test(test_sha256),
        cmocka_unit_test(test_resume),
        cmocka_unit_test(test_hf),
        cmocka_unit_test(test_offline_no_cache),
        cmocka_unit_test(test_check_plan_no_network),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
