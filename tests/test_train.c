/*
 * test_train.c: whole runs of a tiny network on synthetic CIFAR-10 files (the class is in the
 * colour of the image, so a few epochs learn it): every file of the run directory with its
 * fixed keys and consistent contents, the same metrics and the same model bytes when a run
 * is repeated, mixup and flip test-time augmentation, the default run directory, a refused
 * --out that already holds a run, and data loaders that give the same batches whatever the
 * number of workers.
 */
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
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
#include "eval_cmd.h"
#include "graph.h"
#include "loader.h"
#include "model.h"
#include "rng.h"
#include "safetensors.h"
#include "spec.h"
#include "fake_cifar.h"
#include "test_util.h"
#include "train.h"

static char dir[256];

static const char *at(const char *name)
{
    return tmpdir_path(dir, name);
}

/* dir/name in a buffer of the caller's. */
static const char *keep(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", dir, name);
    return buf;
}

/* One file of 10000 records: label i % 10 (shifted by `shift`), the red plane's level set by
 * the label, noise everywhere. */
static int setup(void **state)
{
    (void)state;
    if (tmpdir_make(dir, sizeof dir, "train")) return -1;
    write_fake_cifar_dir(at("data"));
    write_file(dir, "tiny.yaml",
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
               "data: {root: data, subset: 2000, val_split: 500, download: false, workers: 2}\n"
               "augment:\n"
               "  train:\n"
               "    - random_crop: {size: 32, padding: 2, fill: reflect}\n"
               "    - hflip: 0.5\n"
               "    - normalize: {mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25]}\n"
               "  eval:\n"
               "    - normalize: {mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25]}\n"
               "optimizer: {type: sgd, lr: 0.2, momentum: 0.9, nesterov: true}\n"
               "schedule: {type: cosine, warmup_epochs: 0.5}\n"
               "train: {epochs: 3, batch_size: 50, threads: 2, label_smoothing: 0.1}\n"
               "eval: {batch_size: 96, samples: 3}\n");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return tmpdir_remove(dir);
}

/* Runs tiny.yaml with overrides and options o (out: NULL for the default directory). */
static enum status run_with(const struct train_options *o, const char *const *ov, size_t n)
{
    struct diag d = {.out = stderr};
    struct spec *s;
    struct graph *g;
    assert_int_equal(spec_load(at("tiny.yaml"), ov, n, &d, &s), STATUS_OK);
    assert_int_equal(model_build(s, &d, &g), STATUS_OK);
    unsetenv("RUNNER_DATA");
    enum status st = train_run(s, g, o);
    graph_free(g);
    spec_free(s);
    return st;
}

/* Runs tiny.yaml with overrides into out (NULL: the default directory); the status. */
static enum status run(const char *out, const char *const *ov, size_t n)
{
    struct train_options o = {.out = out};
    return run_with(&o, ov, n);
}

/* The straight run "run1" (made by the first test that needs it) into buf. */
static const char *straight_run(char *buf, size_t size)
{
    snprintf(buf, size, "%s/run1", dir);
    struct stat st;
    if (stat(buf, &st)) assert_int_equal(run(buf, NULL, 0), STATUS_OK);
    return buf;
}

static char *read_run_file(const char *run, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", run, name);
    char *text = slurp(path);
    if (!text) fail_msg("the run wrote no %s", path);
    return text;
}

static int count_lines(const char *text)
{
    int n = 0;
    for (; *text; text++) n += *text == '\n';
    return n;
}

/* The number after "key": in a JSON text; fails when the key is missing. */
static double json_number(const char *text, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *p = strstr(text, pat);
    if (!p) fail_msg("no \"%s\" in %s", key, text);
    return strtod(p + strlen(pat), NULL);
}

