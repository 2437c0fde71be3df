/*
 * hooks_fixture.h: what tests/test_hooks.c and tests/test_hooks_sandbox.c share: a fresh
 * folder per test (run/ with a small run's files, hooks/ with the hook files and a library,
 * outside/ with files no hook may touch, symbolic links from run/ and hooks/ to outside/),
 * the hooks' log captured in memory, and helpers to open hooks and check the log.
 */
#ifndef RUNNER_TEST_HOOKS_FIXTURE_H
#define RUNNER_TEST_HOOKS_FIXTURE_H

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

#include "hooks.h"
#include "test_util.h"
#include "yaml_load.h"

static struct {
    char base[256], run[300], hooks[300], outside[300];
    FILE *log;      /* the hooks' log (a memory stream) */
    char *log_text; /* its text, after fflush */
    size_t log_len;
    struct arena arena;
    struct hooks *h;
} F;

static const char config_yaml[] =
    "name: quick\n"
    "seed: 0\n"
    "model:\n"
    "  graph: models/resnet8.yaml\n"
    "  pretrained: null\n"
    "optimizer: {type: sgd, lr: 0.2, nesterov: true, weight_decay: 5.0e-4}\n"
    "schedule: {final_div_factor: 1e+04}\n"
    "train: {epochs: 2, batch_size: 256}\n"
    "augment:\n"
    "  train:\n"
    "    - {hflip: {p: 0.5}}\n"
    "data: {subset: \"3000\", root: ~}\n";

static const char metrics_jsonl[] =
    "{\"epoch\": 1, \"step\": 9, \"train_loss\": 2.21959225, \"train_acc\": 0.182291667, "
    "\"val_loss\": 2.0667777, \"val_acc\": 0.228, \"lr\": 0.1500002, \"seconds\": 3.002, "
    "\"img_per_s\": 846.09}\n"
    "{\"epoch\": 2, \"step\": 18, \"train_loss\": 1.97217341, \"train_acc\": 0.294270833, "
    "\"val_loss\": null, \"val_acc\": null, \"lr\": 8e-07, \"seconds\": 2.687, "
    "\"img_per_s\": 913.62}\n";

static const char summary_json[] =
    "{\n  \"name\": \"quick\",\n  \"test_acc\": 0.642857,\n  \"test_loss\": 1.25,\n"
    "  \"macro_f1\": 0.641692,\n  \"flip_tta\": false,\n  \"best_val_acc\": null,\n"
    "  \"best_epoch\": 2,\n  \"epochs\": 2,\n  \"seconds\": 9.983,\n"
    "  \"train_img_per_s\": 878.56,\n  \"device\": \"cpu\",\n  \"commit\": \"abc123\"\n}\n";

static const char confusion_csv[] = "true\\predicted,cat,dog,ship\n"
                                    "cat,5,2,1\n"
                                    "dog,0,7,3\n"
                                    "ship,4,0,6\n";

static const char per_class_csv[] = "class,precision,recall,f1,support\n"
                                    "cat,0.555556,0.625000,0.588235,8\n"
                                    "dog,0.777778,0.700000,0.736842,10\n"
                                    "ship,0.600000,0.600000,0.600000,10\n";

static const char samples_csv[] = "file,index,true,predicted,confidence\n"
                                  "correct_000_cat.png,1,cat,cat,0.9\n"
                                  "wrong_000_dog_as_ship.png,7,dog,ship,0.41\n";

static const char *const classes[] = {"cat", "dog", "ship"};

static inline const char *in(const char *dir, const char *name) { return tmpdir_path(dir, name); }

static inline int setup(void **state)
{
    (void)state;
    memset(&F, 0, sizeof F);
    if (tmpdir_make(F.base, sizeof F.base, "test_hooks")) return -1;
    snprintf(F.run, sizeof F.run, "%s/run", F.base);
    snprintf(F.hooks, sizeof F.hooks, "%s/hooks", F.base);
    snprintf(F.outside, sizeof F.outside, "%s/outside", F.base);
    char lib[320], samples[320];
    snprintf(lib, sizeof lib, "%s/lib", F.hooks);
    snprintf(samples, sizeof samples, "%s/samples", F.run);
    if (mkdir(F.run, 0777) || mkdir(F.hooks, 0777) || mkdir(F.outside, 0777) ||
        mkdir(lib, 0777) || mkdir(samples, 0777) || mkdir(in(F.run, "checkpoints"), 0777))
        return -1;
    write_file(F.run, "config.yaml", config_yaml);
    write_file(F.run, "metrics.jsonl", metrics_jsonl);
    write_file(F.run, "summary.json", summary_json);
    write_file(F.run, "confusion_matrix.csv", confusion_csv);
    write_file(F.run, "per_class.csv", per_class_csv);
    write_file(F.run, "victim.txt", "victim\n");
    write_file(samples, "index.csv", samples_csv);
    write_file(lib, "util.lua", "local M = {}\nfunction M.twice(x) return 2 * x end\nreturn M\n");
    write_file(F.outside, "secret.txt", "secret\n");
    write_file(F.outside, "evil.lua", "print('EVIL LOADED')\nreturn {}\n");
    write_file(F.outside, "widen.lua", "print('WIDEN LOADED')\nreturn {}\n");
    if (symlink(in(F.outside, "secret.txt"), in(F.run, "link_file")) ||
        symlink(F.outside, in(F.run, "link_dir")) ||
        symlink(in(F.outside, "evil.lua"), in(F.hooks, "evil.lua")))
        return -1;
    setenv("RUNNER_TEST_OUTSIDE", F.outside, 1);
    F.log = open_memstream(&F.log_text, &F.log_len);
    return F.log ? 0 : -1;
}

