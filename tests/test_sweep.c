/*
 * test_sweep.c: `runner sweep`. Expansion without running anything: grid names, values,
 * order and count, fixed key=value applied, label and name collisions, unsafe characters,
 * random draws (count, ranges, log-uniform, seeds), the sweep directory's name (the same for
 * the same request, another for another), the point files' exact text and what they load as,
 * a path value rewritten, refused requests with their positions. Then whole sweeps of a tiny
 * network on synthetic CIFAR-10 files, each run a second or so: a diverging point recorded
 * as failed while the others finish, sweep.csv, exit codes, a second run that skips the
 * finished point, resumes the interrupted one from its checkpoint and retries the failed one;
 * parallel points sharing the cores (and resumed sequentially); SIGINT; files mode; a sweep
 * report hook of one's own beside the base experiment (the project's hook library loads); the
 * Slurm script, and sbatch missing; scripts/sweep.sh.
 *
 *   test_sweep RUNNER SOURCE_DIR            the above, and scripts/sweep.sh
 *   test_sweep RUNNER SOURCE_DIR --slurm    a sweep through a single-node Slurm started on
 *                                           localhost (exit 77, skipped, without Slurm
 *                                           installed or as non-root; a failure with
 *                                           CI=true)
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <omp.h>

#include "data.h"
#include "rng.h"
#include "spec.h"
#include "sweep.h"
#include "fake_cifar.h"
#include "test_util.h"

static char dir[256];
static const char *runner, *source; /* the runner program; the project's folder */

/* --------------------------------------------------------------------------------------- */
/* Fixtures */

/* The test's directory, made current, with data/ and tiny.yaml (2 epochs of 16 steps). */
static int setup(void **state)
{
    (void)state;
    if (tmpdir_make(dir, sizeof dir, "sweep") || chdir(dir)) return -1;
    write_fake_cifar_dir("data");
    write_file(".", "tiny.yaml",
               "name: tiny\n"
               "seed: 3\n"
               "device: cpu\n"
               "model:\n"
               "  graph:\n"
               "    input: [3, 32, 32]\n"
               "    graph:\n"
               "      - {name: conv1, op: conv, out: 8, kernel: 3, stride: 2, pad: 1}\n"
               "      - {name: bn1, op: batchnorm}\n"
               "      - relu\n"
               "      - global_avg_pool\n"
               "      - {name: fc, op: linear, out: 10}\n"
               "data: {root: data, subset: 1000, val_split: 200, download: false, workers: 1}\n"
               "augment:\n"
               "  train: [{normalize: {mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25]}}]\n"
               "  eval: [{normalize: {mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25]}}]\n"
               "optimizer: {type: sgd, lr: 0.1, momentum: 0.9}\n"
               "schedule: {type: constant}\n"
               "train: {epochs: 2, batch_size: 50, threads: 1}\n"
               "eval: {batch_size: 500, samples: 0}\n"
               "checkpoint: {every_epochs: 1, keep: 1}\n");
    unsetenv("RUNNER_DATA");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (chdir("/")) return -1;
    return tmpdir_remove(dir);
}

/* Runs RUNNER with args (NULL-terminated) in the test's directory; its exit code, with
 * stdout and stderr in *out and *err (caller frees; either may be NULL). path: PATH, or NULL
 * to keep it. */
static int cli_env(char **out, char **err, const char *path, const char *const *args)
{
    const char *argv[64];
    int n = 0;
    argv[n++] = runner;
    for (; *args; args++) argv[n++] = *args;
    argv[n] = NULL;
    fflush(stdout);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (!freopen("cli.out", "w", stdout) || !freopen("cli.err", "w", stderr)) _exit(126);
        if (path) setenv("PATH", path, 1);
        execv(runner, (char *const *)argv);
        _exit(127);
    }
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    char *o = slurp("cli.out"), *e = slurp("cli.err");
    if (out) *out = o; else free(o);
    if (err) *err = e; else free(e);
    return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
}

#define CLI(out, err, ...) cli_env(out, err, NULL, (const char *const[]){__VA_ARGS__, NULL})

static struct sweep *expand_ok(const struct sweep_request *rq)
{
    struct diag d = {.out = stderr};
    struct sweep *sw;
    assert_int_equal(sweep_expand(rq, &d, &sw), STATUS_OK);
    return sw;
}

/* The messages of a refused request. */
static char *expand_fails(const struct sweep_request *rq)
{
    char *msgs = NULL;
    size_t len;
    FILE *mem = open_memstream(&msgs, &len);
    struct diag d = {.out = mem};
    struct sweep *sw = (struct sweep *)1;
    assert_int_equal(sweep_expand(rq, &d, &sw), STATUS_CONFIG);
    assert_null(sw);
    fclose(mem);
    return msgs;
}

static int count(const char *text, const char *what)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, what)); p++) n++;
    return n;
}

static char *read_in(const char *run, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", run, name);
    return slurp(path);
}

/* --------------------------------------------------------------------------------------- */
/* Expansion */

static void test_grid(void **state)
{
    (void)state;
    const char *files[] = {"exp/base.yaml"};
    const char *grid[] = {"optimizer.lr=1e-3,3e-4,1e-4", "train.epochs=10,20"};
    struct sweep_request rq = {.mode = SWEEP_GRID, .files = files, .nfiles = 1, .grid = grid,
                               .ngrid = 2, .out = "/tmp/sw"};
    struct sweep *sw = expand_ok(&rq);
    static const char *const names[] = {"lr=1e-3_epochs=10", "lr=1e-3_epochs=20",
                                        "lr=3e-4_epochs=10", "lr=3e-4_epochs=20",
                                        "lr=1e-4_epochs=10", "lr=1e-4_epochs=20"};
    assert_int_equal(sw->npoints, 6); /* the first --grid varies slowest */
    for (size_t i = 0; i < 6; i++) assert_string_equal(sw->points[i].name, names[i]);
    assert_int_equal(sw->naxes, 2);
    assert_string_equal(sw->axes[0].key, "optimizer.lr");
    assert_string_equal(sw->axes[0].label, "lr");
    assert_string_equal(sw->points[3].values[0], "3e-4");
    assert_string_equal(sw->points[3].values[1], "20");
    assert_string_equal(sw->dir, "/tmp/sw");
    assert_string_equal(sw->points[3].file, "/tmp/sw/lr=3e-4_epochs=20.yaml");
    assert_string_equal(sw->points[3].run_dir, "/tmp/sw/runs/lr=3e-4_epochs=20");
    assert_string_equal(sw->points[3].log, "/tmp/sw/logs/lr=3e-4_epochs=20.log");
    sweep_free(sw);
}

