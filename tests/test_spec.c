/*
 * test_spec.c: loading experiments (spec.c, validate.c, spec_write.c): defaults, every
 * section, shorthand forms, extends merging and chains, overrides, path resolution, marks,
 * several errors at once, and the resolved YAML reading back to the same configuration.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "test_util.h"

static char dir[256];
static char path[4096];

#define MIN_EXP "model: models/tiny.yaml\noptimizer: {type: adam, lr: 1.0e-3}\n"

static const char *at(const char *name)
{
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return path;
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/runner_test_spec_XXXXXX");
    if (!mkdtemp(dir)) return -1;
    mkdir(at("models"), 0755);
    mkdir(at("sub"), 0755);
    mkdir(at("hooks"), 0755);
    write_file(dir, "models/tiny.yaml", "input: [3, 32, 32]\ngraph:\n  - {op: global_avg_pool}\n");
    write_file(dir, "hooks/report.lua", "-- a hook\n");
    write_file(dir, "local.lua", "-- a hook beside the experiment\n");
    write_file(dir, "w.safetensors", "x");
    setenv("RUNNER_HOOKS_DIR", at("hooks"), 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static struct spec *load_ok(const char *name, const char *text, const char *const *ov, size_t n)
{
    write_file(dir, name, text);
    struct spec *s = NULL;
    char *msgs = NULL;
    enum status st = load_capture(at(name), ov, n, &s, &msgs);
    if (st != STATUS_OK) fail_msg("%s did not load:\n%s", name, msgs);
    free(msgs);
    return s;
}

static int load_errors(const char *name, const char *text, const char *const *ov, size_t n,
                       char **msgs)
{
    write_file(dir, name, text);
    struct spec *s = NULL;
    size_t len;
    FILE *mem = open_memstream(msgs, &len);
    struct diag d = {.out = mem};
    enum status st = spec_load(at(name), ov, n, &d, &s);
    fclose(mem);
    assert_int_equal(st, STATUS_CONFIG);
    assert_null(s);
    return d.errors;
}

static void test_defaults(void **state)
{
    (void)state;
    struct spec *s = load_ok("minimal.yaml", MIN_EXP, NULL, 0);
    assert_string_equal(s->name, "minimal");
    assert_int_equal(s->seed, 0);
    assert_int_equal(s->device.kind, SPEC_DEVICE_AUTO);
    assert_int_equal(s->precision, SPEC_PRECISION_AUTO);
    assert_string_equal(s->model.graph.path, at("models/tiny.yaml"));
    assert_int_equal(s->model.graph.tree->kind, NODE_MAP);
    assert_null(s->model.pretrained);
    assert_int_equal(s->model.reinit.n, 0);
    assert_int_equal(s->data.dataset, SPEC_DATASET_CIFAR10);
    assert_null(s->data.root);
    assert_true(s->data.download);
    assert_int_equal(s->data.val_split, 5000);
    assert_int_equal(s->data.subset, 0);
    assert_int_equal(s->augment.train.n, 0);
    assert_int_equal(s->optimizer.type, SPEC_OPTIMIZER_ADAM);
    assert_true(s->optimizer.betas[0] == 0.9 && s->optimizer.betas[1] == 0.999);
    assert_true(s->optimizer.eps == 1e-8);
    assert_true(s->optimizer.weight_decay == 0);
    assert_true(s->optimizer.decay_bn_bias);
    assert_int_equal(s->schedule.type, SPEC_SCHEDULE_CONSTANT);
    assert_int_equal(s->train.epochs, 10);
    assert_int_equal(s->train.batch_size, 128);
    assert_int_equal(s->eval.batch_size, 256);
    assert_true(s->eval.test);
    assert_int_equal(s->eval.samples, 16);
    assert_int_equal(s->checkpoint.every_epochs, 1);
    assert_int_equal(s->checkpoint.keep, 2);
    assert_int_equal(s->hooks.n, 0);
    assert_int_equal(s->hooks_fail, SPEC_HOOKS_FAIL_CONTINUE);
    /* adamw's own default weight decay */
    spec_free(s);
    s = load_ok("adamw.yaml", "model: models/tiny.yaml\noptimizer: {type: adamw, lr: 1}\n", NULL, 0);
    assert_true(s->optimizer.weight_decay == 0.01);
    spec_free(s);
}

