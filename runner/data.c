/*
 * data.c: CIFAR-10's binary files read into memory and checked, the archive downloaded
 * (download.c) and unpacked (tar, run without a shell) when allowed, and the fixed
 * train/validation split. See data.h; covered by tests/test_data.c (loading, the split) and
 * tests/test_download.c (the download and unpacking).
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include "data.h"

#include <errno.h>
#include <ftw.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "download.h"
#include "folder.h"
#include "paths.h"
#include "rng.h"

#define DATA_DEFAULT_ROOT "data/cifar10"
#define BATCHES_DIR "cifar-10-batches-bin"
#define ARCHIVE_NAME "cifar-10-binary.tar.gz"
#define CIFAR100_DIR "cifar-100-binary"
#define CIFAR100_ARCHIVE "cifar-100-binary.tar.gz"
#define FILE_BYTES ((long long)CIFAR_FILE_RECORDS * CIFAR_RECORD_BYTES) /* 30730000 */
#define CHUNK_RECORDS 256 /* records read per fread: 786 KB */

extern char **environ;

/* ---------------------------------------------------------------------------------------- */
/* Where the data is */

static const char *env_nonempty(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

void data_root(const struct spec_data *data, char *out, size_t size)
{
    const char *env = env_nonempty("RUNNER_DATA");
    snprintf(out, size, "%s", env ? env : data && data->root ? data->root : DATA_DEFAULT_ROOT);
}

const char *data_root_source(const struct spec_data *data)
{
    if (env_nonempty("RUNNER_DATA")) return "RUNNER_DATA";
    return data && data->root ? "data.root" : "the default";
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The hints under "CIFAR-10 not found": where the root came from, and the ways out.
 * cifar10_load sees only the path, so its origin is inferred the way data_root chose it. */
static void hint_not_found(struct diag *d, const char *root, const char *batches, bool download)
{
    const char *env = env_nonempty("RUNNER_DATA");
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd)) snprintf(cwd, sizeof cwd, "the current directory");
    diag_hint(d, "looked for %s/%s/ (current directory %s)", root, batches, cwd);
    if (env && strcmp(env, root) == 0)
        diag_hint(d, "the root came from RUNNER_DATA=%s", env);
    else if (strcmp(root, DATA_DEFAULT_ROOT) == 0)
        diag_hint(d, "the root is the default, " DATA_DEFAULT_ROOT
                     ", as RUNNER_DATA is not set and the experiment sets no data.root");
    else
        diag_hint(d, "the root came from data.root%s", env ? "" : " (RUNNER_DATA is not set)");
    diag_hint(d, "set RUNNER_DATA=DIR, DIR being the folder that holds %s/, or set data.root "
                 "in the experiment", batches);
    if (download)
        diag_hint(d, "or fetch the archive on a machine with internet access (%s), then copy "
                     "the folder here", strcmp(batches, BATCHES_DIR) ? "runner download "
                     "--cifar100" : "scripts/get_cifar10.sh");
    else
        diag_hint(d, "or allow the download (data.download: true) on a machine with internet "
                     "access, or run %s", strcmp(batches, BATCHES_DIR)
                                              ? "runner download --cifar100"
                                              : "scripts/get_cifar10.sh");
}

/* ---------------------------------------------------------------------------------------- */
/* Download */

/* Runs argv (searched on PATH, no shell) and waits: its exit status, -1 when it was not
 * installed, -2 when it died by a signal or could not be started. */
static int run_tool(char *const argv[])
{
    pid_t pid;
    int err = posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ);
    if (err) return err == ENOENT ? -1 : -2;
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return -2;
    if (!WIFEXITED(status)) return -2;
    return WEXITSTATUS(status) == 127 ? -1 : WEXITSTATUS(status); /* 127: exec failed */
}