/* Labels that clash use the whole key; values unsafe in file names become '-'; commas
 * inside brackets do not split values; names that come out equal are numbered. */
static void test_names(void **state)
{
    (void)state;
    const char *files[] = {"base.yaml"};
    const char *grid[] = {"optimizer.momentum=0.9", "model.momentum=0.1,0.2"};
    struct sweep_request rq = {.mode = SWEEP_GRID, .files = files, .nfiles = 1, .grid = grid,
                               .ngrid = 2, .out = "o"};
    struct sweep *sw = expand_ok(&rq);
    assert_string_equal(sw->points[1].name, "optimizer.momentum=0.9_model.momentum=0.2");
    sweep_free(sw);

    const char *g2[] = {"augment.train=[hflip, {cutout: 8}], []", "name=a/b,a b,\"x, y\""};
    rq.grid = g2;
    sw = expand_ok(&rq);
    assert_int_equal(sw->npoints, 6);
    assert_string_equal(sw->points[0].values[0], "[hflip, {cutout: 8}]");
    assert_string_equal(sw->points[0].name, "train=-hflip---cutout--8--_name=a-b");
    assert_string_equal(sw->points[1].name, "train=-hflip---cutout--8--_name=a-b-2");
    assert_string_equal(sw->points[2].name, "train=-hflip---cutout--8--_name=-x--y-");
    assert_string_equal(sw->points[3].values[0], "[]");
    assert_string_equal(sw->points[3].name, "train=--_name=a-b");
    sweep_free(sw);
}

/* The point file: extends the base from the sweep directory, the swept values then the
 * fixed ones as nested mappings, values as typed; it loads as the base with the overrides. */
static void test_point_file(void **state)
{
    (void)state;
    const char *files[] = {"tiny.yaml"};
    const char *grid[] = {"optimizer.lr=0.1,5e-2"};
    const char *fixed[] = {"train.epochs=1", "optimizer.momentum=0.5", "eval.test=false"};
    struct sweep_request rq = {.mode = SWEEP_GRID, .files = files, .nfiles = 1, .grid = grid,
                               .ngrid = 1, .fixed = fixed, .nfixed = 3, .out = "pf/sweep"};
    struct sweep *sw = expand_ok(&rq);
    assert_string_equal(sw->points[1].text,
                        "# Point lr=5e-2 of a sweep: `runner sweep` writes this file (edits are "
                        "replaced).\n"
                        "extends: ../../tiny.yaml\n"
                        "optimizer:\n"
                        "  lr: 5e-2\n"
                        "  momentum: 0.5\n"
                        "train:\n"
                        "  epochs: 1\n"
                        "eval:\n"
                        "  test: false\n");
    struct diag d = {.out = stderr};
    assert_int_equal(sweep_validate(sw, &d), STATUS_OK);
    assert_int_equal(sweep_write_files(sw, &d), STATUS_OK);
    struct spec *s;
    assert_int_equal(spec_load("pf/sweep/lr=5e-2.yaml", NULL, 0, &d, &s), STATUS_OK);
    assert_true(s->optimizer.lr == 0.05 && s->optimizer.momentum == 0.5);
    assert_true(s->train.epochs == 1 && !s->eval.test && s->train.batch_size == 50);
    assert_string_equal(s->name, "tiny");
    spec_free(s);
    sweep_free(sw);
}

/* A relative path in a path key is relative to the base's folder on the command line, so the
 * point file names the same file from the sweep directory. */
static void test_path_value(void **state)
{
    (void)state;
    mkdir("exp", 0777);
    write_file(".", "exp/g1.yaml",
               "input: [3, 32, 32]\ngraph:\n  - {name: conv1, op: conv, out: 4, kernel: 3}\n"
               "  - global_avg_pool\n  - {name: fc, op: linear, out: 10}\n");
    write_file(".", "exp/base.yaml", "extends: ../tiny.yaml\n");
    const char *files[] = {"exp/base.yaml"};
    const char *grid[] = {"model=g1.yaml"};
    struct sweep_request rq = {.mode = SWEEP_GRID, .files = files, .nfiles = 1, .grid = grid,
                               .ngrid = 1, .out = "pv"};
    struct sweep *sw = expand_ok(&rq);
    assert_string_equal(sw->points[0].name, "model=g1");
    assert_non_null(strstr(sw->points[0].text, "\nmodel: ../exp/g1.yaml\n"));
    struct diag d = {.out = stderr};
    assert_int_equal(sweep_validate(sw, &d), STATUS_OK);
    sweep_free(sw);

    /* A URL in a path key is no path: written as typed, swept or fixed, and named by its
     * stem; the points validate without the file (or the network). */
    const char *urls[] = {"model.pretrained=hf://timm/resnet18.tv_in1k,"
                          "https://example.com/w/resnet34.safetensors"};
    const char *fixed[] = {"model.reinit=[fc]"};
    rq.grid = urls;
    rq.fixed = fixed;
    rq.nfixed = 1;
    rq.out = "pv_url";
    sw = expand_ok(&rq);
    assert_int_equal(sw->npoints, 2);
    assert_string_equal(sw->points[0].name, "pretrained=resnet18");
    assert_string_equal(sw->points[1].name, "pretrained=resnet34");
    assert_non_null(strstr(sw->points[0].text, "\n  pretrained: hf://timm/resnet18.tv_in1k\n"));
    assert_non_null(strstr(sw->points[1].text,
                           "\n  pretrained: https://example.com/w/resnet34.safetensors\n"));
    assert_int_equal(sweep_validate(sw, &d), STATUS_OK);
    sweep_free(sw);
    const char *fixed_url[] = {"model.pretrained=hf://timm/resnet50.tv_in1k"};
    const char *lr[] = {"optimizer.lr=0.1,0.2"};
    rq.grid = lr;
    rq.fixed = fixed_url;
    sw = expand_ok(&rq);
    assert_non_null(strstr(sw->points[0].text, "\n  pretrained: hf://timm/resnet50.tv_in1k\n"));
    sweep_free(sw);
}

