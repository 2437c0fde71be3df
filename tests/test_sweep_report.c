/*
 * test_sweep_report.c SOURCE_DIR: the sweep report (hooks_sweep.c and hooks/sweep_report.lua)
 * on sweep directories built here: the table on_sweep gets, value by value (values typed as
 * numbers when they read as one, the text as typed, summary.json and metrics.jsonl per
 * point); the sweep directory's own files refused to the hook; errors (a file that does not
 * load, no on_sweep, an error in it, a point whose files cannot be parsed) reported and never
 * fatal, while a metrics.jsonl line still being written is left out quietly; and sweep.html
 * as sweep_report.lua writes it: checked here (the best point, the table's rows and statuses,
 * the curves, the log axis of the learning rate, nothing outside the page) and by
 * tests/test_sweep_report.py against the run directories' own files. Set RUNNER_TEST_KEEP=1
 * to keep the sweep directories (their paths are printed).
 */
#include <fcntl.h>
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

static const char *source_dir = ".";

static struct {
    char base[256], dir[300]; /* the test's folder, and the sweep directory in it */
} F;

/* ---------------------------------------------------------------------------------------- */
/* The sweep directory */

static const char config_yaml[] =
    "name: quick\nseed: 0\nmodel:\n  graph: experiments/models/resnet8.yaml\n"
    "data: {dataset: cifar10, val_split: 500, subset: 3000}\n"
    "optimizer: {type: sgd, lr: %s, momentum: 0.9, nesterov: true}\n"
    "train: {epochs: 2, batch_size: 256}\n";

/* Two epochs with validation (best 0.276), and its summary. */
static const char metrics_best[] =
    "{\"epoch\": 1, \"step\": 9, \"train_loss\": 2.21959225, \"train_acc\": 0.182291667, "
    "\"val_loss\": 2.0667777, \"val_acc\": 0.228, \"lr\": 0.0007500002, \"seconds\": 3.002, "
    "\"img_per_s\": 846.09}\n"
    "{\"epoch\": 2, \"step\": 18, \"train_loss\": 1.97217341, \"train_acc\": 0.294270833, "
    "\"val_loss\": 1.91572593, \"val_acc\": 0.276, \"lr\": 4e-09, \"seconds\": 2.687, "
    "\"img_per_s\": 913.62}\n";
static const char summary_best[] =
    "{\n  \"name\": \"quick\",\n  \"test_acc\": 0.291,\n  \"test_loss\": 1.89647618,\n"
    "  \"macro_f1\": 0.246429785,\n  \"best_val_acc\": 0.276,\n  \"best_epoch\": 2,\n"
    "  \"final_val_acc\": 0.276,\n  \"epochs\": 2,\n  \"steps\": 18,\n  \"seconds\": 9.983,\n"
    "  \"train_img_per_s\": 878.56,\n  \"device\": \"cpu\",\n  \"parameters\": 308650\n}\n";

/* Two epochs with validation (best 0.192), stopped early. */
static const char metrics_second[] =
    "{\"epoch\": 1, \"step\": 5, \"train_loss\": 2.29884049, \"train_acc\": 0.13984375, "
    "\"val_loss\": 2.20923945, \"val_acc\": 0.19, \"lr\": 0.000193969286, \"seconds\": 1.929, "
    "\"img_per_s\": 788.17}\n"
    "{\"epoch\": 2, \"step\": 10, \"train_loss\": 2.07765878, \"train_acc\": 0.25546875, "
    "\"val_loss\": 2.06738806, \"val_acc\": 0.192, \"lr\": 0.0000826356517, \"seconds\": 1.889, "
    "\"img_per_s\": 757.22}\n";
static const char summary_second[] =
    "{\n  \"name\": \"quick\",\n  \"test_acc\": 0.2148,\n  \"test_loss\": 2.04423167,\n"
    "  \"macro_f1\": 0.20124794,\n  \"best_val_acc\": 0.192,\n  \"best_epoch\": 2,\n"
    "  \"final_val_acc\": 0.192,\n  \"epochs\": 2,\n  \"seconds\": 8.160,\n"
    "  \"train_img_per_s\": 772.39,\n  \"device\": \"cpu\",\n"
    "  \"stopped\": \"val_loss did not improve by more than 10 for 1 epoch\"\n}\n";

