/*
 * train.c: the run loop and its files; see train.h.
 */
#include "train.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <omp.h>

#include "augment.h"
#include "augment_gpu.h"
#include "bench.h"
#include "checkpoint.h"
#include "commit.h"
#include "data.h"
#include "device.h"
#include "evaluate.h"
#include "hooks.h"
#include "json.h"
#include "loader.h"
#include "model.h"
#include "paths.h"
#include "plan.h"
#include "pretrained.h"
#include "run_files.h"
#include "schedule.h"
#include "step.h"
#include "tfevents.h"
#include "weights.h"

/* --------------------------------------------------------------------------------------- */
/* Output: everything said goes to stdout and run.log; the progress bar to a terminal only. */

struct out {
    FILE *log;  /* run.log, or NULL before the run directory exists */
    bool tty;   /* stdout is a terminal: progress bar */
    bool bar;   /* a progress bar is on the current line */
};

static void say(struct out *o, const char *fmt, ...) PRINTF_LIKE(2, 3);
static void say(struct out *o, const char *fmt, ...)
{
    if (o->bar) {
        fputs("\r\033[K", stdout);
        o->bar = false;
    }
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
    if (o->log) {
        va_start(ap, fmt);
        vfprintf(o->log, fmt, ap);
        va_end(ap);
        fflush(o->log);
    }
}

/* A backend's warning or failure (plan_options.message): the terminal and run.log. */
static void plan_message(void *ctx, bool error, const char *line)
{
    struct out *o = ctx;
    if (o->bar) {
        fputs("\r\033[K", stdout);
        fflush(stdout);
        o->bar = false;
    }
    fprintf(stderr, "runner: %s: %s\n", error ? "error" : "warning", line);
    if (o->log) {
        fprintf(o->log, "%s: %s\n", error ? "error" : "warning", line);
        fflush(o->log);
    }
}

/* --------------------------------------------------------------------------------------- */
/* One run's state */

/* The run's figures over all its epochs, for summary.json. */
struct totals {
    int64_t epochs, steps, best_epoch;
    double best_val_acc, last_val_acc, train_seconds, train_images;
    double past_seconds; /* a resumed run's epochs before it */
    bool has_val;
    char stopped[1400]; /* why training ended before its epochs (a hook's request, a failure) */
};

struct run {
    const struct spec *s;
    const struct graph *g;
    const struct train_options *opt;
    struct diag d;
    struct out out;
    char dir[4096];
    bool dir_open; /* dir was created for this run */

    struct data data;
    struct data_split split;
    int64_t nval; /* validation images: the held-out split's, or a folder's val/ */
    const struct dataset *test_set; /* what the test loader's image indices index */
    struct augment aug_train, aug_eval;
    struct plan *train, *eval;
    struct loader *train_loader, *val_loader, *test_loader;
    struct step_optimizer optimizer;
    struct schedule schedule;
    int classes, workers;
    struct device_choice dev; /* where the plans run */
    struct augment_gpu_plan aug_plan; /* the training transforms as the plan runs them */
    bool resident;                    /* the plan keeps the training set (data.resident) */
    char data_line[200];              /* where the training batches are made, for run.log */
    int64_t steps_per_epoch;
    void *copy;    /* a tensor on its way from the training plan to the evaluation plan */
    FILE *jsonl, *csv;
    struct tfevents *tb; /* tensorboard: true: RUN_DIR/tensorboard/events.out.tfevents.* */
    bool tb_failed;      /* a write to it failed (said once; training goes on) */
    double started;
    char started_text[32]; /* local time, "2026-11-25 14:03:59" */
    struct checkpoint_state from; /* where training starts: zero, or the resumed checkpoint */
    char resumed_from[4400];      /* the checkpoint's path */
    bool checkpointed;            /* a checkpoint to resume from exists (saved, or resumed) */
    char failure[1400];           /* a plan's run-time failure: what, where; "" */
    struct totals totals;
    struct pretrained_result pretrained;
    struct hooks *hooks;   /* the experiment's hooks: list; NULL when none */
    struct hooks_info info;
    struct arena arena;    /* the hook folders */
};

/* --------------------------------------------------------------------------------------- */
/* SIGINT and SIGTERM: the step under way finishes, a checkpoint is saved, the run stops. A
 * download of the data or of model.pretrained under way stops at once instead, keeping its
 * .part for the next run (stop_signal is its cancel flag). A second signal of the same kind
 * takes its default action. */

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    stop_signal = sig;
    signal(sig, SIG_DFL);
}

/* What a run stopped by sig ends with. */
static enum status signal_status(int sig)
{
    return sig == SIGINT ? STATUS_SIGINT : STATUS_SIGTERM;
}

/* A plan that failed while running (its backend said what): where, for summary.json's
 * "stopped" and the lines that end the run. Returns STATUS_RUNTIME. */
static enum status plan_failed(struct run *r, const struct plan *p, const char *where)
{
    snprintf(r->failure, sizeof r->failure, "%s failed %s: %s",
             p == r->train ? "training" : "evaluation", where, plan_error(p));
    return STATUS_RUNTIME;
}

/* An image that passed the probe could not be read: the run stops naming it (r->failure).
 * Returns STATUS_RUNTIME. */
static enum status data_failed(struct run *r, const struct loader *l, const char *where)
{
    snprintf(r->failure, sizeof r->failure, "reading the data failed %s: %s", where,
             loader_error(l));
    return STATUS_RUNTIME;
}

/* The evaluation plan takes the training plan's current weights and statistics; with an EMA
 * (optimizer.ema_decay), the averaged weights instead of the trained ones, and the model's own
 * batchnorm statistics (they are not averaged). */
static void sync_eval(struct run *r)
{
    int ema = r->optimizer.ema_slot;
    for (size_t i = 0; i < r->g->ntensors; i++) {
        const struct graph_tensor *t = &r->g->tensors[i];
        if (ema >= 0 && t->t.role == TENSOR_PARAM && r->optimizer.updates > 0)
            plan_get_state(r->train, t, ema, r->copy);
        else
            plan_get_tensor(r->train, t, r->copy);
        plan_set_tensor(r->eval, t, r->copy);
    }
}

static enum status make_loader(struct run *r, const struct dataset *set, const int64_t *index,
                               int64_t n, bool train, struct loader **out)
{
    const struct spec *s = r->s;
    struct loader_config c = {.set = set, .index = index, .n = n,
                              .aug = train ? &r->aug_train : &r->aug_eval,
                              .batch = train ? s->train.batch_size : s->eval.batch_size,
                              .shuffle = train, .drop_last = train, .seed = (uint64_t)s->seed,
                              .workers = r->workers, .classes = r->classes,
                              .indices_only = train && r->resident};
    if (loader_create(&c, out)) {
        diag_error(&r->d, (struct mark){0}, "out of memory for the data loader");
        return STATUS_RUNTIME;
    }
    return STATUS_OK;
}