static void test_every_section(void **state)
{
    (void)state;
    struct spec *s = load_ok("full.yaml",
        "name: full-run.v2\nseed: 42\ndevice: cuda:1\nprecision: bf16\n"
        "model: {graph: models/tiny.yaml, pretrained: w.safetensors, reinit: [fc, layer4.2]}\n"
        "data: {root: data, download: false, val_split: 100, subset: 1000, workers: 3}\n"
        "augment:\n"
        "  train:\n"
        "    - random_crop: {size: 32, padding: 4, fill: reflect}\n"
        "    - hflip\n"
        "    - cutout: 8\n"
        "    - resize: {size: 224, interpolation: nearest}\n"
        "    - mixup: 0.2\n"
        "    - cutmix: {alpha: 1.0, p: 0.5}\n"
        "    - normalize: {mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25]}\n"
        "  eval: [{normalize: {mean: [0, 0, 0], std: [1, 1, 1]}}]\n"
        "optimizer: {type: sgd, lr: 0.1, momentum: 0.9, nesterov: true, weight_decay: 5e-4,\n"
        "            clip_grad_norm: 2.0, ema_decay: 0.999, decay_bn_bias: false}\n"
        "schedule: {type: multistep, milestones: [30, 60, 80], gamma: 0.2, warmup_epochs: 0.5}\n"
        "train: {epochs: 90, batch_size: 64, label_smoothing: 0.1, threads: 2, deterministic: true}\n"
        "eval: {batch_size: 500, test: false, flip_tta: true, samples: 0}\n"
        "checkpoint: {every_epochs: 5, keep: 0}\n"
        "hooks: [local.lua, {file: report.lua, args: {title: Run}}]\n"
        "hooks_fail: stop\n", NULL, 0);
    assert_string_equal(s->name, "full-run.v2");
    assert_int_equal(s->seed, 42);
    assert_int_equal(s->device.kind, SPEC_DEVICE_CUDA);
    assert_int_equal(s->device.index, 1);
    assert_int_equal(s->precision, SPEC_PRECISION_BF16);
    assert_string_equal(s->model.pretrained, at("w.safetensors"));
    assert_int_equal(s->model.reinit.n, 2);
    assert_string_equal(s->model.reinit.v[1], "layer4.2");
    assert_string_equal(s->data.root, at("data"));
    assert_false(s->data.download);
    assert_int_equal(s->data.workers, 3);
    const struct spec_transform *t = s->augment.train.v;
    assert_int_equal(s->augment.train.n, 7);
    assert_int_equal(t[0].kind, SPEC_TRANSFORM_RANDOM_CROP);
    assert_int_equal(t[0].size, 32);
    assert_int_equal(t[0].padding, 4);
    assert_int_equal(t[0].fill, SPEC_FILL_REFLECT);
    assert_int_equal(t[0].mark.line, 9);
    assert_int_equal(t[1].kind, SPEC_TRANSFORM_HFLIP);
    assert_true(t[1].p == 0.5);
    assert_int_equal(t[2].size, 8);
    assert_true(t[2].p == 1.0);
    assert_int_equal(t[3].interpolation, SPEC_INTERP_NEAREST);
    assert_true(t[4].kind == SPEC_TRANSFORM_MIXUP && t[4].alpha == 0.2);
    assert_true(t[5].kind == SPEC_TRANSFORM_CUTMIX && t[5].p == 0.5);
    assert_true(t[6].std[2] == 0.25);
    assert_int_equal(s->optimizer.type, SPEC_OPTIMIZER_SGD);
    assert_true(s->optimizer.nesterov);
    assert_true(s->optimizer.ema_decay == 0.999);
    assert_false(s->optimizer.decay_bn_bias);
    assert_int_equal(s->schedule.milestones.n, 3);
    assert_int_equal(s->schedule.milestones.v[2], 80);
    assert_true(s->schedule.warmup_epochs == 0.5);
    assert_true(s->train.deterministic);
    assert_true(s->train.label_smoothing == 0.1);
    assert_false(s->eval.test);
    assert_true(s->eval.flip_tta);
    assert_int_equal(s->checkpoint.keep, 0);
    const struct spec_hook *h = s->hooks.v;
    assert_int_equal(s->hooks.n, 2);
    assert_string_equal(h[0].file, at("local.lua"));
    assert_true(strstr(h[1].file, "hooks/report.lua") != NULL); /* found in the hooks folder */
    assert_non_null(h[1].args);
    assert_int_equal(s->hooks_fail, SPEC_HOOKS_FAIL_STOP);
    spec_free(s);
}

static void test_inline_graph(void **state)
{
    (void)state;
    struct spec *s = load_ok("inline.yaml",
        "model:\n  graph:\n    input: [3, 8, 8]\n    graph: [{op: flatten}]\n"
        "optimizer: {type: sgd, lr: 0.1}\n", NULL, 0);
    assert_null(s->model.graph.path);
    assert_non_null(node_map_get(s->model.graph.tree, "input", NULL));
    spec_free(s);
}