/* The failed point's one epoch. */
static const char metrics_failed[] =
    "{\"epoch\": 1, \"step\": 9, \"train_loss\": 9.5, \"train_acc\": 0.1, \"val_loss\": 8.1, "
    "\"val_acc\": 0.1, \"lr\": 0.075, \"seconds\": 2.9, \"img_per_s\": 850.5}\n";
static const char log_failed[] =
    "epoch 1/2: train loss 9.5000 acc 0.1000, val loss 8.1000 acc 0.1000\n"
    "runner: error: step 12: the loss is not finite (nan); lower optimizer.lr\n"
    "sweep: failed (exit 1)\n";

static void make_dir(const char *path)
{
    if (mkdir(path, 0777)) fail_msg("mkdir %s failed", path);
}

/* runs/NAME/ with config.yaml (lr), and metrics.jsonl and summary.json when given. */
static void make_point(const char *name, const char *lr, const char *metrics, const char *summary)
{
    char dir[600], text[1024];
    snprintf(dir, sizeof dir, "%s/runs/%s", F.dir, name);
    make_dir(dir);
    snprintf(text, sizeof text, config_yaml, lr);
    write_file(dir, "config.yaml", text);
    if (metrics) write_file(dir, "metrics.jsonl", metrics);
    if (summary) write_file(dir, "summary.json", summary);
    snprintf(text, sizeof text, "extends: ../quick.yaml\noptimizer: {lr: %s}\n", lr);
    char file[300];
    snprintf(file, sizeof file, "%s.yaml", name);
    write_file(F.dir, file, text);
}

static int setup(void **state)
{
    (void)state;
    memset(&F, 0, sizeof F);
    if (tmpdir_make(F.base, sizeof F.base, "test_sweep_report")) return -1;
    snprintf(F.dir, sizeof F.dir, "%s/quick-lr", F.base);
    char runs[320], logs[320];
    snprintf(runs, sizeof runs, "%s/runs", F.dir);
    snprintf(logs, sizeof logs, "%s/logs", F.dir);
    if (mkdir(F.dir, 0777) || mkdir(runs, 0777) || mkdir(logs, 0777)) return -1;
    make_point("lr=1e-3", "1e-3", metrics_best, summary_best);
    make_point("lr=3e-4", "3e-4", metrics_second, summary_second);
    make_point("lr=1e-1", "1e-1", metrics_failed, NULL);
    write_file(runs, "lr=1e-3/report.html", "<!DOCTYPE html><title>quick</title>\n");
    write_file(logs, "lr=1e-1.log", log_failed);
    write_file(logs, "lr=1e-3.log", "done in 0:10\nsweep: done\n");
    write_file(F.dir, "sweep.csv", "point,status,optimizer.lr\n");
    write_file(F.base, "outside.txt", "outside\n");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    const char *keep = getenv("RUNNER_TEST_KEEP");
    if (keep && keep[0] == '1') {
        printf("kept %s\n", F.base);
        return 0;
    }
    return tmpdir_remove(F.base);
}

static const char *const lr_key[] = {"optimizer.lr"};
static const char *const v_1e3[] = {"1e-3"}, *const v_3e4[] = {"3e-4"}, *const v_1e1[] = {"1e-1"};
static const struct hooks_sweep_point three[] = {
    {.name = "lr=1e-3", .status = "done", .run_dir = "runs/lr=1e-3", .values = v_1e3,
     .log = "logs/lr=1e-3.log"},
    {.name = "lr=3e-4", .status = "done", .run_dir = "runs/lr=3e-4", .values = v_3e4},
    {.name = "lr=1e-1", .status = "failed", .run_dir = "runs/lr=1e-1", .values = v_1e1,
     .log = "logs/lr=1e-1.log"},
};

static struct hooks_sweep sweep_of_three(void)
{
    return (struct hooks_sweep){.name = "quick-lr", .dir = F.dir, .base = "experiments/quick.yaml",
                                .keys = lr_key, .nkeys = 1, .points = three, .npoints = 3,
                                .finished = true};
}

/* ---------------------------------------------------------------------------------------- */
/* Calling */

struct outcome {
    enum status st;
    char *diag;   /* what went to d */
    char *stderr_text; /* what went to standard error */
};

static void outcome_free(struct outcome *o)
{
    free(o->diag);
    free(o->stderr_text);
}