/* The training set stays with the loader threads because of why: an error (status st) when
 * data.resident is on, else a line for the log. */
static enum status not_resident(struct run *r, const char *why, enum status st)
{
    if (r->s->data.resident == SPEC_RESIDENT_ON) {
        diag_error(&r->d, spec_mark(r->s, "data.resident"),
                   "the training set cannot stay on the device: %s", why);
        diag_hint(&r->d, "data.resident: auto uses the data-loading threads then");
        return st;
    }
    snprintf(r->data_line, sizeof r->data_line, "batches made by the data-loading threads: %s",
             why);
    return STATUS_OK;
}

/*
 * data.resident: whether the training plan keeps the training set and augments it (on a GPU:
 * in device memory, by its kernel; the loader then only names each batch's images). Checked
 * before the data is read (can_resident) and settled once the plan exists (keep_resident).
 */
static enum status can_resident(struct run *r, bool *want)
{
    const struct spec *s = r->s;
    enum spec_resident mode = s->data.resident;
    char why[160] = "";
    *want = false;
    /* auto: where the backend keeps a training set itself (the GPU) */
    if (mode == SPEC_RESIDENT_OFF || (mode == SPEC_RESIDENT_AUTO && !r->dev.be->set_dataset))
        return STATUS_OK;
    if (s->data.dataset == SPEC_DATASET_FOLDER)
        return not_resident(r, "a folder dataset's images are decoded by the data-loading "
                               "threads", STATUS_CONFIG);
    if (!augment_compile_gpu(&r->aug_train, &r->aug_plan, why, sizeof why))
        return not_resident(r, why, STATUS_CONFIG);
    *want = true;
    return STATUS_OK;
}

static enum status keep_resident(struct run *r)
{
    struct plan_dataset ds = {.pixels = r->data.train.pixels, .count = r->data.train.n,
                              .aug = &r->aug_plan};
    char why[200] = "";
    bool kept = plan_set_dataset(r->train, &ds, why, sizeof why);
    if (plan_status(r->train)) return plan_failed(r, r->train, "keeping the training set");
    if (kept) {
        r->resident = true;
        snprintf(r->data_line, sizeof r->data_line,
                 "training set resident on the device (%.0f MiB), augmented there",
                 (double)r->data.train.n * 3 * r->data.train.h * r->data.train.w / (1 << 20));
        return STATUS_OK;
    }
    return not_resident(r, why, STATUS_RUNTIME);
}

/*
 * Which images train, validate and test. The CIFAR datasets and a folder without val/ hold
 * data.val_split training images out for validation (data_split); a folder's val/ validates
 * instead. A folder with neither val/ nor test/ tests on the held-out images. data.subset and
 * data.val_split must leave training images of the data.
 */
static enum status split_data(struct run *r)
{
    const struct spec *s = r->s;
    int64_t n = r->data.train.n;
    bool own_val = r->data.val.n > 0;
    if (s->data.subset > n) {
        diag_error(&r->d, spec_mark(s, "data.subset"), "data.subset is %lld, but the data has "
                   "%lld training images", s->data.subset, (long long)n);
        return STATUS_CONFIG;
    }
    int64_t used = s->data.subset ? s->data.subset : n;
    if (!own_val && s->data.val_split >= used) {
        diag_error(&r->d, spec_mark(s, "data.val_split"), "data.val_split (%lld) leaves no "
                   "training images: the data has %lld%s", s->data.val_split, (long long)used,
                   s->data.subset ? " in data.subset" : " training images");
        diag_hint(&r->d, "hold fewer out, e.g. data.val_split=%lld", (long long)(used / 10));
        return STATUS_CONFIG;
    }
    data_split(n, s->data.subset, own_val ? 0 : s->data.val_split, &r->split);
    r->nval = own_val ? r->data.val.n : r->split.nval;
    if (s->eval.test && !r->data.test.n && !r->split.nval) {
        diag_error(&r->d, spec_mark(s, "eval.test"), "nothing to test on: %s has no test/ or "
                   "val/ folder and data.val_split is 0", r->data.root);
        diag_hint(&r->d, "add a test/ (or val/) folder, hold images out with data.val_split, "
                         "or set eval.test: false");
        return STATUS_CONFIG;
    }
    /* The transforms' scratch fits the largest image that enters them. */
    if (r->aug_train.in_h == 0) {
        const struct dataset *sets[] = {&r->data.train, &r->data.val, &r->data.test};
        int mh = 0, mw = 0;
        for (int i = 0; i < 3; i++) {
            mh = sets[i]->max_h > mh ? sets[i]->max_h : mh;
            mw = sets[i]->max_w > mw ? sets[i]->max_w : mw;
        }
        augment_set_input_max(&r->aug_train, mh, mw);
        augment_set_input_max(&r->aug_eval, mh, mw);
    }
    return STATUS_OK;
}

/* Data, transforms, plans and loaders: everything that can fail before the run directory. */
static enum status prepare(struct run *r)
{
    const struct spec *s = r->s;
    r->classes = model_classes(s);
    if (device_choose(s, &r->dev, &r->d)) return STATUS_CONFIG;
    if (r->opt->backend) r->dev.be = r->opt->backend;
    r->workers = s->data.workers > 0 ? (int)s->data.workers : loader_default_workers();
    /* A folder's images may differ in size (the transforms make them one, model_build
     * checked); the CIFAR datasets' are 32 x 32. */
    int side = s->data.dataset == SPEC_DATASET_FOLDER ? 0 : CIFAR_SIDE;
    if (augment_init(&r->aug_train, &s->augment.train, 3, side, side, &r->d) ||
        augment_init(&r->aug_eval, &s->augment.eval, 3, side, side, &r->d))
        return STATUS_CONFIG;
    bool resident;
    enum status st = can_resident(r, &resident);
    if (st) return st;

    if ((st = data_load(s, &stop_signal, &r->d, &r->data)))
        return stop_signal ? signal_status(stop_signal) : st; /* nothing to save */
    if ((st = split_data(r))) return st;
    if (r->split.ntrain < s->train.batch_size) {
        diag_error(&r->d, spec_mark(s, "train.batch_size"),
                   "%lld training images make no full batch of %lld", (long long)r->split.ntrain,
                   s->train.batch_size);
        diag_hint(&r->d, "lower train.batch_size, or raise data.subset");
        return STATUS_CONFIG;
    }

