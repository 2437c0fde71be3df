/*
 * folder.c: folder datasets, found, probed and decoded; see folder.h.
 *
 * The probe runs on every core (OpenMP), each file's result kept in its own slot, so the
 * report lists the bad files in dataset order whatever the threads did. The decoded-image
 * cache stores one file per image, named by a hash of the image's path, size and modification
 * time, holding a small header and the planar pixels; it is written through a temporary
 * name and renamed, so a reader never sees half a file.
 */
#define _GNU_SOURCE /* O_CLOEXEC, struct stat's st_mtim */
#include "folder.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <turbojpeg.h>

#include "image.h"
#include "paths.h"
#include "run_files.h"

#define MAX_DEPTH 32 /* folders below a class folder: deeper is taken for a link cycle */
#define CACHE_MAGIC "runner-rgb-1\n"

/* --------------------------------------------------------------------------------------- */
/* Growable lists */

struct strs {
    char **v;
    size_t n, cap;
};

static void strs_push(struct strs *s, char *p)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
        if (!s->v) abort();
    }
    s->v[s->n++] = p;
}

static void strs_free(struct strs *s)
{
    for (size_t i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *join(const char *dir, const char *name)
{
    char *p;
    if (asprintf(&p, "%s/%s", dir, name) < 0) abort();
    return p;
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The entries of dir (links followed): folders into dirs, files into files (either may be
 * NULL), each list sorted. false with errno set when dir cannot be read. */
static bool list_dir(const char *dir, struct strs *dirs, struct strs *files)
{
    DIR *dp = opendir(dir);
    if (!dp) return false;
    for (struct dirent *e; (e = readdir(dp));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char *path = join(dir, e->d_name);
        struct stat st;
        bool ok = stat(path, &st) == 0;
        free(path);
        if (!ok) continue; /* a dangling link: nothing to read */
        struct strs *to = S_ISDIR(st.st_mode) ? dirs : S_ISREG(st.st_mode) ? files : NULL;
        if (!to) continue;
        char *name = strdup(e->d_name);
        if (!name) abort();
        strs_push(to, name);
    }
    closedir(dp);
    if (dirs && dirs->n) qsort(dirs->v, dirs->n, sizeof *dirs->v, cmp_str);
    if (files && files->n) qsort(files->v, files->n, sizeof *files->v, cmp_str);
    return true;
}

/* --------------------------------------------------------------------------------------- */
/* Classes and files */

enum status folder_classes(const char *root, struct mark at, char ***names, int *n,
                           struct diag *d)
{
    *names = NULL;
    *n = 0;
    char *train = join(root, "train");
    struct strs dirs = {0};
    enum status st = STATUS_OK;
    if (!list_dir(train, &dirs, NULL)) {
        diag_error(d, at, "%s/: cannot read the training images' folder: %s", train,
                   strerror(errno));
        diag_hint(d, "a folder dataset is ROOT/train/<class>/<images> (and optionally "
                     "ROOT/val/<class>/, ROOT/test/<class>/), ROOT being data.root");
        st = STATUS_CONFIG;
    } else if (!dirs.n) {
        diag_error(d, at, "%s/ holds no class folder", train);
        diag_hint(d, "put each class's images in a folder of its name: %s/<class>/", train);
        st = STATUS_CONFIG;
    } else if (dirs.n > INT32_MAX) {
        diag_error(d, at, "%s/ holds %zu class folders", train, dirs.n);
        st = STATUS_CONFIG;
    }
    free(train);
    if (st) {
        strs_free(&dirs);
        return st;
    }
    *names = dirs.v;
    *n = (int)dirs.n;
    return STATUS_OK;
}

void folder_classes_free(char **names, int n)
{
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

/* The image files under dir and its subfolders, in torchvision's order (the folders sorted by
 * their path, the files of each by name), appended to out. */
static void walk(const char *dir, int depth, struct strs *folders)
{
    strs_push(folders, strdup(dir));
    if (depth >= MAX_DEPTH) return;
    struct strs dirs = {0};
    if (!list_dir(dir, &dirs, NULL)) return; /* read again (and reported) in collect */
    for (size_t i = 0; i < dirs.n; i++) {
        char *sub = join(dir, dirs.v[i]);
        walk(sub, depth + 1, folders);
        free(sub);
    }
    strs_free(&dirs);
}

struct found {
    struct strs paths;
    int32_t *labels;
    size_t cap;
};

static void found_add(struct found *f, char *path, int32_t label)
{
    size_t at = f->paths.n;
    strs_push(&f->paths, path);
    if (at >= f->cap) {
        f->cap = f->paths.cap;
        f->labels = realloc(f->labels, f->cap * sizeof *f->labels);
        if (!f->labels) abort();
    }
    f->labels[at] = label;
}

/* The images of one class folder; false (reported) when it has none or cannot be read. */
static bool collect(const char *class_dir, int32_t label, struct found *f, struct diag *d)
{
    struct strs folders = {0};
    walk(class_dir, 0, &folders);
    qsort(folders.v, folders.n, sizeof *folders.v, cmp_str);
    size_t before = f->paths.n;
    bool ok = true;
    for (size_t i = 0; i < folders.n; i++) {
        struct strs files = {0};
        if (!list_dir(folders.v[i], NULL, &files)) {
            diag_error(d, (struct mark){0}, "%s/: cannot read: %s", folders.v[i], strerror(errno));
            ok = false;
            continue;
        }
        for (size_t k = 0; k < files.n; k++)
            if (image_format_of_name(files.v[k]) != IMAGE_NONE)
                found_add(f, join(folders.v[i], files.v[k]), label);
        strs_free(&files);
    }
    strs_free(&folders);
    if (ok && f->paths.n == before) {
        diag_error(d, (struct mark){0}, "%s/: no image in the class folder (.jpg, .jpeg or .png "
                   "files)", class_dir);
        ok = false;
    }
    return ok;
}

/* The images of ROOT/part/ (train, val or test), labelled by the index of their folder's
 * name among the classes; false (reported) on any error. */
static bool find_part(const char *root, const char *part, char **classes, int nclasses,
                      struct found *f, struct diag *d)
{
    char *dir = join(root, part);
    struct strs dirs = {0};
    bool ok = list_dir(dir, &dirs, NULL);
    if (!ok) diag_error(d, (struct mark){0}, "%s/: cannot read: %s", dir, strerror(errno));
    for (size_t i = 0; ok && i < dirs.n; i++) {
        char **hit = bsearch(&dirs.v[i], classes, (size_t)nclasses, sizeof *classes, cmp_str);
        char *class_dir = join(dir, dirs.v[i]);
        if (!hit) {
            diag_error(d, (struct mark){0}, "%s/: no class of this name in %s/train/", class_dir,
                       root);
            diag_hint(d, "the classes are train/'s folders; %s/ may hold only folders of those "
                         "names", part);
            ok = false;
        } else {
            ok &= collect(class_dir, (int32_t)(hit - classes), f, d);
        }
        free(class_dir);
    }
    if (ok && !dirs.n) {
        diag_error(d, (struct mark){0}, "%s/ holds no class folder", dir);
        ok = false;
    }
    strs_free(&dirs);
    free(dir);
    return ok;
}

/* --------------------------------------------------------------------------------------- */
/* The probe */

/* Probes the images of f; the good ones become set (f's lists are taken over or freed). The
 * bad ones are errors, or with skip warnings (one line each), counted in *skipped. */
static bool probe_part(struct found *f, bool skip, const char *cache, struct dataset *set,
                       int64_t *skipped, struct diag *d)
{
    int64_t n = (int64_t)f->paths.n;
    struct image_info *info = calloc((size_t)n + 1, sizeof *info);
    char **bad = calloc((size_t)n + 1, sizeof *bad);
    if (!info || !bad) abort();
#pragma omp parallel for schedule(dynamic, 32)
    for (int64_t i = 0; i < n; i++) {
        char why[300];
        if (!image_probe_file(f->paths.v[i], &info[i], why, sizeof why)) {
            bad[i] = strdup(why);
            if (!bad[i]) abort();
        }
    }
    int64_t nbad = 0;
    int shown = d->max_shown;
    d->max_shown = 1 << 30; /* every bad file is listed */
    for (int64_t i = 0; i < n; i++) {
        if (!bad[i]) continue;
        nbad++;
        if (!skip) diag_error(d, (struct mark){0}, "%s: %s", f->paths.v[i], bad[i]);
        else if (d->out) fprintf(d->out, "warning: %s: %s (left out: data.skip_bad)\n",
                                 f->paths.v[i], bad[i]);
    }
    d->max_shown = shown;

    /* The good ones, their paths in one allocation with the pointers. */
    size_t bytes = 0;
    for (int64_t i = 0; i < n; i++)
        if (!bad[i]) bytes += strlen(f->paths.v[i]) + 1;
    int64_t good = n - nbad;
    memset(set, 0, sizeof *set);
    set->files = malloc((size_t)good * sizeof *set->files + bytes + 1);
    set->labels = malloc(((size_t)good + 1) * sizeof *set->labels);
    set->info = malloc(((size_t)good + 1) * sizeof *set->info);
    if (!set->files || !set->labels || !set->info) abort();
    char *text = (char *)(set->files + good);
    int64_t k = 0;
    bool one = true;
    for (int64_t i = 0; i < n; i++) {
        if (bad[i]) continue;
        size_t len = strlen(f->paths.v[i]) + 1;
        memcpy(text, f->paths.v[i], len);
        set->files[k] = text;
        text += len;
        set->labels[k] = f->labels[i];
        set->info[k] = info[i];
        if (info[i].h > set->max_h) set->max_h = info[i].h;
        if (info[i].w > set->max_w) set->max_w = info[i].w;
        one &= info[i].h == info[0].h && info[i].w == info[0].w;
        k++;
    }
    set->n = good;
    set->h = one && good ? set->max_h : 0;
    set->w = one && good ? set->max_w : 0;
    set->cache = cache;
    for (int64_t i = 0; i < n; i++) free(bad[i]);
    free(bad);
    free(info);
    strs_free(&f->paths);
    free(f->labels);
    memset(f, 0, sizeof *f);
    *skipped += nbad;
    return skip || nbad == 0;
}

/* The classes that lost every image to skip_bad: errors. */
static bool every_class_left(const struct dataset *set, const char *part, char **classes,
                             int nclasses, const int64_t *before, struct diag *d)
{
    int64_t *count = calloc((size_t)nclasses, sizeof *count);
    if (!count) abort();
    for (int64_t i = 0; i < set->n; i++) count[set->labels[i]]++;
    bool ok = true;
    for (int c = 0; c < nclasses; c++)
        if (before[c] && !count[c]) {
            diag_error(d, (struct mark){0}, "%s/%s/: every image was left out as bad "
                       "(data.skip_bad)", part, classes[c]);
            ok = false;
        }
    free(count);
    return ok;
}

static void count_labels(const struct found *f, int nclasses, int64_t *out)
{
    memset(out, 0, (size_t)nclasses * sizeof *out);
    for (size_t i = 0; i < f->paths.n; i++) out[f->labels[i]]++;
}

enum status folder_load(const struct spec *s, struct diag *d, struct data *out)
{
    memset(out, 0, sizeof *out);
    const char *root = s->data.root;
    struct mark at = spec_mark(s, "data.root");
    char **classes;
    int nclasses;
    if (folder_classes(root, at, &classes, &nclasses, d)) return STATUS_CONFIG;
    snprintf(out->root, sizeof out->root, "%s", root);
    out->kind = SPEC_DATASET_FOLDER;
    out->classes = nclasses;
    out->class_names = classes;
    if (s->data.cache && !(out->cache = strdup(s->data.cache))) abort();

    const char *parts[3] = {"train", "val", "test"};
    struct dataset *sets[3] = {&out->train, &out->val, &out->test};
    struct found found[3];
    memset(found, 0, sizeof found);
    bool present[3] = {true, false, false}, ok = true;
    for (int p = 0; p < 3; p++) {
        char *dir = join(root, parts[p]);
        present[p] = p == 0 || is_dir(dir);
        free(dir);
        if (present[p]) ok &= find_part(root, parts[p], classes, nclasses, &found[p], d);
    }
    int64_t *before = calloc((size_t)nclasses * 3, sizeof *before);
    if (!before) abort();
    for (int p = 0; ok && p < 3; p++)
        if (present[p]) {
            count_labels(&found[p], nclasses, before + p * nclasses);
            ok &= probe_part(&found[p], s->data.skip_bad, out->cache, sets[p], &out->skipped,
                             d);
            if (ok) ok &= every_class_left(sets[p], parts[p], classes, nclasses,
                                           before + p * nclasses, d);
        }
    free(before);
    for (int p = 0; p < 3; p++) {
        strs_free(&found[p].paths);
        free(found[p].labels);
    }
    if (!ok) {
        if (out->skipped && !s->data.skip_bad) {
            diag_error(d, at, "%lld image%s in %s cannot be used (listed above)",
                       (long long)out->skipped, out->skipped == 1 ? "" : "s", root);
            diag_hint(d, "fix or remove them, or leave them out with data.skip_bad: true");
        }
        data_free(out);
        return STATUS_RUNTIME;
    }
    if (present[2]) {
        out->test_from = "test/";
    } else if (present[1]) {
        /* Evaluation uses val/: the test set is a copy of its lists. */
        out->test_from = "val/ (the folder has no test/)";
        struct dataset *v = &out->val, *t = &out->test;
        *t = *v;
        size_t bytes = 0;
        for (int64_t i = 0; i < v->n; i++) bytes += strlen(v->files[i]) + 1;
        t->files = malloc((size_t)v->n * sizeof *t->files + bytes + 1);
        t->labels = malloc(((size_t)v->n + 1) * sizeof *t->labels);
        t->info = malloc(((size_t)v->n + 1) * sizeof *t->info);
        if (!t->files || !t->labels || !t->info) abort();
        char *text = (char *)(t->files + v->n);
        for (int64_t i = 0; i < v->n; i++) {
            size_t len = strlen(v->files[i]) + 1;
            memcpy(text, v->files[i], len);
            t->files[i] = text;
            text += len;
        }
        memcpy(t->labels, v->labels, (size_t)v->n * sizeof *t->labels);
        memcpy(t->info, v->info, (size_t)v->n * sizeof *t->info);
    } else {
        out->test_from = "the images held out of train/ (the folder has no val/ or test/)";
    }
    return STATUS_OK;
}

/* --------------------------------------------------------------------------------------- */
/* Decoding, and the cache */

/* FNV-1a, 64 bits: the cache's file names (not a security boundary: the entry's header is
 * checked against the image again). */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

struct cache_key {
    char path[4400];
    char header[160];
};

/* The cache entry of file (its stat), and the header it must start with. */
static bool cache_key(const char *cache, const char *file, const struct image_info *info,
                      struct cache_key *k)
{
    struct stat st;
    if (stat(file, &st)) return false;
    char abs[PATH_MAX];
    const char *name = realpath(file, abs) ? abs : file;
    long long size = (long long)st.st_size, sec = (long long)st.st_mtim.tv_sec,
              nsec = (long long)st.st_mtim.tv_nsec;
    uint64_t h = fnv(0xcbf29ce484222325ull, name, strlen(name) + 1);
    h = fnv(h, &size, sizeof size);
    h = fnv(h, &sec, sizeof sec);
    h = fnv(h, &nsec, sizeof nsec);
    snprintf(k->path, sizeof k->path, "%s/%016llx.rgb", cache, (unsigned long long)h);
    snprintf(k->header, sizeof k->header, CACHE_MAGIC "%d %d %lld %lld.%09lld\n", info->w,
             info->h, size, sec, nsec);
    return true;
}

static bool cache_read(const struct cache_key *k, uint8_t *buf, size_t bytes)
{
    int fd = open(k->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    size_t hl = strlen(k->header);
    char head[160];
    bool ok = read(fd, head, hl) == (ssize_t)hl && memcmp(head, k->header, hl) == 0;
    size_t got = 0;
    while (ok && got < bytes) {
        ssize_t r = read(fd, buf + got, bytes - got);
        if (r <= 0) ok = false;
        else got += (size_t)r;
    }
    close(fd);
    return ok;
}

/* Best effort: a cache that cannot be written only costs the decoding next time. */
static void cache_write(const char *cache, const struct cache_key *k, const uint8_t *buf,
                        size_t bytes)
{
    char tmp[4500];
    snprintf(tmp, sizeof tmp, "%s.%d.tmp", k->path, (int)gettid());
    if (!path_mkdirs(cache)) return;
    FILE *f = fopen(tmp, "wb");
    if (!f) return;
    bool ok = fwrite(k->header, 1, strlen(k->header), f) == strlen(k->header) &&
              fwrite(buf, 1, bytes, f) == bytes;
    ok &= fclose(f) == 0;
    if (!ok || rename(tmp, k->path)) remove(tmp);
}

bool folder_image(const struct dataset *set, int64_t i, uint8_t *buf, char *why, size_t why_size)
{
    const struct image_info *info = &set->info[i];
    const char *file = set->files[i];
    size_t bytes = 3 * (size_t)info->h * (size_t)info->w;
    struct cache_key k;
    bool keyed = set->cache && cache_key(set->cache, file, info, &k);
    if (keyed && cache_read(&k, buf, bytes)) return true;
    char inner[300];
    if (!image_decode_file(file, info, buf, inner, sizeof inner)) {
        snprintf(why, why_size, "%s: %s", file, inner);
        return false;
    }
    if (keyed) cache_write(set->cache, &k, buf, bytes);
    return true;
}

/* --------------------------------------------------------------------------------------- */
/* Writing a dataset out as a folder */

static bool write_jpeg(const char *path, const uint8_t *planar, int w, int h, int quality,
                       char *why, size_t why_size)
{
    size_t plane = (size_t)w * h;
    uint8_t *rgb = malloc(3 * plane);
    if (!rgb) abort();
    for (size_t i = 0; i < plane; i++)
        for (int c = 0; c < 3; c++) rgb[3 * i + c] = planar[c * plane + i];
    tjhandle tj = tjInitCompress();
    unsigned char *jpg = NULL;
    unsigned long size = 0;
    bool ok = tj && !tjCompress2(tj, rgb, w, 3 * w, h, TJPF_RGB, &jpg, &size, TJSAMP_420,
                                 quality, 0);
    if (!ok) snprintf(why, why_size, "encoding failed: %s", tj ? tjGetErrorStr2(tj) : "no encoder");
    FILE *f = ok ? fopen(path, "wb") : NULL;
    if (ok && !f) {
        snprintf(why, why_size, "cannot write: %s", strerror(errno));
        ok = false;
    }
    if (f) {
        ok = fwrite(jpg, 1, size, f) == size;
        ok &= fclose(f) == 0;
        if (!ok) snprintf(why, why_size, "write failed");
    }
    tjFree(jpg);
    if (tj) tjDestroy(tj);
    free(rgb);
    return ok;
}

/* set's images `index` (n of them; NULL: all) into out/part/<class>/NNNNN.png or .jpg. */
static enum status export_part(const struct data *c, const struct dataset *set,
                               const int64_t *index, int64_t n, const char *out,
                               const char *part, int quality, struct diag *d)
{
    for (int k = 0; k < c->classes; k++) {
        char dir[4400];
        snprintf(dir, sizeof dir, "%s/%s/%s", out, part, c->class_names[k]);
        if (!path_mkdirs(dir)) {
            diag_error(d, (struct mark){0}, "%s: cannot create: %s", dir, strerror(errno));
            return STATUS_RUNTIME;
        }
    }
    int failed = 0;
#pragma omp parallel for schedule(dynamic, 64)
    for (int64_t j = 0; j < n; j++) {
        int stop;
#pragma omp atomic read
        stop = failed;
        if (stop) continue;
        int64_t i = index ? index[j] : j;
        char path[4500], why[300] = "";
        snprintf(path, sizeof path, "%s/%s/%s/%05lld.%s", out, part,
                 c->class_names[set->labels[i]], (long long)i, quality ? "jpg" : "png");
        const uint8_t *px = set->pixels + (size_t)i * 3 * set->h * set->w;
        bool ok;
        if (quality) {
            ok = write_jpeg(path, px, set->w, set->h, quality, why, sizeof why);
        } else {
            struct diag quiet = {0};
            ok = !run_files_png(path, px, set->w, set->h, NULL, NULL, 0, &quiet);
            if (!ok) snprintf(why, sizeof why, "cannot write the PNG");
        }
        if (!ok) {
#pragma omp critical
            {
                if (!failed) diag_error(d, (struct mark){0}, "%s: %s", path, why);
                failed = 1;
            }
        }
    }
    return failed ? STATUS_RUNTIME : STATUS_OK;
}

enum status folder_export(const struct data *c, const char *out, int64_t subset,
                          int64_t test_subset, int quality, struct diag *d)
{
    struct data_split sp;
    data_split(c->train.n, subset, 0, &sp);
    enum status st = export_part(c, &c->train, sp.train, sp.ntrain, out, "train", quality, d);
    data_split_free(&sp);
    int64_t nt = test_subset > 0 && test_subset < c->test.n ? test_subset : c->test.n;
    if (!st) st = export_part(c, &c->test, NULL, nt, out, "test", quality, d);
    return st;
}