/* hooks_sweep_report of hook (a path) on sw, standard error and d captured. */
static struct outcome report(const char *hook, const struct hooks_sweep *sw)
{
    struct outcome o = {0};
    size_t len;
    FILE *mem = open_memstream(&o.diag, &len);
    struct diag d = {.out = mem};
    char err_path[320];
    snprintf(err_path, sizeof err_path, "%s/stderr.txt", F.base);
    fflush(stderr);
    int saved = dup(2), fd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);
    char hook_dir[600];
    snprintf(hook_dir, sizeof hook_dir, "%s/hooks", source_dir);
    const char *dirs[] = {hook_dir};
    o.st = hooks_sweep_report(hook, sw, dirs, 1, &d);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    fclose(mem);
    o.stderr_text = slurp(err_path);
    if (!o.stderr_text) o.stderr_text = calloc(1, 1);
    return o;
}

/* report, which must succeed (its diagnostics and standard error shown if not). */
static void report_ok(const char *hook, const struct hooks_sweep *sw)
{
    struct outcome o = report(hook, sw);
    if (o.st) fail_msg("hooks_sweep_report failed:\n%s%s", o.diag, o.stderr_text);
    outcome_free(&o);
}

/* A hook file written into the test's folder (outside the sweep directory); its path. */
static const char *hook_file(const char *name, const char *src)
{
    static char path[320];
    write_file(F.base, name, src);
    snprintf(path, sizeof path, "%s/%s", F.base, name);
    return path;
}

static const char *project_hook(void)
{
    static char path[600];
    snprintf(path, sizeof path, "%s/hooks/sweep_report.lua", source_dir);
    return path;
}

/* The sweep directory's file name (caller frees), which must exist. */
static char *sweep_file(const char *name)
{
    char *s = slurp(tmpdir_path(F.dir, name));
    if (!s) fail_msg("%s/%s was not written", F.dir, name);
    return s;
}

static void has(const char *text, const char *what, const char *want)
{
    if (!strstr(text, want)) fail_msg("expected '%s' in %s:\n%s", want, what, text);
}

/* ---------------------------------------------------------------------------------------- */
/* The table */

