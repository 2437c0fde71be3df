/*
 * sweep_run.c: running a sweep's points as child processes (one after another, or N at once),
 * passing SIGINT and SIGTERM on to them, the closing table, and the Slurm job array; see
 * sweep.h. Covered by tests/test_sweep.c (its --slurm mode against a local Slurm).
 */
#include "sweep.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <omp.h>

#include "device.h"
#include "paths.h"
#include "run_files.h"
#include "tfevents.h"

/* --------------------------------------------------------------------------------------- */
/* Small helpers */

/* Whether run_dir/checkpoints holds a checkpoint to resume from. */
static bool has_checkpoint(const char *run_dir)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/checkpoints", run_dir);
    DIR *dir = opendir(path);
    if (!dir) return false;
    bool found = false;
    for (struct dirent *e; !found && (e = readdir(dir));) {
        size_t n = strlen(e->d_name);
        found = n > 12 && strcmp(e->d_name + n - 12, ".safetensors") == 0;
    }
    closedir(dir);
    return found;
}

/* rm -r path (a run that left no checkpoint: nothing in it can be resumed). */
static int remove_tree(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb)) return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(sb.st_mode)) return unlink(path);
    DIR *dir = opendir(path);
    if (!dir) return -1;
    int rc = 0;
    for (struct dirent *e; (e = readdir(dir));) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char child[4400];
        snprintf(child, sizeof child, "%s/%s", path, e->d_name);
        rc |= remove_tree(child);
    }
    closedir(dir);
    return rc | rmdir(path);
}

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Seconds since the epoch. */
static double wall_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* --------------------------------------------------------------------------------------- */
/* Signals: recorded by the handlers, acted on by the loop (they are blocked outside
 * sigsuspend, so none is missed between a check and the wait). */

static volatile sig_atomic_t stop_signal, stop_count;

static void on_stop(int sig)
{
    stop_signal = sig;
    stop_count++;
}

static void on_child(int sig)
{
    (void)sig;
}

/* --------------------------------------------------------------------------------------- */
/* Running */

struct child {
    pid_t pid; /* 0: the slot is free */
    size_t point;
    off_t log_from; /* where this attempt's output starts in the log */
    double started;
    struct tfevents *hparams; /* the point's hparams records (TensorBoard); NULL */
};

struct run {
    struct sweep *sw;
    const struct sweep_run_options *o;
    struct diag *d;
    int parallel, gpus, cores;
    sigset_t old_mask;
    struct child *kids;
    int running;
    bool *ours; /* points this process ran or is running */
};

/* The overrides a point's child gets: the machine's share for a parallel sweep, or, when it
 * resumes, what its run was started with (a resumed run must resolve as it did). */
static size_t schedule_overrides(const struct run *r, const struct sweep_point *p, int slot,
                                 bool resume, struct arena *a, const char **ov, bool *tb)
{
    long long threads = p->threads, workers = p->workers;
    bool tensorboard = r->o->tensorboard;
    struct spec_device dev = p->device;
    bool cpu = dev.kind == SPEC_DEVICE_CPU || r->gpus == 0;
    if (r->parallel > 1 && cpu) {
        if (threads == 0) threads = r->cores / r->parallel > 1 ? r->cores / r->parallel : 1;
        if (workers == 0) workers = 1;
    } else if (r->parallel > 1 && r->gpus > 1 &&
               (dev.kind == SPEC_DEVICE_AUTO || (dev.kind == SPEC_DEVICE_CUDA && dev.index == 0))) {
        dev = (struct spec_device){SPEC_DEVICE_CUDA, slot % r->gpus};
    }
    struct diag quiet = {.out = NULL};
    struct spec *was;
    if (resume && spec_load_run(p->run_dir, NULL, 0, &quiet, &was) == STATUS_OK) {
        threads = was->train.threads;
        workers = was->data.workers;
        dev = was->device;
        tensorboard = was->tensorboard && !p->tensorboard;
        spec_free(was);
    }
    *tb = tensorboard || p->tensorboard;
    size_t n = 0;
    if (tensorboard && !p->tensorboard) ov[n++] = "tensorboard=true";
    if (threads != p->threads) ov[n++] = arena_printf(a, "train.threads=%lld", threads);
    if (workers != p->workers) ov[n++] = arena_printf(a, "data.workers=%lld", workers);
    if (dev.kind != p->device.kind || dev.index != p->device.index) {
        char text[32];
        ov[n++] = arena_printf(a, "device=%s", spec_device_text(&dev, text, sizeof text));
    }
    return n;
}