/* "tar is not installed", or how it failed doing `what` to `object`. */
static void tool_error(struct diag *d, const char *tool, int rc, const char *what,
                       const char *object)
{
    if (rc == -1)
        diag_error(d, (struct mark){0}, "%s is not installed (or not on PATH): it is needed to "
                   "%s %s", tool, what, object);
    else
        diag_error(d, (struct mark){0}, "%s could not %s %s (%s %d)", tool, what, object,
                   rc == -2 ? "killed, or not started: status" : "exit status", rc);
}

/* rm -r path's entries, for nftw (FTW_DEPTH: a folder after its contents). */
static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* Unpacks archive into a fresh folder in root and moves its cifar-10-batches-bin/ into root,
 * so that root/cifar-10-batches-bin/ appears whole or not at all. The archive stays when tar
 * fails (it is whole and checked: the next try need not download it again); one without
 * cifar-10-batches-bin/ is deleted. */
static enum status unpack(const char *root, const char *archive, const char *folder,
                          const char *url, struct diag *d)
{
    char tmp[4200], from[4300], to[4300];
    snprintf(tmp, sizeof tmp, "%s/.unpack-XXXXXX", root);
    if (!mkdtemp(tmp)) {
        diag_error(d, (struct mark){0}, "%s: cannot create a folder to unpack into: %s", root,
                   strerror(errno));
        return STATUS_RUNTIME;
    }
    snprintf(from, sizeof from, "%s/%s", tmp, folder);
    snprintf(to, sizeof to, "%s/%s", root, folder);
    char *tar[] = {"tar", "-xzf", (char *)archive, "-C", tmp, NULL};
    int rc = run_tool(tar);
    enum status st = STATUS_RUNTIME;
    if (rc) {
        tool_error(d, "tar", rc, "unpack", archive);
        diag_hint(d, "the checked archive is kept at %s", archive);
    } else if (!is_dir(from)) { /* whole and checked, yet not CIFAR-10: of no use to keep */
        diag_error(d, (struct mark){0}, "%s: the archive from %s did not contain %s/ (deleted)",
                   archive, url, folder);
        remove(archive);
    } else if (rename(from, to)) {
        diag_error(d, (struct mark){0}, "%s: cannot move it to %s: %s", from, to,
                   strerror(errno));
    } else {
        st = STATUS_OK;
    }
    nftw(tmp, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return st;
}

enum status data_download(const char *root, const char *url, const char *md5,
                          const struct download_options *o, struct diag *d)
{
    return data_download_as(root, url, md5, ARCHIVE_NAME, BATCHES_DIR, o, d);
}

enum status data_download_as(const char *root, const char *url, const char *md5,
                             const char *archive_name, const char *folder,
                             const struct download_options *o, struct diag *d)
{
    char archive[4200];
    snprintf(archive, sizeof archive, "%s/%s", root, archive_name);
    bool created = !is_dir(root);
    if (!path_mkdirs(root)) {
        diag_error(d, (struct mark){0}, "%s: cannot create the data folder: %s", root,
                   strerror(errno));
        return STATUS_RUNTIME;
    }
    enum download_failure why;
    enum status st = download_file(url, archive, md5, o, d, &why);
    if (st && why == DOWNLOAD_FAILURE_CONNECT)
        diag_hint(d, "without internet access, RUNNER_DATA can point at a copy of the data (a "
                     "folder holding %s/)", folder);
    if (!st && o && o->cancel && *o->cancel) {
        diag_error(d, (struct mark){0}, "%s: interrupted before unpacking; the checked archive "
                   "is kept, the next run unpacks it", archive);
        st = STATUS_RUNTIME;
    }
    if (!st) st = unpack(root, archive, folder, url, d);
    if (!st)
        remove(archive);
    else if (created)
        rmdir(root); /* only when empty: a kept .part or archive stays */
    return st;
}

/* data_download_as of the official archive (url, md5), or of the mirror named by the
 * environment variable url_env (with md5_env, read only when url_env is set), with
 * download_defaults and cancel (NULL: none). */
static enum status release_download(const char *root, const volatile sig_atomic_t *cancel,
                                    const char *url_env, const char *md5_env, const char *url,
                                    const char *md5, const char *archive, const char *folder,
                                    struct diag *d)
{
    const char *mirror = env_nonempty(url_env);
    const char *mirror_md5 = mirror ? env_nonempty(md5_env) : NULL;
    struct download_options o = download_defaults(d->out);
    o.cancel = cancel;
    return data_download_as(root, mirror ? mirror : url, mirror_md5 ? mirror_md5 : md5, archive,
                            folder, &o, d);
}

enum status cifar10_download(const char *root, const volatile sig_atomic_t *cancel,
                             struct diag *d)
{
    return release_download(root, cancel, "RUNNER_CIFAR10_URL", "RUNNER_CIFAR10_MD5",
                            CIFAR10_URL, CIFAR10_MD5, ARCHIVE_NAME, BATCHES_DIR, d);
}

/* ---------------------------------------------------------------------------------------- */
/* Loading */

/* The layout of one binary release's records: label bytes, then 3072 pixel bytes. */
struct layout {
    const char *dataset;   /* "CIFAR-10", for messages */
    int label_bytes;       /* 1 (CIFAR-10), 2 (CIFAR-100: coarse, fine) */
    int label_at;          /* which of them is the label used */
    int classes;           /* the classes of the label used */
    int bound[2];          /* each label byte must be below its bound */
};

static long long record_bytes(const struct layout *lay)
{
    return lay->label_bytes + CIFAR_IMAGE_BYTES;
}

/* Checks the size of dir/name (records of them) and reads its records into set at record
 * `first`: labels apart from pixels. Errors name the file and the record; false on any. */
static bool read_batch(const char *dir, const char *name, const struct layout *lay,
                       int64_t records, struct dataset *set, int64_t first, unsigned char *chunk,
                       struct diag *d)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f || fstat(fileno(f), &st)) {
        diag_error(d, (struct mark){0}, "%s: cannot open: %s", path, strerror(errno));
        if (f) fclose(f);
        return false;
    }
    long long size = (long long)st.st_size, rb = record_bytes(lay), expect = records * rb;
    if (size != expect) {
        long long whole = size / rb, rest = size % rb;
        char why[128];
        if (rest)
            snprintf(why, sizeof why, "truncated in record %lld, which has %lld of its %lld bytes",
                     whole, rest, rb);
        else
            snprintf(why, sizeof why, "it holds %lld records", whole);
        diag_error(d, (struct mark){0}, "%s: %lld bytes, expected %lld (%lld records of %lld "
                   "bytes): %s", path, size, expect, (long long)records, rb, why);
        fclose(f);
        return false;
    }
    long long bad = 0, bad_at = 0;
    unsigned bad_value = 0;
    for (int64_t r = 0; r < records; r += CHUNK_RECORDS) {
        int64_t n = records - r < CHUNK_RECORDS ? records - r : CHUNK_RECORDS;
        if (fread(chunk, (size_t)rb, (size_t)n, f) != (size_t)n) {
            diag_error(d, (struct mark){0}, "%s: read error near record %lld", path, (long long)r);
            fclose(f);
            return false;
        }
        for (int64_t i = 0; i < n; i++) {
            const unsigned char *rec = chunk + i * rb;
            int64_t at = first + r + i;
            for (int k = 0; k < lay->label_bytes; k++) /* every label byte is checked */
                if (rec[k] >= lay->bound[k] && !bad++) {
                    bad_at = r + i;
                    bad_value = rec[k];
                }
            set->labels[at] = rec[lay->label_at];
            memcpy(set->pixels + at * CIFAR_IMAGE_BYTES, rec + lay->label_bytes,
                   CIFAR_IMAGE_BYTES);
        }
    }
    fclose(f);
    if (bad) { /* the first bad record, and how many more: a damaged file could have thousands */
        char more[64] = "", range[64];
        if (bad > 1) snprintf(more, sizeof more, " (and %lld more with a bad label)", bad - 1);
        if (lay->label_bytes == 1) snprintf(range, sizeof range, "0-%d", lay->classes - 1);
        else snprintf(range, sizeof range, "0-19 (coarse) and 0-99 (fine)");
        diag_error(d, (struct mark){0}, "%s: record %lld (byte offset %lld) has label %u, "
                   "expected %s%s", path, bad_at, bad_at * rb, bad_value, range, more);
    }
    return bad == 0;
}

