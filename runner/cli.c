/*
 * cli.c: commands, their help, and their arguments: FILE, key=value overrides, options.
 * Covered by tests/test_cli.sh.
 */
#include "cli.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "device.h"
#include "graph.h"
#include "model.h"
#include "plan.h"
#include "schema.h"
#include "spec.h"
#include "summary.h"

#ifndef RUNNER_VERSION
#define RUNNER_VERSION "0.1.0"
#endif

struct command {
    const char *name;
    const char *args;
    const char *summary;
    const char *help; /* what `runner NAME --help` adds below the usage line */
    int (*run)(const char *file, const char *const *overrides, size_t n);
};

/* --------------------------------------------------------------------------------------- */

static int load(const char *file, const char *const *ov, size_t n, struct spec **s)
{
    struct diag d = {.out = stderr};
    enum status st = spec_load(file, ov, n, &d, s);
    if (st && d.errors > 1) fprintf(stderr, "%d errors\n", d.errors);
    return (int)st;
}

/* Loads the experiment and expands its graph; *g is NULL when the caller passes no g. */
static int load_model(const char *file, const char *const *ov, size_t n, struct spec **s,
                      struct graph **g)
{
    int rc = load(file, ov, n, s);
    if (rc) return rc;
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

static int cmd_check(const char *file, const char *const *ov, size_t n)
{
    struct spec *s;
    int rc = load_model(file, ov, n, &s, NULL);
    if (rc) return rc;
    printf("%s: ok (%s)\n", s->file->name, s->name);
    spec_free(s);
    return 0;
}

static int cmd_plan(const char *file, const char *const *ov, size_t n)
{
    struct spec *s;
    struct graph *g;
    int rc = load_model(file, ov, n, &s, &g);
    if (rc) return rc;
    /* device: cuda plans for the GPU even where none is present; auto plans for this machine. */
    bool cuda = s->device.kind == SPEC_DEVICE_CUDA;
    struct spec_device dev;
    char msg[256];
    if (s->device.kind == SPEC_DEVICE_AUTO && device_resolve(&s->device, &dev, msg, sizeof msg) == 0)
        cuda = dev.kind == SPEC_DEVICE_CUDA;
    /* The CPU plan's real arenas (sized, not allocated); a GPU plan is estimated here. */
    struct plan *pl = NULL;
    if (!cuda) {
        struct plan_options o = {.batch = s->train.batch_size,
                                 .optimizer_slots = model_optimizer_slots(s),
                                 .seed = (uint64_t)s->seed, .sizes_only = true};
        struct diag d = {.out = stderr};
        if (plan_create(g, &backend_cpu, &o, &d, &pl)) {
            graph_free(g);
            spec_free(s);
            return 2;
        }
    }
    summary_print(stdout, s, g, cuda, pl ? &pl->sizes : NULL);
    plan_free(pl);
    graph_free(g);
    spec_free(s);
    return 0;
}

static int cmd_config(const char *file, const char *const *ov, size_t n)
{
    struct spec *s;
    int rc = load(file, ov, n, &s);
    if (rc) return rc;
    spec_write_yaml(s, stdout);
    spec_free(s);
    return 0;
}

static int cmd_train(const char *file, const char *const *ov, size_t n)
{
    struct spec *s;
    int rc = load_model(file, ov, n, &s, NULL);
    if (rc) return rc;
    struct spec_device dev;
    char msg[512];
    if (device_resolve(&s->device, &dev, msg, sizeof msg)) {
        struct diag d = {.out = stderr};
        diag_error(&d, spec_mark(s, "device"), "%s", msg);
        diag_hint(&d, "use device: auto to fall back to the CPU");
        spec_free(s);
        return 2;
    }
    printf("experiment %s (%s) is valid; device: %s", s->name, s->file->name,
           dev.kind == SPEC_DEVICE_CPU ? "cpu" : "cuda");
    if (dev.kind == SPEC_DEVICE_CUDA) printf(":%d", dev.index);
    printf("\n# resolved configuration\n");
    spec_write_yaml(s, stdout);
    printf("# this version of runner validates experiments; it does not train yet\n");
    spec_free(s);
    return 0;
}

static int cmd_schema(const char *file, const char *const *ov, size_t n)
{
    (void)file, (void)ov, (void)n;
    schema_write_markdown(stdout);
    graph_write_markdown(stdout);
    return 0;
}

static const struct command commands[] = {
    {"train", "FILE [key=value ...]", "run an experiment (the default command)",
     "Loads FILE with its extends chain and overrides, checks it, and runs it.\n", cmd_train},
    {"check", "FILE [key=value ...]", "validate an experiment: exit 0 if valid, 2 if not",
     "Checks the experiment and its graph (ops, settings, shapes, names) and prints\n"
     "every error as FILE:LINE:COL with the line and a hint, or \"ok\".\n", cmd_check},
    {"config", "FILE [key=value ...]", "print the resolved configuration as YAML",
     "Every key with its value after extends, overrides and defaults.\n", cmd_config},
    {"plan", "FILE [key=value ...]", "print the network: layers, shapes, counts, memory",
     "Expands the experiment's graph and prints every layer (name, op, settings, output\n"
     "shape, parameters, multiply-adds), the totals, and the memory one training step\n"
     "needs at train.batch_size. Another model: runner plan FILE model=models/resnet18.yaml\n",
     cmd_plan},
    {"schema", "", "print the reference of every YAML key and op (Markdown)",
     "Every key of an experiment file (type, default, allowed values, meaning), the\n"
     "structure of graph files, and every op with its settings.\n", cmd_schema},
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
            "usage: runner FILE [key=value ...]\n"
            "       runner COMMAND [ARGS] [--help]\n"
            "\n"
            "runner trains image classifiers declared in YAML: the network, the data and its\n"
            "augmentation, the optimizer and the schedule.\n"
            "\n"
            "commands:\n");
    for (size_t i = 0; i < ARRAY_LEN(commands); i++)
        fprintf(out, "  %-8s %-22s %s\n", commands[i].name, commands[i].args,
                commands[i].summary);
    fprintf(out,
            "\n"
            "Overrides set keys as if written in FILE, and are checked the same way:\n"
            "  runner experiments/resnet50_adam.yaml optimizer.lr=3e-4 train.epochs=5\n"
            "\n"
            "options: --help (also after a command), --version\n"
            "exit status: 0 success, 1 runtime failure, 2 bad configuration or device\n");
}