static void say(const struct run *r, const char *fmt, ...) PRINTF_LIKE(2, 3);
static void say(const struct run *r, const char *fmt, ...)
{
    if (r->o->quiet) return;
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

/* The hparams plugin's session_start_info for point p, in a file of its own in the run
 * directory (NULL, said, when it cannot be written). TensorBoard takes the folder as the
 * session and the run's tensorboard/ below it for the session's metrics (their group). Not in
 * tensorboard/ itself: TensorBoard reads a folder's event files one after another by name and
 * stops reading one once a later one exists, so two files written at once there would hide
 * one's records until it restarts. */
static struct tfevents *hparams_start(const struct run *r, const struct sweep_point *p)
{
    const struct sweep *sw = r->sw;
    const char *dir = p->run_dir;
    struct diag quiet = {.out = NULL};
    struct tfevents *w = NULL;
    /* An earlier attempt's records go: TensorBoard would take its start and end for this one. */
    DIR *old = opendir(dir);
    for (struct dirent *e; old && (e = readdir(old));)
        if (strstr(e->d_name, "tfevents") && strstr(e->d_name, ".hparams")) {
            char path[4500];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    if (old) closedir(old);
    if (tfevents_open(dir, "hparams", &w, &quiet)) {
        say(r, "warning: %s: cannot write TensorBoard's hparams records\n", dir);
        return NULL;
    }
    size_t n = sw->mode == SWEEP_FILES ? 1 : sw->naxes;
    const char **names = calloc(n + 1, sizeof *names), **values = calloc(n + 1, sizeof *values);
    if (!names || !values) abort();
    if (sw->mode == SWEEP_FILES) {
        names[0] = "file";
        values[0] = p->name;
    } else {
        for (size_t k = 0; k < n; k++) {
            names[k] = sw->axes[k].key;
            values[k] = p->values[k];
        }
    }
    tfevents_hparams_start(w, names, values, n, wall_seconds());
    free(names);
    free(values);
    if (tfevents_flush(w, &quiet)) {
        if (tfevents_close(w, &quiet)) { /* said below */
        }
        say(r, "warning: %s: cannot write TensorBoard's hparams records\n", dir);
        return NULL;
    }
    return w;
}

enum start { START_RUNNING, START_SKIPPED, START_FAILED };

/* Starts point i in slot: `runner train FILE [overrides] --out|--resume RUN_DIR`, its output
 * appended to its log, which it holds locked while it runs. */
static enum start start_point(struct run *r, size_t i, int slot)
{
    struct sweep *sw = r->sw;
    struct sweep_point *p = &sw->points[i];
    int fd = open(p->log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) {
        diag_error(r->d, (struct mark){0}, "%s: cannot write: %s", p->log, strerror(errno));
        p->status = SWEEP_FAILED;
        return START_FAILED;
    }
    if (flock(fd, LOCK_EX | LOCK_NB)) {
        close(fd);
        p->status = SWEEP_RUNNING;
        say(r, "[%zu/%zu] %s: running in another process; left to it\n", i + 1, sw->npoints,
            p->name);
        return START_SKIPPED;
    }
    if (sweep_point_has_summary(p)) {
        close(fd);
        p->status = SWEEP_DONE;
        say(r, "[%zu/%zu] %s: done already\n", i + 1, sw->npoints, p->name);
        return START_SKIPPED;
    }
    bool resume = has_checkpoint(p->run_dir);
    if (!resume && remove_tree(p->run_dir)) {
        diag_error(r->d, (struct mark){0}, "%s: cannot remove the unfinished run: %s",
                   p->run_dir, strerror(errno));
        close(fd);
        p->status = SWEEP_FAILED;
        return START_FAILED;
    }
    struct arena a = {0};
    size_t max = sw->nfixed + 16, n = 0;
    const char **argv = arena_alloc(&a, max * sizeof *argv);
    argv[n++] = r->o->runner;
    argv[n++] = "train";
    argv[n++] = p->file;
    if (sw->mode == SWEEP_FILES) /* the files' overrides are arguments (in a point file else) */
        for (size_t k = 0; k < sw->nfixed; k++) argv[n++] = sw->fixed[k];
    bool tb;
    n += schedule_overrides(r, p, slot, resume, &a, argv + n, &tb);
    argv[n++] = resume ? "--resume" : "--out";
    argv[n++] = p->run_dir;
    argv[n] = NULL;

    char stamp[32], *cmd = NULL;
    size_t len = 0;
    time_t t = time(NULL);
    struct tm tm;
    strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
    FILE *f = open_memstream(&cmd, &len);
    if (!f) abort();
    fputs("runner", f);
    for (size_t k = 1; k < n; k++) {
        fputc(' ', f);
        run_files_shell_word(f, argv[k]);
    }
    fclose(f);
    off_t from = lseek(fd, 0, SEEK_END);
    dprintf(fd, "sweep: started %s: %s\n", stamp, cmd);
    free(cmd);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        if (!r->o->only) setpgid(0, 0); /* the sweep alone passes signals on */
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGCHLD, SIG_DFL);
        sigprocmask(SIG_SETMASK, &r->old_mask, NULL);
        int null = open("/dev/null", O_RDONLY);
        if (null >= 0) dup2(null, STDIN_FILENO);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        execv(r->o->runner, (char *const *)argv);
        dprintf(STDERR_FILENO, "sweep: cannot run %s: %s\n", r->o->runner, strerror(errno));
        _exit(127);
    }
    int err = errno;
    close(fd);
    arena_free(&a);
    if (pid < 0) {
        diag_error(r->d, (struct mark){0}, "cannot start point %s: %s", p->name, strerror(err));
        p->status = SWEEP_FAILED;
        return START_FAILED;
    }
    if (!r->o->only) setpgid(pid, pid);
    r->kids[slot] = (struct child){pid, i, from, now_seconds(), tb ? hparams_start(r, p) : NULL};
    r->running++;
    r->ours[i] = true;
    p->status = SWEEP_RUNNING;
    say(r, "[%zu/%zu] %s: %s (log: %s)\n", i + 1, sw->npoints, p->name,
        resume ? "resuming from its checkpoint" : "training", p->log);
    return START_RUNNING;
}

