/*
 * hooks.h: the experiment's Lua 5.4 hooks (hooks/README.md is the contract with hook
 * writers): one sandboxed Lua state per hook file, called at the start of a run, after every
 * epoch and at its end with tables built from the run directory's files.
 *
 *     const char *dirs[] = {experiment_dir, spec_hooks_dir()};
 *     struct hooks *h;
 *     if (hooks_open(s->hooks.v, s->hooks.n, run_dir, dirs, 2, log, &d, &h)) return 2;
 *     struct hooks_info info = {.name = s->name, .device = "cpu", ...};
 *     hooks_start(h, &info);
 *     const char *why;
 *     if (hooks_epoch_end(h, &info, &why) == HOOK_STOP) ...   // end training, reason `why`
 *     hooks_end(h, &info, NULL);
 *     hooks_free(h);
 *
 * Calls. Every hook that defines the function is called, in list order, even when an earlier
 * one fails. The tables are built afresh for every call (hooks may modify them): run from
 * info and the run directory (config.yaml, metrics.jsonl), result from summary.json,
 * confusion_matrix.csv, per_class.csv and samples/index.csv. A file that is not there yet
 * gives an empty or absent field; a file that cannot be parsed is reported and no hook is
 * called (HOOK_FAILED).
 *
 * Errors. A Lua error in a call is printed to stderr and the log as
 * "hook FILE: FUNCTION: MESSAGE" and Lua's traceback; the state stays usable and is called
 * again next time. So does a call stopped by the instruction budget (the count restarts at
 * every call) or by the memory cap (the state's garbage is collected afterwards).
 *
 * Sandbox (hooks_sandbox.c). The functions README.md lists and nothing else: no debug
 * library, no processes, no binary chunks, no C modules; io.open reads inside the run
 * directory and the hook folders and writes inside the run directory only, never to the
 * runner's own files; require loads NAME.lua from the hook folders; __gc metamethods are
 * refused (finalizers run where the budget cannot stop them); library loops that run in C
 * (string.rep, table.move, table.insert, table.remove) are charged to the budget. Pattern
 * matching is not: a pathological pattern runs to its end.
 *
 * The sweep report (hooks_sweep.c): hooks_sweep_report calls on_sweep(sweep) of one hook file
 * (hooks/sweep_report.lua, writing sweep.html) in a fresh state of the same sandbox whose
 * write root is the sweep directory, with a table of every point (README.md, "Sweep reports"):
 *
 *     const char *values[] = {"3e-4", "20"};
 *     struct hooks_sweep_point pt = {.name = "lr=3e-4_epochs=20", .status = "done",
 *                                    .run_dir = "runs/lr=3e-4_epochs=20", .values = values};
 *     struct hooks_sweep sw = {.name = "quick-lr", .dir = dir, .keys = keys, .nkeys = 2,
 *                              .points = &pt, .npoints = 1, .finished = true};
 *     const char *dirs[] = {spec_hooks_dir()};
 *     if (hooks_sweep_report(path, &sw, dirs, 1, &d)) ...   // reported; the sweep goes on
 *
 * Covered by tests/test_hooks.c (tables, calls, errors, limits), tests/test_hooks_sandbox.c
 * (the sandbox, one test per attack) and tests/test_sweep_report.c (the sweep table and
 * sweep_report.lua's page); `runner report` by tests/test_cli.sh.
 */
#ifndef RUNNER_HOOKS_H
#define RUNNER_HOOKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common.h"
#include "diag.h"
#include "node.h"
#include "spec.h"

/* The limits of every call (and of the file's first run), per hook. */
#define HOOKS_DEFAULT_INSTRUCTIONS 2000000000ull /* Lua VM instructions per call */
#define HOOKS_DEFAULT_MEMORY ((size_t)512 << 20) /* bytes a hook's Lua state may hold */

struct hooks;

/* What the files of the run directory do not hold yet. NULL strings are left out of run. */
struct hooks_info {
    const char *name, *device, *precision, *commit;
    const char *started;           /* local time, "YYYY-mm-dd HH:MM:SS" */
    int64_t epochs;                /* planned */
    const char *const *classes;    /* nclasses names, index = label; NULL: the header of
                                      run_dir/confusion_matrix.csv (none when it is absent) */
    int nclasses;
    const struct node *config;     /* the resolved config tree; NULL: read run_dir/config.yaml */
};

enum hook_outcome {
    HOOK_OK,
    HOOK_FAILED, /* some hook raised an error, or the run's files could not be read (reported) */
    HOOK_STOP,   /* some hook asked to stop (on_epoch_end); wins over HOOK_FAILED */
};