static void test_sweep_table(void **state)
{
    (void)state;
    static const char *const keys[] = {"optimizer.lr", "train.epochs", "optimizer.type",
                                       "data.subset"};
    static const char *const va[] = {"3e-4", "20", "sgd", "+5"};
    static const char *const vb[] = {"2.50", "-7", "0x10", NULL};
    static const char *const vc[] = {"1e400", "99999999999999999999", "true", "007"};
    const struct hooks_sweep_point points[] = {
        {.name = "a", .status = "done", .run_dir = "runs/lr=1e-3", .values = va,
         .log = "logs/lr=1e-3.log"},
        {.name = "b", .status = "failed", .run_dir = "runs/lr=1e-1", .values = vb},
        {.name = "c", .status = "pending", .values = vc},
        {.name = "d", .status = "running", .run_dir = "runs/nothing-yet", .values = NULL},
    };
    struct hooks_sweep sw = {.name = "quick-lr", .dir = F.dir, .keys = keys, .nkeys = 4,
                             .points = points, .npoints = 4, .finished = false};
    const char *hook = hook_file("fields.lua",
        "function on_sweep(s)\n"
        "  local out = {}\n"
        "  local function add(...) out[#out + 1] = string.format(...) end\n"
        "  add('name=%s base=%s finished=%s keys=%s', s.name, tostring(s.base),\n"
        "    tostring(s.finished), table.concat(s.keys, ','))\n"
        "  add('dir=%s', s.dir)\n"
        "  for i, p in ipairs(s.points) do\n"
        "    add('point %d %s %s run_dir=%s log=%s error=%s', i, p.name, p.status,\n"
        "      tostring(p.run_dir), tostring(p.log), tostring(p.error))\n"
        "    for _, k in ipairs(s.keys) do\n"
        "      local v = p.values[k]\n"
        "      add('  %s=%s %s %s text=%s', k, tostring(v), type(v), tostring(math.type(v)),\n"
        "        tostring(p.text[k]))\n"
        "    end\n"
        "    local sm = p.summary\n"
        "    add('  summary=%s history=%d', sm and (sm.best_val_acc .. '/' .. sm.test_acc ..\n"
        "      '/' .. math.type(sm.epochs)) or 'nil', #p.history)\n"
        "    local e = p.history[#p.history]\n"
        "    if e then add('  last epoch=%s %s val_acc=%s', e.epoch, math.type(e.epoch),\n"
        "      e.val_acc) end\n"
        "  end\n"
        "  runner.write('fields.txt', table.concat(out, '\\n') .. '\\n')\n"
        "end\n");
    report_ok(hook, &sw);
    char *t = sweep_file("fields.txt");
    char real[4096], want[4200];
    assert_non_null(realpath(F.dir, real));
    has(t, "fields.txt", "name=quick-lr base=nil finished=false "
                         "keys=optimizer.lr,train.epochs,optimizer.type,data.subset\n");
    snprintf(want, sizeof want, "dir=%s\n", real);
    has(t, "fields.txt", want);
    has(t, "fields.txt",
        "point 1 a done run_dir=runs/lr=1e-3 log=logs/lr=1e-3.log error=nil\n"
        "  optimizer.lr=0.0003 number float text=3e-4\n"
        "  train.epochs=20 number integer text=20\n"
        "  optimizer.type=sgd string nil text=sgd\n"
        "  data.subset=5 number integer text=+5\n"
        "  summary=0.276/0.291/integer history=2\n"
        "  last epoch=2 integer val_acc=0.276\n");
    has(t, "fields.txt",
        "point 2 b failed run_dir=runs/lr=1e-1 log=nil error=nil\n"
        "  optimizer.lr=2.5 number float text=2.50\n"
        "  train.epochs=-7 number integer text=-7\n"
        "  optimizer.type=0x10 string nil text=0x10\n"
        "  data.subset=nil nil nil text=nil\n"
        "  summary=nil history=1\n"
        "  last epoch=1 integer val_acc=0.1\n");
    has(t, "fields.txt",
        "point 3 c pending run_dir=nil log=nil error=nil\n"
        "  optimizer.lr=1e400 string nil text=1e400\n"
        "  train.epochs=1e+20 number float text=99999999999999999999\n"
        "  optimizer.type=true string nil text=true\n"
        "  data.subset=7 number integer text=007\n"
        "  summary=nil history=0\n");
    has(t, "fields.txt",
        "point 4 d running run_dir=runs/nothing-yet log=nil error=nil\n"
        "  optimizer.lr=nil nil nil text=nil\n");
    free(t);
}

/* The hook reads anything in the sweep directory and writes there, never over the sweep's
 * own files (sweep.csv, sweep.sbatch, the point files, runs/, logs/) nor outside it. */
static void test_sweep_sandbox(void **state)
{
    (void)state;
    struct hooks_sweep sw = sweep_of_three();
    const char *hook = hook_file("sandbox.lua",
        "function on_sweep(s)\n"
        "  local out = {}\n"
        "  for _, path in ipairs({'runs/lr=1e-3/report.html', 'runs/lr=1e-3/summary.json',\n"
        "      'sweep.csv', 'sweep.sbatch', 'lr=1e-3.yaml', 'new.yaml.tmp', 'logs/x.log',\n"
        "      '../outside.txt', 'sweep.html', 'notes.txt'}) do\n"
        "    local ok, err = pcall(runner.write, path, 'x')\n"
        "    out[#out + 1] = path .. ': ' .. (ok and 'written' or err:gsub('^.-: ', '', 1))\n"
        "  end\n"
        "  local f = assert(io.open('runs/lr=1e-3/summary.json'))\n"
        "  out[#out + 1] = 'read ' .. #f:read('a')\n"
        "  f:close()\n"
        "  local g, err = io.open('runs/lr=3e-4/metrics.jsonl', 'a')\n"
        "  out[#out + 1] = 'append: ' .. tostring(g) .. ' ' .. err\n"
        "  runner.write('sandbox.txt', table.concat(out, '\\n') .. '\\n')\n"
        "end\n");
    report_ok(hook, &sw);
    char *t = sweep_file("sandbox.txt");
    static const char *const lines[] = {
        "runs/lr=1e-3/report.html: not allowed: runs/ holds the sweep's own files\n",
        "runs/lr=1e-3/summary.json: not allowed: runs/ holds the sweep's own files\n",
        "sweep.csv: not allowed: sweep.csv is one of the sweep's own files\n",
        "sweep.sbatch: not allowed: sweep.sbatch is one of the sweep's own files\n",
        "lr=1e-3.yaml: not allowed: .yaml files here are the sweep's own\n",
        "new.yaml.tmp: not allowed: .yaml files here are the sweep's own\n",
        "logs/x.log: not allowed: logs/ holds the sweep's own files\n",
        "../outside.txt: not allowed: hooks write only inside the sweep directory ",
        "sweep.html: written\n",
        "notes.txt: written\n",
        ("append: nil runs/lr=3e-4/metrics.jsonl: not allowed: runs/ holds the sweep's own "
         "files\n")};
    for (size_t i = 0; i < ARRAY_LEN(lines); i++) has(t, "sandbox.txt", lines[i]);
    char want[64];
    snprintf(want, sizeof want, "read %zu\n", strlen(summary_best));
    has(t, "sandbox.txt", want);
    free(t);
    char *s = slurp(tmpdir_path(F.dir, "sweep.csv"));
    assert_string_equal(s, "point,status,optimizer.lr\n");
    free(s);
    s = slurp(tmpdir_path(F.base, "outside.txt"));
    assert_string_equal(s, "outside\n");
    free(s);
    assert_null(slurp(tmpdir_path(F.dir, "runs/lr=1e-3/summary.json.tmp")));
}