/* The first error line of the log from offset from, into line ("" when none). */
static void first_error(const char *log, off_t from, char *line, size_t size)
{
    line[0] = 0;
    char *text = path_read_text(log);
    if (!text) return;
    const char *p = (size_t)from <= strlen(text) ? text + from : text;
    const char *e = strstr(p, "error: ");
    if (e) {
        const char *start = e;
        while (start > text && start[-1] != '\n') start--;
        snprintf(line, size, "%.*s", (int)strcspn(start, "\n"), start);
    }
    free(text);
}

/* A child ended with wait status ws: the point's status, the log's last line, a line. */
static void end_point(struct run *r, struct child *k, int ws)
{
    struct sweep *sw = r->sw;
    struct sweep_point *p = &sw->points[k->point];
    int code = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
    bool stopped = code == STATUS_SIGINT || code == STATUS_SIGTERM;
    bool done = code == 0 && sweep_point_has_summary(p);
    p->status = done ? SWEEP_DONE : stopped ? SWEEP_INTERRUPTED : SWEEP_FAILED;
    p->exit_code = code;
    char clk[32], line[300], why[64] = "";
    if (WIFSIGNALED(ws)) snprintf(why, sizeof why, ", killed by signal %d", WTERMSIG(ws));
    else if (code == 0 && !done) snprintf(why, sizeof why, ", without summary.json");
    int fd = open(p->log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
    if (fd >= 0) {
        if (done)
            dprintf(fd, "sweep: done\n");
        else
            dprintf(fd, "sweep: %s (exit %d%s)\n", sweep_status_name(p->status), code, why);
        close(fd);
    }
    run_files_clock(now_seconds() - k->started, clk, sizeof clk);
    if (done) {
        struct sweep_result res;
        sweep_read_result(p, &res);
        say(r, "[%zu/%zu] %s: done in %s", k->point + 1, sw->npoints, p->name, clk);
        if (!isnan(res.best_val_acc)) say(r, ", best val acc %.4f", res.best_val_acc);
        if (!isnan(res.test_acc)) say(r, ", test acc %.4f", res.test_acc);
        say(r, "\n");
    } else {
        first_error(p->log, k->log_from, line, sizeof line);
        say(r, "[%zu/%zu] %s: %s after %s (exit %d%s)%s%s; log: %s\n", k->point + 1, sw->npoints,
            p->name, sweep_status_name(p->status), clk, code, why, line[0] ? ": " : "", line,
            p->log);
    }
    if (k->hparams) {
        /* An interrupted point has not ended: its session stays open until it is resumed. */
        struct diag quiet = {.out = NULL};
        if (!stopped) tfevents_hparams_end(k->hparams, done, wall_seconds());
        if (tfevents_close(k->hparams, &quiet))
            say(r, "warning: %s: cannot write TensorBoard's hparams records\n", p->run_dir);
        k->hparams = NULL;
    }
    k->pid = 0;
    r->running--;
}

/* sweep.csv (and what else reports on the points), with the points other processes run as
 * their files say. Sweep processes sharing the directory (Slurm tasks) take turns, each
 * reading the statuses under the lock, so the last to write saw every other's outcome. */
static enum status changed(struct run *r)
{
    struct sweep *sw = r->sw;
    int fd = open(sw->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) flock(fd, LOCK_EX);
    for (size_t i = 0; i < sw->npoints; i++)
        if (!r->ours[i]) sweep_point_read_status(&sw->points[i]);
    enum status st = sweep_points_changed(sw, r->d);
    if (fd >= 0) close(fd);
    return st;
}

static long find_point(const struct sweep *sw, const char *name)
{
    for (size_t i = 0; i < sw->npoints; i++)
        if (strcmp(sw->points[i].name, name) == 0) return (long)i;
    return -1;
}

/* Waits for children and starts points until every point has had its turn, or a signal. */
static enum status loop(struct run *r, long only)
{
    struct sweep *sw = r->sw;
    size_t next = 0;
    sig_atomic_t forwarded = 0;
    sigset_t wait_mask = r->old_mask;
    sigdelset(&wait_mask, SIGINT);
    sigdelset(&wait_mask, SIGTERM);
    sigdelset(&wait_mask, SIGCHLD);
    enum status st = STATUS_OK;
    for (;;) {
        while (!stop_count && r->running < r->parallel && next < sw->npoints) {
            size_t i = next++;
            if (only >= 0 && (long)i != only) continue;
            if (sw->points[i].status == SWEEP_DONE) {
                say(r, "[%zu/%zu] %s: done already\n", i + 1, sw->npoints, sw->points[i].name);
                continue;
            }
            int slot = 0;
            while (r->kids[slot].pid) slot++;
            if (start_point(r, i, slot) == START_FAILED) r->ours[i] = true;
            if (changed(r)) st = STATUS_RUNTIME;
        }
        bool reaped = false;
        int ws;
        for (pid_t pid; (pid = waitpid(-1, &ws, WNOHANG)) > 0;)
            for (int s = 0; s < r->parallel; s++)
                if (r->kids[s].pid == pid) {
                    end_point(r, &r->kids[s], ws);
                    reaped = true;
                    if (changed(r)) st = STATUS_RUNTIME;
                }
        if (stop_count != forwarded) {
            forwarded = stop_count;
            if (only < 0)
                for (int s = 0; s < r->parallel; s++)
                    if (r->kids[s].pid) kill(r->kids[s].pid, stop_signal);
            if (r->running)
                say(r, "%s: waiting for %d point%s to save a checkpoint\n",
                    stop_signal == SIGINT ? "SIGINT" : "SIGTERM", r->running,
                    r->running > 1 ? "s" : "");
        }
        if (r->running == 0 && (stop_count || next >= sw->npoints)) break;
        if (!reaped) sigsuspend(&wait_mask);
    }
    return st;
}

enum status sweep_run(struct sweep *sw, const struct sweep_run_options *o, struct diag *d)
{
    long only = -1;
    if (o->only && (only = find_point(sw, o->only)) < 0) {
        diag_error(d, (struct mark){0}, "--only %s: the sweep has no such point", o->only);
        diag_hint(d, "its points: %s%s%s", sw->points[0].name, sw->npoints > 1 ? ", ..., " : "",
                  sw->npoints > 1 ? sw->points[sw->npoints - 1].name : "");
        return STATUS_CONFIG;
    }
    char why[256];
    struct run r = {.sw = sw, .o = o, .d = d, .cores = omp_get_num_procs(),
                    .parallel = o->only || o->parallel < 1 ? 1 : o->parallel};
    if (r.parallel > 1) r.gpus = device_cuda_count(why, sizeof why); /* how to share them */
    r.kids = calloc((size_t)r.parallel, sizeof *r.kids);
    r.ours = calloc(sw->npoints, sizeof *r.ours);
    if (!r.kids || !r.ours) abort();
    stop_signal = 0;
    stop_count = 0;
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGCHLD);
    sigprocmask(SIG_BLOCK, &block, &r.old_mask);
    struct sigaction stop = {.sa_handler = on_stop}, child = {.sa_handler = on_child};
    struct sigaction old_int, old_term, old_chld;
    sigemptyset(&stop.sa_mask);
    sigemptyset(&child.sa_mask);
    sigaction(SIGINT, &stop, &old_int);
    sigaction(SIGTERM, &stop, &old_term);
    sigaction(SIGCHLD, &child, &old_chld);

    say(&r, "sweep %s: %zu point%s%s\n", sw->dir, only >= 0 ? (size_t)1 : sw->npoints,
        only >= 0 || sw->npoints == 1 ? "" : "s",
        r.parallel > 1 ? (r.gpus > 1 ? ", several at once (a GPU each)" : ", several at once")
                       : "");
    enum status st = changed(&r); /* reads every point's status (none is ours yet) */
    enum status run_st = loop(&r, only);
    if (!st) st = run_st;
    if (!st) st = changed(&r);

    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGCHLD, &old_chld, NULL);
    sigprocmask(SIG_SETMASK, &r.old_mask, NULL);
    if (!o->quiet && only < 0) {
        printf("\n");
        sweep_print_table(sw, stdout);
    }
    bool all = true;
    for (size_t i = 0; i < sw->npoints; i++)
        if (only < 0 || (long)i == only) all = all && sw->points[i].status == SWEEP_DONE;
    free(r.kids);
    free(r.ours);
    if (stop_count) return stop_signal == SIGINT ? STATUS_SIGINT : STATUS_SIGTERM;
    return st ? st : all ? STATUS_OK : STATUS_RUNTIME;
}