static void test_run_layout(void **state)
{
    (void)state;
    char b1[512];
    const char *run1 = keep(b1, sizeof b1, "run1");
    assert_int_equal(run(run1, NULL, 0), STATUS_OK);

    char *config = read_run_file(run1, "config.yaml");
    assert_non_null(strstr(config, "name: tiny"));
    assert_non_null(strstr(config, "val_split: 500"));
    free(config);

    /* metrics.jsonl: one line per epoch, the fixed keys in order. */
    char *jsonl = read_run_file(run1, "metrics.jsonl");
    assert_int_equal(count_lines(jsonl), 3);
    static const char *const keys[] = {"epoch", "step", "train_loss", "train_acc", "val_loss",
                                       "val_acc", "lr", "seconds", "img_per_s"};
    const char *line = jsonl;
    for (int e = 1; e <= 3; e++) {
        const char *p = line;
        for (size_t k = 0; k < ARRAY_LEN(keys); k++) {
            char pat[32];
            snprintf(pat, sizeof pat, "\"%s\": ", keys[k]);
            const char *q = strstr(p, pat);
            if (!q || q > strchr(line, '\n')) fail_msg("epoch %d: key %s missing or out of order", e, keys[k]);
            p = q;
        }
        assert_int_equal((int)json_number(line, "epoch"), e);
        assert_int_equal((int)json_number(line, "step"), e * 30); /* 1500 images / 50 */
        double acc = json_number(line, "val_acc");
        assert_true(acc >= 0 && acc <= 1);
        line = strchr(line, '\n') + 1;
    }
    /* By the last epoch the colour is learned, and the cosine is near its end. */
    const char *last = strrchr(jsonl, '{');
    if (json_number(last, "val_acc") < 0.6) fail_msg("validation accuracy %g", json_number(last, "val_acc"));
    assert_true(json_number(last, "lr") < 0.02);
    free(jsonl);

    char *csv = read_run_file(run1, "metrics.csv");
    assert_true(strncmp(csv, "epoch,step,train_loss,train_acc,val_loss,val_acc,lr,seconds,"
                             "img_per_s\n1,30,", 68) == 0);
    assert_int_equal(count_lines(csv), 4);
    free(csv);

    char *summary = read_run_file(run1, "summary.json");
    double test_acc = json_number(summary, "test_acc");
    if (test_acc < 0.6) fail_msg("test accuracy %g", test_acc);
    assert_true(json_number(summary, "best_val_acc") >= json_number(summary, "final_val_acc"));
    assert_int_equal((int)json_number(summary, "epochs"), 3);
    assert_int_equal((int)json_number(summary, "steps"), 90);
    assert_true(json_number(summary, "seconds") > 0);
    assert_non_null(strstr(summary, "\"test_loss\": "));
    assert_non_null(strstr(summary, "\"device\": \"cpu\""));
    assert_non_null(strstr(summary, "\"commit\": \""));
    free(summary);

    /* The confusion matrix holds every test image once, 1000 per class. */
    char *cm = read_run_file(run1, "confusion_matrix.csv");
    assert_int_equal(count_lines(cm), 11);
    assert_true(strncmp(cm, "true\\predicted,airplane,automobile,", 35) == 0);
    const char *row = strchr(cm, '\n') + 1;
    long diagonal = 0;
    for (int c = 0; c < 10; c++) {
        const char *p = strchr(row, ',');
        long sum = 0;
        for (int j = 0; j < 10; j++) {
            long v = strtol(p + 1, (char **)&p, 10);
            sum += v;
            if (j == c) diagonal += v;
        }
        assert_int_equal(sum, 1000);
        row = strchr(row, '\n') + 1;
    }
    assert_true(fabs((double)diagonal / 10000 - test_acc) < 1e-9);
    free(cm);

    char *pc = read_run_file(run1, "per_class.csv");
    assert_int_equal(count_lines(pc), 11);
    assert_true(strncmp(pc, "class,precision,recall,f1,support\nairplane,", 43) == 0);
    assert_non_null(strstr(pc, ",1000\ntruck,"));
    free(pc);

    /* samples: 3 correct and 3 wrong PNGs (the net is not perfect yet), listed in index.csv */
    char *index = read_run_file(run1, "samples/index.csv");
    assert_true(strncmp(index, "file,index,true,predicted,confidence\ncorrect_000_", 49) == 0);
    int rows = count_lines(index) - 1;
    assert_true(rows >= 3 && rows <= 6);
    for (const char *p = strchr(index, '\n') + 1; *p; p = strchr(p, '\n') + 1) {
        char file[128], path[1024];
        assert_int_equal(sscanf(p, "%127[^,]", file), 1);
        snprintf(path, sizeof path, "%s/samples/%s", run1, file);
        FILE *f = fopen(path, "rb");
        if (!f) fail_msg("%s is listed but missing", path);
        unsigned char sig[8];
        assert_int_equal(fread(sig, 1, 8, f), 8);
        assert_memory_equal(sig, "\x89PNG\r\n\x1a\n", 8);
        fclose(f);
    }
    free(index);

    /* The model loads, with every tensor of the network. */
    char path[1024];
    snprintf(path, sizeof path, "%s/model.safetensors", run1);
    struct diag d = {.out = stderr};
    struct st_file *f;
    assert_int_equal(st_open(path, &d, &f), STATUS_OK);
    assert_int_equal(st_count(f), 8); /* conv, batchnorm (4 and the counter), fc (2) */
    st_close(f);

    char *log = read_run_file(run1, "run.log");
    assert_non_null(strstr(log, "epoch 3/3: train loss "));
    assert_non_null(strstr(log, "test: loss "));
    free(log);
}

