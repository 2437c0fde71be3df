/*
 * sweep_cmd.c: `runner sweep`'s command line: experiment files, --grid, --random with
 * --range, key=value overrides, and the options that say how and where the points run; see
 * sweep.h and `runner sweep --help`. Covered by tests/test_cli.sh and tests/test_sweep.c.
 */
#include "sweep.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum sweep_opt {
    OPT_GRID,
    OPT_RANDOM,
    OPT_RANGE,
    OPT_SEED,
    OPT_PARALLEL,
    OPT_OUT,
    OPT_ONLY,
    OPT_SLURM,
    OPT_DRY_RUN,
    OPT_TENSORBOARD,
    OPT_COUNT,
};

static const struct {
    const char *name;
    bool value;  /* takes a value */
    bool repeat; /* the Slurm tasks repeat it */
} options[OPT_COUNT] = {
    [OPT_GRID] = {"--grid", true, true},     [OPT_RANDOM] = {"--random", true, true},
    [OPT_RANGE] = {"--range", true, true},   [OPT_SEED] = {"--seed", true, true},
    [OPT_PARALLEL] = {"--parallel", true, false}, [OPT_OUT] = {"--out", true, true},
    [OPT_ONLY] = {"--only", true, false},    [OPT_SLURM] = {"--slurm", false, false},
    [OPT_DRY_RUN] = {"--dry-run", false, false},
    [OPT_TENSORBOARD] = {"--tensorboard", false, true},
};

/* "key.path=value" (and not a file of that name): an override for every point. */
static bool is_override(const char *a)
{
    const char *eq = strchr(a, '=');
    if (!eq || eq == a) return false;
    for (const char *p = a; p < eq; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '.'))
            return false;
    struct stat sb;
    return stat(a, &sb) != 0;
}

/* A whole-number option's value in [lo, hi]. */
static bool whole(const char *name, const char *v, unsigned long long lo, unsigned long long hi,
                  unsigned long long *out)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (!*v || *end || *v == '-' || errno || x < lo || x > hi) {
        fprintf(stderr,
                "runner sweep: error: %s must be a whole number from %llu to %llu, got '%s'\n",
                name, lo, hi, v);
        return false;
    }
    *out = x;
    return true;
}

static int refuse(const char *msg, const char *hint)
{
    fprintf(stderr, "runner sweep: error: %s\n", msg);
    if (hint) fprintf(stderr, "hint: %s\n", hint);
    return STATUS_CONFIG;
}

/* This program's path, for the children and the Slurm script. */
static bool self_path(char *buf, size_t size)
{
    ssize_t n = readlink("/proc/self/exe", buf, size - 1);
    if (n <= 0 || (size_t)n >= size - 1) return false;
    buf[n] = 0;
    return true;
}

/* What the parsed command line holds. */
struct cmd {
    const char **files, **grid, **ranges, **fixed, **sbatch, **task;
    size_t nfiles, ngrid, nranges, nfixed, nsbatch, ntask;
    const char *opt[OPT_COUNT]; /* the last value of each option ("" for a flag) */
};