/* Random draws: the count, every value in its range, learning rates log-uniform, integers
 * whole, %.3g text, names r000_..., the same seed the same points and another seed others. */
static void test_random(void **state)
{
    (void)state;
    const char *files[] = {"base.yaml"};
    const char *ranges[] = {"optimizer.lr=1e-5:1e-1", "train.batch_size=int:16:256",
                            "optimizer.momentum=0.5:0.99"};
    struct sweep_request rq = {.mode = SWEEP_RANDOM, .files = files, .nfiles = 1,
                               .ranges = ranges, .nranges = 3, .npoints = 200, .seed = 7,
                               .out = "r"};
    struct sweep *sw = expand_ok(&rq), *again = expand_ok(&rq);
    assert_int_equal(sw->npoints, 200);
    assert_int_equal(sw->axes[0].kind, SWEEP_RANGE_LOG);
    assert_int_equal(sw->axes[1].kind, SWEEP_RANGE_INT);
    assert_int_equal(sw->axes[2].kind, SWEEP_RANGE_UNIFORM);
    int below = 0, small_batch = 0;
    double momentum = 0;
    for (size_t i = 0; i < 200; i++) {
        const struct sweep_point *p = &sw->points[i];
        double lr = strtod(p->values[0], NULL), m = strtod(p->values[2], NULL);
        char *end, text[32], prefix[64];
        long b = strtol(p->values[1], &end, 10);
        assert_true(lr >= 1e-5 && lr <= 1e-1 && m >= 0.5 && m <= 0.99);
        assert_true(!*end && b >= 16 && b <= 256);
        snprintf(text, sizeof text, "%.3g", lr);
        assert_string_equal(p->values[0], text);
        below += lr < 1e-3;
        small_batch += b < 136;
        momentum += m;
        snprintf(prefix, sizeof prefix, "r%03zu_lr=%s_batch_size=%s_momentum=", i, text,
                 p->values[1]);
        assert_true(strncmp(p->name, prefix, strlen(prefix)) == 0);
        assert_string_equal(p->name, again->points[i].name);
    }
    /* log-uniform: half the draws below the geometric middle (uniform would put 1% there) */
    assert_true(below > 70 && below < 130);
    assert_true(small_batch > 70 && small_batch < 130);
    assert_true(fabs(momentum / 200 - 0.745) < 0.05);
    rq.seed = 8;
    struct sweep *other = expand_ok(&rq);
    int same = 0;
    for (size_t i = 0; i < 200; i++)
        same += strcmp(sw->points[i].values[0], other->points[i].values[0]) == 0;
    assert_true(same < 10);
    const char *log_ranges[] = {"optimizer.weight_decay=log:1e-6:1e-2", "train.epochs=int:1:3"};
    rq.ranges = log_ranges;
    rq.nranges = 2;
    rq.npoints = 3;
    struct sweep *few = expand_ok(&rq);
    assert_int_equal(few->axes[0].kind, SWEEP_RANGE_LOG);
    assert_true(strncmp(few->points[2].name, "r002_weight_decay=", 18) == 0);
    sweep_free(sw);
    sweep_free(again);
    sweep_free(other);
    sweep_free(few);
}

/* results/sweeps/<base>-<labels>-<hash>: the same for the same request; another for other
 * values, other fixed settings, another order, or another seed. */
static void test_directory(void **state)
{
    (void)state;
    const char *files[] = {"exp/tiny.yaml"}, *files2[] = {"./exp//tiny.yaml"};
    const char *g1[] = {"optimizer.lr=1e-3,3e-4", "train.epochs=1,2"};
    const char *g2[] = {"optimizer.lr=1e-3,1e-4", "train.epochs=1,2"};
    const char *g3[] = {"train.epochs=1,2", "optimizer.lr=1e-3,3e-4"};
    const char *fixed[] = {"train.batch_size=64"};
    struct sweep_request rq = {.mode = SWEEP_GRID, .files = files, .nfiles = 1, .grid = g1,
                               .ngrid = 2};
    struct sweep *a = expand_ok(&rq);
    assert_true(strncmp(a->dir, "results/sweeps/tiny-lr-epochs-", 30) == 0);
    assert_int_equal(strlen(a->dir), 30 + 8);
    assert_int_equal(strspn(a->dir + 30, "0123456789abcdef"), 8);
    rq.files = files2;
    struct sweep *b = expand_ok(&rq);
    assert_string_equal(a->dir, b->dir);
    rq.grid = g2;
    struct sweep *c = expand_ok(&rq);
    rq.grid = g1;
    rq.fixed = fixed;
    rq.nfixed = 1;
    struct sweep *e = expand_ok(&rq);
    rq.grid = g3;
    rq.nfixed = 0;
    struct sweep *f = expand_ok(&rq);
    assert_true(strcmp(a->dir, c->dir) && strcmp(a->dir, e->dir) && strcmp(a->dir, f->dir));
    assert_true(strncmp(f->dir, "results/sweeps/tiny-epochs-lr-", 30) == 0);
    const char *ranges[] = {"optimizer.lr=1e-5:1e-2"};
    struct sweep_request rr = {.mode = SWEEP_RANDOM, .files = files, .nfiles = 1, .ranges = ranges,
                               .nranges = 1, .npoints = 4, .seed = 2};
    struct sweep *r = expand_ok(&rr);
    assert_true(strncmp(r->dir, "results/sweeps/tiny-lr-random4-seed2-", 37) == 0);
    /* files: their stems' common start, else their folder */
    const char *fl[] = {"experiments/sweeps/lr_1e-3.yaml", "experiments/sweeps/lr_3e-4.yaml"};
    const char *fm[] = {"experiments/sweeps/lr_1e-3.yaml", "experiments/sweeps/quick_bs128.yaml"};
    struct sweep_request rf = {.mode = SWEEP_FILES, .files = fl, .nfiles = 2};
    struct sweep *s1 = expand_ok(&rf);
    rf.files = fm;
    struct sweep *s2 = expand_ok(&rf);
    assert_true(strncmp(s1->dir, "results/sweeps/lr-", 18) == 0);
    assert_true(strncmp(s2->dir, "results/sweeps/sweeps-", 22) == 0);
    assert_string_equal(s2->points[1].name, "quick_bs128");
    assert_string_equal(s2->points[1].file, "experiments/sweeps/quick_bs128.yaml");
    sweep_free(a);
    sweep_free(b);
    sweep_free(c);
    sweep_free(e);
    sweep_free(f);
    sweep_free(r);
    sweep_free(s1);
    sweep_free(s2);
}