static void command_help(const struct command *c)
{
    printf("usage: runner %s %s\n\n%s - %s\n\n%s", c->name, c->args, c->name, c->summary,
           c->help);
    if (strstr(c->args, "key=value"))
        printf("\nkey=value sets a key as if written in FILE (paths relative to FILE), e.g.\n"
               "  optimizer.lr=3e-4  train.epochs=5  optimizer.betas=[0.9,0.99]\n");
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
    int first = c ? 2 : 1;
    if (!c) c = find_command("train");
    const char *file = NULL;
    const char *ov[256];
    size_t n = 0;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            command_help(c);
            return 0;
        }
        if (a[0] == '-' && a[1]) {
            fprintf(stderr, "runner %s: error: unknown option '%s'\n", c->name, a);
            fprintf(stderr, "hint: runner %s --help lists what it takes\n", c->name);
            return 2;
        }
        bool wants_file = strstr(c->args, "FILE") != NULL;
        if (wants_file && !file) {
            file = a;
        } else if (wants_file) {
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
    if (strstr(c->args, "FILE") && !file) {
        fprintf(stderr, "runner %s: error: no experiment file given\n", c->name);
        fprintf(stderr, "usage: runner %s %s\n", c->name, c->args);
        return 2;
    }
    return c->run(file, ov, n);
}