/* Strips "seconds" and "img_per_s" (wall-clock figures) from metrics.jsonl. */
static void strip_times(char *text)
{
    for (char *p = text; (p = strstr(p, "\"seconds\": "));) {
        char *end = strchr(p, '}');
        memmove(p, end, strlen(end) + 1);
        p++;
    }
}

/* Whether two files hold the same bytes. */
static bool same_bytes(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    if (!fa || !fb) fail_msg("cannot open %s or %s", a, b);
    bool same = true;
    for (int x, y; same;) {
        x = fgetc(fa);
        y = fgetc(fb);
        same = x == y;
        if (x == EOF || y == EOF) break;
    }
    fclose(fa);
    fclose(fb);
    return same;
}

static void test_repeatable(void **state)
{
    (void)state;
    char b1[512], b2[512], b3[512];
    const char *run1 = straight_run(b1, sizeof b1), *run2 = keep(b2, sizeof b2, "run2");
    const char *run3 = keep(b3, sizeof b3, "run3");
    assert_int_equal(run(run2, NULL, 0), STATUS_OK);
    char *a = read_run_file(run1, "metrics.jsonl"), *b = read_run_file(run2, "metrics.jsonl");
    strip_times(a);
    strip_times(b);
    assert_string_equal(a, b);
    free(a);
    free(b);
    a = read_run_file(run1, "confusion_matrix.csv");
    b = read_run_file(run2, "confusion_matrix.csv");
    assert_string_equal(a, b);
    free(a);
    free(b);
    char pa[1024], pb[1024];
    snprintf(pa, sizeof pa, "%s/model.safetensors", run1);
    snprintf(pb, sizeof pb, "%s/model.safetensors", run2);
    assert_true(same_bytes(pa, pb));
    /* Checkpoints hold no time or path: the same state, the same bytes. */
    snprintf(pa, sizeof pa, "%s/checkpoints/step_00000090.safetensors", run1);
    snprintf(pb, sizeof pb, "%s/checkpoints/step_00000090.safetensors", run2);
    assert_true(same_bytes(pa, pb));

    /* Another seed: other numbers. */
    const char *ov[] = {"seed=4"};
    assert_int_equal(run(run3, ov, 1), STATUS_OK);
    a = read_run_file(run1, "metrics.jsonl");
    b = read_run_file(run3, "metrics.jsonl");
    strip_times(a);
    strip_times(b);
    assert_string_not_equal(a, b);
    free(a);
    free(b);
}