static inline int teardown(void **state)
{
    (void)state;
    hooks_free(F.h);
    fclose(F.log);
    free(F.log_text);
    arena_free(&F.arena);
    return tmpdir_remove(F.base);
}

/* What the hooks wrote to their log so far. */
static inline const char *log_text(void)
{
    fflush(F.log);
    return F.log_text ? F.log_text : "";
}

/* Fails the test, showing the log, unless it contains text. */
static inline void log_has(const char *text)
{
    const char *s = log_text();
    if (!strstr(s, text)) fail_msg("expected '%s' in the hooks' log:\n%s", text, s);
}

static inline void log_lacks(const char *text)
{
    const char *s = log_text();
    if (strstr(s, text)) fail_msg("did not expect '%s' in the hooks' log:\n%s", text, s);
}

/* A YAML mapping from text (in F.arena). */
static inline const struct node *yaml(const char *text)
{
    static struct source src = {.name = "<test>", .dir = "."};
    struct diag d = {.out = stderr};
    struct node *root;
    src.text = text;
    src.len = strlen(text);
    assert_int_equal(yaml_load_text(&F.arena, &d, &src, text, strlen(text), 1, 1, &root), 0);
    return root;
}

/* Writes the hooks (name, source, args) into hooks/ and opens them; the status, with the
 * diagnostics in *msgs when msgs is given (freed by the caller). */
struct hook_src {
    const char *name, *src;
    const struct node *args;
};
static inline enum status open_hooks(const struct hook_src *s, size_t n, char **msgs)
{
    struct spec_hook hk[8];
    for (size_t i = 0; i < n; i++) {
        write_file(F.hooks, s[i].name, s[i].src);
        hk[i] = (struct spec_hook){.file = arena_strdup(&F.arena, in(F.hooks, s[i].name)),
                                   .args = s[i].args};
    }
    const char *dirs[] = {F.hooks, "/nonexistent/hooks"};
    size_t len;
    char *buf = NULL;
    FILE *mem = open_memstream(&buf, &len);
    struct diag d = {.out = mem};
    enum status st = hooks_open(hk, n, F.run, dirs, 2, F.log, &d, &F.h);
    fclose(mem);
    if (msgs)
        *msgs = buf;
    else {
        if (st) fail_msg("hooks_open failed:\n%s", buf);
        free(buf);
    }
    if (!st) hooks_set_limits(F.h, 5000000, 64 << 20);
    return st;
}

/* Opens one hook, hooks/h.lua, which must load. */
static inline void open_one(const char *src)
{
    struct hook_src s = {"h.lua", src, NULL};
    assert_int_equal(open_hooks(&s, 1, NULL), STATUS_OK);
}

static const struct hooks_info info = {
    .name = "quick", .device = "cpu", .precision = "fp32", .commit = "abc123",
    .started = "2026-11-25 14:03:59", .epochs = 2, .classes = classes, .nclasses = 3};

/* Runs on_start of the open hooks and expects the outcome. */
static inline void start_expect(enum hook_outcome want)
{
    enum hook_outcome got = hooks_start(F.h, &info);
    if (got != want) fail_msg("on_start gave %d, expected %d; the log:\n%s", got, want, log_text());
}

/* Whether dir/name exists (without following a final link). */
static inline bool exists(const char *dir, const char *name)
{
    struct stat sb;
    return lstat(in(dir, name), &sb) == 0;
}

/* outside/ still holds exactly secret.txt (unchanged), evil.lua and widen.lua. */
static inline void outside_untouched(void)
{
    char *s = slurp(in(F.outside, "secret.txt"));
    assert_non_null(s);
    assert_string_equal(s, "secret\n");
    free(s);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "test $(ls -A '%s' | wc -l) -eq 3", F.outside);
    assert_int_equal(system(cmd), 0);
}

#endif