/* One allocation per set: the pixels, then the labels (data_free frees the pixels). The
 * training set is 150 MB, so running out of memory is an error to report, not an abort. */
static bool set_alloc(struct dataset *set, int64_t n, const char *what, struct diag *d)
{
    size_t bytes = (size_t)n * (CIFAR_IMAGE_BYTES + sizeof *set->labels);
    set->pixels = malloc(bytes);
    if (!set->pixels) {
        diag_error(d, (struct mark){0}, "out of memory loading %s (%zu MB)", what, bytes >> 20);
        return false;
    }
    set->n = n;
    set->h = set->max_h = CIFAR_SIDE;
    set->w = set->max_w = CIFAR_SIDE;
    set->labels = (int32_t *)(void *)(set->pixels + n * CIFAR_IMAGE_BYTES);
    return true;
}

static const char *const standard_names[CIFAR_CLASSES] = {
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};

const char *data_cifar10_name(int i) { return standard_names[i]; }

/* out->class_names, `classes` of them, from dir/file: one a line (blank ones skipped); the
 * standard names (CIFAR-10's) when the file is missing and `standard` is given. */
static bool read_names(const char *dir, const char *file, int classes,
                       const char *const *standard, struct data *out, struct diag *d)
{
    out->classes = classes;
    out->class_names = calloc((size_t)classes, sizeof *out->class_names);
    if (!out->class_names) abort();
    char path[4300];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "r");
    if (!f && errno == ENOENT && standard) {
        for (int i = 0; i < classes; i++) out->class_names[i] = strdup(standard[i]);
        return true;
    }
    if (!f) {
        diag_error(d, (struct mark){0}, "%s: cannot open: %s", path, strerror(errno));
        return false;
    }
    char *line = NULL;
    size_t cap = 0;
    int count = 0, lineno = 0, before = d->errors;
    while (getline(&line, &cap, f) >= 0) {
        lineno++;
        size_t len = strcspn(line, "\r\n");
        while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t')) len--;
        line[len] = '\0';
        if (!len) continue;
        if (count >= classes)
            diag_error(d, (struct mark){0}, "%s:%d: class name '%s' after the %d expected", path,
                       lineno, line, classes);
        else
            out->class_names[count] = strdup(line);
        count++;
    }
    free(line);
    fclose(f);
    if (count < classes)
        diag_error(d, (struct mark){0}, "%s:%d: the file ends after %d class names, expected %d "
                   "(one a line)", path, lineno, count, classes);
    return d->errors == before;
}