/* ---------------------------------------------------------------------------------------- */
/* Errors: reported, STATUS_RUNTIME, never more */

static void test_sweep_errors(void **state)
{
    (void)state;
    struct hooks_sweep sw = sweep_of_three();

    const char *hook = hook_file("syntax.lua", "function on_sweep(s)\n  if x then\nend\n");
    struct outcome o = report(hook, &sw);
    assert_int_equal(o.st, STATUS_RUNTIME);
    has(o.diag, "the diagnostics", "syntax.lua:4: 'end' expected (to close 'function' at line 1)");
    outcome_free(&o);

    hook = hook_file("none.lua", "function on_end(run) end\n");
    o = report(hook, &sw);
    assert_int_equal(o.st, STATUS_RUNTIME);
    has(o.stderr_text, "standard error",
        "none.lua: on_sweep: the hook defines no function on_sweep(sweep)");
    outcome_free(&o);

    hook = hook_file("raise.lua", "function on_sweep(s) error('no ' .. #s.points) end\n");
    o = report(hook, &sw);
    assert_int_equal(o.st, STATUS_RUNTIME);
    has(o.stderr_text, "standard error", "raise.lua: on_sweep: ");
    has(o.stderr_text, "standard error", "raise.lua:1: no 3\nstack traceback:");
    outcome_free(&o);

    /* A line being written (no newline yet) is left out: no error. */
    char partial[1024];
    snprintf(partial, sizeof partial, "%s{\"epoch\": 2, \"step\": 1", metrics_failed);
    write_file(F.dir, "runs/lr=1e-1/metrics.jsonl", partial);
    hook = hook_file("bad_point.lua",
        "function on_sweep(s)\n"
        "  local p = s.points[3]\n"
        "  runner.write('called.txt', string.format('%s history=%d error=%s', p.name,\n"
        "    #p.history, p.error))\n"
        "end\n");
    report_ok(hook, &sw);
    char *t = sweep_file("called.txt");
    assert_string_equal(t, "lr=1e-1 history=1 error=nil");
    free(t);

    /* A point whose metrics.jsonl cannot be parsed: reported, and the hook still called with
     * the point's message in `error` and no figures. */
    write_file(F.dir, "runs/lr=1e-1/metrics.jsonl", "{\"epoch\": 1}\n{\"epoch\": 2,\n");
    o = report(hook, &sw);
    assert_int_equal(o.st, STATUS_RUNTIME);
    has(o.stderr_text, "standard error", "bad_point.lua: on_sweep: point lr=1e-1: ");
    has(o.stderr_text, "standard error", "runs/lr=1e-1/metrics.jsonl:2:13: ");
    has(o.stderr_text, "standard error", "it is shown without its figures");
    t = sweep_file("called.txt");
    has(t, "called.txt", "lr=1e-1 history=0 error=");
    has(t, "called.txt", "runs/lr=1e-1/metrics.jsonl:2:13: ");
    free(t);
    outcome_free(&o);

    /* The project's page too: the point is listed with its message. */
    o = report(project_hook(), &sw);
    assert_int_equal(o.st, STATUS_RUNTIME);
    t = sweep_file("sweep.html");
    has(t, "sweep.html", "<li data-point=\"lr=1e-1\" data-status=\"failed\">");
    has(t, "sweep.html", "metrics.jsonl:2:13: ");
    free(t);
    outcome_free(&o);

    struct hooks_sweep gone = sw;
    gone.dir = "/nonexistent/sweep";
    o = report(project_hook(), &gone);
    assert_int_equal(o.st, STATUS_RUNTIME);
    has(o.diag, "the diagnostics", "hooks: the sweep directory /nonexistent/sweep: No such file");
    outcome_free(&o);
}