/* Parses argv into c; 0, -1 for --help, or STATUS_CONFIG (reported). */
static int parse(int argc, char **argv, struct cmd *c)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return -1;
        if (strcmp(a, "--") == 0) {
            for (int j = i + 1; j < argc; j++) {
                if (argv[j][0] != '-')
                    return refuse("after --, every argument is an sbatch option (--time=1:00:00)",
                                  "runner sweep BASE.yaml --grid ... --slurm -- --time=2:00:00");
                c->sbatch[c->nsbatch++] = argv[j];
            }
            break;
        }
        if (a[0] == '-' && a[1]) {
            size_t len = strcspn(a, "=");
            int k = 0;
            while (k < OPT_COUNT &&
                   !(strlen(options[k].name) == len && strncmp(options[k].name, a, len) == 0))
                k++;
            if (k == OPT_COUNT) {
                fprintf(stderr, "runner sweep: error: unknown option '%s'\n", a);
                fprintf(stderr, "hint: runner sweep --help lists what it takes\n");
                return STATUS_CONFIG;
            }
            const char *v = "";
            if (!options[k].value && a[len]) {
                fprintf(stderr, "runner sweep: error: %s takes no value\n", options[k].name);
                return STATUS_CONFIG;
            }
            if (options[k].value && a[len]) {
                v = a + len + 1;
            } else if (options[k].value && i + 1 < argc) {
                v = argv[++i];
            } else if (options[k].value) {
                fprintf(stderr, "runner sweep: error: %s needs a value\n", options[k].name);
                return STATUS_CONFIG;
            }
            if (options[k].repeat) {
                c->task[c->ntask++] = a;
                if (options[k].value && !a[len]) c->task[c->ntask++] = v;
            }
            if (k == OPT_GRID) c->grid[c->ngrid++] = v;
            if (k == OPT_RANGE) c->ranges[c->nranges++] = v;
            c->opt[k] = v;
            continue;
        }
        if (is_override(a))
            c->fixed[c->nfixed++] = a;
        else
            c->files[c->nfiles++] = a;
        c->task[c->ntask++] = a;
    }
    const char *const *o = c->opt;
    if (c->nfiles == 0) {
        fprintf(stderr, "runner sweep: error: no experiment file given\n");
        fprintf(stderr, "usage: runner sweep FILE... | BASE --grid KEY=V1,V2,... | "
                        "BASE --random N --range KEY=LO:HI ...\n");
        return STATUS_CONFIG;
    }
    if (c->ngrid && o[OPT_RANDOM])
        return refuse("--grid and --random exclude each other", NULL);
    if (c->nranges && !o[OPT_RANDOM])
        return refuse("--range needs --random N (how many points to draw)",
                      "runner sweep BASE.yaml --random 8 --range optimizer.lr=1e-5:1e-2");
    if (o[OPT_RANDOM] && !c->nranges)
        return refuse("--random needs a --range KEY=LO:HI to draw from",
                      "runner sweep BASE.yaml --random 8 --range optimizer.lr=1e-5:1e-2");
    if (o[OPT_SEED] && !o[OPT_RANDOM]) return refuse("--seed goes with --random", NULL);
    if ((c->ngrid || o[OPT_RANDOM]) && c->nfiles > 1)
        return refuse("--grid and --random sweep one base experiment; several files were given",
                      "runner sweep FILE1.yaml FILE2.yaml ... runs files as they are");
    if (c->nsbatch && !o[OPT_SLURM])
        return refuse("options after -- are for sbatch: add --slurm", NULL);
    if (o[OPT_ONLY] && o[OPT_SLURM])
        return refuse("--only runs one point here; --slurm submits every point", NULL);
    return 0;
}

/* Lists the points written, for --dry-run. */
static void print_points(const struct sweep *sw)
{
    printf("sweep %s: %zu point%s (dry run: nothing was started)\n", sw->dir, sw->npoints,
           sw->npoints == 1 ? "" : "s");
    for (size_t i = 0; i < sw->npoints; i++)
        printf("  %-12s %s  -> %s\n", sweep_status_name(sw->points[i].status), sw->points[i].file,
               sw->points[i].run_dir);
    printf("table: %s/sweep.csv\n", sw->dir);
}

/* Writes sweep.sbatch and submits it (or, with --dry-run, says how to). */
static enum status slurm(const struct sweep *sw, struct cmd *c, int parallel, struct diag *d)
{
    char runner[4096];
    if (!self_path(runner, sizeof runner)) {
        diag_error(d, (struct mark){0}, "cannot tell where this program is (/proc/self/exe)");
        return STATUS_RUNTIME;
    }
    if (!c->opt[OPT_OUT]) {
        c->task[c->ntask++] = "--out";
        c->task[c->ntask++] = sw->dir;
    }
    enum status st = sweep_write_sbatch(sw, runner, c->task, (int)c->ntask, c->sbatch,
                                        (int)c->nsbatch, parallel, d);
    if (st) return st;
    printf("wrote %s/sweep.sbatch: a Slurm job array of %zu task%s, logs in %s/logs/\n", sw->dir,
           sw->npoints, sw->npoints == 1 ? "" : "s", sw->dir);
    if (c->opt[OPT_DRY_RUN]) {
        printf("submit it with: sbatch %s/sweep.sbatch\n", sw->dir);
        return STATUS_OK;
    }
    return sweep_submit(sw, d);
}

