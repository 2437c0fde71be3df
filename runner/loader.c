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
    uint8_t **image; /* per worker: a decoded image (a set of files) */
    pthread_t *threads;
    int nthreads;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t epoch, claimed, released;
    bool active, quit;
    bool holding; /* the consumer holds batch `released` */
    bool failed;  /* an image could not be read: error says which, no batch comes any more */
    char error[1200];
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

/* Fills slot b % depth with batch b of the current epoch; false with the reason in why when
 * an image cannot be read. */
static bool make_batch(struct loader *l, int64_t b, float *scratch, uint8_t *image, char *why,
                       size_t why_size)
{
    const struct loader_config *c = &l->cfg;
    struct batch *bt = name_batch(l, b);
    int64_t count = bt->n, numel = c->aug->out_numel;
    for (int64_t i = 0; i < count; i++) {
        const uint8_t *px;
        int h, w;
        if (!dataset_image(c->set, bt->image[i], image, &px, &h, &w, why, why_size))
            return false;
        augment_image_sized(c->aug, px, h, w, bt->key[i], bt->x + i * numel, scratch);
    }
    if (count < c->batch) {
        memset(bt->x + count * numel, 0, (size_t)((c->batch - count) * numel) * sizeof *bt->x);
        memset(bt->targets, 0, (size_t)(c->batch * c->classes) * sizeof *bt->targets);
    }
    bt->mixed = augment_batch(c->aug, bt->x, bt->labels, count, c->classes,
                              augment_key(c->seed, l->epoch, -1 - b), bt->targets);
    return true;
}

static void *worker(void *arg)
{
    struct loader *l = ((void **)arg)[0];
    float *scratch = ((void **)arg)[1];
    uint8_t *image = ((void **)arg)[2];
    free(arg);
    char why[sizeof l->error];
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
        bool ok = make_batch(l, b, scratch, image, why, sizeof why);
        double dt = plan_clock() - t0;
        pthread_mutex_lock(&l->mu);
        if (!ok && !l->failed) {
            l->failed = true;
            snprintf(l->error, sizeof l->error, "%s", why);
        }
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
    l->image_bytes = 3 * (int64_t)cfg->set->max_h * cfg->set->max_w; /* files only */
    int workers = l->cfg.workers = cfg->indices_only ? 0 : cfg->workers; /* threads started */
    l->depth = cfg->indices_only ? 1 : 2 * workers;
    l->slots = calloc((size_t)l->depth, sizeof *l->slots);
    l->ready = malloc((size_t)l->depth * sizeof *l->ready);
    l->order = malloc((size_t)(cfg->n + 1) * sizeof *l->order);
    l->scratch = calloc((size_t)workers + 1, sizeof *l->scratch);
    l->image = calloc((size_t)workers + 1, sizeof *l->image);
    l->threads = calloc((size_t)workers + 1, sizeof *l->threads);
    bool ok = l->slots && l->ready && l->order && l->scratch && l->image && l->threads;
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
        void **arg = malloc(3 * sizeof *arg);
        l->scratch[w] = malloc((cfg->aug->scratch_floats + 1) * sizeof(float));
        if (cfg->set->files) l->image[w] = malloc((size_t)l->image_bytes + 1);
        ok = arg && l->scratch[w] && (!cfg->set->files || l->image[w]);
        if (!ok) {
            free(arg);
            break;
        }
        arg[0] = l;
        arg[1] = l->scratch[w];
        arg[2] = l->image[w];
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
    if (!l->active || l->released >= l->nbatches || l->failed) {
        pthread_mutex_unlock(&l->mu);
        return NULL;
    }
    int64_t b = l->released;
    double t0 = plan_clock();
    if (l->cfg.indices_only) {
        name_batch(l, b);
        l->ready[b % l->depth] = b;
    }
    while (l->ready[b % l->depth] != b && !l->failed) pthread_cond_wait(&l->cv, &l->mu);
    if (l->failed) { /* the batch that failed, or one after it: none is used */
        pthread_mutex_unlock(&l->mu);
        return NULL;
    }
    l->stats.wait_seconds += plan_clock() - t0;
    l->stats.batches++;
    l->holding = true;
    pthread_mutex_unlock(&l->mu);
    return &l->slots[b % l->depth];
}

const char *loader_error(const struct loader *l)
{
    pthread_mutex_lock((pthread_mutex_t *)&l->mu);
    const char *e = l->failed ? l->error : NULL;
    pthread_mutex_unlock((pthread_mutex_t *)&l->mu);
    return e;
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
    for (int w = 0; l->scratch && w < l->cfg.workers; w++) {
        free(l->scratch[w]);
        free(l->image[w]);
    }
    free(l->image);
    free(l->slots);
    free(l->ready);
    free(l->order);
    free(l->scratch);
    free(l->threads);
    free(l);
}
