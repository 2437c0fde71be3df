/*
 * bench.c: `runner bench`; see bench.h.
 */
#include "bench.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <omp.h>

#include "device.h"
#include "model.h"
#include "op.h"
#include "plan.h"
#include "rng.h"
#include "step.h"

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* --------------------------------------------------------------------------------------- */
/* Profile tables */

struct kind_row {
    const char *what;
    double seconds[PLAN_PASSES];
};

struct layer_row {
    double seconds[PLAN_PASSES];
};

struct profile {
    const struct graph *g;
    struct kind_row kinds[64];
    size_t nkinds;
    struct layer_row *layers; /* per graph layer */
    double total;
};

static void collect(void *ctx, const struct plan_timing *t)
{
    struct profile *pr = ctx;
    size_t k = 0;
    while (k < pr->nkinds && strcmp(pr->kinds[k].what, t->what) != 0) k++;
    if (k == pr->nkinds) {
        if (k == ARRAY_LEN(pr->kinds)) return;
        pr->kinds[pr->nkinds++] = (struct kind_row){.what = t->what};
    }
    pr->kinds[k].seconds[t->pass] += t->seconds;
    if (t->layer) pr->layers[t->layer - pr->g->layers].seconds[t->pass] += t->seconds;
    pr->total += t->seconds;
}

static double row_total(const double *s)
{
    double x = 0;
    for (int i = 0; i < PLAN_PASSES; i++) x += s[i];
    return x;
}

static int by_time_desc(const void *a, const void *b)
{
    double x = row_total(((const struct kind_row *)a)->seconds),
           y = row_total(((const struct kind_row *)b)->seconds);
    return (x < y) - (x > y);
}

void bench_print_profile(FILE *out, struct plan *p, const struct graph *g, int64_t steps,
                         bool infer)
{
    struct profile pr = {.g = g, .layers = calloc(g->nlayers + 1, sizeof *pr.layers)};
    if (!pr.layers) abort();
    plan_timings(p, collect, &pr);
    qsort(pr.kinds, pr.nkinds, sizeof *pr.kinds, by_time_desc);
    double ms = 1000.0 / (double)steps;
    const int a = infer ? PLAN_EVAL : PLAN_FORWARD, b = infer ? PLAN_EVAL : PLAN_BACKWARD;
    fprintf(out, "\nprofile: ms per %s, by op kind (kernels timed one by one)\n",
            infer ? "batch" : "step");
    if (infer)
        fprintf(out, "  %-22s %10s %7s\n", "kind", "forward", "share");
    else
        fprintf(out, "  %-22s %10s %10s %10s %10s %7s\n", "kind", "forward", "backward", "other",
                "total", "share");
    for (size_t k = 0; k < pr.nkinds; k++) {
        const double *s = pr.kinds[k].seconds, t = row_total(s);
        if (infer)
            fprintf(out, "  %-22s %10.1f %6.1f%%\n", pr.kinds[k].what, s[a] * ms,
                    100 * t / pr.total);
        else
            fprintf(out, "  %-22s %10.1f %10.1f %10.1f %10.1f %6.1f%%\n", pr.kinds[k].what,
                    s[a] * ms, s[b] * ms, (t - s[a] - s[b]) * ms, t * ms, 100 * t / pr.total);
    }
    fprintf(out, "  %-22s %10.1f\n", "all kernels", pr.total * ms);

    fprintf(out, "\nprofile: ms per %s, by layer\n", infer ? "batch" : "step");
    if (infer)
        fprintf(out, "  %-36s %-16s %10s\n", "layer", "op", "forward");
    else
        fprintf(out, "  %-36s %-16s %10s %10s %10s\n", "layer", "op", "forward", "backward",
                "total");
    for (size_t i = 0; i < g->nlayers; i++) {
        const double *s = pr.layers[i].seconds;
        const char *op = op_table[g->layers[i].op]->name;
        if (infer)
            fprintf(out, "  %-36s %-16s %10.2f\n", g->layers[i].name, op, s[a] * ms);
        else
            fprintf(out, "  %-36s %-16s %10.2f %10.2f %10.2f\n", g->layers[i].name, op, s[a] * ms,
                    s[b] * ms, (s[a] + s[b]) * ms);
    }
    free(pr.layers);
}

/* --------------------------------------------------------------------------------------- */

static const char *mib(double bytes, char *buf, size_t size)
{
    snprintf(buf, size, "%.1f MiB", bytes / (1 << 20));
    return buf;
}