/*
 * Opens one Lua state per hook (hooks[i].file, with hooks[i].args as run.args), sandboxed,
 * and runs each file once. run_dir is where the run's files are (it must exist); hook_dirs
 * (ndirs of them; missing ones are skipped) are the folders require() loads from and io.open
 * may read, besides run_dir. log (may be NULL) receives every message too; print goes to
 * stdout, hook errors and runner.log to stderr. Errors (a file that cannot be read, a syntax
 * error, an error while the file runs, on_start etc. defined as something other than a
 * function) are reported to d at the hook's mark, each naming the file: STATUS_CONFIG;
 * STATUS_RUNTIME when run_dir cannot be resolved or memory runs out. *out is NULL on failure.
 */
MUST_CHECK enum status hooks_open(const struct spec_hook *hooks, size_t n, const char *run_dir,
                                  const char *const *hook_dirs, size_t ndirs, FILE *log,
                                  struct diag *d, struct hooks **out);

/* Sets the limits of later calls: Lua instructions per call and bytes per Lua state (0 keeps
 * a limit as it is). For tests; hooks_open starts with the defaults above. */
void hooks_set_limits(struct hooks *h, uint64_t instructions, size_t memory);

/* on_start(run). */
enum hook_outcome hooks_start(struct hooks *h, const struct hooks_info *info);

/* on_epoch_end(run, epoch), epoch being run.history's last row. On HOOK_STOP, *stop is the
 * first hook's reason, valid until the next call on h. A hook may return nothing, nil, or a
 * table: {stop = "reason"} (a non-empty string) asks to stop, a table without `stop` is
 * ignored, and anything else is reported as that hook's error. */
enum hook_outcome hooks_epoch_end(struct hooks *h, const struct hooks_info *info,
                                  const char **stop);

/* on_end(run, result); result.stopped = stopped (NULL: the run did all its epochs). */
enum hook_outcome hooks_end(struct hooks *h, const struct hooks_info *info, const char *stopped);

/* Hook errors reported so far (calls that failed, file reading failures included). */
int hooks_error_count(const struct hooks *h);

/* Closes every state; NULL is fine. */
void hooks_free(struct hooks *h);

/* The folders require() may load from for these hooks: each hook's own folder, then the
 * project's hooks/ (spec_hooks_dir), without repeats; *count of them, allocated in a. */
const char **hooks_folders(struct arena *a, const struct spec_hook *hooks, size_t n,
                           size_t *count);

/* ---------------------------------------------------------------------------------------- */
/* Sweep reports (hooks_sweep.c) */

/* One point of a sweep. The strings are borrowed for the call. */
struct hooks_sweep_point {
    const char *name;          /* "lr=3e-4_epochs=20" */
    const char *status;        /* "done", "failed", "interrupted", "pending", "running" */
    const char *run_dir;       /* relative to the sweep directory: "runs/lr=3e-4_epochs=20";
                                  NULL: none yet (its figures are absent) */
    const char *const *values; /* nkeys values as the user typed them, in keys' order (NULL
                                  entries are left out) */
    const char *log;           /* relative to the sweep directory: "logs/NAME.log", or NULL */
};

struct hooks_sweep {
    const char *name;            /* the sweep's name (its directory's base name) */
    const char *dir;             /* the sweep directory (it must exist) */
    const char *base;            /* the base experiment file, or NULL */
    const char *const *keys;     /* swept keys, dotted: "optimizer.lr" */
    int nkeys;
    const struct hooks_sweep_point *points;
    int npoints;
    bool finished;               /* no point pending or running */
};

/*
 * Calls on_sweep(sweep) of the hook file (a path) in a fresh sandboxed state whose write root
 * is sw->dir: the hook may read anything in it (runs/<point>/... included) and the hook_dirs
 * (ndirs of them, as for hooks_open: pass spec_hooks_dir() so that require "lib.html" works),
 * and write inside it, never to the sweep's own files (sweep.csv, sweep.sbatch, the point
 * files *.yaml, anything in runs/ or logs/). Each point's run_dir/metrics.jsonl and
 * run_dir/summary.json are read first (a last metrics.jsonl line still being written is left
 * out); a point whose files cannot be parsed is reported and passed with its message in
 * `error` and without figures. Errors give STATUS_RUNTIME and are never fatal to the caller:
 * a hook file that does not load (or a sweep directory that does not exist) is reported to
 * d; no on_sweep, an error in it and a point's unreadable files, as "hook FILE: on_sweep:
 * ..." on stderr.
 */
MUST_CHECK enum status hooks_sweep_report(const char *hook_file, const struct hooks_sweep *sw,
                                          const char *const *hook_dirs, size_t ndirs,
                                          struct diag *d);

#endif
