/*
 * sweep.h: `runner sweep`: a set of experiments run as one, each point in its own run
 * directory under one sweep directory, compared in sweep.csv.
 *
 *     struct sweep_request rq = {.mode = SWEEP_GRID, .files = &base, .nfiles = 1,
 *                                .grid = (const char *[]){"optimizer.lr=1e-3,3e-4"}, .ngrid = 1};
 *     struct sweep *sw;
 *     if (sweep_expand(&rq, &d, &sw) || sweep_validate(sw, &d) || sweep_write_files(sw, &d))
 *         return 2;                       // (sweep_free(sw) in every case)
 *     struct sweep_run_options o = {.runner = "/path/to/runner", .parallel = 2};
 *     enum status st = sweep_run(sw, &o, &d); // 0 all done, 1 a point failed, 130/143 signal
 *     sweep_free(sw);
 *
 * Expansion (sweep_expand) is pure: no file is read or written. A grid is the cartesian
 * product of the --grid options in the order given (the first varies slowest); a point's name
 * joins "LABEL=VALUE" with '_' (LABEL the key's last component, or the whole dotted key when
 * two swept keys share their last component; VALUE as typed), with characters unsafe in file
 * names replaced by '-'. --random N draws N points from the ranges with rng.h (uniform,
 * log-uniform for keys named lr or *_lr or written log:LO:HI, integers for int:LO:HI), seeded,
 * values printed with %.3g; names r000_LABEL=VALUE... The sweep directory is
 * results/sweeps/<base stem>-<labels>[-random<N>-seed<S>]-<hash> (files mode:
 * results/sweeps/<common stem of the files, else their folder, else "files">-<hash>), the
 * hash being 8 hex digits of the request's canonical text, so the same command finds the same
 * directory again; --out replaces it.
 *
 * In the sweep directory: <point>.yaml (grid and random: `extends:` the base, then the
 * overrides as nested mappings, values as typed; a relative path in a path key is rewritten
 * to name the same file from the sweep directory), runs/<point>/ (the run directories),
 * logs/<point>.log (each attempt's output, then a line "sweep: done", "sweep: failed (exit
 * N)" or "sweep: interrupted (exit N)"), sweep.csv, and sweep.sbatch with --slurm.
 *
 * Errors in the request are reported at "<command line>:N:COL", N counting the sweep's
 * arguments; errors in a point at its file's line and column. Covered by tests/test_sweep.c.
 */
#ifndef RUNNER_SWEEP_H
#define RUNNER_SWEEP_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "arena.h"
#include "common.h"
#include "diag.h"
#include "spec.h"

/* The most points a sweep has: a grid's product, --random N. */
enum { SWEEP_MAX_POINTS = 100000 };

enum sweep_mode {
    SWEEP_FILES,  /* each file a point */
    SWEEP_GRID,   /* the base at every combination of the --grid values */
    SWEEP_RANDOM, /* the base at N random draws from the --range options */
};

enum sweep_range_kind { SWEEP_RANGE_UNIFORM, SWEEP_RANGE_LOG, SWEEP_RANGE_INT };

enum sweep_status {
    SWEEP_PENDING,     /* not started */
    SWEEP_RUNNING,     /* a child (of this or another sweep process) is training it */
    SWEEP_DONE,        /* runs/<point>/summary.json exists */
    SWEEP_FAILED,      /* the run ended with an error (its exit code is in the log) */
    SWEEP_INTERRUPTED, /* stopped by a signal, or started and never finished */
};

/* What the command line asks; the strings are borrowed and must outlive the sweep. */
struct sweep_request {
    enum sweep_mode mode;
    const char *const *files; /* FILES: the experiments; GRID, RANDOM: files[0] is the base */
    size_t nfiles;
    const char *const *grid; /* "KEY=V1,V2,..." as typed (commas inside [] {} "" '' kept) */
    size_t ngrid;
    const char *const *ranges; /* "KEY=[log:|int:|uniform:]LO:HI" */
    size_t nranges;
    long npoints;  /* RANDOM: how many */
    uint64_t seed; /* RANDOM */
    const char *const *fixed; /* "key=value" for every point */
    size_t nfixed;
    const char *out; /* the sweep directory; NULL: results/sweeps/<name> */
    /* The command's arguments, which the strings above point into, for error positions
     * ("<command line>:N:COL", N counting these); NULL: messages without positions. */
    const char *const *argv;
    int argc;
};

