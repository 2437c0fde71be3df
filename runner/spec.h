/*
 * spec.h: an experiment as typed C structs, loaded from YAML.
 *
 *     struct diag d = {.out = stderr};
 *     struct spec *s;
 *     const char *ov[] = {"optimizer.lr=3e-4", "train.epochs=5"};
 *     if (spec_load("experiments/resnet50_adam.yaml", ov, 2, &d, &s)) return 2;
 *     printf("%s: lr %g\n", s->name, s->optimizer.lr);
 *     spec_free(s);
 *
 * Loading: read the file, follow its `extends:` chain (cycles are errors), merge (maps merge,
 * lists replace, a map whose `type` changes is replaced whole), apply the command-line
 * overrides as if written in the file, then check every key against the schema table
 * (schema.c) and fill these structs, defaults included. Paths are resolved relative to the
 * file that wrote them and checked to exist where the schema says so.
 *
 * Every error goes to d with its file:line:col; on failure *out is NULL and the status is
 * STATUS_CONFIG (or STATUS_RUNTIME when memory runs out). The spec owns everything it points
 * to, the YAML tree and sources included, so later stages can report positions via
 * spec_mark(). Covered by tests/test_spec.c and tests/test_bad_yaml.c.
 */
#ifndef RUNNER_SPEC_H
#define RUNNER_SPEC_H

#include <stdbool.h>
#include <stddef.h>

#include "arena.h"
#include "common.h"
#include "diag.h"
#include "node.h"

/* --------------------------------------------------------------------------------------- */
/* Enumerations: the YAML spelling of each value is in schema.c. */

enum spec_precision { SPEC_PRECISION_AUTO, SPEC_PRECISION_FP32, SPEC_PRECISION_BF16, SPEC_PRECISION_FP16 };
enum spec_device_kind { SPEC_DEVICE_AUTO, SPEC_DEVICE_CPU, SPEC_DEVICE_CUDA };
enum spec_dataset { SPEC_DATASET_CIFAR10, SPEC_DATASET_CIFAR100, SPEC_DATASET_FOLDER };
enum spec_labels { SPEC_LABELS_FINE, SPEC_LABELS_COARSE };
enum spec_optimizer_type { SPEC_OPTIMIZER_SGD, SPEC_OPTIMIZER_ADAM, SPEC_OPTIMIZER_ADAMW };
enum spec_schedule_type {
    SPEC_SCHEDULE_CONSTANT,
    SPEC_SCHEDULE_STEP,
    SPEC_SCHEDULE_MULTISTEP,
    SPEC_SCHEDULE_EXPONENTIAL,
    SPEC_SCHEDULE_COSINE,
    SPEC_SCHEDULE_ONECYCLE,
};
enum spec_anneal { SPEC_ANNEAL_COS, SPEC_ANNEAL_LINEAR };
enum spec_transform_kind {
    SPEC_TRANSFORM_RANDOM_CROP,
    SPEC_TRANSFORM_HFLIP,
    SPEC_TRANSFORM_CUTOUT,
    SPEC_TRANSFORM_NORMALIZE,
    SPEC_TRANSFORM_RESIZE,
    SPEC_TRANSFORM_MIXUP,
    SPEC_TRANSFORM_CUTMIX,
    SPEC_TRANSFORM_CENTER_CROP,
    SPEC_TRANSFORM_RANDOM_RESIZED_CROP,
};
enum spec_fill { SPEC_FILL_ZERO, SPEC_FILL_REFLECT };
enum spec_interp { SPEC_INTERP_BILINEAR, SPEC_INTERP_NEAREST };
enum spec_resize_mode { SPEC_RESIZE_SQUARE, SPEC_RESIZE_SHORTER_SIDE };
enum spec_hooks_fail { SPEC_HOOKS_FAIL_CONTINUE, SPEC_HOOKS_FAIL_STOP };
enum spec_conv_algorithm { SPEC_CONV_AUTO, SPEC_CONV_DIRECT };

/* --------------------------------------------------------------------------------------- */
/* Value types the schema fills. */

struct spec_device {
    enum spec_device_kind kind;
    int index; /* cuda:N; 0 for plain "cuda" */
};

struct spec_strings {
    const char **v;
    size_t n;
};

struct spec_ints {
    long long *v;
    size_t n;
};

/* A list of items of one section type (augment transforms, hooks). */
struct spec_list {
    void *v; /* n items of the item struct (struct spec_transform, struct spec_hook) */
    size_t n;
};

/* --------------------------------------------------------------------------------------- */
/* Sections. Each keeps the mark of the key that introduced it (or the file's start). */

/* The network graph: a YAML file or a mapping written inline (parsed by the graph stage). */
struct spec_graph {
    const char *path;        /* resolved path of the graph file; NULL when written inline */
    const struct node *tree; /* the graph's YAML tree, a mapping */
};

struct spec_model {
    struct mark mark;
    struct spec_graph graph;
    const char *pretrained;   /* resolved path of a .safetensors file, or its URL as written
                               * (url_has_scheme), or NULL */
    const char *pretrained_sha256; /* the file's SHA-256 as written (64 hex digits), or NULL */
    struct spec_strings reinit; /* parameter-name prefixes to re-initialize after loading */
};