    struct plan_options po = r->dev.o;
    po.batch = s->train.batch_size;
    po.optimizer_slots = model_optimizer_slots(s);
    po.profile = r->opt->profile;
    po.message = plan_message;
    po.message_ctx = &r->out;
    if (plan_create(r->g, r->dev.be, &po, &r->d, &r->train)) return STATUS_RUNTIME;
    po.batch = s->eval.batch_size;
    po.eval_only = true;
    po.profile = false;
    if (plan_create(r->g, r->dev.be, &po, &r->d, &r->eval)) return STATUS_RUNTIME;
    plan_init_params(r->train, (uint64_t)s->seed);
    /* model.pretrained over the fresh weights, reinit aside (a URL downloaded into the cache
     * first when it is not there); said once run.log is open */
    if ((st = pretrained_load(r->train, s, &stop_signal, &r->pretrained, &r->d)))
        return stop_signal ? signal_status(stop_signal) : st; /* a download's .part is kept */
    if (resident && (st = keep_resident(r))) return st;

    r->copy = malloc(weights_largest(r->g) * 8); /* f32 tensors, or an i64 counter */
    if (!r->copy) return STATUS_RUNTIME;

    r->steps_per_epoch = r->split.ntrain / s->train.batch_size;
    const struct dataset *val = r->data.val.n ? &r->data.val : &r->data.train;
    const struct dataset *test = r->data.test.n ? &r->data.test : &r->data.train;
    r->test_set = test;
    if (make_loader(r, &r->data.train, r->split.train, r->split.ntrain, true, &r->train_loader) ||
        (r->nval && make_loader(r, val, r->data.val.n ? NULL : r->split.val, r->nval, false,
                                &r->val_loader)) ||
        (s->eval.test && make_loader(r, test, r->data.test.n ? NULL : r->split.val,
                                     r->data.test.n ? r->data.test.n : r->split.nval, false,
                                     &r->test_loader)))
        return STATUS_RUNTIME;
    step_optimizer_init(&r->optimizer, &s->optimizer);
    schedule_init(&r->schedule, &s->schedule, s->optimizer.lr, s->train.epochs,
                  r->steps_per_epoch);
    return STATUS_OK;
}


static FILE *open_in(struct run *r, const char *name, const char *mode)
{
    char path[4200];
    if (snprintf(path, sizeof path, "%s/%s", r->dir, name) >= (int)sizeof path) return NULL;
    return fopen(path, mode);
}

/* Whether the experiment, resolved, is the one the run directory was started with. */
static enum status same_config(struct run *r)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/config.yaml", r->dir);
    char *was = path_read_text(path), *now = spec_yaml_text(r->s);
    enum status st = STATUS_OK;
    if (was && strcmp(was, now)) {
        /* Written by an older runner, without the keys added since (their defaults then):
         * the same run when it resolves to the same configuration. */
        struct diag quiet = {.out = NULL};
        struct spec *old;
        if (spec_load_run(r->dir, NULL, 0, &quiet, &old) == STATUS_OK) {
            char *again = spec_yaml_text(old);
            if (!strcmp(again, now)) {
                free(was);
                was = again;
            } else {
                free(again);
            }
            spec_free(old);
        }
    }
    if (!was) {
        diag_error(&r->d, (struct mark){0}, "%s: no run to resume (%s: %s)", r->dir, path,
                   strerror(errno));
        st = STATUS_CONFIG;
    } else if (strcmp(was, now)) {
        const char *a = was, *b = now;
        int line = 1;
        while (*a && *a == *b) {
            line += *a++ == '\n';
            b++;
        }
        diag_error(&r->d, (struct mark){0},
                   "the experiment, with its overrides, differs from the run's %s (line %d)",
                   path, line);
        diag_hint(&r->d, "resume with the same experiment file and overrides as the run");
        st = STATUS_CONFIG;
    }
    free(was);
    free(now);
    return st;
}

/* TensorBoard's event file (tensorboard: true), a new one for each process: a SessionLog
 * START at the first step this process trains (TensorBoard drops what an earlier file holds
 * from that step on: the steps a resumed run trains again after its checkpoint, as
 * metrics.jsonl drops their rows), and the configuration as text. A
 * failure to write it is said once and training goes on. */
static void tb_check(struct run *r)
{
    struct diag quiet = {.out = NULL};
    if (!r->tb || r->tb_failed || !tfevents_flush(r->tb, &quiet)) return;
    r->tb_failed = true;
    say(&r->out, "warning: %s: cannot write; the run goes on without TensorBoard's log\n",
        tfevents_path(r->tb));
}

static void open_tensorboard(struct run *r)
{
    if (!r->s->tensorboard) return;
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/tensorboard", r->dir);
    struct diag quiet = {.out = NULL};
    if (tfevents_open(dir, NULL, &r->tb, &quiet)) {
        say(&r->out, "warning: %s: cannot create TensorBoard's event file; the run goes on "
                     "without it\n", dir);
        r->tb_failed = true;
        return;
    }
    tfevents_session_start(r->tb, r->from.step + 1);
    char *yaml = spec_yaml_text(r->s), *md = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&md, &len);
    if (!f) abort();
    /* A Markdown code block: each line indented by four spaces. */
    for (const char *line = yaml; *line;) {
        size_t n = strcspn(line, "\n");
        fprintf(f, "    %.*s\n", (int)n, line);
        line += n + (line[n] == '\n');
    }
    if (fclose(f)) abort();
    tfevents_text(r->tb, "config", r->from.step, md);
    free(md);
    free(yaml);
    tb_check(r);
}

/* A resumed run's directory: run.log continues, and the metric files keep the rows of the
 * epochs its checkpoint has seen (rows written after that checkpoint are dropped). */
static enum status reopen_dir(struct run *r)
{
    char path[4200];
    r->dir_open = true;
    r->out.log = open_in(r, "run.log", "a");
    /* Keep the first `from.epoch` rows of both metric files. */
    char *rows[2] = {NULL, NULL};
    const char *names[2] = {"metrics.jsonl", "metrics.csv"};
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/%s", r->dir, names[k]);
        rows[k] = path_read_text(path);
        if (!rows[k]) rows[k] = calloc(1, 1);
        char *p = rows[k];
        for (int64_t n = -(int64_t)k; n < r->from.epoch && (p = strchr(p, '\n')); n++) p++;
        if (p) *p = 0;
    }
    r->jsonl = open_in(r, "metrics.jsonl", "w");
    r->csv = open_in(r, "metrics.csv", "w");
    if (r->jsonl) {
        fputs(rows[0], r->jsonl);
        fflush(r->jsonl);
    }
    if (r->csv) {
        fputs(rows[1], r->csv);
        fflush(r->csv);
    }
    free(rows[0]);
    free(rows[1]);
    if (!r->out.log || !r->jsonl || !r->csv) {
        diag_error(&r->d, (struct mark){0}, "%s: cannot write the run's files", r->dir);
        return STATUS_RUNTIME;
    }
    return STATUS_OK;
}