/* --------------------------------------------------------------------------------------- */
/* The closing table */

static void cell(FILE *out, double x, const char *fmt, int width)
{
    if (isnan(x))
        fprintf(out, "  %*s", width, "-");
    else
        fprintf(out, fmt, width, x);
}

void sweep_print_table(const struct sweep *sw, FILE *out)
{
    int w = 5;
    size_t count[SWEEP_INTERRUPTED + 1] = {0};
    for (size_t i = 0; i < sw->npoints; i++) {
        int n = (int)strlen(sw->points[i].name);
        if (n > w) w = n;
        count[sw->points[i].status]++;
    }
    fprintf(out, "sweep %s: %zu point%s", sw->dir, sw->npoints, sw->npoints == 1 ? "" : "s");
    static const enum sweep_status order[] = {SWEEP_DONE, SWEEP_FAILED, SWEEP_INTERRUPTED,
                                              SWEEP_RUNNING, SWEEP_PENDING};
    const char *sep = ": ";
    for (size_t k = 0; k < ARRAY_LEN(order); k++)
        if (count[order[k]]) {
            fprintf(out, "%s%zu %s", sep, count[order[k]], sweep_status_name(order[k]));
            sep = ", ";
        }
    fprintf(out, "\n    %-*s  %-17s  %8s  %9s  %8s  %8s  %8s\n", w, "point", "status", "best_val",
            "final_val", "test", "time", "img/s");
    /* Each point's summary.json read once, for its row and the choice of the best. */
    struct sweep_result *results = malloc((sw->npoints + 1) * sizeof *results);
    if (!results) abort();
    for (size_t i = 0; i < sw->npoints; i++) sweep_read_result(&sw->points[i], &results[i]);
    long best = sweep_best_of(sw, results);
    for (size_t i = 0; i < sw->npoints; i++) {
        const struct sweep_point *p = &sw->points[i];
        const struct sweep_result res = results[i];
        char status[32], clk[32];
        if (p->status == SWEEP_FAILED || p->status == SWEEP_INTERRUPTED)
            snprintf(status, sizeof status, "%s (%d)", sweep_status_name(p->status), p->exit_code);
        else
            snprintf(status, sizeof status, "%s", sweep_status_name(p->status));
        fprintf(out, "  %c %-*s  %-17s", (long)i == best ? '*' : ' ', w, p->name, status);
        cell(out, res.best_val_acc, "  %*.4f", 8);
        cell(out, res.final_val_acc, "  %*.4f", 9);
        cell(out, res.test_acc, "  %*.4f", 8);
        if (isnan(res.seconds))
            fprintf(out, "  %8s", "-");
        else
            fprintf(out, "  %8s", run_files_clock(res.seconds, clk, sizeof clk));
        cell(out, res.img_per_s, "  %*.0f", 8);
        fputc('\n', out);
    }
    if (best >= 0) {
        const struct sweep_result *res = &results[best];
        bool val = !isnan(res->best_val_acc);
        fprintf(out, "best: %s (%s %.4f): %s\n", sw->points[best].name,
                val ? "best_val_acc" : "test_acc", val ? res->best_val_acc : res->test_acc,
                sw->points[best].run_dir);
    }
    free(results);
    fprintf(out, "table: %s/sweep.csv\n", sw->dir);
    char html[4200];
    snprintf(html, sizeof html, "%s/sweep.html", sw->dir);
    if (access(html, R_OK) == 0) fprintf(out, "report: %s\n", html);
}

