/*
 * loader.c: batches made by worker threads; see loader.h.
 *
 * Batch b of an epoch lives in slot b % depth. A worker claims the next batch number when its
 * slot is free (batch b - depth was released), fills the slot without the lock, then marks it
 * ready; the consumer takes batches in order and releases each when it asks for the next.
 */
#include "loader.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plan.h"
#include "rng.h"

struct loader {
    struct loader_config cfg;
    int64_t nbatches, image_bytes;
    int depth;
    struct batch *slots;
    int64_t *ready;  /* per slot: the batch number it holds, or -1 */
    int64_t *order;  /* this epoch's order of positions in cfg.index */
    float **scratch; /* per worker */
    pthread_t *threads;
    int nthreads;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t epoch, claimed, released;
    bool active, quit;
    bool holding; /* the consumer holds batch `released` */
    int busy;     /* workers making a batch */
    struct loader_stats stats;
};

/* Names the images of batch b of the current epoch in its slot (b % depth). */
static struct batch *name_batch(struct loader *l, int64_t b)
{
    const struct loader_config *c = &l->cfg;
    struct batch *bt = &l->slots[b % l->depth];
    int64_t start = b * c->batch, count = c->n - start < c->batch ? c->n - start : c->batch;
    bt->number = b;
    bt->n = count;
    for (int64_t i = 0; i < c->batch; i++) {
        int64_t image = -1;
        if (i < count) image = c->index ? c->index[l->order[start + i]] : l->order[start + i];
        bt->image[i] = image;
        bt->labels[i] = image >= 0 ? c->set->labels[image] : 0;
        bt->key[i] = image >= 0 ? augment_key(c->seed, l->epoch, image) : 0;
    }
    return bt;
}

/* Fills slot b % depth with batch b of the current epoch. */
static void make_batch(struct loader *l, int64_t b, float *scratch)
{
    const struct loader_config *c = &l->cfg;
    struct batch *bt = name_batch(l, b);
    int64_t count = bt->n, numel = c->aug->out_numel;
    for (int64_t i = 0; i < count; i++)
        augment_image(c->aug, c->set->pixels + bt->image[i] * l->image_bytes, bt->key[i],
                      bt->x + i * numel, scratch);
    if (count < c->batch) {
        memset(bt->x + count * numel, 0, (size_t)((c->batch - count) * numel) * sizeof *bt->x);
        memset(bt->targets, 0, (size_t)(c->batch * c->classes) * sizeof *bt->targets);
    }
    bt->mixed = augment_batch(c->aug, bt->x, bt->labels, count, c->classes,
                              augment_key(c->seed, l->epoch, -1 - b), bt->targets);
}

static void *worker(void *arg)
{
    struct loader *l = ((void **)arg)[0];
    float *scratch = ((void **)arg)[1];
    free(arg);
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->quit &&
               !(l->active && l->claimed < l->nbatches && l->claimed < l->released + l->depth))
            pthread_cond_wait(&l->cv, &l->mu);
        if (l->quit) break;
        int64_t b = l->claimed++;
        l->busy++;
        pthread_mutex_unlock(&l->mu);
        double t0 = plan_clock();
        make_batch(l, b, scratch);
        double dt = plan_clock() - t0;
        pthread_mutex_lock(&l->mu);
        l->ready[b % l->depth] = b;
        l->busy--;
        l->stats.work_seconds += dt;
        pthread_cond_broadcast(&l->cv);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

int loader_default_workers(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n >= 16 ? 8 : n >= 8 ? 4 : 2;
}