/* The run directory with config.yaml, run.log and the metric files' headers. */
static enum status open_dir(struct run *r)
{
    if (r->opt->resume) return reopen_dir(r);
    if (run_files_dir_create(r->opt->out, r->s->name, r->dir, sizeof r->dir, &r->d))
        return STATUS_RUNTIME;
    r->dir_open = true;
    FILE *f = run_files_begin(r->dir, "config.yaml", &r->d);
    if (!f) return STATUS_RUNTIME;
    spec_write_yaml(r->s, f);
    if (run_files_end(f, r->dir, "config.yaml", &r->d)) return STATUS_RUNTIME;
    r->out.log = open_in(r, "run.log", "w");
    r->jsonl = open_in(r, "metrics.jsonl", "w");
    r->csv = open_in(r, "metrics.csv", "w");
    if (!r->out.log || !r->jsonl || !r->csv) {
        diag_error(&r->d, (struct mark){0}, "%s: cannot write the run's files", r->dir);
        return STATUS_RUNTIME;
    }
    fprintf(r->csv, "epoch,step,train_loss,train_acc,val_loss,val_acc,lr,seconds,img_per_s\n");
    fflush(r->csv);
    return STATUS_OK;
}

/* --------------------------------------------------------------------------------------- */
/* Epochs */

struct epoch_stats {
    int64_t epoch, step, images, correct;
    int64_t timed_images; /* images trained by this process (a resumed epoch has others) */
    double loss_sum, lr, seconds, train_seconds;
    bool has_val;
    double val_loss, val_acc;
};

static void progress(struct run *r, const struct epoch_stats *e, int64_t b, double elapsed)
{
    const struct spec *s = r->s;
    int64_t nb = r->steps_per_epoch, done = e->epoch * nb + b + 1, total = s->train.epochs * nb;
    double ips = (double)e->timed_images / e->train_seconds;
    char eta[32];
    run_files_clock(elapsed / (double)done * (double)(total - done), eta, sizeof eta);
    double loss = e->loss_sum / (double)e->images, acc = (double)e->correct / (double)e->images;
    if (r->out.tty) {
        int width = 24, fill = (int)((b + 1) * width / nb);
        char bar[32];
        for (int i = 0; i < width; i++) bar[i] = i < fill ? '=' : i == fill ? '>' : ' ';
        bar[width] = 0;
        printf("\r\033[Kepoch %lld/%lld [%s] %lld/%lld loss %.4f acc %.4f %.0f img/s ETA %s",
               (long long)e->epoch + 1, s->train.epochs, bar, (long long)b + 1, (long long)nb,
               loss, acc, ips, eta);
        fflush(stdout);
        r->out.bar = true;
        return;
    }
    int64_t every = nb >= 4 ? nb / 4 : 1;
    if ((b + 1) % every == 0 && b + 1 < nb)
        say(&r->out, "  epoch %lld/%lld step %lld/%lld: loss %.4f acc %.4f, %.0f img/s, eta %s\n",
            (long long)e->epoch + 1, s->train.epochs, (long long)b + 1, (long long)nb, loss, acc,
            ips, eta);
}

/* Saves a checkpoint at e's position (batch batches into its epoch); prints where. */
static enum status save(struct run *r, const struct epoch_stats *e, int64_t batch)
{
    struct checkpoint_state cs = {.epoch = e->epoch, .batch = batch, .step = e->step,
                                  .loss_sum = e->loss_sum, .correct = e->correct,
                                  .images = e->images};
    if (batch == r->steps_per_epoch) /* the epoch is complete: the next one starts afresh */
        cs = (struct checkpoint_state){.epoch = e->epoch + 1, .step = e->step};
    char path[4400];
    if (checkpoint_save(r->train, &r->optimizer, &cs, r->dir, r->s->checkpoint.keep, path,
                        sizeof path, &r->d)) {
        char where[96];
        snprintf(where, sizeof where, "saving a checkpoint after step %lld", (long long)e->step);
        return plan_status(r->train) ? plan_failed(r, r->train, where) : STATUS_RUNTIME;
    }
    say(&r->out, "checkpoint: %s\n", path);
    r->checkpointed = true;
    return STATUS_OK;
}

/* Tells how the run stopped and how to go on. */
static void say_resume(struct run *r, const char *why)
{
    say(&r->out, "%s; resume with:\n  %s --resume %s\n", why,
        r->opt->command ? r->opt->command : "runner FILE", r->dir);
}

/* A training step started and not yet accounted for. */
struct started {
    int64_t batch, step, n;
};

/* The training plan failed at step `step` of epoch e. */
static enum status step_failed(struct run *r, const struct epoch_stats *e, int64_t step)
{
    char where[96];
    snprintf(where, sizeof where, "in epoch %lld at step %lld", (long long)e->epoch + 1,
             (long long)step);
    return plan_failed(r, r->train, where);
}

/* STATUS_RUNTIME (and r->failure) when either plan has failed: checked after what matters
 * (a step's result, an evaluation), `where` with its epoch (1-based) saying when. */
static enum status plans_ok(struct run *r, const char *where, int64_t epoch)
{
    char at[128];
    snprintf(at, sizeof at, "%s %lld", where, (long long)epoch);
    if (plan_status(r->train)) return plan_failed(r, r->train, at);
    if (plan_status(r->eval)) return plan_failed(r, r->eval, at);
    return STATUS_OK;
}

/* Waits for step q's result and adds it to the epoch's figures; STATUS_RUNTIME when its loss
 * is not finite, or the plan failed. */
static enum status finish_step(struct run *r, struct epoch_stats *e, const struct started *q,
                               double t0)
{
    struct plan_step_result res;
    step_train_wait(r->train, &r->optimizer, &res);
    if (plan_status(r->train)) return step_failed(r, e, q->step);
    if (!isfinite(res.loss)) {
        if (r->out.bar) say(&r->out, "\n");
        const char *what = isnan(res.loss) ? "not a number" : "infinite";
        diag_error(&r->d, (struct mark){0},
                   "epoch %lld, step %lld (batch %lld of the epoch): the loss is %s; stopping",
                   (long long)e->epoch + 1, (long long)q->step, (long long)q->batch + 1, what);
        diag_hint(&r->d, "lower optimizer.lr, or add a warm-up (schedule.warmup_epochs); "
                         "the last checkpoint, if any, is intact");
        if (r->out.log)
            fprintf(r->out.log, "error: epoch %lld, step %lld: the loss is %s; stopping\n",
                    (long long)e->epoch + 1, (long long)q->step, what);
        return STATUS_RUNTIME;
    }
    int64_t every = r->s->train.log_every;
    if (r->tb && every > 0 && q->step % every == 0)
        tfevents_scalar(r->tb, "train/loss_step", q->step, res.loss);
    e->correct += res.correct;
    e->images += q->n;
    e->timed_images += q->n;
    e->loss_sum += res.loss * (double)q->n;
    r->totals.steps = q->step; /* the steps done, should the run stop before its end */
    e->train_seconds = plan_clock() - t0;
    return STATUS_OK;
}

