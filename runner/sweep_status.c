/*
 * sweep_status.c: where a sweep's points stand, as their files tell it (summary.json, the
 * outcome their log ends with, a lock on the log held by a running child), their figures
 * from summary.json, the best point, and sweep.csv; see sweep.h. Covered by
 * tests/test_sweep.c.
 */
#include "sweep.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hooks.h"
#include "paths.h"
#include "run_files.h"

static bool exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* --------------------------------------------------------------------------------------- */
/* Statuses */

const char *sweep_status_name(enum sweep_status st)
{
    static const char *const names[] = {"pending", "running", "done", "failed", "interrupted"};
    return names[st];
}

bool sweep_point_has_summary(const struct sweep_point *p)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/summary.json", p->run_dir);
    return exists(path);
}

/* The last "sweep: ..." line of a log (the outcome of its last attempt), into line. */
static bool last_sweep_line(int fd, char *line, size_t size)
{
    char buf[8192];
    off_t end = lseek(fd, 0, SEEK_END), tail = (off_t)sizeof buf - 1;
    off_t from = end > tail ? end - tail : 0;
    ssize_t n = pread(fd, buf, sizeof buf - 1, from);
    if (n <= 0) return false;
    buf[n] = 0;
    const char *found = NULL;
    for (const char *p = buf; (p = strstr(p, "sweep: ")); p++)
        if (p == buf || p[-1] == '\n') found = p;
    if (!found) return false;
    snprintf(line, size, "%.*s", (int)strcspn(found, "\n"), found);
    return true;
}

static enum sweep_status status_on_disk(const struct sweep_point *p, int *code)
{
    *code = 0;
    if (sweep_point_has_summary(p)) return SWEEP_DONE;
    int fd = open(p->log, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (flock(fd, LOCK_SH | LOCK_NB) && errno == EWOULDBLOCK) {
            close(fd);
            return SWEEP_RUNNING;
        }
        char line[256];
        bool have = last_sweep_line(fd, line, sizeof line);
        close(fd);
        const char *ex = have ? strstr(line, "(exit ") : NULL;
        if (ex) *code = atoi(ex + 6);
        if (have && strncmp(line, "sweep: failed", 13) == 0) return SWEEP_FAILED;
        if (have && strncmp(line, "sweep: interrupted", 18) == 0) return SWEEP_INTERRUPTED;
    }
    return exists(p->run_dir) ? SWEEP_INTERRUPTED : SWEEP_PENDING;
}

void sweep_point_read_status(struct sweep_point *p)
{
    p->status = status_on_disk(p, &p->exit_code);
}

void sweep_read_status(struct sweep *sw)
{
    for (size_t i = 0; i < sw->npoints; i++) sweep_point_read_status(&sw->points[i]);
}

/* The number after "key": in a JSON text, NAN when null or absent. */
static double json_number(const char *text, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *v = text ? strstr(text, pat) : NULL;
    if (!v) return NAN;
    v += strlen(pat);
    while (*v == ' ') v++;
    char *end;
    double x = strtod(v, &end);
    return end == v ? NAN : x;
}

void sweep_read_result(const struct sweep_point *p, struct sweep_result *r)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/summary.json", p->run_dir);
    char *text = path_read_text(path);
    *r = (struct sweep_result){json_number(text, "best_val_acc"),
                               json_number(text, "final_val_acc"), json_number(text, "test_acc"),
                               json_number(text, "seconds"), json_number(text, "train_img_per_s")};
    free(text);
}

long sweep_best_of(const struct sweep *sw, const struct sweep_result *res)
{
    long best = -1;
    for (int pass = 0; pass < 2 && best < 0; pass++) {
        double top = -INFINITY;
        for (size_t i = 0; i < sw->npoints; i++) {
            if (sw->points[i].status != SWEEP_DONE) continue;
            double v = pass == 0 ? res[i].best_val_acc : res[i].test_acc;
            if (!isnan(v) && v > top) {
                top = v;
                best = (long)i;
            }
        }
    }
    return best;
}

long sweep_best(const struct sweep *sw)
{
    struct sweep_result *res = malloc((sw->npoints + 1) * sizeof *res);
    if (!res) abort();
    for (size_t i = 0; i < sw->npoints; i++)
        if (sw->points[i].status == SWEEP_DONE) sweep_read_result(&sw->points[i], &res[i]);
    long best = sweep_best_of(sw, res);
    free(res);
    return best;
}

/* --------------------------------------------------------------------------------------- */
/* sweep.csv */