static void test_extends(void **state)
{
    (void)state;
    /* The base lives in sub/ and names its model relative to itself. */
    write_file(dir, "sub/base.yaml",
               "name: base\nmodel: ../models/tiny.yaml\n"
               "optimizer: {type: adam, lr: 1.0e-3, weight_decay: 5.0e-4, betas: [0.8, 0.9]}\n"
               "train: {epochs: 30, batch_size: 256}\n"
               "augment: {train: [hflip, cutout: 4, random_crop: 32], eval: [hflip]}\n");
    struct spec *s = load_ok("child.yaml",
        "extends: sub/base.yaml\noptimizer: {lr: 3.0e-4}\ntrain: {epochs: 5}\n"
        "augment: {train: [cutout: 2]}\n", NULL, 0);
    assert_string_equal(s->extends, at("sub/base.yaml"));
    assert_string_equal(s->name, "base"); /* inherited */
    assert_string_equal(s->model.graph.path, at("models/tiny.yaml"));
    assert_int_equal(s->optimizer.type, SPEC_OPTIMIZER_ADAM);
    assert_true(s->optimizer.lr == 3e-4);
    assert_true(s->optimizer.weight_decay == 5e-4);
    assert_true(s->optimizer.betas[0] == 0.8);
    assert_int_equal(s->train.epochs, 5);
    assert_int_equal(s->train.batch_size, 256);
    assert_int_equal(s->augment.train.n, 1); /* lists replace */
    assert_int_equal(s->augment.eval.n, 1);  /* untouched keys stay */
    /* Marks point into the file that wrote the value. */
    struct mark m = spec_mark(s, "optimizer.weight_decay");
    assert_string_equal(m.src->name, at("sub/base.yaml"));
    assert_int_equal(m.line, 3);
    m = spec_mark(s, "optimizer.lr");
    assert_string_equal(m.src->name, at("child.yaml"));
    assert_int_equal(m.line, 2);
    assert_int_equal(m.col, 17);
    /* An absent key: the nearest enclosing key that is written. */
    m = spec_mark(s, "optimizer.amsgrad");
    assert_int_equal(m.line, 2);
    assert_int_equal(m.col, 1);
    spec_free(s);

    /* A changed type replaces the base's optimizer whole: no betas inherited into sgd. */
    s = load_ok("child_sgd.yaml", "extends: sub/base.yaml\noptimizer: {type: sgd, lr: 0.1}\n", NULL, 0);
    assert_int_equal(s->optimizer.type, SPEC_OPTIMIZER_SGD);
    assert_true(s->optimizer.weight_decay == 0);
    spec_free(s);

    /* A three-file chain. */
    s = load_ok("grandchild.yaml", "extends: child.yaml\ntrain: {batch_size: 32}\n", NULL, 0);
    assert_int_equal(s->train.epochs, 5);
    assert_int_equal(s->train.batch_size, 32);
    assert_true(s->optimizer.lr == 3e-4);
    spec_free(s);
}

static void test_cycle(void **state)
{
    (void)state;
    write_file(dir, "cy_b.yaml", "extends: cy_c.yaml\n");
    write_file(dir, "cy_c.yaml", "extends: cy_a.yaml\n");
    char *msgs;
    int n = load_errors("cy_a.yaml", "extends: cy_b.yaml\n" MIN_EXP, NULL, 0, &msgs);
    assert_int_equal(n, 1);
    char want[2048];
    snprintf(want, sizeof want, "%s/cy_c.yaml:1:1: error: extends cycle: %s/cy_a.yaml -> %s/cy_b.yaml -> %s/cy_c.yaml -> %s/cy_a.yaml\n",
             dir, dir, dir, dir, dir);
    if (strncmp(msgs, want, strlen(want)) != 0) fail_msg("got:\n%s\nwanted:\n%s", msgs, want);
    free(msgs);
}