static void test_mixup_and_tta(void **state)
{
    (void)state;
    const char *ov[] = {"augment.train=[{random_crop: {size: 32, padding: 2}}, "
                        "{normalize: {mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25]}}, "
                        "{mixup: 0.4}, {cutmix: 1.0}]",
                        "eval.flip_tta=true", "data.val_split=0", "train.epochs=2"};
    char b1[512];
    const char *out = keep(b1, sizeof b1, "mix");
    assert_int_equal(run(out, ov, ARRAY_LEN(ov)), STATUS_OK);
    char *summary = read_run_file(out, "summary.json");
    assert_non_null(strstr(summary, "\"flip_tta\": true"));
    assert_non_null(strstr(summary, "\"best_val_acc\": null"));
    double acc = json_number(summary, "test_acc");
    if (acc < 0.3) fail_msg("with mixup and cutmix the test accuracy is %g", acc);
    free(summary);
    char *jsonl = read_run_file(out, "metrics.jsonl");
    assert_non_null(strstr(jsonl, "\"val_loss\": null, \"val_acc\": null"));
    assert_int_equal((int)json_number(jsonl, "step"), 40); /* 2000 images / 50 */
    free(jsonl);
}

static void test_run_directories(void **state)
{
    (void)state;
    /* --out that already holds a run is refused, and nothing in it changes. */
    char b1[512];
    const char *run1 = straight_run(b1, sizeof b1);
    char *before = read_run_file(run1, "metrics.jsonl");
    assert_int_equal(run(run1, NULL, 0), STATUS_RUNTIME);
    char *after = read_run_file(run1, "metrics.jsonl");
    assert_string_equal(before, after);
    free(before);
    free(after);

    /* No --out: results/<name>/<stamp> under the current directory. */
    char cwd[4096];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(dir), 0);
    const char *ov[] = {"train.epochs=1", "eval.test=false"};
    enum status s = run(NULL, ov, 2);
    int listed = system("ls results/tiny/*/metrics.jsonl > /dev/null 2>&1");
    int no_test = system("ls results/tiny/*/confusion_matrix.csv > /dev/null 2>&1");
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(s, STATUS_OK);
    assert_int_equal(listed, 0);
    assert_true(no_test != 0); /* eval.test false: no test tables */
}

/* A loss that stops being finite ends the run with STATUS_RUNTIME, naming the epoch and step
 * in run.log; the files written so far stay. */
static void test_divergence(void **state)
{
    (void)state;
    char b1[512];
    const char *out = keep(b1, sizeof b1, "diverged");
    const char *ov[] = {"optimizer.lr=1e30", "schedule.warmup_epochs=0"};
    assert_int_equal(run(out, ov, 2), STATUS_RUNTIME);
    char *log = read_run_file(out, "run.log");
    assert_non_null(strstr(log, "error: epoch 1, step "));
    assert_non_null(strstr(log, "the loss is "));
    free(log);
    char *jsonl = read_run_file(out, "metrics.csv"); /* the header, written at the start */
    assert_true(strncmp(jsonl, "epoch,step,", 11) == 0);
    free(jsonl);
}

/* A run stopped and resumed ends exactly as the straight run: metrics, and model bytes. */
static void expect_same_run(const char *straight, const char *resumed)
{
    char *a = read_run_file(straight, "metrics.jsonl"), *b = read_run_file(resumed, "metrics.jsonl");
    strip_times(a);
    strip_times(b);
    assert_string_equal(a, b);
    free(a);
    free(b);
    char pa[1024], pb[1024];
    snprintf(pa, sizeof pa, "%s/model.safetensors", straight);
    snprintf(pb, sizeof pb, "%s/model.safetensors", resumed);
    if (!same_bytes(pa, pb)) fail_msg("%s differs from %s", pb, pa);
    char *sa = read_run_file(straight, "summary.json"), *sb = read_run_file(resumed, "summary.json");
    assert_true(json_number(sa, "test_acc") == json_number(sb, "test_acc"));
    assert_true(json_number(sa, "best_val_acc") == json_number(sb, "best_val_acc"));
    assert_int_equal((int)json_number(sb, "steps"), 90);
    free(sa);
    free(sb);
}

