/*
 * cli.c: commands, their help, and their arguments: FILE, key=value overrides, options.
 * Covered by tests/test_cli.sh.
 */
#include "cli.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench.h"
#include "data.h"
#include "folder.h"
#include "device.h"
#include "gpu_plan.h"
#include "graph.h"
#include "model.h"
#include "plan.h"
#include "pretrained.h"
#include "schema.h"
#include "spec.h"
#include "summary.h"
#include "sweep.h"
#include "train.h"
#include "url.h"
#include "eval_cmd.h"
#include "export.h"
#include "report_cmd.h"
#include "run_files.h"

#ifndef RUNNER_VERSION
#define RUNNER_VERSION "0.1.0"
#endif

#define MAX_OPTIONS 8

/* An option of a command: "--name VALUE" (or "--name=VALUE"), or a flag "--name". */
struct option {
    const char *name;
    bool value;
};

/* What a command is given. */
struct args {
    const char *file;
    const char *const *ov; /* key=value overrides */
    size_t n;
    const char *opt[MAX_OPTIONS]; /* per option of the command: its value ("" for a flag
                                     given), or NULL when absent */
};

struct command {
    const char *name;
    const char *args;
    const char *summary;
    const char *help; /* what `runner NAME --help` adds below the usage line */
    int (*run)(const struct args *a);
    const struct option *options; /* NULL-terminated, or NULL */
    /* A command that reads its own arguments (those after its name) instead: the exit code,
     * or -1 for --help. */
    int (*main)(int argc, char **argv);
};

/* --------------------------------------------------------------------------------------- */

static int load(const char *file, const char *const *ov, size_t n, struct spec **s)
{
    struct diag d = {.out = stderr};
    enum status st = spec_load(file, ov, n, &d, s);
    if (st && d.errors > 1) fprintf(stderr, "%d errors\n", d.errors);
    return (int)st;
}

static int build_model(struct spec **s, struct graph **g);

/* Loads the experiment and expands its graph; *g is NULL when the caller passes no g. */
static int load_model(const char *file, const char *const *ov, size_t n, struct spec **s,
                      struct graph **g)
{
    int rc = load(file, ov, n, s);
    return rc ? rc : build_model(s, g);
}

/* Expands the loaded experiment's graph (frees *s on failure). */
static int build_model(struct spec **s, struct graph **g)
{
    struct diag d = {.out = stderr};
    struct graph *graph;
    enum status st = model_build(*s, &d, &graph);
    if (st) {
        if (d.errors > 1) fprintf(stderr, "%d errors\n", d.errors);
        spec_free(*s);
        *s = NULL;
        return (int)st;
    }
    if (g)
        *g = graph;
    else
        graph_free(graph);
    return 0;
}

static int cmd_check(const struct args *a)
{
    const char *file = a->file;
    const char *const *ov = a->ov;
    size_t n = a->n;
    struct spec *s;
    int rc = load_model(file, ov, n, &s, NULL);
    if (rc) return rc;
    printf("%s: ok (%s)\n", s->file->name, s->name);
    spec_free(s);
    return 0;
}

static const struct option plan_options[] = {{"--gpu", true}, {NULL, false}};

/* The GPU a plan is for: --gpu's compute capability (want_cc), else that of the GPU the
 * experiment would use, else DEVICE_CC_DEFAULT's; gpu names it in messages, t->source says
 * where the capability came from. */
static void plan_gpu(const struct spec *s, const char *opt, int want_cc,
                     struct summary_target *t, char *gpu, size_t size, char *source,
                     size_t ssize)
{
    char why[300];
    int index = s->device.kind == SPEC_DEVICE_CUDA ? s->device.index : 0;
    t->cuda = true;
    if (want_cc) {
        t->cc = want_cc;
        snprintf(gpu, size, "the GPU planned for (--gpu %s)", opt);
        snprintf(source, ssize, "as --gpu %s asks", opt);
    } else if (index < device_cuda_count(why, sizeof why) &&
               (t->cc = device_gpu_info(index, gpu, size)) > 0) {
        snprintf(source, ssize, "that of %s", gpu);
    } else {
        t->cc = DEVICE_CC_DEFAULT;
        snprintf(gpu, size, "the GPU planned for (compute capability %d.%d without --gpu)",
                 t->cc / 10, t->cc % 10);
        snprintf(source, ssize, "the default without a GPU (--gpu sm_XY plans for another)");
    }
    t->source = source;
}