/* A binary release: root/folder/ with its training files (records each) and its test file. */
struct release {
    const char *folder, *name;
    const char *const *train_files;
    int ntrain;
    int64_t records;       /* per training file */
    const char *test_file;
    int64_t test_records;
    const char *names_file;
    struct layout lay;
    enum status (*download)(const char *root, const volatile sig_atomic_t *cancel,
                            struct diag *d);
};

static enum status release_load(const struct release *rel, const char *root, bool download,
                                const volatile sig_atomic_t *cancel, struct diag *d,
                                struct data *out)
{
    memset(out, 0, sizeof *out);
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/%s", root, rel->folder);
    if (!is_dir(dir) &&
        (!download || rel->download(root, cancel, d) != STATUS_OK || !is_dir(dir))) {
        if (download && cancel && *cancel) return STATUS_RUNTIME; /* the download said why */
        diag_error(d, (struct mark){0}, "%s not found: %s/ does not exist", rel->name, dir);
        hint_not_found(d, root, rel->folder, download);
        return STATUS_RUNTIME;
    }
    snprintf(out->root, sizeof out->root, "%s", root);
    out->test_from = rel->test_file;
    unsigned char *chunk = malloc((size_t)CHUNK_RECORDS * (size_t)record_bytes(&rel->lay));
    if (!chunk) abort();
    if (!set_alloc(&out->train, rel->ntrain * rel->records, rel->name, d) ||
        !set_alloc(&out->test, rel->test_records, rel->name, d)) {
        free(chunk);
        data_free(out);
        return STATUS_RUNTIME;
    }
    /* Every file is checked even after one fails, so all the bad ones are reported at once. */
    bool ok = true;
    for (int i = 0; i < rel->ntrain; i++)
        ok &= read_batch(dir, rel->train_files[i], &rel->lay, rel->records, &out->train,
                         (int64_t)i * rel->records, chunk, d);
    ok &= read_batch(dir, rel->test_file, &rel->lay, rel->test_records, &out->test, 0, chunk, d);
    ok &= read_names(dir, rel->names_file, rel->lay.classes,
                     rel->lay.classes == CIFAR_CLASSES ? standard_names : NULL, out, d);
    free(chunk);
    if (!ok) {
        data_free(out);
        return STATUS_RUNTIME;
    }
    return STATUS_OK;
}