enum status loader_create(const struct loader_config *cfg, struct loader **out)
{
    *out = NULL;
    struct loader *l = calloc(1, sizeof *l);
    if (!l) return STATUS_RUNTIME;
    l->cfg = *cfg;
    l->nbatches = cfg->drop_last ? cfg->n / cfg->batch : (cfg->n + cfg->batch - 1) / cfg->batch;
    l->image_bytes = (int64_t)cfg->aug->c * cfg->aug->in_h * cfg->aug->in_w;
    int workers = l->cfg.workers = cfg->indices_only ? 0 : cfg->workers; /* threads started */
    l->depth = cfg->indices_only ? 1 : 2 * workers;
    l->slots = calloc((size_t)l->depth, sizeof *l->slots);
    l->ready = malloc((size_t)l->depth * sizeof *l->ready);
    l->order = malloc((size_t)(cfg->n + 1) * sizeof *l->order);
    l->scratch = calloc((size_t)workers + 1, sizeof *l->scratch);
    l->threads = calloc((size_t)workers + 1, sizeof *l->threads);
    bool ok = l->slots && l->ready && l->order && l->scratch && l->threads;
    for (int s = 0; ok && s < l->depth; s++) {
        struct batch *b = &l->slots[s];
        if (!cfg->indices_only) {
            b->x = malloc((size_t)(cfg->batch * cfg->aug->out_numel) * sizeof *b->x);
            b->targets = malloc((size_t)(cfg->batch * cfg->classes) * sizeof *b->targets);
            ok = b->x && b->targets;
        }
        b->labels = malloc((size_t)cfg->batch * sizeof *b->labels);
        b->image = malloc((size_t)cfg->batch * sizeof *b->image);
        b->key = malloc((size_t)cfg->batch * sizeof *b->key);
        ok = ok && b->labels && b->image && b->key;
        l->ready[s] = -1;
    }
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    for (int w = 0; ok && w < workers; w++) {
        void **arg = malloc(2 * sizeof *arg);
        l->scratch[w] = malloc((cfg->aug->scratch_floats + 1) * sizeof(float));
        ok = arg && l->scratch[w];
        if (!ok) {
            free(arg);
            break;
        }
        arg[0] = l;
        arg[1] = l->scratch[w];
        if (pthread_create(&l->threads[w], NULL, worker, arg)) {
            free(arg);
            ok = false;
            break;
        }
        l->nthreads++;
    }
    if (!ok) {
        loader_free(l);
        return STATUS_RUNTIME;
    }
    *out = l;
    return STATUS_OK;
}

int64_t loader_batches(const struct loader *l)
{
    return l->nbatches;
}

void loader_start(struct loader *l, int64_t epoch)
{
    loader_start_at(l, epoch, 0);
}

void loader_start_at(struct loader *l, int64_t epoch, int64_t first)
{
    pthread_mutex_lock(&l->mu);
    l->active = false;
    while (l->busy) pthread_cond_wait(&l->cv, &l->mu);
    const struct loader_config *c = &l->cfg;
    for (int64_t i = 0; i < c->n; i++) l->order[i] = i;
    if (c->shuffle) { /* Fisher-Yates, keyed by (seed, epoch) */
        uint64_t key = rng_bits(rng_bits(c->seed, (uint64_t)epoch), 0x5AFF1E);
        for (int64_t i = c->n - 1; i > 0; i--) {
            int64_t j = (int64_t)(rng_bits(key, (uint64_t)i) % (uint64_t)(i + 1));
            int64_t t = l->order[i];
            l->order[i] = l->order[j];
            l->order[j] = t;
        }
    }
    for (int s = 0; s < l->depth; s++) l->ready[s] = -1;
    l->epoch = epoch;
    l->claimed = l->released = first;
    l->holding = false;
    l->active = true;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

const struct batch *loader_next(struct loader *l)
{
    pthread_mutex_lock(&l->mu);
    if (l->holding) {
        l->ready[l->released % l->depth] = -1;
        l->released++;
        l->holding = false;
        pthread_cond_broadcast(&l->cv);
    }
    if (!l->active || l->released >= l->nbatches) {
        pthread_mutex_unlock(&l->mu);
        return NULL;
    }
    int64_t b = l->released;
    double t0 = plan_clock();
    if (l->cfg.indices_only) {
        name_batch(l, b);
        l->ready[b % l->depth] = b;
    }
    while (l->ready[b % l->depth] != b) pthread_cond_wait(&l->cv, &l->mu);
    l->stats.wait_seconds += plan_clock() - t0;
    l->stats.batches++;
    l->holding = true;
    pthread_mutex_unlock(&l->mu);
    return &l->slots[b % l->depth];
}

void loader_stats(const struct loader *l, struct loader_stats *s)
{
    pthread_mutex_lock((pthread_mutex_t *)&l->mu);
    *s = l->stats;
    pthread_mutex_unlock((pthread_mutex_t *)&l->mu);
}

void loader_free(struct loader *l)
{
    if (!l) return;
    pthread_mutex_lock(&l->mu);
    l->quit = true;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    for (int w = 0; w < l->nthreads; w++) pthread_join(l->threads[w], NULL);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    for (int s = 0; l->slots && s < l->depth; s++) {
        free(l->slots[s].x);
        free(l->slots[s].labels);
        free(l->slots[s].targets);
        free(l->slots[s].image);
        free(l->slots[s].key);
    }
    for (int w = 0; l->scratch && w < l->cfg.workers; w++)
        free(l->scratch[w]);
    free(l->slots);
    free(l->ready);
    free(l->order);
    free(l->scratch);
    free(l->threads);
    free(l);
}