static int cmd_plan(const struct args *a)
{
    const char *file = a->file;
    const char *const *ov = a->ov;
    size_t n = a->n;
    int want_cc = 0;
    if (a->opt[0] && (want_cc = device_cc_parse(a->opt[0])) < 0) {
        fprintf(stderr, "runner plan: error: --gpu takes a compute capability of %d.%d or newer, "
                "as sm_75 or 7.5, got '%s'\n", DEVICE_CC_MIN / 10, DEVICE_CC_MIN % 10, a->opt[0]);
        fprintf(stderr, "hint: --gpu sm_75 (T4), sm_80 (A100), sm_86, sm_89, sm_90 (H100), "
                "sm_100, sm_110, sm_120\n");
        return 2;
    }
    struct spec *s;
    struct graph *g;
    int rc = load_model(file, ov, n, &s, &g);
    if (rc) return rc;
    struct diag d = {.out = stderr};
    /* device: cuda, or --gpu, plans for a GPU even where none is present; auto plans for this
     * machine. */
    bool cuda = s->device.kind == SPEC_DEVICE_CUDA;
    struct spec_device dev;
    char msg[256];
    if (s->device.kind == SPEC_DEVICE_AUTO && device_resolve(&s->device, &dev, msg, sizeof msg) == 0)
        cuda = dev.kind == SPEC_DEVICE_CUDA;
    if (want_cc && s->device.kind == SPEC_DEVICE_CPU) {
        diag_error(&d, spec_mark(s, "device"), "--gpu %s plans for a GPU, but the experiment "
                   "asks for the CPU", a->opt[0]);
        diag_hint(&d, "device=cuda (or auto) with --gpu");
        rc = 2;
        goto out;
    }
    /* The precision there (device_precision, as a run decides it), and the plan's real
     * arenas: the CPU's sized (not allocated), the GPU's from its planning. */
    struct summary_target t = {.cuda = false};
    char gpu[320], source[400];
    if (want_cc || cuda) plan_gpu(s, a->opt[0], want_cc, &t, gpu, sizeof gpu, source, sizeof source);
    if (summary_plan(stdout, s, g, &t, gpu, &d)) rc = 2;
out:
    graph_free(g);
    spec_free(s);
    return rc;
}

static int cmd_config(const struct args *a)
{
    const char *file = a->file;
    const char *const *ov = a->ov;
    size_t n = a->n;
    struct spec *s;
    int rc = load(file, ov, n, &s);
    if (rc) return rc;
    spec_write_yaml(s, stdout);
    spec_free(s);
    return 0;
}

/* A count option's value: a whole number in [lo, hi]. */
static bool count_option(const char *name, const char *v, int lo, int hi, int *out)
{
    char *end;
    long x = strtol(v, &end, 10);
    if (!*v || *end || x < lo || x > hi) {
        fprintf(stderr, "runner: error: %s must be a whole number from %d to %d, got '%s'\n",
                name, lo, hi, v);
        return false;
    }
    *out = (int)x;
    return true;
}

static const struct option train_options[] = {
    {"--out", true}, {"--profile", false}, {"--resume", true}, {"--stop-after-epoch", true},
    {NULL, false}};

/* "runner FILE key=value ..." with what a shell would need quoted, for the resume hint. Only
 * called once the experiment has loaded, so no word is empty: FILE opened, and every
 * override holds a '='. */
static char *command_line(const struct args *a)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) abort();
    fprintf(f, "runner");
    for (size_t i = 0; i <= a->n; i++) {
        fputc(' ', f);
        run_files_shell_word(f, i == 0 ? a->file : a->ov[i - 1]);
    }
    fclose(f);
    return text;
}

static int cmd_train(const struct args *a)
{
    struct spec *s;
    struct graph *g;
    int rc = load_model(a->file, a->ov, a->n, &s, &g);
    if (rc) return rc;
    struct spec_device dev;
    char msg[512];
    struct diag d = {.out = stderr};
    if (device_resolve(&s->device, &dev, msg, sizeof msg)) {
        diag_error(&d, spec_mark(s, "device"), "%s", msg);
        diag_hint(&d, "use device: auto to fall back to the CPU");
        rc = 2;
    } else if (a->opt[0] && a->opt[2]) {
        fprintf(stderr, "runner train: error: --out and --resume exclude each other (a resumed "
                        "run goes on in its own directory)\n");
        rc = 2;
    } else {
        struct train_options o = {.out = a->opt[0], .profile = a->opt[1] != NULL,
                                  .resume = a->opt[2], .command = command_line(a)};
        int stop = 0;
        if (a->opt[3] && !count_option("--stop-after-epoch", a->opt[3], 1, 1000000, &stop)) {
            rc = 2;
        } else {
            o.stop_after_epoch = stop;
            rc = (int)train_run(s, g, &o);
        }
        free((char *)o.command);
    }
    graph_free(g);
    spec_free(s);
    return rc;
}