/* One swept key. */
struct sweep_axis {
    const char *key;   /* dotted: "optimizer.lr" */
    const char *label; /* in names and the directory: "lr", or the key when labels clash */
    bool path;         /* the key holds a path (SCHEMA_PATH, a graph) */
    const char **values; /* GRID: as typed */
    size_t nvalues;
    enum sweep_range_kind kind; /* RANDOM */
    double lo, hi;              /* RANDOM */
};

struct sweep_point {
    const char *name;    /* "lr=3e-4_epochs=20"; the file's stem in files mode */
    const char **values; /* one per axis, as typed (RANDOM: as drawn and printed) */
    const char *file;    /* the experiment the point runs: <dir>/<name>.yaml, or the file */
    char *text;          /* the point file's text (NULL in files mode) */
    const char *run_dir; /* <dir>/runs/<name> */
    const char *log;     /* <dir>/logs/<name>.log */
    /* From validation, for scheduling: train.threads and data.workers (0: left to the
     * runner, so a parallel sweep may set them) and the device the experiment asks for. */
    long long threads, workers;
    struct spec_device device;
    bool tensorboard; /* the experiment writes TensorBoard's files itself */
    enum sweep_status status;
    int exit_code; /* of the last attempt, when it failed or was interrupted */
};

struct sweep {
    struct arena arena; /* owns everything below */
    enum sweep_mode mode;
    const char *base;    /* GRID, RANDOM: the base experiment as given */
    const char *extends; /* GRID, RANDOM: the base's path from the sweep directory */
    const char *dir;  /* the sweep directory */
    struct sweep_axis *axes;
    size_t naxes;
    const char *const *fixed; /* key=value for every point */
    size_t nfixed;
    struct sweep_point *points;
    size_t npoints;
};

/* --------------------------------------------------------------------------------------- */
/* sweep.c: expansion, names, the directory, the files, validation */

/* The points of rq and their directory (see the top of this file); STATUS_CONFIG with the
 * errors in d. *out is NULL on failure. */
MUST_CHECK enum status sweep_expand(const struct sweep_request *rq, struct diag *d,
                                    struct sweep **out);
void sweep_free(struct sweep *sw);

/* Loads every point as `runner check` does (experiment and network), and checks that each
 * point file resolves to the base with the point's overrides; STATUS_CONFIG with every
 * invalid point's errors at their positions. */
MUST_CHECK enum status sweep_validate(struct sweep *sw, struct diag *d);

/* Creates the sweep directory, logs/ and runs/, and writes each point file whose text
 * differs from what is there (STATUS_RUNTIME when it cannot). */
MUST_CHECK enum status sweep_write_files(const struct sweep *sw, struct diag *d);

/* --------------------------------------------------------------------------------------- */
/* sweep_status.c: statuses, figures, sweep.csv */

/* Each point's status as its files tell it (see enum sweep_status): summary.json, then the
 * outcome its log ends with, a lock on the log held by a running child, the run directory. */
void sweep_read_status(struct sweep *sw);
void sweep_point_read_status(struct sweep_point *p);

/* Whether the point's run has its summary.json (runs/<point>/summary.json): it is done. */
bool sweep_point_has_summary(const struct sweep_point *p);

/* Called whenever points change status (at the start, after each point ends, at the end):
 * rewrites sweep.csv (point, status, one column per swept key (files mode: file),
 * best_val_acc, final_val_acc, test_acc, seconds, img_per_s (from the point's summary.json;
 * empty where absent), run_dir; written whole under a temporary name, then renamed). This is
 * where the sweep report hook (hooks/sweep_report.lua, writing sweep.html) is called from. */