/* A refused request says what and where, at "<command line>:ARG:COL". */
static void expect_refused(const char *const *argv, int argc, const char *want)
{
    struct sweep_request rq = {.mode = SWEEP_GRID, .files = argv, .nfiles = 1, .argv = argv,
                               .argc = argc};
    const char *grid[8], *ranges[8], *fixed[8];
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--grid") == 0) grid[rq.ngrid++] = argv[++i];
        else if (strcmp(argv[i], "--range") == 0) ranges[rq.nranges++] = argv[++i];
        else fixed[rq.nfixed++] = argv[i];
    }
    rq.grid = grid;
    rq.ranges = ranges;
    rq.fixed = fixed;
    if (rq.nranges) {
        rq.mode = SWEEP_RANDOM;
        rq.npoints = 2;
    }
    char *msgs = expand_fails(&rq);
    if (!strstr(msgs, want)) fail_msg("expected \"%s\" in:\n%s", want, msgs);
    free(msgs);
}

static void test_refused(void **state)
{
    (void)state;
#define REFUSED(want, ...)                                                                     \
    expect_refused((const char *const[]){__VA_ARGS__},                                         \
                   (int)ARRAY_LEN(((const char *const[]){__VA_ARGS__})), want)
    REFUSED("<command line>:3:18: error: --grid optimizer.lr: value 2 is empty", "b.yaml",
            "--grid", "optimizer.lr=0.1,,0.2");
    REFUSED("<command line>:3:1: error: --grid expects KEY=V1,V2,..., got \"optimizer.lr\"",
            "b.yaml", "--grid", "optimizer.lr");
    REFUSED("<command line>:5:1: error: 'optimizer.lr' is given twice", "b.yaml", "--grid",
            "optimizer.lr=1,2", "--grid", "optimizer.lr=3");
    REFUSED("<command line>:4:1: error: 'optimizer.lr' is inside 'optimizer', which is also given",
            "b.yaml", "--grid", "optimizer.lr=1,2", "optimizer={type: sgd}");
    REFUSED("<command line>:3:1: error: 'extends' cannot be swept", "b.yaml", "--grid",
            "extends=a.yaml,b.yaml");
    REFUSED("--grid train.epochs: value '2' given twice", "b.yaml", "--grid", "train.epochs=2,2");
    REFUSED("<command line>:3:14: error: --range optimizer.lr: expected", "b.yaml", "--range",
            "optimizer.lr=1e-5");
    REFUSED("<command line>:3:14: error: --range optimizer.lr: a log-uniform range needs LO > 0",
            "b.yaml", "--range", "optimizer.lr=0:1");
    REFUSED("--range train.epochs: expected [log:|int:|uniform:]LO:HI with whole-number bounds",
            "b.yaml", "--range", "train.epochs=int:1.5:3");
    REFUSED("error: --range optimizer.momentum: LO must be below HI", "b.yaml", "--range",
            "optimizer.momentum=0.9:0.5");
#undef REFUSED
}

/* An invalid point stops the sweep before anything runs (exit 2), at its file's position;
 * so do argument mistakes. */
static void test_invalid_point(void **state)
{
    (void)state;
    char *err;
    assert_int_equal(CLI(NULL, &err, "sweep", "tiny.yaml", "--grid", "train.epochs=1,ten",
                         "--out", "bad"),
                     2);
    if (!strstr(err, "bad/epochs=ten.yaml:4:11: error: 'train.epochs' must be an integer"))
        fail_msg("%s", err);
    assert_non_null(strstr(err, "nothing was started"));
    free(err);
    struct stat sb;
    assert_int_equal(stat("bad/runs", &sb), -1);
    assert_int_equal(CLI(NULL, &err, "sweep", "tiny.yaml", "--grid", "x.y=1", "--random", "2"), 2);
    assert_non_null(strstr(err, "--grid and --random exclude each other"));
    free(err);
    assert_int_equal(CLI(NULL, &err, "sweep", "tiny.yaml", "--parallel", "0"), 2);
    assert_non_null(strstr(err, "--parallel must be a whole number from 1 to 1024, got '0'"));
    free(err);
    assert_int_equal(CLI(NULL, &err, "sweep", "tiny.yaml", "--", "--time=5"), 2);
    assert_non_null(strstr(err, "options after -- are for sbatch: add --slurm"));
    free(err);
}

/* --------------------------------------------------------------------------------------- */
/* Whole sweeps */

/* The sweep of argv[0] with --grid argv[1] (and fixed settings), expanded here as the
 * command expands it, with its points' statuses read from their files. */