enum status bench_run(const struct spec *s, const struct graph *g, const struct bench_options *o,
                      FILE *out)
{
    if (s->train.threads > 0) omp_set_num_threads((int)s->train.threads);
    int64_t batch = o->infer ? s->eval.batch_size : s->train.batch_size;
    struct diag d = {.out = stderr};
    struct device_choice dev;
    if (device_choose(s, &dev, &d)) return STATUS_CONFIG;
    struct plan_options po = dev.o;
    po.batch = batch;
    po.profile = o->profile;
    po.eval_only = o->infer;
    po.optimizer_slots = o->infer ? 0 : model_optimizer_slots(s);
    struct plan *p;
    enum status st = plan_create(g, dev.be, &po, &d, &p);
    if (st) return st;
    plan_init_params(p, (uint64_t)s->seed);

    /* Synthetic input: standard normal images (as after normalization), uniform labels. */
    int64_t per = shape_numel(&g->input), classes = shape_numel(&g->layers[g->output].out);
    float *x = malloc((size_t)(batch * per) * sizeof *x);
    int32_t *y = malloc((size_t)batch * sizeof *y);
    double *t = calloc((size_t)o->steps + 1, sizeof *t);
    if (!x || !y || !t) abort();
    uint64_t key = rng_bits((uint64_t)s->seed, 0xBE7C4);
    for (int64_t i = 0; i < batch * per; i++) x[i] = (float)rng_normal(key, (uint64_t)i);
    for (int64_t i = 0; i < batch; i++)
        y[i] = (int32_t)(rng_bits(key + 1, (uint64_t)i) % (uint64_t)classes);
    plan_set_input(p, x, y);

    char b1[32], b2[32], b3[32], b4[32];
    const struct plan_sizes *z = &p->sizes;
    char where[400];
    if (dev.be == &backend_cpu)
        snprintf(where, sizeof where, "cpu, %d threads", omp_get_max_threads());
    else
        snprintf(where, sizeof where, "%s, %s%s", dev.name, dev.precision,
                 po.no_graph ? "" : ", CUDA graphs");
    fprintf(out, "bench %s: %s, batch %lld, input %lldx%lldx%lld, %s\n", s->name,
            o->infer ? "inference" : "training steps", (long long)batch,
            (long long)g->input.d[0], (long long)g->input.d[1], (long long)g->input.d[2], where);
    fprintf(out, "plan: parameters %s, gradients %s, optimizer %s, activations %s, workspace %s\n",
            mib((double)z->params, b1, sizeof b1), mib((double)z->grads, b2, sizeof b2),
            mib((double)z->optimizer, b3, sizeof b3), mib((double)z->activations, b4, sizeof b4),
            mib((double)z->workspace, b1, sizeof b1));

    struct step_optimizer opt;
    step_optimizer_init(&opt, &s->optimizer);
    /*
     * How the timed window is measured (tests/bench/gpu_vs_torch.py times PyTorch's the same
     * way): it opens when the last warm-up step's result has been read (at once, with no
     * warm-up) and closes when the last timed step's result has been read, so it holds the
     * work of exactly the timed steps, every one of them finished, and
     * "window images/s" = steps x batch / the window. A backend that runs steps
     * asynchronously (the GPU) gets the trainer's pattern: step i + 1 is queued before step
     * i's result is read, so the device is never idle between steps, as PyTorch's loop
     * without a synchronize per step; the last timed step starts nothing after it, and its
     * result is waited for before the clock closes the window. One step's time is the
     * interval between two results; their median is the last line. A synchronous backend
     * (the CPU) and inference (plan_forward returns when its batch is done) time each step
     * from its start to its end, one after the other.
     */
    bool ahead = !o->infer && plan_steps_async(p);
    double lr = s->optimizer.lr, ls = s->train.label_smoothing, last = plan_clock(), open = last;
    if (ahead) step_train_start(p, &opt, lr, ls);
    for (int i = 0; i < o->warmup + o->steps; i++) {
        if (i == o->warmup) {
            plan_timings_reset(p);
            open = last;
        }
        double t0 = ahead ? last : plan_clock(), loss = 0;
        if (o->infer) {
            plan_forward(p, false);
        } else if (ahead) {
            if (i + 1 < o->warmup + o->steps) step_train_start(p, &opt, lr, ls);
            struct plan_step_result r;
            step_train_wait(p, &opt, &r);
            loss = r.loss;
        } else {
            loss = step_train(p, &opt, lr, ls);
        }
        last = plan_clock();
        if (plan_status(p)) break; /* said what failed; its later steps would return at once */
        double dt = last - t0;
        if (i < o->warmup) {
            fprintf(out, "warmup %d/%d: %.1f ms\n", i + 1, o->warmup, dt * 1000);
            continue;
        }
        t[i - o->warmup] = dt;
        fprintf(out, "step %d/%d: %.1f ms, %.2f images/s", i - o->warmup + 1, o->steps,
                dt * 1000, (double)batch / dt);
        if (!o->infer) fprintf(out, " (loss %.4f)", loss);
        fprintf(out, "\n");
        fflush(out);
    }
    if (plan_status(p)) {
        free(x);
        free(y);
        free(t);
        st = plan_status(p);
        plan_free(p);
        return st;
    }
    if (ahead && plan_steps_pending(p) != 0) abort(); /* every started step waited for */
    double window = last - open;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    fprintf(out, "peak memory: %.0f MiB resident\n", (double)ru.ru_maxrss / 1024);
    if (o->profile) bench_print_profile(out, p, g, o->steps, o->infer);
    fprintf(out, "window images/s: %.2f (%d steps in %.1f ms, each waited for)\n",
            (double)o->steps * (double)batch / window, o->steps, window * 1000);
    qsort(t, (size_t)o->steps, sizeof *t, by_value);
    double med = o->steps % 2 ? t[o->steps / 2] : (t[o->steps / 2 - 1] + t[o->steps / 2]) / 2;
    fprintf(out, "median images/s: %.2f\n", (double)batch / med);
    free(x);
    free(y);
    free(t);
    plan_free(p);
    return STATUS_OK;
}