/*
 * The training batches of e->epoch from batch `first`. Each step is started before the
 * previous one's result is read (on a GPU the host sets up the next batch while the device
 * computes); figures lag one step. STATUS_RUNTIME when the loss stops being finite;
 * STATUS_SIGINT or STATUS_SIGTERM, after saving a checkpoint, when a signal came.
 */
static enum status train_epoch(struct run *r, struct epoch_stats *e, int64_t first)
{
    const struct spec *s = r->s;
    double t0 = plan_clock();
    enum status st;
    loader_start_at(r->train_loader, e->epoch, first);
    if (first > 0) e->lr = schedule_lr(&r->schedule, e->step - 1);
    int64_t b = first;
    struct started q = {0};
    bool pending = false;
    for (const struct batch *bt; (bt = loader_next(r->train_loader)); b++) {
        if (r->resident) {
            plan_set_batch(r->train, bt->image, bt->key, bt->labels);
        } else {
            plan_set_input(r->train, bt->x, bt->labels);
            if (bt->mixed) plan_set_targets(r->train, bt->targets);
        }
        e->lr = schedule_lr(&r->schedule, e->step);
        step_train_start(r->train, &r->optimizer, e->lr, s->train.label_smoothing);
        struct started now = {.batch = b, .step = ++e->step, .n = bt->n};
        if (plan_status(r->train)) return step_failed(r, e, now.step);
        if (pending && (st = finish_step(r, e, &q, t0))) return st;
        q = now;
        pending = true;
        if (stop_signal) {
            int sig = stop_signal;
            if ((st = finish_step(r, e, &q, t0))) return st;
            if (r->out.bar) say(&r->out, "\n");
            if (save(r, e, b + 1)) return STATUS_RUNTIME;
            char why[160];
            snprintf(why, sizeof why, "stopped by %s in epoch %lld at step %lld",
                     sig == SIGINT ? "SIGINT" : "SIGTERM", (long long)e->epoch + 1,
                     (long long)e->step);
            say_resume(r, why);
            return signal_status(sig);
        }
        if (e->images) progress(r, e, b - 1, plan_clock() - r->started);
    }
    if (pending && (st = finish_step(r, e, &q, t0))) return st;
    if (loader_error(r->train_loader)) {
        char where[64];
        snprintf(where, sizeof where, "in epoch %lld", (long long)e->epoch + 1);
        return data_failed(r, r->train_loader, where);
    }
    return STATUS_OK;
}

static void write_metrics(struct run *r, const struct epoch_stats *e)
{
    double loss = e->loss_sum / (double)e->images, acc = (double)e->correct / (double)e->images;
    double ips = e->train_seconds > 0 ? (double)e->timed_images / e->train_seconds : 0;
    /* Each figure as text once: metrics.jsonl, metrics.csv and TensorBoard read the same. */
    char tl[40], ta[40], vl[40] = "null", va[40] = "null", cvl[40] = "", cva[40] = "", lr[40],
        sec[40], ip[40];
    snprintf(tl, sizeof tl, "%.9g", loss);
    snprintf(ta, sizeof ta, "%.9g", acc);
    snprintf(lr, sizeof lr, "%.9g", e->lr);
    snprintf(sec, sizeof sec, "%.3f", e->seconds);
    snprintf(ip, sizeof ip, "%.2f", ips);
    if (e->has_val) {
        snprintf(vl, sizeof vl, "%.9g", e->val_loss);
        snprintf(va, sizeof va, "%.9g", e->val_acc);
        memcpy(cvl, vl, sizeof vl);
        memcpy(cva, va, sizeof va);
    }
    fprintf(r->jsonl,
            "{\"epoch\": %lld, \"step\": %lld, \"train_loss\": %s, \"train_acc\": %s, "
            "\"val_loss\": %s, \"val_acc\": %s, \"lr\": %s, \"seconds\": %s, "
            "\"img_per_s\": %s}\n",
            (long long)e->epoch + 1, (long long)e->step, tl, ta, vl, va, lr, sec, ip);
    fprintf(r->csv, "%lld,%lld,%s,%s,%s,%s,%s,%s,%s\n", (long long)e->epoch + 1,
            (long long)e->step, tl, ta, cvl, cva, lr, sec, ip);
    fflush(r->jsonl);
    fflush(r->csv);
    if (!r->tb) return;
    const char *tags[] = {"train/loss", "train/acc", "val/loss", "val/acc", "lr", "img_per_s"};
    const char *text[] = {tl, ta, vl, va, lr, ip};
    for (size_t k = 0; k < ARRAY_LEN(tags); k++)
        if (k < 2 || k > 3 || e->has_val)
            tfevents_scalar(r->tb, tags[k], e->step, strtod(text[k], NULL));
    tb_check(r);
}

/* --------------------------------------------------------------------------------------- */
/* The end: test set, tables, samples, model, summary */


/* A resumed run's totals over the epochs before it, from the metric rows kept. */
static void past_epochs(struct run *r, struct totals *t)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/metrics.jsonl", r->dir);
    char *text = path_read_text(path);
    for (char *line = text; line && *line;) {
        char *end = strchr(line, '\n'), *v;
        if (end) *end = 0;
        long long epoch = (v = strstr(line, "\"epoch\": ")) ? strtoll(v + 9, NULL, 10) : 0;
        if ((v = strstr(line, "\"val_acc\": ")) && v[11] != 'n') {
            double acc = strtod(v + 11, NULL);
            if (acc > t->best_val_acc) {
                t->best_val_acc = acc;
                t->best_epoch = epoch;
            }
            t->last_val_acc = acc;
        }
        if ((v = strstr(line, "\"seconds\": "))) t->past_seconds += strtod(v + 11, NULL);
        t->epochs = epoch;
        line = end ? end + 1 : NULL;
    }
    free(text);
}

/* summary.json: the test results (res NULL: none, as when the run was not tested or failed),
 * the totals, where and how the run ran, and why it stopped early (t->stopped). */