static struct sweep *sweep_of(const char *grid, const char *const *fixed, size_t nfixed,
                              const char *out)
{
    static const char *files[] = {"tiny.yaml"};
    static const char *g[1];
    static struct sweep_request rq;
    g[0] = grid;
    rq = (struct sweep_request){.mode = SWEEP_GRID, .files = files, .nfiles = 1, .grid = g,
                                .ngrid = 1, .fixed = fixed, .nfixed = nfixed, .out = out};
    struct sweep *sw = expand_ok(&rq);
    struct diag d = {.out = stderr};
    assert_int_equal(sweep_validate(sw, &d), STATUS_OK);
    sweep_read_status(sw);
    return sw;
}

/* The log's "sweep: started" lines: the attempts at the point. */
static int attempts(const struct sweep_point *p)
{
    char *log = slurp(p->log);
    int n = log ? count(log, "sweep: started") : 0;
    free(log);
    return n;
}

/* Three learning rates, one diverging: exit 1, two points done and one failed, sweep.csv
 * with every point, the best marked. Then the first point made "interrupted" (summary.json
 * gone, checkpoints left): the second run resumes it, skips the done one, retries the failed
 * one. */
/* The first tag of html that opens with open ("<tr") and holds needle, into buf ("" when
 * there is none). */
static const char *tag_with(const char *html, const char *open, const char *needle, char *buf,
                            size_t size)
{
    buf[0] = 0;
    for (const char *at = html; (at = strstr(at, open)); at++) {
        const char *end = strchr(at, '>');
        if (!end) break;
        size_t n = (size_t)(end - at);
        snprintf(buf, size, "%.*s", (int)(n < size ? n : size - 1), at);
        if (strstr(buf, needle)) return buf;
    }
    buf[0] = 0;
    return buf;
}

static void test_failure_skip_resume(void **state)
{
    (void)state;
    char *out, *err;
    const char *lrs = "optimizer.lr=0.1,0.05,1e30";
    assert_int_equal(CLI(&out, &err, "sweep", "tiny.yaml", "--grid", lrs), 1);
    struct sweep *sw = sweep_of("optimizer.lr=0.1,0.05,1e30", NULL, 0, NULL);
    const struct sweep_point *p = sw->points;
    assert_true(strncmp(sw->dir, "results/sweeps/tiny-lr-", 23) == 0);
    assert_int_equal(p[0].status, SWEEP_DONE);
    assert_int_equal(p[1].status, SWEEP_DONE);
    assert_int_equal(p[2].status, SWEEP_FAILED);
    assert_int_equal(p[2].exit_code, 1);
    assert_non_null(strstr(out, "[3/3] lr=1e30: failed after "));
    assert_non_null(strstr(out, "the loss is "));
    long best = sweep_best(sw);
    assert_true(best == 0 || best == 1);
    char mark[64];
    snprintf(mark, sizeof mark, "\n  * %s ", p[best].name);
    if (!strstr(out, mark)) fail_msg("no best point marked in:\n%s", out);
    assert_non_null(strstr(out, "best: "));
    /* sweep.html, by hooks/sweep_report.lua: the best point named, the failed one listed */
    char *html = read_in(sw->dir, "sweep.html"), tag[512];
    snprintf(mark, sizeof mark, "data-point=\"%s\"", p[best].name);
    if (!strstr(tag_with(html, "<p id=\"best\"", "", tag, sizeof tag), mark))
        fail_msg("sweep.html does not name %s the best: %s", p[best].name, tag);
    tag_with(html, "<tr ", "data-point=\"lr=1e30\"", tag, sizeof tag);
    if (!strstr(tag, "data-status=\"failed\""))
        fail_msg("sweep.html's row of lr=1e30: %s", tag);
    free(html);
    assert_non_null(strstr(out, "report: "));
    char *log = slurp(p[2].log);
    assert_non_null(strstr(log, "the loss is"));
    size_t n = strlen(log);
    assert_true(n > 23 && strcmp(log + n - 23, "sweep: failed (exit 1)\n") == 0);
    free(log);

    /* sweep.csv: the header, then a row per point from its summary.json */
    char *csv = read_in(sw->dir, "sweep.csv");
    const char *head = "point,status,optimizer.lr,best_val_acc,final_val_acc,test_acc,seconds,"
                       "img_per_s,run_dir\nlr=0.1,done,0.1,";
    assert_true(strncmp(csv, head, strlen(head)) == 0);
    char row[512];
    snprintf(row, sizeof row, "\nlr=1e30,failed,1e30,,,,,,%s/runs/lr=1e30\n", sw->dir);
    assert_non_null(strstr(csv, row));
    struct sweep_result r;
    sweep_read_result(&p[1], &r);
    assert_true(r.test_acc > 0.1 && r.best_val_acc > 0.1 && r.seconds > 0 && r.img_per_s > 0);
    snprintf(row, sizeof row, "\nlr=0.05,done,0.05,%.6g,%.6g,%.6g,%.1f,%.1f,%s/runs/lr=0.05\n",
             r.best_val_acc, r.final_val_acc, r.test_acc, r.seconds, r.img_per_s, sw->dir);
    if (!strstr(csv, row)) fail_msg("no row\n%sin\n%s", row + 1, csv);
    free(csv);
    free(out);
    free(err);

    /* The first point interrupted after its last checkpoint. */
    char path[600];
    snprintf(path, sizeof path, "%s/summary.json", p[0].run_dir);
    assert_int_equal(unlink(path), 0);
    sweep_read_status(sw);
    assert_int_equal(p[0].status, SWEEP_INTERRUPTED);
    assert_int_equal(CLI(&out, NULL, "sweep", "tiny.yaml", "--grid", lrs), 1);
    assert_non_null(strstr(out, "[1/3] lr=0.1: resuming from its checkpoint"));
    assert_non_null(strstr(out, "[2/3] lr=0.05: done already"));
    char *run_log = read_in(p[0].run_dir, "run.log");
    assert_non_null(strstr(run_log, "resumed from "));
    free(run_log);
    free(out);
    assert_int_equal(attempts(&p[0]), 2);
    assert_int_equal(attempts(&p[1]), 1);
    assert_int_equal(attempts(&p[2]), 2);
    sweep_read_status(sw);
    assert_int_equal(p[0].status, SWEEP_DONE);
    assert_int_equal(p[2].status, SWEEP_FAILED);
    sweep_free(sw);
}