/* --------------------------------------------------------------------------------------- */
/* Slurm */

enum status sweep_write_sbatch(const struct sweep *sw, const char *runner,
                               const char *const *argv, int argc,
                               const char *const *sbatch_opts, int nopts, int parallel,
                               struct diag *d)
{
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd)) {
        diag_error(d, (struct mark){0}, "cannot tell the current directory: %s", strerror(errno));
        return STATUS_RUNTIME;
    }
    FILE *f = run_files_begin(sw->dir, "sweep.sbatch", d);
    if (!f) return STATUS_RUNTIME;
    const char *job = strrchr(sw->dir, '/');
    job = job ? job + 1 : sw->dir;
    fprintf(f, "#!/bin/bash\n");
    fprintf(f, "# The %zu points of the sweep in %s, one Slurm array task each, written by\n"
               "# `runner sweep --slurm`. Submitting it again goes on where it stopped: a\n"
               "# finished point is skipped, an interrupted one resumes from its checkpoint.\n",
            sw->npoints, sw->dir);
    fprintf(f, "#SBATCH --job-name=%s\n", job);
    fprintf(f, "#SBATCH --array=0-%zu", sw->npoints - 1);
    if (parallel > 1) fprintf(f, "%%%d", parallel);
    fprintf(f, "\n#SBATCH --output=");
    for (const char *p = sw->dir; *p; p++) { /* '%' is Slurm's pattern character */
        if (*p == '%') fputc('%', f);
        fputc(*p, f);
    }
    fprintf(f, "/logs/slurm-%%A_%%a.log\n");
    fprintf(f, "#SBATCH --chdir=%s\n", cwd);
    for (int i = 0; i < nopts; i++) fprintf(f, "#SBATCH %s\n", sbatch_opts[i]);
    fprintf(f, "set -eu\ncase \"${SLURM_ARRAY_TASK_ID:?not started as a Slurm array task}\" in\n");
    for (size_t i = 0; i < sw->npoints; i++) {
        fprintf(f, "%zu) point=", i);
        run_files_shell_word(f, sw->points[i].name);
        fprintf(f, " ;;\n");
    }
    fprintf(f, "*) echo \"sweep.sbatch: no point for array task $SLURM_ARRAY_TASK_ID\" >&2; "
               "exit 2 ;;\nesac\nexec ");
    run_files_shell_word(f, runner);
    fprintf(f, " sweep");
    for (int i = 0; i < argc; i++) {
        fputc(' ', f);
        run_files_shell_word(f, argv[i]);
    }
    fprintf(f, " --only \"$point\"\n");
    enum status st = run_files_end(f, sw->dir, "sweep.sbatch", d);
    if (!st) {
        char path[4300];
        snprintf(path, sizeof path, "%s/sweep.sbatch", sw->dir);
        chmod(path, 0755);
    }
    return st;
}