static int cmd_schema(const struct args *a)
{
    (void)a;
    schema_write_markdown(stdout);
    graph_write_markdown(stdout);
    return 0;
}

static const struct option bench_options[] = {
    {"--mode", true}, {"--steps", true}, {"--warmup", true}, {"--profile", false}, {NULL, false}};

static int cmd_bench(const struct args *a)
{
    struct bench_options o = {.steps = 5, .warmup = 2, .profile = a->opt[3] != NULL};
    if (a->opt[0]) {
        if (strcmp(a->opt[0], "train") && strcmp(a->opt[0], "infer")) {
            fprintf(stderr, "runner bench: error: --mode must be train or infer, got '%s'\n",
                    a->opt[0]);
            return 2;
        }
        o.infer = strcmp(a->opt[0], "infer") == 0;
    }
    if ((a->opt[1] && !count_option("--steps", a->opt[1], 1, 100000, &o.steps)) ||
        (a->opt[2] && !count_option("--warmup", a->opt[2], 0, 100000, &o.warmup)))
        return 2;
    struct spec *s;
    struct graph *g;
    int rc = load_model(a->file, a->ov, a->n, &s, &g);
    if (rc) return rc;
    struct spec_device dev;
    char msg[256];
    if (device_resolve(&s->device, &dev, msg, sizeof msg)) {
        struct diag d = {.out = stderr};
        diag_error(&d, spec_mark(s, "device"), "%s", msg);
        diag_hint(&d, "use device: auto to fall back to the CPU");
        rc = 2;
    } else {
        rc = (int)bench_run(s, g, &o, stdout);
    }
    graph_free(g);
    spec_free(s);
    return rc;
}

static const struct option eval_options[] = {{"--out", true}, {NULL, false}};

/* RUN_DIR (its config.yaml, and model.safetensors beside it) or FILE (with
 * model.pretrained): the experiment, its graph and the weights' path, for runner CMD. */
static int load_weighted(const struct args *a, const char *cmd, struct spec **s,
                         struct graph **g, char *weights, size_t size)
{
    struct stat sb;
    bool run_dir = stat(a->file, &sb) == 0 && S_ISDIR(sb.st_mode);
    struct diag d = {.out = stderr};
    *s = NULL;
    int rc = run_dir ? (int)spec_load_run(a->file, a->ov, a->n, &d, s)
                     : load(a->file, a->ov, a->n, s);
    if (rc || (rc = build_model(s, g))) return rc;
    if (run_dir)
        snprintf(weights, size, "%s/model.safetensors", a->file);
    else if ((*s)->model.pretrained)
        snprintf(weights, size, "%s", (*s)->model.pretrained);
    else
        weights[0] = 0;
    if (!weights[0]) {
        diag_error(&d, spec_mark(*s, "model"), "runner %s needs weights: a run directory, or "
                   "model.pretrained", cmd);
        diag_hint(&d, "runner %s %s model.pretrained=W.safetensors", cmd, a->file);
        graph_free(*g);
        spec_free(*s);
        return 2;
    }
    /* model.pretrained as a file: a URL's copy in the cache, downloaded when missing */
    if (!run_dir && (rc = (int)pretrained_fetch(*s, NULL, &d, weights, size))) {
        graph_free(*g);
        spec_free(*s);
        return rc;
    }
    return 0;
}