static void test_overrides(void **state)
{
    (void)state;
    const char *ov[] = {"optimizer.lr=3e-4", "train.epochs=5", "optimizer.betas=[0.9, 0.99]",
                        "augment.train=[hflip, {cutout: 4}]", "device=cpu", "name=over",
                        "model=models/tiny.yaml", "data.root=data", "train.label_smoothing=0.1"};
    /* Run from another directory: paths in overrides are relative to the experiment file. */
    char cwd[4096];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir("/"), 0);
    struct spec *s = load_ok("ov.yaml", "model: nothing_here.yaml\noptimizer: {type: adam, lr: 1}\n",
                             ov, sizeof ov / sizeof ov[0]);
    assert_int_equal(chdir(cwd), 0);
    assert_true(s->optimizer.lr == 3e-4);
    assert_int_equal(s->train.epochs, 5);
    assert_true(s->optimizer.betas[1] == 0.99);
    assert_int_equal(s->augment.train.n, 2);
    assert_int_equal(s->device.kind, SPEC_DEVICE_CPU);
    assert_string_equal(s->name, "over");
    assert_string_equal(s->model.graph.path, at("models/tiny.yaml"));
    assert_string_equal(s->data.root, at("data"));
    struct mark m = spec_mark(s, "train.epochs");
    assert_string_equal(m.src->name, "<command line>");
    assert_int_equal(m.line, 2);
    assert_int_equal(m.col, 14);
    spec_free(s);
}

/* A section given by its shorthand (model: FILE) is its long form ({graph: FILE}) when files
 * and overrides merge: model.pretrained=W adds to it, a child's `model: FILE` keeps the
 * base's other model keys. */
static void test_shorthand_merges(void **state)
{
    (void)state;
    const char *ov[] = {"model.pretrained=w.safetensors"};
    struct spec *s = load_ok("short.yaml", MIN_EXP, ov, 1);
    assert_string_equal(s->model.graph.path, at("models/tiny.yaml"));
    assert_string_equal(s->model.pretrained, at("w.safetensors"));
    spec_free(s);
    write_file(dir, "short_base.yaml",
               "model: {graph: models/tiny.yaml, pretrained: w.safetensors, reinit: [fc]}\n"
               "optimizer: {type: adam, lr: 1.0e-3}\n");
    s = load_ok("short_child.yaml", "extends: short_base.yaml\nmodel: models/tiny.yaml\n", NULL, 0);
    assert_string_equal(s->model.pretrained, at("w.safetensors"));
    assert_int_equal(s->model.reinit.n, 1);
    spec_free(s);
}

static void test_override_checked_like_file(void **state)
{
    (void)state;
    /* The same mistake gives the same message, from the file or from the command line. */
    char *a, *b;
    load_errors("lr0.yaml", "model: models/tiny.yaml\noptimizer: {type: adam, lr: 0}\n", NULL, 0, &a);
    const char *ov[] = {"optimizer.lr=0"};
    load_errors("lr1.yaml", MIN_EXP, ov, 1, &b);
    assert_non_null(strstr(a, "error: 'optimizer.lr' must be a number > 0, got 0\n"));
    assert_non_null(strstr(b, "<command line>:1:14: error: 'optimizer.lr' must be a number > 0, got 0\n"));
    free(a);
    free(b);
}

static void test_many_errors(void **state)
{
    (void)state;
    char *msgs;
    int n = load_errors("many.yaml",
                        "model: models/tiny.yaml\noptimizer: {type: adam, lr: -1}\n"
                        "train: {epochs: zero, batchsize: 3}\nprecision: fp8\n", NULL, 0, &msgs);
    assert_int_equal(n, 4);
    assert_non_null(strstr(msgs, "many.yaml:2:29: error"));
    assert_non_null(strstr(msgs, "many.yaml:3:17: error"));
    assert_non_null(strstr(msgs, "many.yaml:3:23: error: unknown key 'batchsize' in 'train'"));
    assert_non_null(strstr(msgs, "hint: did you mean 'batch_size'?"));
    assert_non_null(strstr(msgs, "many.yaml:4:12: error"));
    free(msgs);
    /* A bad list element is one error; its neighbours are not compared with it. */
    n = load_errors("milestones.yaml", MIN_EXP "schedule: {type: multistep, milestones: [5, ten, 3]}\n",
                    NULL, 0, &msgs);
    assert_int_equal(n, 1);
    assert_non_null(strstr(msgs, "'schedule.milestones[1]' must be an integer in [1, 1000000], got \"ten\""));
    free(msgs);
}

static void test_write_reads_back(void **state)
{
    (void)state;
    const char *ov[] = {"augment.train=[hflip, {random_crop: {size: 32, padding: 4}}]",
                        "hooks=[{file: local.lua, args: {title: \"A: b\", n: [1, 2]}}]",
                        "schedule={type: multistep, milestones: [3, 6]}"};
    struct spec *s = load_ok("rt.yaml", "name: rt\n" MIN_EXP, ov, 3);
    char *one = NULL, *two = NULL;
    size_t l1, l2;
    FILE *f = open_memstream(&one, &l1);
    spec_write_yaml(s, f);
    fclose(f);
    spec_free(s);
    /* The test folder is absolute, so the resolved paths in the output are too. */
    char rt2[4096];
    snprintf(rt2, sizeof rt2, "%s/rt2.yaml", dir);
    FILE *g = fopen(rt2, "w");
    fputs(one, g);
    fclose(g);
    char *msgs;
    struct spec *s2;
    enum status st = load_capture(rt2, NULL, 0, &s2, &msgs);
    if (st) fail_msg("resolved config did not load:\n%s\n---\n%s", msgs, one);
    free(msgs);
    f = open_memstream(&two, &l2);
    spec_write_yaml(s2, f);
    fclose(f);
    assert_string_equal(one, two);
    assert_int_equal(s2->schedule.milestones.n, 2);
    spec_free(s2);
    free(one);
    free(two);
}