/* data.resident: on the CPU the plan keeps the training set and augments each batch itself
 * (with the GPU kernel's functions), the loader only naming the images: the same run, bit
 * for bit, as the loader threads make. Transforms the plan cannot run are an error at the
 * key. */
static void test_resident(void **state)
{
    (void)state;
    char b1[512], b2[512];
    const char *run1 = straight_run(b1, sizeof b1), *res = keep(b2, sizeof b2, "resident");
    const char *ov[] = {"data.resident=on"};
    assert_int_equal(run(res, ov, 1), STATUS_OK);
    expect_same_run(run1, res);
    char *log = read_run_file(res, "run.log");
    assert_non_null(strstr(log, "data: training set resident on the device"));
    free(log);

    const char *mix[] = {"data.resident=on",
                         "augment.train=[{normalize: {mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, "
                         "0.5]}}, {mixup: 0.4}]"};
    char b3[512];
    assert_int_equal(run(keep(b3, sizeof b3, "resident_mixup"), mix, 2), STATUS_CONFIG);
}

static int count_checkpoints(const char *run)
{
    char sub[1024];
    snprintf(sub, sizeof sub, "%s/checkpoints", run);
    DIR *dp = opendir(sub);
    if (!dp) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(dp));) n += e->d_name[0] != '.'; /* every file */
    closedir(dp);
    return n;
}

static void test_stop_and_resume(void **state)
{
    (void)state;
    char b1[512], b2[512];
    const char *run1 = straight_run(b1, sizeof b1), *out = keep(b2, sizeof b2, "stopped");
    struct stat st;
    struct train_options o = {.out = out, .stop_after_epoch = 2};
    assert_int_equal(run_with(&o, NULL, 0), STATUS_OK);
    assert_false(stat(tmpdir_path(out, "model.safetensors"), &st) == 0); /* not finished */
    assert_int_equal(count_checkpoints(out), 2); /* after epochs 1 and 2; keep: 2 */
    char *jsonl = read_run_file(out, "metrics.jsonl");
    assert_int_equal(count_lines(jsonl), 2);
    free(jsonl);

    /* The newest checkpoint damaged: the one before it is used, and the end is the same. */
    assert_int_equal(truncate(tmpdir_path(out, "checkpoints/step_00000060.safetensors"), 100), 0);
    o = (struct train_options){.resume = out};
    assert_int_equal(run_with(&o, NULL, 0), STATUS_OK);
    expect_same_run(run1, out);

    /* Resuming with another configuration is refused. */
    const char *ov[] = {"optimizer.lr=0.1"};
    assert_int_equal(run_with(&o, ov, 1), STATUS_CONFIG);
}

struct killer {
    const char *metrics;
};

/* Sends SIGTERM once the run has finished its first epoch. */
/* Hooks in a run: on_epoch_end asking to stop ends training after that epoch, cleanly (a
 * checkpoint, the test set, summary.json saying why, exit 0); a failing hook is reported
 * and the run goes on, or, with hooks_fail: stop, ends the same clean way. */