static int cmd_eval(const struct args *a)
{
    struct spec *s;
    struct graph *g;
    struct diag d = {.out = stderr};
    char weights[4200], out[4300];
    int rc = load_weighted(a, "eval", &s, &g, weights, sizeof weights);
    if (rc) return rc;
    struct stat sb;
    bool run_dir = stat(a->file, &sb) == 0 && S_ISDIR(sb.st_mode);
    struct spec_device dev;
    char msg[256];
    if (device_resolve(&s->device, &dev, msg, sizeof msg)) {
        diag_error(&d, spec_mark(s, "device"), "%s", msg);
        diag_hint(&d, "use device: auto to fall back to the CPU");
        rc = 2;
    } else {
        bool url = !run_dir && url_has_scheme(s->model.pretrained);
        if (a->opt[0]) {
            snprintf(out, sizeof out, "%s", a->opt[0]);
        } else if (!rc && url) {
            snprintf(out, sizeof out, "results/%s/eval", s->name); /* not in the cache */
        } else if (!rc) {
            const char *slash = strrchr(weights, '/');
            int len = slash ? (int)(slash - weights) : 1;
            snprintf(out, sizeof out, "%.*s/eval", len, slash ? weights : ".");
        }
        if (!rc) rc = (int)eval_run(s, g, weights, out);
    }
    graph_free(g);
    spec_free(s);
    return rc;
}

static const struct option export_options[] = {
    {"--out", true}, {"--batch", true}, {"--opset", true}, {"--normalize", false},
    {"--fold-bn", false}, {NULL, false}};

/* A whole number in [lo, hi] from an option's text, or false (reported). */
static bool option_int(const char *name, const char *text, long long lo, long long hi,
                       long long *v)
{
    char *end;
    errno = 0;
    *v = strtoll(text, &end, 10);
    if (errno || end == text || *end || *v < lo || *v > hi) {
        fprintf(stderr, "runner export: error: %s must be an integer from %lld to %lld, got "
                "\"%s\"\n", name, lo, hi, text);
        return false;
    }
    return true;
}

static int cmd_export(const struct args *a)
{
    struct export_options o = {.opset = 17, .normalize = a->opt[3] != NULL,
                               .fold_bn = a->opt[4] != NULL};
    long long v;
    if (a->opt[1]) {
        if (!option_int("--batch", a->opt[1], 1, 1 << 20, &v)) return 2;
        o.batch = v;
    }
    if (a->opt[2]) {
        if (!option_int("--opset", a->opt[2], EXPORT_OPSET_MIN, EXPORT_OPSET_MAX, &v)) return 2;
        o.opset = (int)v;
    }
    struct spec *s;
    struct graph *g;
    char weights[4200], out[4300];
    int rc = load_weighted(a, "export", &s, &g, weights, sizeof weights);
    if (rc) return rc;
    struct stat sb;
    if (a->opt[0])
        snprintf(out, sizeof out, "%s", a->opt[0]);
    else if (stat(a->file, &sb) == 0 && S_ISDIR(sb.st_mode))
        snprintf(out, sizeof out, "%s/model.onnx", a->file);
    else
        snprintf(out, sizeof out, "%s.onnx", s->name);
    struct diag d = {.out = stderr};
    rc = (int)export_onnx(s, g, weights, out, &o, &d);
    if (!rc) printf("%s: %zu layers, opset %d\n", out, g->nlayers, o.opset);
    graph_free(g);
    spec_free(s);
    return rc;
}

static int cmd_report(const struct args *a) { return (int)report_run(a->file); }

/* runner download [DIR]: the download a run makes when its data is missing, then the check
 * a run makes of the files. Reads its own arguments: the exit code, -1 for --help. */
static int cmd_download_main(int argc, char **argv)
{
    const char *dir = NULL;
    bool c100 = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return -1;
        if (strcmp(a, "--cifar100") == 0) {
            c100 = true;
            continue;
        }
        if (a[0] == '-' && a[1]) {
            fprintf(stderr, "runner download: error: unknown option '%s'\n", a);
            fprintf(stderr, "hint: runner download --help lists what it takes\n");
            return 2;
        }
        if (dir) {
            fprintf(stderr, "runner download: error: unexpected argument '%s'\n", a);
            return 2;
        }
        dir = a;
    }
    char root[4096], batches[4200];
    if (dir) snprintf(root, sizeof root, "%s", dir);
    else data_root(NULL, root, sizeof root);
    snprintf(batches, sizeof batches, "%s/%s", root,
             c100 ? "cifar-100-binary" : "cifar-10-batches-bin");
    struct diag d = {.out = stderr};
    struct stat sb;
    if (stat(batches, &sb) == 0 && S_ISDIR(sb.st_mode))
        fprintf(stderr, "runner: %s/ is already there\n", batches);
    else if (c100 ? cifar100_download(root, NULL, &d) : cifar10_download(root, NULL, &d))
        return 1;
    struct data c;
    if (c100 ? cifar100_load(root, false, false, NULL, &d, &c)
             : cifar10_load(root, false, NULL, &d, &c))
        return 1;
    printf("%s/: %lld training and %lld test images, checked\n", batches,
           (long long)c.train.n, (long long)c.test.n);
    data_free(&c);
    return 0;
}