static const char *const cifar10_files[] = {"data_batch_1.bin", "data_batch_2.bin",
                                            "data_batch_3.bin", "data_batch_4.bin",
                                            "data_batch_5.bin"};

enum status cifar10_load(const char *root, bool download, const volatile sig_atomic_t *cancel,
                         struct diag *d, struct data *out)
{
    static const struct release rel = {
        .folder = BATCHES_DIR, .name = "CIFAR-10", .train_files = cifar10_files, .ntrain = 5,
        .records = CIFAR_FILE_RECORDS, .test_file = "test_batch.bin",
        .test_records = CIFAR_FILE_RECORDS, .names_file = "batches.meta.txt",
        .lay = {.dataset = "CIFAR-10", .label_bytes = 1, .label_at = 0, .classes = CIFAR_CLASSES,
                .bound = {CIFAR_CLASSES}},
        .download = cifar10_download};
    enum status st = release_load(&rel, root, download, cancel, d, out);
    if (!st) out->kind = SPEC_DATASET_CIFAR10;
    return st;
}

enum status cifar100_download(const char *root, const volatile sig_atomic_t *cancel,
                              struct diag *d)
{
    return release_download(root, cancel, "RUNNER_CIFAR100_URL", "RUNNER_CIFAR100_MD5",
                            CIFAR100_URL, CIFAR100_MD5, CIFAR100_ARCHIVE, CIFAR100_DIR, d);
}

enum status cifar100_load(const char *root, bool download, bool coarse,
                          const volatile sig_atomic_t *cancel, struct diag *d, struct data *out)
{
    static const char *const train[] = {"train.bin"};
    struct release rel = {
        .folder = CIFAR100_DIR, .name = "CIFAR-100", .train_files = train, .ntrain = 1,
        .records = 5 * CIFAR_FILE_RECORDS, .test_file = "test.bin",
        .test_records = CIFAR_FILE_RECORDS,
        .names_file = coarse ? "coarse_label_names.txt" : "fine_label_names.txt",
        .lay = {.dataset = "CIFAR-100", .label_bytes = 2, .label_at = coarse ? 0 : 1,
                .classes = coarse ? 20 : 100, .bound = {20, 100}},
        .download = cifar100_download};
    enum status st = release_load(&rel, root, download, cancel, d, out);
    if (!st) out->kind = SPEC_DATASET_CIFAR100;
    return st;
}