/* --parallel 2 on the CPU: two points at once, the cores split and one loader thread each
 * (as their config.yaml records); one made interrupted resumes with those settings when the
 * sweep runs again one point at a time. */
static void test_parallel(void **state)
{
    (void)state;
    const char *fixed[] = {"train.threads=0", "data.workers=0"};
    struct sweep *sw = sweep_of("optimizer.lr=0.1,0.05", fixed, 2, "par");
    struct diag d = {.out = stderr};
    assert_int_equal(sweep_write_files(sw, &d), STATUS_OK);
    struct sweep_run_options o = {.runner = runner, .parallel = 2, .quiet = true};
    assert_int_equal(sweep_run(sw, &o, &d), STATUS_OK);
    char want[64];
    int cores = omp_get_num_procs();
    snprintf(want, sizeof want, "\n  threads: %d\n", cores / 2 > 1 ? cores / 2 : 1);
    for (int i = 0; i < 2; i++) {
        char *config = read_in(sw->points[i].run_dir, "config.yaml");
        assert_non_null(strstr(config, want));
        assert_non_null(strstr(config, "\n  workers: 1\n"));
        free(config);
        assert_int_equal(sw->points[i].status, SWEEP_DONE);
    }
    char path[600];
    snprintf(path, sizeof path, "%s/summary.json", sw->points[1].run_dir);
    assert_int_equal(unlink(path), 0);
    o.parallel = 1;
    assert_int_equal(sweep_run(sw, &o, &d), STATUS_OK);
    char *log = slurp(sw->points[1].log);
    assert_non_null(strstr(log, "train.threads="));
    assert_non_null(strstr(log, "--resume par/runs/lr=0.05"));
    free(log);
    log = read_in(sw->points[1].run_dir, "run.log");
    assert_non_null(strstr(log, "resumed from "));
    free(log);
    assert_int_equal(attempts(&sw->points[0]), 1);
    sweep_free(sw);
}

/* SIGINT to the sweep: the running point saves a checkpoint and is recorded as interrupted,
 * no other point starts, exit 130. */
static void test_sigint(void **state)
{
    (void)state;
    fflush(stdout);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (!freopen("sig.out", "w", stdout) || !freopen("sig.err", "w", stderr)) _exit(126);
        execl(runner, runner, "sweep", "tiny.yaml", "--grid", "train.epochs=500,501", "--out",
              "sig", (char *)NULL);
        _exit(127);
    }
    struct stat sb;
    for (int i = 0; i < 600 && stat("sig/runs/epochs=500/metrics.csv", &sb); i++) usleep(50000);
    usleep(300000);
    kill(pid, SIGINT);
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws));
    assert_int_equal(WEXITSTATUS(ws), 130);
    char *csv = slurp("sig/sweep.csv");
    assert_non_null(strstr(csv, "\nepochs=500,interrupted,500,"));
    assert_non_null(strstr(csv, "\nepochs=501,pending,501,"));
    free(csv);
    char *log = slurp("sig/logs/epochs=500.log");
    assert_non_null(strstr(log, "stopped by SIGINT"));
    assert_non_null(strstr(log, "sweep: interrupted (exit 130)\n"));
    free(log);
    assert_int_equal(stat("sig/runs/epochs=500/checkpoints", &sb), 0);
}

/* Experiment files as points, named by their files, the key=value settings passed on. */
static void test_files(void **state)
{
    (void)state;
    write_file(".", "lr_a.yaml", "extends: tiny.yaml\noptimizer: {lr: 0.1}\n");
    write_file(".", "lr_b.yaml", "extends: tiny.yaml\noptimizer: {lr: 0.05}\n");
    char *out;
    assert_int_equal(CLI(&out, NULL, "sweep", "lr_a.yaml", "lr_b.yaml", "train.epochs=1",
                         "--out", "files"), 0);
    assert_non_null(strstr(out, "[2/2] lr_b: done in "));
    free(out);
    char *csv = slurp("files/sweep.csv");
    assert_true(strncmp(csv, "point,status,file,best_val_acc,", 31) == 0);
    assert_non_null(strstr(csv, "\nlr_a,done,lr_a.yaml,"));
    free(csv);
    char *summary = slurp("files/runs/lr_b/summary.json");
    assert_non_null(strstr(summary, "\"epochs\": 1,"));
    free(summary);
}

/* A sweep report hook of one's own, sweep_report.lua beside the base experiment outside
 * hooks/, loads the project's hook library (require "lib.html", "lib.page") as the shipped
 * one does: sweep.html is written. */
static void test_own_report_hook(void **state)
{
    (void)state;
    assert_int_equal(mkdir("own_hook", 0777), 0);
    write_file("own_hook", "base.yaml", "extends: ../tiny.yaml\n");
    write_file("own_hook", "sweep_report.lua",
               "local html = require \"lib.html\"\n"
               "local page = require \"lib.page\"\n"
               "function on_sweep(sweep)\n"
               "  local text = string.format(\"%d points, page.header %s\", #sweep.points,\n"
               "    type(page.header))\n"
               "  runner.write(\"sweep.html\", html.tag(\"p\", {id = \"own\"}, text))\n"
               "end\n");
    const char *files[] = {"own_hook/base.yaml"};
    const char *grid[] = {"optimizer.lr=0.1,0.05"};
    struct sweep_request rq = {.mode = SWEEP_GRID, .files = files, .nfiles = 1, .grid = grid,
                               .ngrid = 1, .out = "own_hook_sweep"};
    struct sweep *sw = expand_ok(&rq);
    struct diag d = {.out = stderr};
    assert_int_equal(sweep_write_files(sw, &d), STATUS_OK);
    sweep_read_status(sw);
    assert_int_equal(sweep_points_changed(sw, &d), STATUS_OK);
    char *html = read_in(sw->dir, "sweep.html");
    if (!html || strcmp(html, "<p id=\"own\">2 points, page.header function</p>"))
        fail_msg("own_hook_sweep/sweep.html: %s", html ? html : "not written");
    free(html);
    sweep_free(sw);
}