/* runner folder OUT [--subset N] [--test-subset N] [--jpeg [Q]] [--cifar100]: CIFAR written
 * out as a folder dataset. Reads its own arguments: the exit code, -1 for --help. */
static int cmd_folder_main(int argc, char **argv)
{
    const char *out = NULL;
    long long subset = 0, test_subset = 0;
    int quality = 0;
    bool c100 = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        char *end = NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return -1;
        if (strcmp(a, "--cifar100") == 0) {
            c100 = true;
        } else if ((strcmp(a, "--subset") == 0 || strcmp(a, "--test-subset") == 0) &&
                   i + 1 < argc) {
            long long v = strtoll(argv[i + 1], &end, 10);
            if (!*argv[i + 1] || *end || v < 0) {
                fprintf(stderr, "runner folder: error: %s takes a count, not '%s'\n", a,
                        argv[i + 1]);
                return 2;
            }
            *(a[2] == 's' ? &subset : &test_subset) = v;
            i++;
        } else if (strcmp(a, "--jpeg") == 0) {
            quality = 95;
            if (i + 1 < argc && argv[i + 1][0] != '-') {
                long q = strtol(argv[i + 1], &end, 10);
                if (*end || q < 1 || q > 100) {
                    fprintf(stderr, "runner folder: error: --jpeg takes a quality of 1-100, "
                            "not '%s'\n", argv[i + 1]);
                    return 2;
                }
                quality = (int)q;
                i++;
            }
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "runner folder: error: unknown option '%s'\n", a);
            fprintf(stderr, "hint: runner folder --help lists what it takes\n");
            return 2;
        } else if (out) {
            fprintf(stderr, "runner folder: error: unexpected argument '%s'\n", a);
            return 2;
        } else {
            out = a;
        }
    }
    if (!out) {
        fprintf(stderr, "runner folder: error: name the folder to write (runner folder OUT)\n");
        return 2;
    }
    char root[4096];
    data_root(NULL, root, sizeof root);
    struct diag d = {.out = stderr};
    struct data c;
    if (c100 ? cifar100_load(root, false, false, NULL, &d, &c)
             : cifar10_load(root, false, NULL, &d, &c))
        return 1;
    enum status st = folder_export(&c, out, subset, test_subset, quality, &d);
    if (!st)
        printf("%s/: %lld training and %lld test images of %s as %s\n", out,
               subset ? subset : (long long)c.train.n,
               test_subset && test_subset < c.test.n ? test_subset : (long long)c.test.n,
               c100 ? "CIFAR-100" : "CIFAR-10", quality ? "JPEG" : "PNG");
    data_free(&c);
    return st ? 1 : 0;
}