int sweep_cmd_main(int argc, char **argv)
{
    struct cmd c = {0};
    size_t cap = (size_t)argc + 3;
    c.files = calloc(cap, sizeof *c.files);
    c.grid = calloc(cap, sizeof *c.grid);
    c.ranges = calloc(cap, sizeof *c.ranges);
    c.fixed = calloc(cap, sizeof *c.fixed);
    c.sbatch = calloc(cap, sizeof *c.sbatch);
    c.task = calloc(cap, sizeof *c.task);
    if (!c.files || !c.grid || !c.ranges || !c.fixed || !c.sbatch || !c.task) abort();
    unsigned long long npoints = 0, seed = 0, parallel = 1;
    int rc = parse(argc, argv, &c);
    const char *const *o = c.opt;
    if (!rc &&
        ((o[OPT_RANDOM] && !whole("--random", o[OPT_RANDOM], 1, SWEEP_MAX_POINTS, &npoints)) ||
         (o[OPT_SEED] && !whole("--seed", o[OPT_SEED], 0, UINT64_MAX, &seed)) ||
         (o[OPT_PARALLEL] && !whole("--parallel", o[OPT_PARALLEL], 1, 1024, &parallel))))
        rc = STATUS_CONFIG;
    struct sweep *sw = NULL;
    struct diag d = {.out = stderr};
    if (!rc) {
        struct sweep_request rq = {
            .mode = c.ngrid ? SWEEP_GRID : c.opt[OPT_RANDOM] ? SWEEP_RANDOM : SWEEP_FILES,
            .files = c.files, .nfiles = c.nfiles, .grid = c.grid, .ngrid = c.ngrid,
            .ranges = c.ranges, .nranges = c.nranges, .npoints = (long)npoints, .seed = seed,
            .fixed = c.fixed, .nfixed = c.nfixed, .out = c.opt[OPT_OUT],
            .argv = (const char *const *)argv, .argc = argc};
        rc = (int)sweep_expand(&rq, &d, &sw);
        if (!rc && (rc = (int)sweep_validate(sw, &d)) == STATUS_CONFIG)
            fprintf(stderr, "runner sweep: nothing was started: every point must be valid\n");
        if (!rc) rc = (int)sweep_write_files(sw, &d);
    }
    char runner[4096];
    if (rc) {
        /* reported */
    } else if (c.opt[OPT_SLURM] || c.opt[OPT_DRY_RUN]) {
        sweep_read_status(sw);
        rc = (int)sweep_points_changed(sw, &d);
        if (!rc && c.opt[OPT_SLURM])
            rc = (int)slurm(sw, &c, (int)parallel, &d);
        else if (!rc)
            print_points(sw);
    } else if (!self_path(runner, sizeof runner)) {
        diag_error(&d, (struct mark){0}, "cannot tell where this program is (/proc/self/exe)");
        rc = STATUS_RUNTIME;
    } else {
        struct sweep_run_options o = {.runner = runner, .parallel = (int)parallel,
                                      .only = c.opt[OPT_ONLY],
                                      .tensorboard = c.opt[OPT_TENSORBOARD] != NULL};
        rc = (int)sweep_run(sw, &o, &d);
    }
    sweep_free(sw);
    free(c.files);
    free(c.grid);
    free(c.ranges);
    free(c.fixed);
    free(c.sbatch);
    free(c.task);
    return rc;
}