/* ---------------------------------------------------------------------------------------- */
/* sweep.html */

/* The start tag <TAG ...> of text holding attr (an exact attr="value"), as a new string; NULL
 * when there is none. With n, the number of such tags. */
static char *find_tag(const char *text, const char *tag, const char *attr, int *n)
{
    char open[32];
    snprintf(open, sizeof open, "<%s ", tag);
    char *found = NULL;
    int count = 0;
    for (const char *p = text; (p = strstr(p, open)); p++) {
        const char *end = strchr(p, '>');
        if (!end) break;
        size_t len = (size_t)(end - p) + 1;
        char *t = strndup(p, len);
        if (!attr || strstr(t, attr)) {
            count++;
            if (!found) found = t;
            else free(t);
        } else {
            free(t);
        }
    }
    if (n) *n = count;
    return found;
}

static void tag_has(const char *text, const char *tag, const char *attr, const char *want)
{
    char *t = find_tag(text, tag, attr, NULL);
    if (!t) fail_msg("no <%s> with %s in sweep.html", tag, attr);
    if (want && !strstr(t, want)) fail_msg("expected %s in %s", want, t);
    free(t);
}

static int count_tags(const char *text, const char *tag, const char *attr)
{
    int n;
    free(find_tag(text, tag, attr, &n));
    return n;
}

/* Runs tests/test_sweep_report.py on the sweep directory (not when python3 is missing). */
static void python_check(void)
{
    if (system("command -v python3 >/dev/null 2>&1") != 0) {
        printf("python3 not found: tests/test_sweep_report.py not run\n");
        return;
    }
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "python3 '%s/tests/test_sweep_report.py' '%s'", source_dir, F.dir);
    if (system(cmd) != 0) fail_msg("tests/test_sweep_report.py found sweep.html wrong (above)");
}

/* Nothing the page loads or links to lies outside it, but the points' report.html. */
static void self_contained(const char *html)
{
    const char *p = html;
    while ((p = strstr(p, "http"))) {
        if (strncmp(p, "http://www.w3.org/2000/svg", 26) && strncmp(p, "http-equiv", 10))
            fail_msg("sweep.html refers to %.60s", p);
        p++;
    }
    assert_null(strstr(html, " src="));
    assert_null(strstr(html, "<link"));
    assert_null(strstr(html, "url("));
    for (p = html; (p = strstr(p, " href=\"")); p++) {
        p += 7;
        if (*p != '#' && strncmp(p, "runs/", 5)) fail_msg("sweep.html links to %.60s", p);
    }
}