static enum status write_summary(struct run *r, const struct totals *t,
                                 const struct eval_result *res, double macro_f1)
{
    const struct spec *s = r->s;
    double seconds = plan_clock() - r->started + t->past_seconds;
    FILE *f = run_files_begin(r->dir, "summary.json", &r->d);
    if (!f) return STATUS_RUNTIME;
    fprintf(f, "{\n  \"name\": ");
    json_write_string(f, s->name);
    if (res)
        fprintf(f, ",\n  \"test_acc\": %.9g,\n  \"test_loss\": %.9g,\n  \"macro_f1\": %.9g",
                res->acc, res->loss, macro_f1);
    else
        fprintf(f, ",\n  \"test_acc\": null,\n  \"test_loss\": null,\n  \"macro_f1\": null");
    fprintf(f, ",\n  \"flip_tta\": %s", s->eval.flip_tta && res ? "true" : "false");
    if (t->has_val)
        fprintf(f, ",\n  \"best_val_acc\": %.9g,\n  \"best_epoch\": %lld,\n  \"final_val_acc\": %.9g",
                t->best_val_acc, (long long)t->best_epoch, t->last_val_acc);
    else
        fprintf(f, ",\n  \"best_val_acc\": null,\n  \"best_epoch\": null,\n  \"final_val_acc\": null");
    fprintf(f, ",\n  \"epochs\": %lld,\n  \"steps\": %lld,\n  \"seconds\": %.3f,\n"
               "  \"train_img_per_s\": %.2f,\n  \"device\": ",
            (long long)t->epochs, (long long)t->steps, seconds,
            t->train_seconds > 0 ? t->train_images / t->train_seconds : 0);
    json_write_string(f, r->dev.name);
    fprintf(f, ",\n  \"precision\": \"%s\",\n  \"threads\": %d,\n  \"seed\": %lld,\n"
               "  \"parameters\": %lld,\n  \"commit\": ",
            r->dev.precision, omp_get_max_threads(), s->seed, (long long)r->g->nparams);
    json_write_string(f, RUNNER_COMMIT);
    fprintf(f, ",\n  \"dataset\": \"%s\",\n  \"classes\": %d,\n  \"tested_on\": ",
            r->data.kind == SPEC_DATASET_FOLDER ? "folder"
            : r->data.kind == SPEC_DATASET_CIFAR100 ? "cifar100" : "cifar10", r->data.classes);
    json_write_string(f, r->data.test_from ? r->data.test_from : "");
    fprintf(f, ",\n  \"skipped_images\": %lld", (long long)r->data.skipped);
    fprintf(f, ",\n  \"started\": ");
    json_write_string(f, r->started_text);
    fprintf(f, ",\n  \"stopped\": ");
    if (t->stopped[0])
        json_write_string(f, t->stopped);
    else
        fprintf(f, "null");
    fprintf(f, "\n}\n");
    return run_files_end(f, r->dir, "summary.json", &r->d) ? STATUS_RUNTIME : STATUS_OK;
}

/* The test results in TensorBoard: test/acc and test/loss at the last step, the confusion
 * matrix and the two sample grids as images (run_files.h draws them; at most
 * TB_GRID_SAMPLES images each). An image that cannot be read leaves its grid out, with a
 * warning. */
enum { TB_GRID_SAMPLES = 64 };
static void tb_test(struct run *r, const struct eval_result *res, int64_t step)
{
    char acc[40], loss[40]; /* as summary.json has them */
    snprintf(acc, sizeof acc, "%.9g", res->acc);
    snprintf(loss, sizeof loss, "%.9g", res->loss);
    tfevents_scalar(r->tb, "test/acc", step, strtod(acc, NULL));
    tfevents_scalar(r->tb, "test/loss", step, strtod(loss, NULL));
    int side;
    uint8_t *px = run_files_confusion_image(res, &side);
    tfevents_image(r->tb, "test/confusion_matrix", step, px, side, side);
    free(px);
    int64_t count = r->s->eval.samples < TB_GRID_SAMPLES ? r->s->eval.samples : TB_GRID_SAMPLES;
    for (int wrong = 0; wrong < 2; wrong++) {
        char why[1200];
        int w, h;
        const char *tag = wrong ? "test/samples_wrong" : "test/samples_correct";
        px = run_files_sample_grid(res, r->test_set, count, wrong, &w, &h, why, sizeof why);
        if (px)
            tfevents_image(r->tb, tag, step, px, w, h);
        else if (why[0])
            say(&r->out, "warning: TensorBoard's %s left out: %s\n", tag, why);
        free(px);
    }
    tb_check(r);
}