/* --slurm --dry-run writes the job array's script; without sbatch, submitting fails (1). */
static void test_slurm_script(void **state)
{
    (void)state;
    char *out, *err;
    assert_int_equal(CLI(&out, NULL, "sweep", "tiny.yaml", "--grid", "optimizer.lr=0.1,0.05",
                         "train.epochs=1", "--parallel", "2", "--slurm", "--dry-run", "--out",
                         "sl", "--", "--time=10", "--partition=debug"),
                     0);
    assert_non_null(strstr(out, "wrote sl/sweep.sbatch: a Slurm job array of 2 tasks"));
    free(out);
    char *script = slurp("sl/sweep.sbatch"), cwd[512], line[1024];
    assert_true(getcwd(cwd, sizeof cwd) != NULL);
    assert_true(strncmp(script, "#!/bin/bash\n", 12) == 0);
    snprintf(line, sizeof line,
             "#SBATCH --job-name=sl\n#SBATCH --array=0-1%%2\n"
             "#SBATCH --output=sl/logs/slurm-%%A_%%a.log\n#SBATCH --chdir=%s\n"
             "#SBATCH --time=10\n#SBATCH --partition=debug\n", cwd);
    if (!strstr(script, line)) fail_msg("expected\n%sin\n%s", line, script);
    assert_non_null(strstr(script, "\n0) point=lr=0.1 ;;\n1) point=lr=0.05 ;;\n"));
    snprintf(line, sizeof line,
             "\nexec %s sweep tiny.yaml --grid optimizer.lr=0.1,0.05 train.epochs=1 --out sl "
             "--only \"$point\"\n", runner);
    if (!strstr(script, line)) fail_msg("expected\n%sin\n%s", line, script);
    free(script);
    char *csv = slurp("sl/sweep.csv");
    assert_non_null(strstr(csv, "\nlr=0.05,pending,0.05,"));
    free(csv);
    /* --only runs one point as a task does */
    assert_int_equal(CLI(&out, NULL, "sweep", "tiny.yaml", "--grid", "optimizer.lr=0.1,0.05",
                         "train.epochs=1", "--out", "sl", "--only", "lr=0.05"), 0);
    free(out);
    csv = slurp("sl/sweep.csv");
    assert_non_null(strstr(csv, "\nlr=0.1,pending,0.1,"));
    assert_non_null(strstr(csv, "\nlr=0.05,done,0.05,"));
    free(csv);
    mkdir("empty", 0777);
    char empty[600];
    snprintf(empty, sizeof empty, "%s/empty", cwd);
    assert_int_equal(cli_env(NULL, &err, empty,
                             (const char *const[]){"sweep", "tiny.yaml", "--grid",
                                                   "optimizer.lr=0.1,0.05", "--slurm", "--out",
                                                   "sl", NULL}),
                     1);
    assert_non_null(strstr(err, "sbatch not found"));
    free(err);
}

/* scripts/sweep.sh: a grid written as files and run, a failure recorded; run again, the
 * finished run is skipped. */
static void test_shell_script(void **state)
{
    (void)state;
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "sh '%s/scripts/sweep.sh' -r '%s' -o shell -g optimizer.lr=0.1,1e30 tiny.yaml "
             "train.epochs=1 >shell.out 2>&1", source, runner);
    int rc = system(cmd);
    assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) == 1);
    char *out = slurp("shell.out");
    assert_non_null(strstr(out, "lr=0.1: done, test acc 0."));
    assert_non_null(strstr(out, "lr=1e30: failed (exit 1): runner: error: "));
    free(out);
    char *file = slurp("shell/lr=0.1.yaml");
    assert_non_null(strstr(file, "/tiny.yaml\noptimizer:\n  lr: 0.1\n"));
    free(file);
    rc = system(cmd);
    assert_true(WIFEXITED(rc) && WEXITSTATUS(rc) == 1);
    out = slurp("shell.out");
    assert_non_null(strstr(out, "lr=0.1: done already\n"));
    free(out);
}

/* --------------------------------------------------------------------------------------- */
/* A single-node Slurm on localhost */

static pid_t slurm_pids[2];

/* name's path on PATH or in /usr/sbin, /sbin, into buf; NULL when absent. */
static const char *find_program(const char *name, char *buf, size_t size)
{
    char dirs[4096];
    snprintf(dirs, sizeof dirs, "%s:/usr/sbin:/sbin", getenv("PATH") ? getenv("PATH") : "/usr/bin");
    for (char *p = strtok(dirs, ":"); p; p = strtok(NULL, ":")) {
        snprintf(buf, size, "%s/%s", p, name);
        if (access(buf, X_OK) == 0) return buf;
    }
    return NULL;
}

static pid_t read_pid(const char *path)
{
    char *text = slurp(path);
    pid_t pid = text ? (pid_t)atol(text) : 0;
    free(text);
    return pid;
}

static int slurm_teardown(void **state)
{
    for (int i = 0; i < 2; i++)
        if (slurm_pids[i] > 0) {
            kill(slurm_pids[i], SIGTERM);
            for (int k = 0; k < 100 && kill(slurm_pids[i], 0) == 0; k++) usleep(100000);
        }
    return teardown(state);
}

/* slurmctld and slurmd on this machine (auth/none, its own ports and state in the test's
 * directory), a sweep of two points submitted with --slurm, each array task finishing its
 * point: both done in sweep.csv, each task's log in logs/. */
