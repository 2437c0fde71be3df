/*
 * eval_cmd.c: `runner eval`; see eval_cmd.h.
 */
#include "eval_cmd.h"

#include <errno.h>
#include <string.h>

#include <omp.h>

#include "augment.h"
#include "commit.h"
#include "data.h"
#include "evaluate.h"
#include "json.h"
#include "loader.h"
#include "model.h"
#include "paths.h"
#include "plan.h"
#include "pretrained.h"
#include "run_files.h"
#include "device.h"
#include "safetensors.h"
#include "weights.h"

static enum status write_summary(const char *out, const struct spec *s, const char *weights,
                                 const char *device, const struct eval_result *r,
                                 double macro_f1, double seconds, struct diag *d)
{
    FILE *f = run_files_begin(out, "summary.json", d);
    if (!f) return STATUS_RUNTIME;
    fprintf(f, "{\n  \"name\": ");
    json_write_string(f, s->name);
    fprintf(f, ",\n  \"weights\": ");
    json_write_string(f, weights);
    fprintf(f,
            ",\n  \"test_acc\": %.9g,\n  \"test_loss\": %.9g,\n  \"macro_f1\": %.9g,\n"
            "  \"flip_tta\": %s,\n  \"images\": %lld,\n  \"seconds\": %.3f,\n"
            "  \"device\": ",
            r->acc, r->loss, macro_f1, s->eval.flip_tta ? "true" : "false", (long long)r->n,
            seconds);
    json_write_string(f, device);
    fprintf(f, ",\n  \"threads\": %d,\n  \"commit\": ", omp_get_max_threads());
    json_write_string(f, RUNNER_COMMIT);
    fprintf(f, "\n}\n");
    return run_files_end(f, out, "summary.json", d);
}

/* The evaluation plan on device dev with the weights loaded. */
static enum status load_plan(const struct spec *s, const struct graph *g, const char *weights,
                             struct device_choice *dev, struct diag *d, struct plan **p)
{
    if (device_choose(s, dev, d)) return STATUS_CONFIG;
    struct plan_options po = dev->o;
    po.batch = s->eval.batch_size;
    po.eval_only = true;
    if (plan_create(g, dev->be, &po, d, p)) return STATUS_RUNTIME;
    plan_init_params(*p, (uint64_t)s->seed);
    struct st_file *f;
    if (st_open(weights, d, &f)) return STATUS_CONFIG;
    /* as model.pretrained loads: other programs' names mapped, batchnorm counters optional */
    pretrained_map_names(f, g);
    const struct weights_filter w = {.counters_optional = true};
    enum status st = weights_load_filtered(*p, f, weights, &w, d);
    st_close(f);
    return st;
}

enum status eval_run(const struct spec *s, const struct graph *g, const char *weights,
                     const char *out)
{
    if (s->train.threads > 0) omp_set_num_threads((int)s->train.threads);
    double t0 = plan_clock();
    struct diag d = {.out = stderr};
    struct augment aug;
    int side = s->data.dataset == SPEC_DATASET_FOLDER ? 0 : CIFAR_SIDE;
    if (augment_init(&aug, &s->augment.eval, 3, side, side, &d)) return STATUS_CONFIG;
    struct plan *p = NULL;
    struct device_choice dev;
    enum status st = load_plan(s, g, weights, &dev, &d, &p);
    if (st) {
        plan_free(p);
        return st;
    }
    struct data c;
    if ((st = data_load(s, NULL, &d, &c))) {
        plan_free(p);
        return st;
    }
    const char *root = c.root;
    /* The test set; a folder with neither test/ nor val/ tests on the images a run held out
     * of train/ (data.val_split). */
    struct data_split sp = {0};
    const struct dataset *set = &c.test;
    if (!c.test.n) {
        data_split(c.train.n, s->data.subset, s->data.val_split, &sp);
        set = &c.train;
    }
    if (side == 0) augment_set_input_max(&aug, set->max_h, set->max_w);
    struct loader_config lc = {.set = set, .index = sp.val, .n = c.test.n ? c.test.n : sp.nval,
                               .aug = &aug,
                               .batch = s->eval.batch_size, .seed = (uint64_t)s->seed,
                               .workers = s->data.workers > 0 ? (int)s->data.workers
                                                              : loader_default_workers(),
                               .classes = model_classes(s)};
    struct loader *l = NULL;
    struct eval_result r = {0};
    double macro_f1 = 0;
    const char *const *names = (const char *const *)c.class_names;
    if (loader_create(&lc, &l)) {
        diag_error(&d, (struct mark){0}, "out of memory for the data loader");
        st = STATUS_RUNTIME;
    } else if (!lc.n) {
        diag_error(&d, spec_mark(s, "data.val_split"), "nothing to test on: %s has no test/ or "
                   "val/ folder and data.val_split is 0", root);
        st = STATUS_CONFIG;
    } else if (evaluate(p, l, s->eval.flip_tta, &r)) {
        if (loader_error(l)) diag_error(&d, (struct mark){0}, "%s", loader_error(l));
        st = STATUS_RUNTIME;
    } else if (!path_mkdirs(out)) {
        diag_error(&d, (struct mark){0}, "%s: cannot create: %s", out, strerror(errno));
        st = STATUS_RUNTIME;
    } else if (run_files_confusion(out, &r, names, &d) ||
               run_files_per_class(out, &r, names, &macro_f1, &d) ||
               run_files_samples(out, &r, set, names, s->eval.samples, &d) ||
               write_summary(out, s, weights, dev.name, &r, macro_f1, plan_clock() - t0, &d)) {
        st = STATUS_RUNTIME;
    } else {
        printf("%s on %s: test loss %.4f, accuracy %.4f (%lld images%s); macro F1 %.4f\n",
               weights, root, r.loss, r.acc, (long long)r.n,
               s->eval.flip_tta ? ", flip test-time augmentation" : "", macro_f1);
        printf("written to %s\n", out);
    }
    eval_result_free(&r);
    loader_free(l);
    data_split_free(&sp);
    data_free(&c);
    plan_free(p);
    return st;
}