static enum status finish(struct run *r, const struct totals *t)
{
    const struct spec *s = r->s;
    struct eval_result res = {0};
    double macro_f1 = 0;
    bool tested = s->eval.test;
    /* The model is what evaluation measures: the weights, or their EMA when
     * optimizer.ema_decay is on (the raw weights stay in the checkpoints). */
    sync_eval(r);
    enum status ok = plans_ok(r, "taking the model after epoch", t->epochs);
    if (ok) return ok;
    if (tested) {
        enum status st = evaluate(r->eval, r->test_loader, s->eval.flip_tta, &res);
        if (st) return loader_error(r->test_loader) ? data_failed(r, r->test_loader, "testing")
                                                    : st;
        if ((st = plans_ok(r, "testing after epoch", t->epochs))) {
            eval_result_free(&res);
            return st;
        }
        say(&r->out, "test: loss %.4f, accuracy %.4f (%lld images%s)\n", res.loss, res.acc,
            (long long)res.n, s->eval.flip_tta ? ", flip test-time augmentation" : "");
        const char *const *names = (const char *const *)r->data.class_names;
        if (run_files_confusion(r->dir, &res, names, &r->d) ||
            run_files_per_class(r->dir, &res, names, &macro_f1, &r->d) ||
            run_files_samples(r->dir, &res, r->test_set, names, s->eval.samples, &r->d)) {
            eval_result_free(&res);
            return STATUS_RUNTIME;
        }
        if (r->tb) tb_test(r, &res, t->steps);
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", r->dir);
    if (weights_save(r->eval, path, ST_F32, &r->d)) {
        eval_result_free(&res);
        return STATUS_RUNTIME;
    }
    enum status st = write_summary(r, t, tested ? &res : NULL, macro_f1);
    eval_result_free(&res);
    if (st) return st;
    char clk[32];
    double seconds = plan_clock() - r->started + t->past_seconds;
    say(&r->out, "done in %s: %s\n", run_files_clock(seconds, clk, sizeof clk), r->dir);
    return STATUS_OK;
}

static void print_profile(struct run *r, int64_t steps)
{
    struct plan *p = r->train;
    struct loader_stats ls;
    loader_stats(r->train_loader, &ls);
    double total = plan_clock() - r->started;
    double pass = p->pass_seconds[PLAN_FORWARD] + p->pass_seconds[PLAN_LOSS] +
                  p->pass_seconds[PLAN_BACKWARD] + p->pass_seconds[PLAN_UPDATE];
    say(&r->out, "\nprofile: seconds over the run (%lld training steps)\n", (long long)steps);
    say(&r->out, "  %-34s %9.2f\n", "training forward", p->pass_seconds[PLAN_FORWARD]);
    say(&r->out, "  %-34s %9.2f\n", "loss", p->pass_seconds[PLAN_LOSS]);
    say(&r->out, "  %-34s %9.2f\n", "training backward", p->pass_seconds[PLAN_BACKWARD]);
    say(&r->out, "  %-34s %9.2f\n", "optimizer", p->pass_seconds[PLAN_UPDATE]);
    say(&r->out, "  %-34s %9.2f\n", "evaluation forward", r->eval->pass_seconds[PLAN_EVAL]);
    say(&r->out, "  %-34s %9.2f (%.2f%% of the steps' time)\n",
        "waiting for training batches", ls.wait_seconds, 100 * ls.wait_seconds / pass);
    if (!r->resident)
        say(&r->out, "  %-34s %9.2f (%d workers, %.1f ms per batch)\n",
            "data workers making batches", ls.work_seconds, r->workers,
            ls.batches ? 1000 * ls.work_seconds / (double)ls.batches : 0.0);
    say(&r->out, "  %-34s %9.2f\n", "whole run", total);
    bench_print_profile(stdout, p, r->g, steps, false);
    if (r->out.log) bench_print_profile(r->out.log, p, r->g, steps, false);
}

/* --------------------------------------------------------------------------------------- */
/* Hooks */

/* Loads the experiment's hooks (once the run directory exists) and describes the run to them. */
static enum status open_hooks(struct run *r)
{
    const struct spec *s = r->s;
    r->info = (struct hooks_info){.name = s->name, .device = r->dev.name,
                                  .precision = r->dev.precision, .commit = RUNNER_COMMIT,
                                  .started = r->started_text, .epochs = s->train.epochs,
                                  .classes = (const char *const *)r->data.class_names,
                                  .nclasses = r->data.classes,
                                  .config = s->root};
    if (!s->hooks.n) return STATUS_OK;
    size_t ndirs = 0;
    const char **dirs = hooks_folders(&r->arena, s->hooks.v, s->hooks.n, &ndirs);
    return hooks_open(s->hooks.v, s->hooks.n, r->dir, dirs, ndirs, r->out.log, &r->d,
                      &r->hooks);
}

/* What a hook call's outcome means for the run: a reason to stop training (a hook's, or a
 * failure under hooks_fail: stop) in stop, else "". */
static void hook_outcome(struct run *r, enum hook_outcome o, const char *why, char *stop,
                         size_t size)
{
    if (o == HOOK_STOP)
        snprintf(stop, size, "%s", why ? why : "a hook asked to stop");
    else if (o == HOOK_FAILED && r->s->hooks_fail == SPEC_HOOKS_FAIL_STOP)
        snprintf(stop, size, "a hook failed (hooks_fail: stop)");
}

/* --------------------------------------------------------------------------------------- */

static enum status run(struct run *r)
{
    const struct spec *s = r->s;
    enum status st;
    if (r->opt->resume) {
        snprintf(r->dir, sizeof r->dir, "%s", r->opt->resume);
        if ((st = same_config(r))) return st;
    }
    if ((st = prepare(r))) return st;
    if (r->opt->resume &&
        (st = checkpoint_resume(r->train, &r->optimizer, r->dir, &r->from, r->resumed_from,
                                sizeof r->resumed_from, &r->d)))
        return st;
    if ((st = open_dir(r))) return st;
    open_tensorboard(r);
    r->checkpointed = r->opt->resume != NULL;
    char clk[32];
    say(&r->out, "run %s: %s\n", s->name, r->dir);
    say(&r->out,
        "data %s: %lld training, %lld validation, %lld test images; %lld steps of %lld per "
        "epoch\n",
        r->data.root, (long long)r->split.ntrain, (long long)r->nval,
        s->eval.test ? (long long)(r->data.test.n ? r->data.test.n : r->split.nval) : 0LL,
        (long long)r->steps_per_epoch, s->train.batch_size);
    if (r->data.kind == SPEC_DATASET_FOLDER)
        say(&r->out, "data: %d classes; tests on %s\n", r->data.classes, r->data.test_from);
    if (r->data.skipped)
        say(&r->out, "data: %lld bad images left out (data.skip_bad)\n",
            (long long)r->data.skipped);
    if (r->dev.warning[0] && r->out.log) /* said on the terminal when the device was chosen */
        fprintf(r->out.log, "warning: %s\n", r->dev.warning);
    if (r->dev.be == &backend_cpu)
        say(&r->out, "network: %lld parameters; cpu, %d threads\n", (long long)r->g->nparams,
            omp_get_max_threads());
    else
        say(&r->out, "network: %lld parameters; %s, %s\n", (long long)r->g->nparams,
            r->dev.name, r->dev.precision);
    if (!r->data_line[0])
        snprintf(r->data_line, sizeof r->data_line, "batches made by %d data-loading threads",
                 r->workers);
    say(&r->out, "data: %s\n", r->data_line);
    if (r->pretrained.line[0]) say(&r->out, "%s\n", r->pretrained.line);
    if ((st = open_hooks(r))) return st;