/* model.pretrained as a URL: kept as written (never joined to the file's folder, never
 * looked for), from a file in a subfolder or an override, with pretrained_sha256 as written;
 * the resolved config writes it as it is and reads back the same; a local path beside it is
 * still resolved and checked. */
static void test_pretrained_url(void **state)
{
    (void)state;
    const char *url = "hf://timm/resnet50.tv_in1k";
    const char *sha = "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08";
    char text[1024];
    snprintf(text, sizeof text,
             "model: {graph: ../models/tiny.yaml, pretrained: %s, pretrained_sha256: %s, "
             "reinit: [fc]}\noptimizer: {type: adam, lr: 1.0e-3}\n", url, sha);
    struct spec *s = load_ok("sub/url.yaml", text, NULL, 0);
    assert_string_equal(s->model.pretrained, url);
    assert_string_equal(s->model.pretrained_sha256, sha);
    char *yaml = spec_yaml_text(s);
    spec_free(s);
    char want[256];
    snprintf(want, sizeof want, "\n  pretrained: \"%s\"\n  pretrained_sha256: \"%s\"\n", url,
             sha);
    if (!strstr(yaml, want)) fail_msg("expected \"%s\" in:\n%s", want, yaml);
    write_file(dir, "sub/url_rt.yaml", yaml);
    char *msgs;
    struct spec *s2;
    if (load_capture(at("sub/url_rt.yaml"), NULL, 0, &s2, &msgs)) fail_msg("%s", msgs);
    free(msgs);
    assert_string_equal(s2->model.pretrained, url);
    char *again = spec_yaml_text(s2);
    assert_string_equal(yaml, again);
    free(again);
    free(yaml);
    spec_free(s2);

    const char *ov[] = {"model.pretrained=https://example.com/a//b.safetensors?x=1"};
    static const char sub_exp[] =
        "model: ../models/tiny.yaml\noptimizer: {type: adam, lr: 1.0e-3}\n";
    s = load_ok("sub/url_ov.yaml", sub_exp, ov, 1);
    assert_string_equal(s->model.pretrained, "https://example.com/a//b.safetensors?x=1");
    assert_null(s->model.pretrained_sha256);
    spec_free(s);

    /* A path is still a path: resolved, and an error when it is missing. */
    const char *local[] = {"model.pretrained=../w.safetensors"};
    s = load_ok("sub/url_local.yaml", sub_exp, local, 1);
    assert_string_equal(s->model.pretrained, at("w.safetensors"));
    spec_free(s);
    const char *missing[] = {"model.pretrained=hf_timm.safetensors"};
    assert_int_equal(load_errors("sub/url_missing.yaml", sub_exp, missing, 1, &msgs), 1);
    assert_non_null(strstr(msgs, "cannot read"));
    free(msgs);
}

static void test_load_text(void **state)
{
    (void)state;
    struct diag d = {0};
    struct spec *s;
    const char *text = "model: {graph: {input: [3, 8, 8], graph: []}}\noptimizer: {type: sgd, lr: 1}\n";
    assert_int_equal(spec_load_text("mem/exp.yaml", text, strlen(text), NULL, 0, &d, &s), STATUS_OK);
    assert_string_equal(s->name, "exp");
    spec_free(s);
    assert_int_equal(spec_load_text("mem/exp.yaml", "[1]", 3, NULL, 0, &d, &s), STATUS_CONFIG);
    assert_null(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),      cmocka_unit_test(test_every_section),
        cmocka_unit_test(test_inline_graph),  cmocka_unit_test(test_extends),
        cmocka_unit_test(test_cycle),         cmocka_unit_test(test_overrides),
        cmocka_unit_test(test_shorthand_merges),
        cmocka_unit_test(test_override_checked_like_file), cmocka_unit_test(test_many_errors),
        cmocka_unit_test(test_write_reads_back), cmocka_unit_test(test_pretrained_url),
        cmocka_unit_test(test_load_text),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