static void test_slurm_cluster(void **state)
{
    (void)state;
    char ctld[512], slurmd[512], host[256], conf[8192], cwd[512];
    assert_non_null(find_program("slurmctld", ctld, sizeof ctld));
    assert_non_null(find_program("slurmd", slurmd, sizeof slurmd));
    assert_int_equal(gethostname(host, sizeof host), 0);
    host[strcspn(host, ".")] = 0;
    assert_true(getcwd(cwd, sizeof cwd) != NULL);
    int port = 20000 + (int)(getpid() % 20000);
    mkdir("slurm", 0777);
    mkdir("slurm/state", 0777);
    mkdir("slurm/spool", 0777);
    snprintf(conf, sizeof conf,
             "ClusterName=runnertest\nSlurmctldHost=%s(127.0.0.1)\nAuthType=auth/none\n"
             "CredType=cred/none\nSlurmctldPort=%d\nSlurmdPort=%d\nSlurmUser=root\n"
             "SlurmdUser=root\nStateSaveLocation=%s/slurm/state\nSlurmdSpoolDir=%s/slurm/spool\n"
             "SlurmctldPidFile=%s/slurm/ctld.pid\nSlurmdPidFile=%s/slurm/d.pid\n"
             "SlurmctldLogFile=%s/slurm/ctld.log\nSlurmdLogFile=%s/slurm/d.log\n"
             "ProctrackType=proctrack/pgid\nTaskPlugin=task/none\nSelectType=select/cons_tres\n"
             "SelectTypeParameters=CR_CPU\nJobCompType=jobcomp/none\n"
             "AccountingStorageType=accounting_storage/none\nMpiDefault=none\nReturnToService=2\n"
             "NodeName=%s NodeAddr=127.0.0.1 CPUs=%ld State=UNKNOWN\n"
             "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n",
             host, port, port + 1, cwd, cwd, cwd, cwd, cwd, cwd, host,
             sysconf(_SC_NPROCESSORS_ONLN));
    write_file(".", "slurm/slurm.conf", conf);
    char path[600];
    snprintf(path, sizeof path, "%s/slurm/slurm.conf", cwd);
    setenv("SLURM_CONF", path, 1);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "%s -i && %s", ctld, slurmd);
    assert_int_equal(system(cmd), 0); /* both daemonize */
    for (int i = 0; i < 100 && !(slurm_pids[0] = read_pid("slurm/ctld.pid")); i++) usleep(100000);
    for (int i = 0; i < 100 && !(slurm_pids[1] = read_pid("slurm/d.pid")); i++) usleep(100000);
    bool idle = false;
    for (int i = 0; i < 300 && !idle; i++) {
        FILE *p = popen("sinfo -h -o %t 2>/dev/null", "r");
        char state[64] = "";
        if (p && fgets(state, sizeof state, p)) idle = strncmp(state, "idle", 4) == 0;
        if (p) pclose(p);
        if (!idle) usleep(100000);
    }
    if (!idle) fail_msg("the Slurm node did not come up; see %s/slurm/*.log", cwd);

    char *out, *err;
    int rc = CLI(&out, &err, "sweep", "tiny.yaml", "--grid", "optimizer.lr=0.1,0.05",
                 "train.epochs=1", "--slurm", "--out", "cluster", "--", "--time=10");
    if (rc) fail_msg("exit %d:\n%s%s", rc, out, err);
    assert_non_null(strstr(out, "Submitted batch job "));
    free(out);
    free(err);
    char *csv = NULL;
    for (int i = 0; i < 2400; i++) { /* at most 4 minutes */
        free(csv);
        csv = slurp("cluster/sweep.csv");
        if (csv && count(csv, ",done,") == 2) break;
        usleep(100000);
    }
    if (count(csv, ",done,") != 2) fail_msg("the array tasks did not finish:\n%s", csv);
    free(csv);
    struct stat sb;
    char *log = NULL;
    for (int i = 0; i < 50 && !log; i++) {
        char *ls = NULL;
        size_t len;
        FILE *m = open_memstream(&ls, &len);
        FILE *p = popen("ls cluster/logs", "r");
        for (int c; p && (c = fgetc(p)) != EOF;) fputc(c, m);
        if (p) pclose(p);
        fclose(m);
        if (strstr(ls, "_0.log") && strstr(ls, "_1.log")) {
            log = ls;
        } else {
            free(ls);
            usleep(100000);
        }
    }
    if (!log) fail_msg("no per-task Slurm logs in cluster/logs");
    free(log);
    assert_int_equal(stat("cluster/runs/lr=0.05/model.safetensors", &sb), 0);
}

int main(int argc, char **argv)
{
    static char path[4096];
    if (argc < 3 || !realpath(argv[1], path)) {
        fprintf(stderr, "usage: test_sweep RUNNER SOURCE_DIR [--slurm]\n");
        return 2;
    }
    runner = path;
    source = argv[2];
    if (argc > 3 && strcmp(argv[3], "--slurm") == 0) {
        char buf[512];
        bool have = true;
        for (const char *const *p = (const char *const[]){"slurmctld", "slurmd", "sbatch", "sinfo",
                                                           NULL};
             *p; p++)
            have = have && find_program(*p, buf, sizeof buf);
        const char *why = NULL;
        if (!have)
            why = "Slurm (slurmctld, slurmd, sbatch, sinfo) is not installed";
        else if (getuid() != 0)
            why = "starting slurmd needs root";
        if (why) {
            const char *ci = getenv("CI");
            if (ci && strcmp(ci, "true") == 0) {
                printf("FAIL: %s (CI=true)\n", why);
                return 1;
            }
            printf("skipped: %s\n", why);
            return 77;
        }
        const struct CMUnitTest cluster[] = {cmocka_unit_test(test_slurm_cluster)};
        return cmocka_run_group_tests(cluster, setup, slurm_teardown);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grid),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_point_file),
        cmocka_unit_test(test_path_value),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_directory),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_invalid_point),
        cmocka_unit_test(test_failure_skip_resume),
        cmocka_unit_test(test_parallel),
        cmocka_unit_test(test_sigint),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_own_report_hook),
        cmocka_unit_test(test_slurm_script),
        cmocka_unit_test(test_shell_script),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