    struct totals *t = &r->totals;
    *t = (struct totals){.has_val = r->nval > 0, .best_val_acc = -1};
    if (r->hooks) hook_outcome(r, hooks_start(r->hooks, &r->info), NULL, t->stopped,
                               sizeof t->stopped);
    if (r->opt->resume) {
        say(&r->out, "resumed from %s: epoch %lld, batch %lld, step %lld\n", r->resumed_from,
            (long long)r->from.epoch + 1, (long long)r->from.batch, (long long)r->from.step);
        past_epochs(r, t);
    }
    struct epoch_stats e = {.step = r->from.step};
    for (int64_t epoch = r->from.epoch; epoch < s->train.epochs && !t->stopped[0]; epoch++) {
        double t0 = plan_clock();
        int64_t first = 0;
        e = (struct epoch_stats){.epoch = epoch, .step = e.step};
        if (epoch == r->from.epoch && r->from.batch > 0) {
            first = r->from.batch;
            e.loss_sum = r->from.loss_sum;
            e.correct = r->from.correct;
            e.images = r->from.images;
        }
        if ((st = train_epoch(r, &e, first))) return st;
        t->train_seconds += e.train_seconds;
        t->train_images += (double)e.timed_images;
        if (r->val_loader) {
            sync_eval(r);
            struct eval_result v;
            if ((st = evaluate(r->eval, r->val_loader, false, &v))) {
                if (!loader_error(r->val_loader)) return st;
                char where[64];
                snprintf(where, sizeof where, "validating after epoch %lld", (long long)epoch + 1);
                return data_failed(r, r->val_loader, where);
            }
            if ((st = plans_ok(r, "validating after epoch", epoch + 1))) {
                eval_result_free(&v);
                return st;
            }
            e.has_val = true;
            e.val_loss = v.loss;
            e.val_acc = v.acc;
            eval_result_free(&v);
            if (e.val_acc > t->best_val_acc) {
                t->best_val_acc = e.val_acc;
                t->best_epoch = epoch + 1;
            }
            t->last_val_acc = e.val_acc;
        }
        e.seconds = plan_clock() - t0;
        write_metrics(r, &e);
        double images = (double)e.images, ips = e.train_seconds > 0 ? (double)e.timed_images / e.train_seconds : 0;
        if (e.has_val)
            say(&r->out,
                "epoch %lld/%lld: train loss %.4f acc %.4f | val loss %.4f acc %.4f | lr %.3g | "
                "%.1f s, %.0f img/s\n",
                (long long)epoch + 1, s->train.epochs, e.loss_sum / images,
                (double)e.correct / images, e.val_loss, e.val_acc, e.lr, e.seconds, ips);
        else
            say(&r->out, "epoch %lld/%lld: train loss %.4f acc %.4f | lr %.3g | %.1f s, %.0f img/s\n",
                (long long)epoch + 1, s->train.epochs, e.loss_sum / images,
                (double)e.correct / images, e.lr, e.seconds, ips);
        t->epochs = epoch + 1;
        const char *why = NULL;
        if (r->hooks) {
            enum hook_outcome o = hooks_epoch_end(r->hooks, &r->info, &why);
            hook_outcome(r, o, why, t->stopped, sizeof t->stopped);
        }
        if (t->stopped[0] && epoch + 1 < s->train.epochs)
            say(&r->out, "training stops after epoch %lld: %s\n", (long long)epoch + 1,
                t->stopped);
        else
            t->stopped[0] = 0; /* the last epoch: nothing left to stop */
        int64_t every = s->checkpoint.every_epochs;
        bool stop = r->opt->stop_after_epoch == epoch + 1 && epoch + 1 < s->train.epochs;
        if (((every > 0 && (epoch + 1) % every == 0) || stop || t->stopped[0]) &&
            save(r, &e, r->steps_per_epoch))
            return STATUS_RUNTIME;
        if (stop) {
            char why[96];
            snprintf(why, sizeof why, "stopped after epoch %lld (--stop-after-epoch)",
                     (long long)epoch + 1);
            say_resume(r, why);
            return STATUS_OK;
        }
    }
    t->steps = e.step;
    if (r->from.epoch >= s->train.epochs)
        say(&r->out, "the run had already trained its %lld epochs\n", s->train.epochs);
    say(&r->out, "trained %lld epochs in %s\n", (long long)t->epochs,
        run_files_clock(plan_clock() - r->started, clk, sizeof clk));
    if (r->opt->profile) print_profile(r, t->steps);
    if ((st = finish(r, t))) return st;
    if (r->hooks && hooks_end(r->hooks, &r->info, t->stopped[0] ? t->stopped : NULL) == HOOK_FAILED &&
        s->hooks_fail == SPEC_HOOKS_FAIL_STOP)
        say(&r->out, "a hook failed at the end of the run (its files are all written)\n");
    return STATUS_OK;
}

/* A plan failed while running: summary.json says what and where ("stopped"), the last
 * checkpoint stays the latest, and the way on is printed. */
static void record_failure(struct run *r)
{
    if (r->out.bar) say(&r->out, "\n");
    if (!r->dir_open) return;
    struct totals *t = &r->totals;
    snprintf(t->stopped, sizeof t->stopped, "%s", r->failure);
    if (write_summary(r, t, NULL, 0))
        say(&r->out, "summary.json could not be written\n");
    say(&r->out, "the run stopped: %s\n", r->failure);
    if (r->checkpointed)
        say_resume(r, "the last checkpoint is intact");
    else
        say(&r->out, "no checkpoint was saved before the failure; start again with:\n  %s\n",
            r->opt->command ? r->opt->command : "runner FILE");
}

enum status train_run(const struct spec *s, const struct graph *g, const struct train_options *o)
{
    if (s->train.threads > 0) omp_set_num_threads((int)s->train.threads);
    struct run *r = calloc(1, sizeof *r);
    if (!r) return STATUS_RUNTIME;
    *r = (struct run){.s = s, .g = g, .opt = o, .d = {.out = stderr},
                      .out = {.tty = isatty(STDOUT_FILENO) != 0}, .started = plan_clock()};
    time_t now = time(NULL);
    struct tm tm;
    strftime(r->started_text, sizeof r->started_text, "%Y-%m-%d %H:%M:%S",
             localtime_r(&now, &tm));
    struct sigaction on = {.sa_handler = on_signal}, old_int, old_term;
    sigemptyset(&on.sa_mask);
    on.sa_flags = SA_RESTART;
    stop_signal = 0;
    sigaction(SIGINT, &on, &old_int);
    sigaction(SIGTERM, &on, &old_term);
    enum status st = run(r);
    if (r->failure[0]) record_failure(r);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (st && r->out.bar) say(&r->out, "\n");
    if (st && st != STATUS_SIGINT && st != STATUS_SIGTERM && r->dir_open && !r->failure[0])
        say(&r->out, "the run stopped; what it wrote is in %s\n", r->dir);
    loader_free(r->train_loader);
    loader_free(r->val_loader);
    loader_free(r->test_loader);
    plan_free(r->train);
    plan_free(r->eval);
    hooks_free(r->hooks);
    arena_free(&r->arena);
    free(r->copy);
    if (r->jsonl) fclose(r->jsonl);
    if (r->csv) fclose(r->csv);
    struct diag quiet = {.out = NULL};
    if (tfevents_close(r->tb, &quiet) && !r->tb_failed)
        say(&r->out, "warning: TensorBoard's event file could not be written\n");
    if (r->out.log) fclose(r->out.log);
    data_split_free(&r->split);
    data_free(&r->data);
    free(r);
    return st;
}