static void test_sweep_page(void **state)
{
    (void)state;
    struct hooks_sweep sw = sweep_of_three();
    report_ok(project_hook(), &sw);
    char *html = sweep_file("sweep.html");

    tag_has(html, "p", "id=\"best\"", "data-point=\"lr=1e-3\"");
    tag_has(html, "p", "id=\"best\"", "data-metric=\"best_val_acc\"");
    has(html, "sweep.html", "Best: <b>lr=1e-3</b> \u2014 <span class=\"value\">27.6%</span> "
                            "validation accuracy (test 29.1%)");
    assert_int_equal(count_tags(html, "tr", "data-point="), 3);
    tag_has(html, "tr", "data-point=\"lr=1e-3\"", "data-status=\"done\"");
    tag_has(html, "tr", "data-point=\"lr=1e-3\"", "data-best=\"true\"");
    tag_has(html, "tr", "data-point=\"lr=3e-4\"", "data-status=\"done\"");
    tag_has(html, "tr", "data-point=\"lr=3e-4\"", "data-best=\"false\"");
    tag_has(html, "tr", "data-point=\"lr=1e-1\"", "data-status=\"failed\"");
    tag_has(html, "tr", "data-point=\"lr=1e-1\"", "data-best=\"false\"");
    assert_int_equal(count_tags(html, "tr", "data-best=\"true\""), 1);
    has(html, "sweep.html", "<a class=\"report\" href=\"runs/lr=1e-3/report.html\">");
    assert_int_equal(count_tags(html, "a", "class=\"report\""), 1);

    tag_has(html, "svg", "id=\"chart-val-acc\"", NULL);
    has(html, "sweep.html", "<polyline class=\"series\" data-series=\"lr=1e-3\" data-points=\"2\"");
    has(html, "sweep.html", "<polyline class=\"series\" data-series=\"lr=3e-4\" data-points=\"2\"");
    assert_null(strstr(html, "data-series=\"lr=1e-1\""));
    tag_has(html, "svg", "id=\"chart-vs-optimizer-lr\"", "data-log-x=\"true\"");
    assert_int_equal(count_tags(html, "g", "data-metric=\"best_val_acc\""), 2);
    assert_int_equal(count_tags(html, "g", "data-metric=\"test_acc\""), 2);
    tag_has(html, "g", "data-metric=\"best_val_acc\" data-point=\"lr=3e-4\"",
            "data-x=\"0.0003\"");

    tag_has(html, "li", "data-point=\"lr=1e-1\"", "data-status=\"failed\"");
    has(html, "sweep.html", "runner: error: step 12: the loss is not finite (nan)");
    assert_null(strstr(html, "http-equiv=\"refresh\""));
    tag_has(html, "html", "lang=\"en\"", "data-state=\"finished\"");
    self_contained(html);
    free(html);
    python_check();
}

/* A sweep under way, two keys, no validation split: the best by test accuracy, train
 * accuracy curves, the refresh, a vs chart per numeric key and none for a key of words. */