static void test_hooks_in_run(void **state)
{
    (void)state;
    write_file(dir, "stop.lua",
               "function on_epoch_end(run, epoch)\n"
               "  if epoch.epoch == 1 and #run.history == 1 then return {stop = 'enough'} end\n"
               "end\n");
    write_file(dir, "boom.lua", "function on_epoch_end(run, epoch) error('boom') end\n");
    char b1[512], b2[512], b3[512];
    const char *out = keep(b1, sizeof b1, "hook_stop");
    const char *ov[] = {"hooks=[stop.lua]"};
    assert_int_equal(run(out, ov, 1), STATUS_OK);
    char *jsonl = read_run_file(out, "metrics.jsonl"), *summary = read_run_file(out, "summary.json");
    assert_int_equal(count_lines(jsonl), 1);
    assert_non_null(strstr(summary, "\"stopped\": \"enough\""));
    assert_non_null(strstr(summary, "\"test_acc\": 0."));
    free(jsonl);
    free(summary);
    assert_int_equal(count_checkpoints(out), 1);

    out = keep(b2, sizeof b2, "hook_fails");
    const char *go_on[] = {"hooks=[boom.lua]", "train.epochs=2"};
    assert_int_equal(run(out, go_on, 2), STATUS_OK);
    jsonl = read_run_file(out, "metrics.jsonl");
    summary = read_run_file(out, "summary.json");
    assert_int_equal(count_lines(jsonl), 2);
    assert_non_null(strstr(summary, "\"stopped\": null"));
    free(jsonl);
    free(summary);
    char *log = read_run_file(out, "run.log");
    assert_non_null(strstr(log, "boom.lua: on_epoch_end:"));
    assert_non_null(strstr(log, "stack traceback"));
    free(log);

    out = keep(b3, sizeof b3, "hook_fails_stop");
    const char *stop[] = {"hooks=[boom.lua]", "hooks_fail=stop"};
    assert_int_equal(run(out, stop, 2), STATUS_OK);
    jsonl = read_run_file(out, "metrics.jsonl");
    summary = read_run_file(out, "summary.json");
    assert_int_equal(count_lines(jsonl), 1);
    assert_non_null(strstr(summary, "\"stopped\": \"a hook failed (hooks_fail: stop)\""));
    free(jsonl);
    free(summary);
}

static void *kill_after_epoch(void *arg)
{
    const struct killer *k = arg;
    for (int i = 0; i < 20000; i++) {
        char *text = slurp(k->metrics);
        int lines = text ? count_lines(text) : 0;
        free(text);
        if (lines >= 1) {
            kill(getpid(), SIGTERM);
            return NULL;
        }
        usleep(1000);
    }
    return NULL;
}

static void test_sigterm_and_resume(void **state)
{
    (void)state;
    char b1[512], b2[512];
    const char *run1 = straight_run(b1, sizeof b1), *out = keep(b2, sizeof b2, "terminated");
    char metrics[600];
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", out);
    struct killer k = {metrics};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, kill_after_epoch, &k), 0);
    struct train_options o = {.out = out};
    enum status s = run_with(&o, NULL, 0);
    pthread_join(th, NULL);
    assert_int_equal(s, STATUS_SIGTERM); /* mid-run: the step finished, a checkpoint saved */
    assert_true(count_checkpoints(out) >= 1);
    o = (struct train_options){.resume = out};
    assert_int_equal(run_with(&o, NULL, 0), STATUS_OK);
    expect_same_run(run1, out);
}

/* A backend whose device fails at the 45th training forward (epoch 2 of 30 steps each), as a
 * CUDA error would: the run ends with STATUS_RUNTIME, run.log and summary.json say what failed
 * where, the checkpoint of epoch 1 stays the latest (none is written from the failed plan),
 * and resuming from it on a working backend ends as the straight run. */
static int forwards_left;

static enum status failing_forward(struct plan *p, bool train)
{
    if (train && --forwards_left == 0) {
        plan_fail(p, "the device stopped answering");
        return STATUS_RUNTIME;
    }
    return backend_cpu.forward(p, train);
}

static void test_device_failure(void **state)
{
    (void)state;
    char b1[512], b2[512];
    const char *run1 = straight_run(b1, sizeof b1), *out = keep(b2, sizeof b2, "failed");
    struct backend failing = backend_cpu;
    failing.forward = failing_forward;
    forwards_left = 45;
    struct train_options o = {.out = out, .backend = &failing};
    assert_int_equal(run_with(&o, NULL, 0), STATUS_RUNTIME);
    assert_int_equal(count_checkpoints(out), 1);
    char *summary = read_run_file(out, "summary.json"), *log = read_run_file(out, "run.log");
    if (!strstr(summary, "\"stopped\": \"training failed in epoch 2 at step 45: the device "
                         "stopped answering\""))
        fail_msg("summary.json: %s", summary);
    assert_non_null(strstr(summary, "\"test_acc\": null"));
    assert_non_null(strstr(log, "error: the device stopped answering"));
    assert_non_null(strstr(log, "--resume"));
    char *jsonl = read_run_file(out, "metrics.jsonl");
    assert_int_equal(count_lines(jsonl), 1); /* epoch 1 only */
    free(summary);
    free(log);
    free(jsonl);
    o = (struct train_options){.resume = out};
    assert_int_equal(run_with(&o, NULL, 0), STATUS_OK);
    expect_same_run(run1, out);
}