static const struct command commands[] = {
    {"train", "FILE [key=value ...] [--out DIR] [--resume DIR] [--stop-after-epoch N] [--profile]",
     "run an experiment (the default command)",
     "Loads FILE with its extends chain and overrides, checks it, and runs it: trains,\n"
     "validates every epoch, tests at the end, and writes every result into the run\n"
     "directory, results/NAME/YYYYmmdd-HHMMSS/ (--out DIR: that folder instead).\n"
     "--resume DIR continues the run in DIR from its latest checkpoint (the same\n"
     "experiment and overrides); --stop-after-epoch N saves a checkpoint after epoch N\n"
     "and stops. SIGINT or SIGTERM: the step under way ends, a checkpoint is saved, and\n"
     "the run exits 130 or 143 with the resume command.\n"
     "--profile adds where the time went (passes, data loading, op kinds).\n"
     "  runner experiments/quick.yaml train.epochs=2 --out /tmp/quick\n",
     cmd_train, train_options, NULL},
    {"eval", "RUN_DIR | FILE [key=value ...] [--out DIR]",
     "test trained weights: accuracy, confusion matrix, per-class metrics",
     "Measures weights on the test set as at the end of a run: RUN_DIR's\n"
     "model.safetensors with its config.yaml (run it from where the run was started), or\n"
     "FILE's network with model.pretrained=W.safetensors (or a URL, downloaded into the\n"
     "cache when missing). Writes summary.json, confusion_matrix.csv, per_class.csv and\n"
     "samples/ into eval/ beside the weights (results/NAME/eval/ for a URL), or into\n"
     "--out DIR.\n"
     "  runner eval results/quick/20261125-001512 eval.flip_tta=true\n",
     cmd_eval, eval_options, NULL},
    {"export",
     "RUN_DIR | FILE [key=value ...] [--out FILE.onnx] [--batch N] [--opset N] [--normalize] "
     "[--fold-bn]",
     "write the network and its weights as an ONNX model",
     "Writes RUN_DIR's model.safetensors with its config.yaml's network, or FILE's network\n"
     "with model.pretrained=W.safetensors, as an ONNX model: RUN_DIR/model.onnx, or\n"
     "NAME.onnx (--out FILE.onnx: there). Its input is images (N, 3, H, W) float32, its\n"
     "output logits; the weights keep their names. --batch N fixes the batch size\n"
     "(otherwise symbolic, N), --opset N the ONNX opset (17; 13 to 21), --normalize\n"
     "folds augment.eval's normalize into the model, which then takes RGB in [0, 1].\n"
     "--fold-bn folds each batchnorm that follows a conv into that conv's weight and bias\n"
     "(<conv>.bias): no BatchNormalization nodes, the same logits up to rounding.\n"
     "  runner export results/quick/20261125-001512 --normalize\n",
     cmd_export, export_options, NULL},
    {"report", "RUN_DIR", "run a finished run's hooks again (report.html)",
     "Calls on_start, then on_end, of the hooks in RUN_DIR/config.yaml with the run's\n"
     "files, as at the end of the run: report.lua writes report.html again. Run it from\n"
     "where the run was started (config.yaml's paths are relative to it); a hook not\n"
     "found there is looked for in the project's hooks/. Exit status: 0, 1 when a hook\n"
     "failed, 2 when RUN_DIR is not a finished run (no config.yaml or summary.json).\n"
     "  runner report results/quick/20261125-001512\n",
     cmd_report, NULL, NULL},
    {"sweep",
     "FILE... | BASE --grid KEY=V1,V2,... | BASE --random N --range KEY=LO:HI [key=value ...] "
     "[options]",
     "run a set of experiments and compare them (sweep.csv)",
     "Runs every point of the sweep, each a run directory in the sweep directory,\n"
     "results/sweeps/NAME-HASH/ (the same command finds the same directory again;\n"
     "--out DIR: that folder instead), and keeps sweep.csv there: every point's\n"
     "values, status, best and final validation accuracy, test accuracy, time, img/s.\n"
     "  FILE...                  each experiment file is a point\n"
     "  --grid KEY=V1,V2,...     BASE at each value (values as typed); several --grid:\n"
     "                           every combination, the first varying slowest; a point\n"
     "                           file per point, e.g. lr=3e-4_epochs=20.yaml\n"
     "  --random N --range KEY=[log:|int:]LO:HI ... [--seed S]\n"
     "                           N points drawn from the ranges (log-uniform for keys\n"
     "                           named lr or *_lr), seed S (0)\n"
     "  key=value                set for every point\n"
     "  --parallel N             N points at once (CPU: the cores shared among them;\n"
     "                           several GPUs: a point on each)\n"
     "  --slurm [-- OPTION ...]  write sweep.sbatch, a Slurm job array of one task per\n"
     "                           point (OPTIONs become #SBATCH lines), and submit it\n"
     "  --dry-run                write the point files and sweep.csv (and sweep.sbatch)\n"
     "                           and start nothing\n"
     "  --only POINT             run that point alone (what each Slurm task does)\n"
     "  --tensorboard            every point with tensorboard=true, and the hparams\n"
     "                           records TensorBoard's HParams tab compares them by\n"
     "Every point is checked before any starts (exit 2 if one is invalid). Running it\n"
     "again skips finished points, resumes interrupted ones from their checkpoints and\n"
     "retries failed ones. A failed point is recorded and the others go on (exit 1).\n"
     "SIGINT or SIGTERM: every running point saves a checkpoint (exit 130 or 143).\n"
     "  runner sweep experiments/resnet50_adam.yaml --grid optimizer.lr=1e-3,3e-4,1e-4\n",
     NULL, NULL, sweep_cmd_main},
    {"check", "FILE [key=value ...]", "validate an experiment: exit 0 if valid, 2 if not",
     "Checks the experiment and its graph (ops, settings, shapes, names) and prints\n"
     "every error as FILE:LINE:COL with the line and a hint, or \"ok\".\n", cmd_check, NULL, NULL},
    {"config", "FILE [key=value ...]", "print the resolved configuration as YAML",
     "Every key with its value after extends, overrides and defaults.\n", cmd_config, NULL, NULL},
    {"plan", "FILE [key=value ...] [--gpu sm_XY]",
     "print the network: layers, shapes, counts, memory",
     "Expands the experiment's graph and prints every layer (name, op, settings, output\n"
     "shape, parameters, multiply-adds), the totals, and the memory one training step\n"
     "needs at train.batch_size. Another model: runner plan FILE model=models/resnet18.yaml\n"
     "A GPU experiment (device: cuda, or auto where a GPU is found) is planned for the\n"
     "GPU's compute capability, at the precision a run takes there (auto: bf16 from 8.0,\n"
     "fp16 below); without a GPU for 9.0 (H100). --gpu sm_XY or X.Y plans for another\n"
     "(sm_75 or 7.5: a T4), on any machine.\n"
     "  runner plan experiments/resnet50_adam.yaml device=cuda --gpu sm_75\n",
     cmd_plan, plan_options, NULL},
    {"schema", "", "print the reference of every YAML key and op (Markdown)",
     "Every key of an experiment file (type, default, allowed values, meaning), the\n"
     "structure of graph files, and every op with its settings.\n", cmd_schema, NULL, NULL},
    {"bench", "FILE [key=value ...] [--mode train|infer] [--steps N] [--warmup N] [--profile]",
     "time training steps or inference on synthetic input",
     "Builds the experiment's network at train.batch_size (eval.batch_size for --mode\n"
     "infer) and times whole training steps (forward, loss, backward, optimizer update:\n"
     "the trainer's step) or inference batches on synthetic input. Prints each step,\n"
     "the peak memory and, last, the median images/s. --steps N timed steps (5),\n"
     "--warmup N untimed steps first (2), --profile the time per op kind and per layer.\n"
     "  runner bench experiments/resnet50_adam.yaml train.batch_size=128 --profile\n",
     cmd_bench, bench_options, NULL},
    {"download", "[DIR] [--cifar100]",
     "download CIFAR-10 (or CIFAR-100) into DIR (RUNNER_DATA, else data/cifar10)",
     "Downloads the official CIFAR-10 archive into DIR as a run does when its data is\n"
     "missing: resumed where an earlier try stopped, retried after network errors, its\n"
     "MD5 checked, unpacked into DIR/cifar-10-batches-bin/; then checks every file as a\n"
     "run does. Data already there is only checked. DIR defaults to RUNNER_DATA, else\n"
     "data/cifar10; RUNNER_CIFAR10_URL (with RUNNER_CIFAR10_MD5) names a mirror.\n"
     "--cifar100: CIFAR-100's binary archive instead, into DIR/cifar-100-binary/\n"
     "(RUNNER_CIFAR100_URL, RUNNER_CIFAR100_MD5).\n"
     "Exit status: 0, 1 when the download or the check failed.\n"
     "  runner download /srv/data/cifar10 && export RUNNER_DATA=/srv/data/cifar10\n",
     NULL, NULL, cmd_download_main},
    {"folder", "OUT [--subset N] [--test-subset N] [--jpeg [QUALITY]] [--cifar100]",
     "write CIFAR-10 (or CIFAR-100) out as a folder dataset of PNG or JPEG files",
     "Reads CIFAR-10 (RUNNER_DATA, else data/cifar10; --cifar100: CIFAR-100) and writes\n"
     "it as a folder dataset, the layout data.dataset: folder reads: OUT/train/<class>/\n"
     "and OUT/test/<class>/, one NNNNN.png per image (NNNNN its index in the set), or\n"
     "NNNNN.jpg with --jpeg (quality 95 unless given). --subset N writes N training\n"
     "images (the first N of the fixed order data.subset uses), --test-subset N the first N\n"
     "test images. A way to try the folder path on known data.\n"
     "Exit status: 0, 1 when the data could not be read or the files written.\n"
     "  runner folder /tmp/cifar10-png --subset 5000 --test-subset 1000\n",
     NULL, NULL, cmd_folder_main},
};