static void test_sweep_page_running(void **state)
{
    (void)state;
    static const char metrics_noval[] =
        "{\"epoch\": 1, \"step\": 9, \"train_loss\": 2.2, \"train_acc\": 0.18, \"val_loss\": "
        "null, \"val_acc\": null, \"lr\": 0.01, \"seconds\": 3.0, \"img_per_s\": 846.1}\n"
        "{\"epoch\": 2, \"step\": 18, \"train_loss\": 1.9, \"train_acc\": 0.29, \"val_loss\": "
        "null, \"val_acc\": null, \"lr\": 0.0, \"seconds\": 2.7, \"img_per_s\": 913.6}\n";
    static const char summary_a[] =
        "{\"test_acc\": 0.30, \"best_val_acc\": null, \"final_val_acc\": null, \"epochs\": 2, "
        "\"seconds\": 9.9, \"train_img_per_s\": 878.6}\n";
    static const char summary_b[] =
        "{\"test_acc\": 0.34, \"best_val_acc\": null, \"final_val_acc\": null, \"epochs\": 2, "
        "\"seconds\": 8.1, \"train_img_per_s\": 901.2}\n";
    make_point("lr=0.01_wd=5e-4_opt=sgd", "0.01", metrics_noval, summary_a);
    make_point("lr=0.1_wd=5e-4_opt=adamw", "0.1", metrics_noval, summary_b);
    make_point("lr=0.1_wd=5e-3_opt=sgd", "0.1", "{\"epoch\": 1, \"train_acc\": 0.2}\n", NULL);
    static const char *const keys[] = {"optimizer.lr", "optimizer.weight_decay",
                                       "optimizer.type"};
    static const char *const va[] = {"0.01", "5e-4", "sgd"}, *const vb[] = {"0.1", "5e-4", "adamw"};
    static const char *const vc[] = {"0.1", "5e-3", "sgd"}, *const vd[] = {"0.01", "5e-3", "adamw"};
    const struct hooks_sweep_point points[] = {
        {.name = "lr=0.01_wd=5e-4_opt=sgd", .status = "done",
         .run_dir = "runs/lr=0.01_wd=5e-4_opt=sgd", .values = va},
        {.name = "lr=0.1_wd=5e-4_opt=adamw", .status = "done",
         .run_dir = "runs/lr=0.1_wd=5e-4_opt=adamw", .values = vb},
        {.name = "lr=0.1_wd=5e-3_opt=sgd", .status = "running",
         .run_dir = "runs/lr=0.1_wd=5e-3_opt=sgd", .values = vc},
        {.name = "lr=0.01_wd=5e-3_opt=adamw", .status = "pending",
         .run_dir = "runs/lr=0.01_wd=5e-3_opt=adamw", .values = vd},
    };
    /* Only the new points: the three of setup() are not part of this sweep. */
    assert_int_equal(tmpdir_remove(tmpdir_path(F.dir, "runs/lr=1e-3")), 0);
    assert_int_equal(tmpdir_remove(tmpdir_path(F.dir, "runs/lr=3e-4")), 0);
    assert_int_equal(tmpdir_remove(tmpdir_path(F.dir, "runs/lr=1e-1")), 0);
    struct hooks_sweep sw = {.name = "quick-grid", .dir = F.dir, .keys = keys, .nkeys = 3,
                             .points = points, .npoints = 4, .finished = false};
    report_ok(project_hook(), &sw);
    char *html = sweep_file("sweep.html");
    tag_has(html, "p", "id=\"best\"", "data-point=\"lr=0.1_wd=5e-4_opt=adamw\"");
    tag_has(html, "p", "id=\"best\"", "data-metric=\"test_acc\"");
    has(html, "sweep.html", "34.0%</span> test accuracy (no validation split)");
    has(html, "sweep.html", "<meta content=\"30\" http-equiv=\"refresh\">");
    tag_has(html, "html", "lang=\"en\"", "data-state=\"running\"");
    assert_int_equal(count_tags(html, "tr", "data-point="), 4);
    tag_has(html, "tr", "data-point=\"lr=0.01_wd=5e-3_opt=adamw\"", "data-status=\"pending\"");
    assert_null(strstr(html, "id=\"chart-val-acc\""));
    tag_has(html, "svg", "id=\"chart-train-acc\"", NULL);
    has(html, "sweep.html", "data-series=\"lr=0.1_wd=5e-3_opt=sgd\" data-points=\"1\"");
    tag_has(html, "svg", "id=\"chart-vs-optimizer-lr\"", "data-log-x=\"true\"");
    tag_has(html, "svg", "id=\"chart-vs-optimizer-weight_decay\"", "data-log-x=\"false\"");
    assert_null(strstr(html, "chart-vs-optimizer-type"));
    self_contained(html);
    free(html);
    python_check();
}

/* Files mode: no swept keys, so no chart against them; an interrupted point keeps its curve
 * (dashed) and is listed as unfinished. */
static void test_sweep_page_files(void **state)
{
    (void)state;
    const struct hooks_sweep_point points[] = {
        {.name = "lr=1e-3", .status = "done", .run_dir = "runs/lr=1e-3"},
        {.name = "lr=1e-1", .status = "interrupted", .run_dir = "runs/lr=1e-1"},
    };
    assert_int_equal(tmpdir_remove(tmpdir_path(F.dir, "runs/lr=3e-4")), 0);
    struct hooks_sweep sw = {.name = "files", .dir = F.dir, .points = points, .npoints = 2,
                             .finished = true};
    report_ok(project_hook(), &sw);
    char *html = sweep_file("sweep.html");
    tag_has(html, "p", "id=\"best\"", "data-point=\"lr=1e-3\"");
    has(html, "sweep.html", "data-series=\"lr=1e-1\" data-points=\"1\"");
    tag_has(html, "polyline", "data-series=\"lr=1e-1\"", "stroke-dasharray");
    tag_has(html, "li", "data-point=\"lr=1e-1\"", "data-status=\"interrupted\"");
    assert_null(strstr(html, "class=\"vs\""));
    assert_null(strstr(html, "data-key=\"optimizer"));
    self_contained(html);
    free(html);
    python_check();
}

int main(int argc, char **argv)
{
    if (argc > 1) source_dir = argv[1];
    static const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_sweep_table),
        T(test_sweep_sandbox),
        T(test_sweep_errors),
        T(test_sweep_page),
        T(test_sweep_page_running),
        T(test_sweep_page_files),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