static void csv_field(FILE *f, const char *s)
{
    if (!s[strcspn(s, ",\"\n\r")]) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void csv_number(FILE *f, double x, const char *fmt)
{
    fputc(',', f);
    if (!isnan(x)) fprintf(f, fmt, x);
}

/* sweep.csv (see sweep_points_changed in sweep.h), written whole under a temporary name,
 * then renamed. */
static enum status sweep_write_csv(const struct sweep *sw, struct diag *d)
{
    FILE *f = run_files_begin(sw->dir, "sweep.csv", d);
    if (!f) return STATUS_RUNTIME;
    fputs("point,status", f);
    if (sw->mode == SWEEP_FILES) fputs(",file", f);
    for (size_t k = 0; k < sw->naxes; k++) {
        fputc(',', f);
        csv_field(f, sw->axes[k].key);
    }
    fputs(",best_val_acc,final_val_acc,test_acc,seconds,img_per_s,run_dir\n", f);
    for (size_t i = 0; i < sw->npoints; i++) {
        const struct sweep_point *p = &sw->points[i];
        csv_field(f, p->name);
        fprintf(f, ",%s", sweep_status_name(p->status));
        if (sw->mode == SWEEP_FILES) {
            fputc(',', f);
            csv_field(f, p->file);
        }
        for (size_t k = 0; k < sw->naxes; k++) {
            fputc(',', f);
            csv_field(f, p->values[k]);
        }
        struct sweep_result r;
        sweep_read_result(p, &r);
        csv_number(f, r.best_val_acc, "%.6g");
        csv_number(f, r.final_val_acc, "%.6g");
        csv_number(f, r.test_acc, "%.6g");
        csv_number(f, r.seconds, "%.1f");
        csv_number(f, r.img_per_s, "%.1f");
        fputc(',', f);
        csv_field(f, p->run_dir);
        fputc('\n', f);
    }
    return run_files_end(f, sw->dir, "sweep.csv", d);
}

/* The sweep report's hook: sweep_report.lua beside the base experiment, else the project's
 * hooks/ one; NULL when neither is there. */
static const char *report_hook(struct arena *a, const struct sweep *sw)
{
    const char *dirs[2] = {sw->base ? path_dirname(a, sw->base) : NULL, spec_hooks_dir()};
    for (int i = 0; i < 2; i++) {
        if (!dirs[i]) continue;
        const char *path = path_join(a, dirs[i], "sweep_report.lua");
        if (access(path, R_OK) == 0) return path;
    }
    return NULL;
}

/* sweep.html, by the sweep report hook: a failure is reported and the sweep goes on. */
static void write_report(const struct sweep *sw)
{
    struct arena a = {0};
    const char *hook = report_hook(&a, sw);
    if (!hook) {
        arena_free(&a);
        return;
    }
    size_t n = sw->npoints;
    struct hooks_sweep_point *pts = arena_alloc(&a, (n + 1) * sizeof *pts);
    const char **keys = arena_alloc(&a, (sw->naxes + 1) * sizeof *keys);
    for (size_t k = 0; k < sw->naxes; k++) keys[k] = sw->axes[k].key;
    bool finished = true;
    for (size_t i = 0; i < n; i++) {
        const struct sweep_point *p = &sw->points[i];
        finished = finished && p->status != SWEEP_PENDING && p->status != SWEEP_RUNNING;
        pts[i] = (struct hooks_sweep_point){
            .name = p->name, .status = sweep_status_name(p->status),
            .run_dir = arena_printf(&a, "runs/%s", p->name),
            .values = (const char *const *)p->values,
            .log = arena_printf(&a, "logs/%s.log", p->name)};
    }
    const char *slash = strrchr(sw->dir, '/');
    struct hooks_sweep hs = {.name = slash && slash[1] ? slash + 1 : sw->dir, .dir = sw->dir,
                             .base = sw->base, .keys = keys, .nkeys = (int)sw->naxes,
                             .points = pts, .npoints = (int)n, .finished = finished};
    /* require() loads from the hook's own folder, then the project's hooks/ (where lib/ is),
     * as for the run hooks. */
    struct spec_hook own = {.file = hook};
    size_t ndirs;
    const char **dirs = hooks_folders(&a, &own, 1, &ndirs);
    struct diag d = {.out = stderr};
    if (hooks_sweep_report(hook, &hs, dirs, ndirs, &d))
        fprintf(stderr, "sweep: %s/sweep.html was not written (the error is above)\n", sw->dir);
    arena_free(&a);
}

enum status sweep_points_changed(const struct sweep *sw, struct diag *d)
{
    enum status st = sweep_write_csv(sw, d);
    write_report(sw);
    return st;
}