static const struct command *find_command(const char *name)
{
    for (size_t i = 0; i < ARRAY_LEN(commands); i++)
        if (strcmp(commands[i].name, name) == 0) return &commands[i];
    return NULL;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: runner FILE [key=value ...] [--out DIR] [--resume DIR] [--profile]\n"
            "       runner COMMAND [ARGS] [--help]\n"
            "\n"
            "runner trains image classifiers declared in YAML: the network, the data and its\n"
            "augmentation, the optimizer and the schedule.\n"
            "\n"
            "commands:\n");
    for (size_t i = 0; i < ARRAY_LEN(commands); i++)
        if (strlen(commands[i].args) > 22) /* the summary on a line of its own */
            fprintf(out, "  %-8s %s\n  %-8s %-22s %s\n", commands[i].name, commands[i].args, "",
                    "", commands[i].summary);
        else
            fprintf(out, "  %-8s %-22s %s\n", commands[i].name, commands[i].args,
                    commands[i].summary);
    fprintf(out,
            "\n"
            "Overrides set keys as if written in FILE, and are checked the same way:\n"
            "  runner experiments/resnet50_adam.yaml optimizer.lr=3e-4 train.epochs=5\n"
            "\n"
            "options: --help (also after a command), --version\n"
            "exit status: 0 success, 1 runtime failure (runner sweep: a point failed), 2 bad\n"
            "configuration or device, 130/143 stopped by SIGINT/SIGTERM\n");
}