enum status cifar100_names(const char *root, bool coarse, struct diag *d, struct data *out)
{
    memset(out, 0, sizeof *out);
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/%s", root, CIFAR100_DIR);
    if (!read_names(dir, coarse ? "coarse_label_names.txt" : "fine_label_names.txt",
                    coarse ? 20 : 100, NULL, out, d)) {
        data_free(out);
        return STATUS_RUNTIME;
    }
    snprintf(out->root, sizeof out->root, "%s", root);
    out->kind = SPEC_DATASET_CIFAR100;
    return STATUS_OK;
}

enum status data_load(const struct spec *s, const volatile sig_atomic_t *cancel,
                      struct diag *d, struct data *out)
{
    char root[4096];
    data_root(&s->data, root, sizeof root);
    switch (s->data.dataset) {
    case SPEC_DATASET_CIFAR10: return cifar10_load(root, s->data.download, cancel, d, out);
    case SPEC_DATASET_CIFAR100:
        return cifar100_load(root, s->data.download, s->data.labels == SPEC_LABELS_COARSE,
                             cancel, d, out);
    case SPEC_DATASET_FOLDER: return folder_load(s, d, out);
    }
    return STATUS_CONFIG;
}

static void set_free(struct dataset *set)
{
    free(set->pixels); /* the labels share the allocation */
    if (set->files) free(set->labels);
    free(set->files); /* the strings share the allocation */
    free(set->info);
    memset(set, 0, sizeof *set);
}

void data_free(struct data *c)
{
    set_free(&c->train);
    set_free(&c->val);
    set_free(&c->test);
    for (int i = 0; c->class_names && i < c->classes; i++) free(c->class_names[i]);
    free(c->class_names);
    free(c->cache);
    memset(c, 0, sizeof *c);
}

/* ---------------------------------------------------------------------------------------- */
/* Split */

#define SPLIT_KEY 0xC1FA510u /* fixed: the split does not depend on the experiment's seed */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int64_t *copy_sorted(const int64_t *src, int64_t n)
{
    int64_t *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
    if (!p) abort();
    if (n > 0) memcpy(p, src, (size_t)n * sizeof *p);
    qsort(p, (size_t)n, sizeof *p, cmp_i64);
    return p;
}

void data_split(int64_t n, int64_t subset, int64_t val, struct data_split *out)
{
    if (n < 0) n = 0;
    int64_t *perm = malloc((size_t)(n > 0 ? n : 1) * sizeof *perm);
    if (!perm) abort();
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    for (int64_t i = n - 1; i > 0; i--) { /* Fisher-Yates */
        int64_t j = (int64_t)(rng_bits(SPLIT_KEY, (uint64_t)i) % (uint64_t)(i + 1));
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    int64_t used = subset <= 0 || subset > n ? n : subset;
    if (val < 0) val = 0;
    if (val > used) val = used;
    out->nval = val;
    out->ntrain = used - val;
    out->val = copy_sorted(perm, val);
    out->train = copy_sorted(perm + val, used - val);
    free(perm);
}

void data_split_free(struct data_split *s)
{
    free(s->train);
    free(s->val);
    memset(s, 0, sizeof *s);
}

/* ---------------------------------------------------------------------------------------- */
/* Images */

bool dataset_image(const struct dataset *set, int64_t i, uint8_t *buf, const uint8_t **px,
                   int *h, int *w, char *why, size_t why_size)
{
    if (set->pixels) {
        *h = set->h;
        *w = set->w;
        *px = set->pixels + (size_t)i * 3 * (size_t)set->h * (size_t)set->w;
        return true;
    }
    if (!folder_image(set, i, buf, why, why_size)) return false;
    *h = set->info[i].h;
    *w = set->info[i].w;
    *px = buf;
    return true;
}