MUST_CHECK enum status sweep_points_changed(const struct sweep *sw, struct diag *d);

/* A point's figures from runs/<point>/summary.json; NAN where absent or null. */
struct sweep_result {
    double best_val_acc, final_val_acc, test_acc, seconds, img_per_s;
};
void sweep_read_result(const struct sweep_point *p, struct sweep_result *r);

/* The point with the highest best_val_acc among the done ones (else the highest test_acc;
 * ties go to the earlier point), or -1. */
long sweep_best(const struct sweep *sw);
/* The same choice from results already read: res[i] is point i's (read for the done points
 * at least). */
long sweep_best_of(const struct sweep *sw, const struct sweep_result *res);

const char *sweep_status_name(enum sweep_status st);

/* --------------------------------------------------------------------------------------- */
/* sweep_run.c: running the points, the Slurm script, the closing table */

struct sweep_run_options {
    const char *runner; /* the runner executable the children run */
    int parallel;       /* points at once (>= 1) */
    const char *only;   /* run this point alone, leaving signals to the caller's process
                           group (a Slurm array task); NULL: every point */
    bool quiet;         /* no progress lines and no closing table */
    bool tensorboard;   /* every point with tensorboard=true, and the hparams records */
};

/*
 * Runs every point not done, at most o->parallel at once, each as a child process
 * `RUNNER train <point file> --out <run dir>` (--resume <run dir> when it has checkpoints)
 * with its output in logs/<point>.log. With parallel > 1, a point that leaves train.threads
 * and data.workers at 0 gets train.threads=<cores / parallel> and data.workers=1; with
 * several GPUs, a point on device auto or cuda gets device=cuda:<slot>. A point already
 * running in another process is left to it. With o->tensorboard every point runs with
 * tensorboard=true (a resumed one as it started). A point writing TensorBoard's files gets
 * the hparams plugin's records in runs/<point>/events.out.tfevents.<time>.<host>.hparams (its
 * session; the metrics are the run's tensorboard/ below it): when it starts, its swept keys
 * and values (files mode: file = the point's name); when it ends, success or failure (an
 * interrupted point gets none until it ends). SIGINT and SIGTERM are passed to the children,
 * which save a checkpoint; no further point starts. sweep.csv follows every change.
 * Returns STATUS_OK when every point is done, STATUS_RUNTIME when one is not,
 * STATUS_SIGINT / STATUS_SIGTERM after a signal.
 */
MUST_CHECK enum status sweep_run(struct sweep *sw, const struct sweep_run_options *o,
                                 struct diag *d);

/* Prints every point (status, accuracies, time, img/s) with the best one marked. */
void sweep_print_table(const struct sweep *sw, FILE *out);

/* Writes <dir>/sweep.sbatch: a Slurm job array, one task per point (`--array=0-(n-1)`, %P
 * with parallel > 1), its log in logs/slurm-<job>_<task>.log, each task running `runner
 * sweep ... --only POINT` from the current directory; sbatch_opts become #SBATCH lines.
 * argv/argc: the sweep's own arguments (without --slurm, --dry-run, --parallel, --only and
 * the sbatch options) as the tasks repeat them. */
MUST_CHECK enum status sweep_write_sbatch(const struct sweep *sw, const char *runner,
                                          const char *const *argv, int argc,
                                          const char *const *sbatch_opts, int nopts,
                                          int parallel, struct diag *d);

/* Runs `sbatch <dir>/sweep.sbatch`; STATUS_RUNTIME with a message when sbatch is missing or
 * fails. */
MUST_CHECK enum status sweep_submit(const struct sweep *sw, struct diag *d);

/* --------------------------------------------------------------------------------------- */
/* sweep_cmd.c: the command line */

/* `runner sweep ARGS` (argv: the arguments after "sweep"); the exit code, or -1 when --help
 * was asked (the caller prints the command's help). */
int sweep_cmd_main(int argc, char **argv);

#endif