static void command_help(const struct command *c)
{
    printf("usage: runner %s %s\n\n%s - %s\n\n%s", c->name, c->args, c->name, c->summary,
           c->help);
    if (strstr(c->args, "key=value"))
        printf("\nkey=value sets a key as if written in FILE (paths relative to FILE), e.g.\n"
               "  optimizer.lr=3e-4  train.epochs=5  optimizer.betas=[0.9,0.99]\n");
}

/* Whether the command's first argument is a FILE or RUN_DIR (the others are overrides). */
static bool takes_file(const struct command *c)
{
    return strstr(c->args, "FILE") || strstr(c->args, "RUN_DIR");
}

int cli_main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("runner %s\n", RUNNER_VERSION);
        device_write_versions(stdout);
        return 0;
    }
    const struct command *c = find_command(argv[1]);
    if (c && c->main) {
        int rc = c->main(argc - 2, argv + 2);
        if (rc < 0) command_help(c);
        return rc < 0 ? 0 : rc;
    }
    int first = c ? 2 : 1;
    if (!c) c = find_command("train");
    const char *file = NULL;
    const char *ov[256];
    size_t n = 0;
    struct args args = {.ov = ov};
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            command_help(c);
            return 0;
        }
        if (a[0] == '-' && a[1]) {
            size_t len = strcspn(a, "=");
            int k = 0;
            while (c->options && c->options[k].name &&
                   !(strlen(c->options[k].name) == len && strncmp(c->options[k].name, a, len) == 0))
                k++;
            if (!c->options || !c->options[k].name) {
                fprintf(stderr, "runner %s: error: unknown option '%s'\n", c->name, a);
                fprintf(stderr, "hint: runner %s --help lists what it takes\n", c->name);
                return 2;
            }
            if (!c->options[k].value) {
                if (a[len]) {
                    fprintf(stderr, "runner %s: error: %s takes no value\n", c->name,
                            c->options[k].name);
                    return 2;
                }
                args.opt[k] = "";
            } else if (a[len]) {
                args.opt[k] = a + len + 1;
            } else if (i + 1 < argc) {
                args.opt[k] = argv[++i];
            } else {
                fprintf(stderr, "runner %s: error: %s needs a value\n", c->name,
                        c->options[k].name);
                return 2;
            }
            continue;
        }
        if (takes_file(c) && !file) {
            file = a;
        } else if (strstr(c->args, "key=value")) {
            if (n == ARRAY_LEN(ov)) {
                fprintf(stderr, "runner %s: error: more than %zu overrides\n", c->name,
                        ARRAY_LEN(ov));
                return 2;
            }
            ov[n++] = a;
        } else {
            fprintf(stderr, "runner %s: error: unexpected argument '%s'\n", c->name, a);
            return 2;
        }
    }
    if (takes_file(c) && !file) {
        fprintf(stderr, "runner %s: error: no %s given\n", c->name,
                strstr(c->args, "FILE") ? "experiment file" : "run directory");
        fprintf(stderr, "usage: runner %s %s\n", c->name, c->args);
        return 2;
    }
    args.file = file;
    args.n = n;
    return c->run(&args);
}