/* runner eval: a run's weights measured again give the run's test figures, from the run
 * directory or from the experiment with model.pretrained; weights of another network fail. */
static void test_eval(void **state)
{
    (void)state;
    char b1[512], b2[512], b3[512], w[600];
    const char *run1 = straight_run(b1, sizeof b1), *out = keep(b2, sizeof b2, "evaluated");
    snprintf(w, sizeof w, "%s/model.safetensors", run1);
    struct diag d = {.out = stderr};
    struct spec *s;
    struct graph *g;
    assert_int_equal(spec_load_run(run1, NULL, 0, &d, &s), STATUS_OK);
    assert_int_equal(model_build(s, &d, &g), STATUS_OK);
    assert_int_equal(eval_run(s, g, w, keep(b3, sizeof b3, "run1/eval")), STATUS_OK);
    graph_free(g);
    spec_free(s);
    char *a = read_run_file(run1, "summary.json"), *b = read_run_file(b3, "summary.json");
    assert_true(json_number(a, "test_acc") == json_number(b, "test_acc"));
    assert_true(json_number(a, "test_loss") == json_number(b, "test_loss"));
    free(a);
    free(b);
    a = read_run_file(run1, "confusion_matrix.csv");
    b = read_run_file(b3, "confusion_matrix.csv");
    assert_string_equal(a, b);
    free(a);
    free(b);

    char ov[700];
    snprintf(ov, sizeof ov, "model.pretrained=%s", w);
    const char *ovs[] = {ov, "eval.flip_tta=true"};
    assert_int_equal(spec_load(at("tiny.yaml"), ovs, 2, &d, &s), STATUS_OK);
    assert_int_equal(model_build(s, &d, &g), STATUS_OK);
    assert_int_equal(eval_run(s, g, w, out), STATUS_OK);
    graph_free(g);
    spec_free(s);
    char *flip = read_run_file(out, "summary.json");
    assert_non_null(strstr(flip, "\"flip_tta\": true"));
    assert_true(json_number(flip, "test_acc") > 0.5);
    free(flip);

    /* With an EMA of the weights, the model saved is the EMA evaluation measured. */
    char b4[512], b5[512];
    const char *ema = keep(b4, sizeof b4, "ema");
    const char *ema_ov[] = {"optimizer.ema_decay=0.9", "train.epochs=1"};
    assert_int_equal(run(ema, ema_ov, 2), STATUS_OK);
    snprintf(w, sizeof w, "%s/model.safetensors", ema);
    assert_int_equal(spec_load_run(ema, NULL, 0, &d, &s), STATUS_OK);
    assert_int_equal(model_build(s, &d, &g), STATUS_OK);
    assert_int_equal(eval_run(s, g, w, keep(b5, sizeof b5, "ema/eval")), STATUS_OK);
    graph_free(g);
    spec_free(s);
    a = read_run_file(ema, "summary.json");
    b = read_run_file(b5, "summary.json");
    assert_true(json_number(a, "test_acc") == json_number(b, "test_acc"));
    free(a);
    free(b);
    snprintf(w, sizeof w, "%s/model.safetensors", run1);

    const char *wide[] = {ov, "model.graph.graph=[{name: conv1, op: conv, out: 16, kernel: 3, "
                              "stride: 2, pad: 1}, {name: bn1, op: batchnorm}, relu, "
                              "global_avg_pool, {name: fc, op: linear, out: 10}]"};
    assert_int_equal(spec_load(at("tiny.yaml"), wide, 2, &d, &s), STATUS_OK);
    assert_int_equal(model_build(s, &d, &g), STATUS_OK);
    assert_int_equal(eval_run(s, g, w, out), STATUS_CONFIG);
    graph_free(g);
    spec_free(s);
}