/* Whether a program is on PATH. */
static bool on_path(const char *prog)
{
    const char *path = getenv("PATH");
    for (const char *p = path ? path : "/usr/bin:/bin"; *p;) {
        size_t n = strcspn(p, ":");
        char full[4400];
        snprintf(full, sizeof full, "%.*s/%s", (int)n, n ? p : ".", prog);
        if (access(full, X_OK) == 0) return true;
        p += n + (p[n] == ':');
    }
    return false;
}

enum status sweep_submit(const struct sweep *sw, struct diag *d)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/sweep.sbatch", sw->dir);
    if (!on_path("sbatch")) {
        diag_error(d, (struct mark){0}, "sbatch not found: Slurm's commands are not installed "
                   "here, so %s was written but not submitted", path);
        diag_hint(d, "submit it where Slurm is (sbatch %s), or use --dry-run to only write it",
                  path);
        return STATUS_RUNTIME;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        execlp("sbatch", "sbatch", path, (char *)NULL);
        _exit(127);
    }
    int ws = 0;
    if (pid < 0 || waitpid(pid, &ws, 0) < 0 || !WIFEXITED(ws) || WEXITSTATUS(ws)) {
        diag_error(d, (struct mark){0}, "sbatch %s failed (%s %d)", path,
                   pid > 0 && WIFSIGNALED(ws) ? "signal" : "exit",
                   pid > 0 && WIFSIGNALED(ws) ? WTERMSIG(ws) : WEXITSTATUS(ws));
        return STATUS_RUNTIME;
    }
    return STATUS_OK;
}