struct spec_data {
    struct mark mark;
    enum spec_dataset dataset;
    const char *root; /* resolved; NULL: RUNNER_DATA or data/cifar10 (required for a folder) */
    bool download;
    enum spec_labels labels; /* cifar100 */
    const char *cache;       /* resolved; NULL: no decoded-image cache (folder) */
    bool skip_bad;           /* folder: leave unreadable images out instead of stopping */
    long long val_split, subset, workers;
    enum spec_resident { SPEC_RESIDENT_AUTO, SPEC_RESIDENT_ON, SPEC_RESIDENT_OFF } resident;
};

struct spec_transform {
    struct mark mark; /* the transform's name in the list */
    enum spec_transform_kind kind;
    long long size, padding;
    enum spec_fill fill;
    enum spec_interp interpolation;
    enum spec_resize_mode mode; /* resize */
    double p, alpha;
    double mean[3], std[3];
    double scale[2], ratio[2]; /* random_resized_crop: area fraction and aspect ranges */
};

struct spec_augment {
    struct mark mark;
    struct spec_list train, eval; /* of struct spec_transform */
};

struct spec_optimizer {
    struct mark mark;
    enum spec_optimizer_type type;
    double lr, weight_decay, clip_grad_norm, ema_decay;
    bool decay_bn_bias;
    double momentum, dampening; /* sgd */
    bool nesterov;              /* sgd */
    double betas[2], eps;       /* adam, adamw */
    bool amsgrad;               /* adam, adamw */
};

struct spec_schedule {
    struct mark mark;
    enum spec_schedule_type type;
    double warmup_epochs, warmup_start_factor;
    long long step_epochs;      /* step */
    struct spec_ints milestones; /* multistep, in epochs */
    double gamma;               /* step, multistep, exponential */
    double min_lr;              /* cosine */
    double pct_start, div_factor, final_div_factor; /* onecycle */
    enum spec_anneal anneal;    /* onecycle */
};

struct spec_train {
    struct mark mark;
    long long epochs, batch_size, threads;
    long long log_every; /* train/loss_step every this many steps (tensorboard); 0: none */
    double label_smoothing;
    bool deterministic, tf32, cuda_graphs;
    enum spec_conv_algorithm conv_algorithm;
};

struct spec_eval {
    struct mark mark;
    long long batch_size, samples;
    bool test, flip_tta;
};

struct spec_checkpoint {
    struct mark mark;
    long long every_epochs, keep;
};

struct spec_hook {
    struct mark mark;
    const char *file;       /* resolved path of the .lua file */
    const struct node *args; /* free-form mapping passed to the hook, or NULL */
};

struct spec {
    struct arena arena;        /* owns everything below */
    const struct source *file; /* the experiment file named on the command line */
    struct node *root;         /* merged YAML tree (extends, overrides applied) */
    const char *extends;       /* resolved path of the parent file, or NULL */

    const char *name;
    long long seed;
    struct spec_device device;
    enum spec_precision precision;
    struct spec_model model;
    struct spec_data data;
    struct spec_augment augment;
    struct spec_optimizer optimizer;
    struct spec_schedule schedule;
    struct spec_train train;
    struct spec_eval eval;
    struct spec_checkpoint checkpoint;
    struct spec_list hooks; /* of struct spec_hook */
    enum spec_hooks_fail hooks_fail;
    bool tensorboard; /* event files in RUN_DIR/tensorboard/ */
};

/* Loads path with overrides ("key.path=value", n of them). See the top of this file. */
MUST_CHECK enum status spec_load(const char *path, const char *const *overrides, size_t n,
                                 struct diag *d, struct spec **out);

/* The same, with the experiment's text given (for the fuzzer); name is shown in messages and
 * its directory anchors relative paths. */
MUST_CHECK enum status spec_load_text(const char *name, const char *text, size_t len,
                                      const char *const *overrides, size_t n, struct diag *d,
                                      struct spec **out);

/* A run directory's config.yaml (the resolved configuration the run started with), with
 * overrides. Its paths were written relative to the directory the run was started in, so
 * they are read relative to the current directory. */
MUST_CHECK enum status spec_load_run(const char *run_dir, const char *const *overrides,
                                     size_t n, struct diag *d, struct spec **out);

void spec_free(struct spec *s);

/* The project's hooks/ folder, where hook files not found beside the experiment are looked
 * for: $RUNNER_HOOKS_DIR when set, else the folder the runner was built from; NULL when
 * neither is known. */
const char *spec_hooks_dir(void);

/*
 * The mark of a dotted key path in the merged tree ("optimizer.lr", "augment.train"): the
 * position of its value where written, else of the nearest enclosing key that was written,
 * else the start of the experiment file.
 */
struct mark spec_mark(const struct spec *s, const char *path);

/* Writes the resolved configuration (every key, defaults included) as YAML. */
void spec_write_yaml(const struct spec *s, FILE *out);
/* The same as a string (malloc'd; the caller frees it). */
char *spec_yaml_text(const struct spec *s);

/* A device as the YAML spells it ("auto", "cpu", "cuda:N") into buf; returns buf. */
const char *spec_device_text(const struct spec_device *dev, char *buf, size_t size);

#endif