/* The same batches (pixels, labels, order) whatever the number of workers. */
static void test_loader_workers(void **state)
{
    (void)state;
    struct diag d = {.out = stderr};
    struct spec *s;
    assert_int_equal(spec_load(at("tiny.yaml"), NULL, 0, &d, &s), STATUS_OK);
    struct data c;
    assert_int_equal(cifar10_load(at("data"), false, NULL, &d, &c), STATUS_OK);
    struct augment a;
    assert_int_equal(augment_init(&a, &s->augment.train, 3, 32, 32, &d), STATUS_OK);
    struct data_split sp;
    data_split(c.train.n, 700, 100, &sp);
    struct loader *l[3]; /* 1 and 3 workers; the third only names the images */
    const int workers[3] = {1, 3, 2};
    for (int k = 0; k < 3; k++) {
        struct loader_config cfg = {.set = &c.train, .index = sp.train, .n = sp.ntrain, .aug = &a,
                                    .batch = 64, .shuffle = true, .drop_last = false,
                                    .seed = 7, .workers = workers[k], .classes = 10,
                                    .indices_only = k == 2};
        assert_int_equal(loader_create(&cfg, &l[k]), STATUS_OK);
        assert_int_equal(loader_batches(l[k]), 10); /* 600 images: 9 full, 1 of 24 */
    }
    for (int epoch = 0; epoch < 2; epoch++) {
        loader_start(l[0], epoch);
        loader_start(l[1], epoch);
        loader_start(l[2], epoch);
        int batches = 0;
        for (;;) {
            const struct batch *x = loader_next(l[0]), *y = loader_next(l[1]);
            const struct batch *z = loader_next(l[2]);
            if (!x || !y || !z) {
                assert_true(!x && !y && !z);
                break;
            }
            assert_null(z->x);
            assert_int_equal(z->n, x->n);
            assert_memory_equal(z->image, x->image, (size_t)x->n * sizeof *x->image);
            assert_memory_equal(z->labels, x->labels, (size_t)x->n * sizeof *x->labels);
            assert_memory_equal(z->key, x->key, (size_t)x->n * sizeof *x->key);
            for (int64_t i = 0; i < 64; i++) {
                if (i < x->n)
                    assert_true(z->key[i] == augment_key(7, epoch, z->image[i]));
                else
                    assert_true(z->image[i] == -1 && z->labels[i] == 0);
            }
            assert_int_equal(x->n, y->n);
            assert_int_equal(x->n, batches < 9 ? 64 : 24);
            assert_memory_equal(x->image, y->image, (size_t)x->n * sizeof *x->image);
            assert_memory_equal(x->labels, y->labels, (size_t)x->n * sizeof *x->labels);
            assert_memory_equal(x->x, y->x, (size_t)(64 * a.out_numel) * sizeof *x->x);
            for (int64_t i = 0; i < x->n; i++) /* every image is a training image */
                assert_true(x->labels[i] == c.train.labels[x->image[i]]);
            batches++;
        }
        assert_int_equal(batches, 10);
    }
    loader_free(l[0]);
    loader_free(l[1]);
    loader_free(l[2]);
    data_split_free(&sp);
    data_free(&c);
    spec_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_layout),
        cmocka_unit_test(test_repeatable),
        cmocka_unit_test(test_mixup_and_tta),
        cmocka_unit_test(test_resident),
        cmocka_unit_test(test_hooks_in_run),
        cmocka_unit_test(test_run_directories),
        cmocka_unit_test(test_divergence),
        cmocka_unit_test(test_stop_and_resume),
        cmocka_unit_test(test_sigterm_and_resume),
        cmocka_unit_test(test_device_failure),
        cmocka_unit_test(test_eval),
        cmocka_unit_test(test_loader_workers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
