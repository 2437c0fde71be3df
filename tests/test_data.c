/*
 * test_data.c: CIFAR-10 loading and splitting (data.c), on a synthetic dataset in the official
 * layout written once into a temporary folder: five training files and a test file of 10000
 * records each, whose labels and pixels are a known function of (file, record), and a
 * batches.meta.txt. It loads with every label and pixel where it belongs; each kind of damage
 * (a bad label, a truncated file, an extra record, a missing file, two bad files at once, a
 * malformed list of class names) fails with STATUS_RUNTIME and a message that names the file
 * and the record, and leaves nothing to free; a missing folder says where it looked and how to
 * fix it. The split is checked for determinism, sizes, order and its subset semantics. The
 * download and its unpacking are tests/test_download.c's.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "data.h"
#include "test_util.h"

#define FILE_BYTES ((size_t)CIFAR_FILE_RECORDS * CIFAR_RECORD_BYTES)
#define TEST_FILE 5 /* file index of test_batch.bin; 0-4 are data_batch_1..5.bin */

static char dir[256];
static char good[512]; /* the root that holds the good dataset */
static unsigned char *filebuf; /* one file's bytes, reused */
static unsigned char pixel_table[256 + CIFAR_IMAGE_BYTES];

static const char *const names[CIFAR_CLASSES] = {"plane", "car", "bird", "cat", "deer",
                                                 "dog", "frog", "horse", "ship", "lorry"};

static const char *at(const char *name)
{
    return tmpdir_path(dir, name);
}

static const char *file_name(int f)
{
    static char name[4][32];
    static int k;
    k = (k + 1) % 4;
    if (f == TEST_FILE) return "test_batch.bin";
    snprintf(name[k], sizeof name[k], "data_batch_%d.bin", f + 1);
    return name[k];
}

/* ---------------------------------------------------------------------------------------- */
/* The synthetic dataset */

static unsigned label_of(int f, int r)
{
    return (unsigned)(r * 7 + f * 3 + r / 100) % 10;
}

/* Pixel p of record r of file f: a window of a fixed table, shifted per record, so every
 * record is one memcpy to write and no two neighbours are alike. */
static unsigned shift_of(int f, int r)
{
    return (unsigned)(r * 13 + f * 101) & 255;
}
static unsigned pixel_of(int f, int r, int p)
{
    return pixel_table[shift_of(f, r) + (unsigned)p];
}

/* File f's records into filebuf (all of them, as written by the good dataset). */
static void fill_file(int f)
{
    for (int r = 0; r < CIFAR_FILE_RECORDS; r++) {
        unsigned char *rec = filebuf + (size_t)r * CIFAR_RECORD_BYTES;
        rec[0] = (unsigned char)label_of(f, r);
        memcpy(rec + 1, pixel_table + shift_of(f, r), CIFAR_IMAGE_BYTES);
    }
}

static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f)) fail_msg("cannot write %s", path);
}

static void make_dir(const char *path)
{
    if (mkdir(path, 0777)) fail_msg("cannot create %s", path);
}

static void write_meta(const char *batches, const char *text)
{
    char path[2048];
    snprintf(path, sizeof path, "%s/batches.meta.txt", batches);
    write_bytes(path, text, strlen(text));
}

/* A root named name whose cifar-10-batches-bin/ links to the good files, except those marked
 * in skip (indices 0-5; 6: batches.meta.txt); returns the batches folder (static). */
static const char *variant(const char *name, const bool skip[7])
{
    static char batches[1024];
    char root[768], target[2048], link[2048];
    snprintf(root, sizeof root, "%s", at(name));
    make_dir(root);
    snprintf(batches, sizeof batches, "%s/cifar-10-batches-bin", root);
    make_dir(batches);
    for (int f = 0; f < 7; f++) {
        if (skip && skip[f]) continue;
        const char *n = f < 6 ? file_name(f) : "batches.meta.txt";
        snprintf(target, sizeof target, "%s/cifar-10-batches-bin/%s", good, n);
        snprintf(link, sizeof link, "%s/%s", batches, n);
        if (symlink(target, link)) fail_msg("cannot link %s", link);
    }
    return batches;
}

static int setup(void **state)
{
    (void)state;
    if (tmpdir_make(dir, sizeof dir, "test_data")) return -1;
    for (size_t k = 0; k < sizeof pixel_table; k++)
        pixel_table[k] = (unsigned char)(k * 7 + (k >> 5) + (k >> 9));
    filebuf = malloc(FILE_BYTES + CIFAR_RECORD_BYTES); /* room for an extra record */
    if (!filebuf) return -1;
    snprintf(good, sizeof good, "%s", at("good"));
    char batches[1024], text[256] = "";
    snprintf(batches, sizeof batches, "%s/cifar-10-batches-bin", good);
    if (mkdir(good, 0777) || mkdir(batches, 0777)) return -1;
    for (int f = 0; f < 6; f++) {
        fill_file(f);
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", batches, file_name(f));
        write_bytes(path, filebuf, FILE_BYTES);
    }
    for (int i = 0; i < CIFAR_CLASSES; i++) /* as the official file: one a line, then a blank */
        strcat(strcat(text, names[i]), "\n");
    write_meta(batches, strcat(text, "\n"));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(filebuf);
    return tmpdir_remove(dir);
}

/* ---------------------------------------------------------------------------------------- */
/* Helpers */

static void expect_in(const char *msgs, const char *want)
{
    if (!strstr(msgs, want)) fail_msg("expected \"%s\" in the messages:\n%s", want, msgs);
}

/* Loads root with the messages captured in *msgs (caller frees). */
static enum status load(const char *root, bool download, struct data *c, char **msgs,
                        struct diag *d)
{
    size_t len;
    FILE *mem = open_memstream(msgs, &len);
    *d = (struct diag){.out = mem};
    enum status st = cifar10_load(root, download, NULL, d, c);
    fclose(mem);
    return st;
}

/* A failed load: STATUS_RUNTIME, nothing to free, and every wanted text in the messages. */
static void expect_failure(const char *root, int errors, const char *const *want)
{
    struct data c;
    memset(&c, 0x5a, sizeof c);
    char *msgs;
    struct diag d;
    assert_int_equal(load(root, false, &c, &msgs, &d), STATUS_RUNTIME);
    if (errors && d.errors != errors)
        fail_msg("%s: %d errors, expected %d:\n%s", root, d.errors, errors, msgs);
    assert_null(c.train.pixels);
    assert_null(c.test.pixels);
    assert_int_equal(c.train.n, 0);
    for (; *want; want++) expect_in(msgs, *want);
    free(msgs);
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Loading */

static void test_load(void **state)
{
    (void)state;
    struct data c;
    char *msgs;
    struct diag d;
    if (load(good, false, &c, &msgs, &d)) fail_msg("%s", msgs);
    free(msgs);
    assert_int_equal(c.train.n, 5 * CIFAR_FILE_RECORDS);
    assert_int_equal(c.test.n, CIFAR_FILE_RECORDS);
    assert_string_equal(c.root, good);
    for (int i = 0; i < CIFAR_CLASSES; i++) assert_string_equal(c.class_names[i], names[i]);
    for (int f = 0; f < 6; f++)
        for (int r = 0; r < CIFAR_FILE_RECORDS; r++) {
            const struct dataset *s = f == TEST_FILE ? &c.test : &c.train;
            int64_t i = (f == TEST_FILE ? 0 : f * CIFAR_FILE_RECORDS) + r;
            if (s->labels[i] != (int32_t)label_of(f, r))
                fail_msg("%s record %d: label %d, expected %u", file_name(f), r, s->labels[i],
                         label_of(f, r));
            /* Every pixel of a few records, the corners of the rest. */
            const uint8_t *px = s->pixels + i * CIFAR_IMAGE_BYTES;
            bool all = r == 0 || r == 1234 || r == CIFAR_FILE_RECORDS - 1;
            for (int p = 0; p < CIFAR_IMAGE_BYTES; p += all ? 1 : CIFAR_IMAGE_BYTES - 1)
                if (px[p] != pixel_of(f, r, p))
                    fail_msg("%s record %d pixel %d: %u, expected %u", file_name(f), r, p,
                             px[p], pixel_of(f, r, p));
        }
    data_free(&c);
    assert_null(c.train.pixels);
}

/* Without batches.meta.txt the standard names. */
static void test_meta_missing(void **state)
{
    (void)state;
    const bool skip[7] = {[6] = true};
    variant("nometa", skip);
    struct data c;
    char *msgs;
    struct diag d;
    if (load(at("nometa"), false, &c, &msgs, &d)) fail_msg("%s", msgs);
    free(msgs);
    assert_string_equal(c.class_names[0], "airplane");
    assert_string_equal(c.class_names[1], "automobile");
    assert_string_equal(c.class_names[9], "truck");
    data_free(&c);
}

static void test_bad_label(void **state)
{
    (void)state;
    const bool skip[7] = {[2] = true};
    const char *batches = variant("badlabel", skip);
    fill_file(2);
    filebuf[1234 * CIFAR_RECORD_BYTES] = 10;
    filebuf[5000 * CIFAR_RECORD_BYTES] = 255;
    char path[2048], offset[64];
    snprintf(path, sizeof path, "%s/data_batch_3.bin", batches);
    write_bytes(path, filebuf, FILE_BYTES);
    snprintf(offset, sizeof offset, "byte offset %d", 1234 * CIFAR_RECORD_BYTES);
    const char *want[] = {path, "record 1234", offset, "label 10",
                          "(and 1 more with a bad label)", NULL};
    expect_failure(at("badlabel"), 1, want);
}

static void test_truncated(void **state)
{
    (void)state;
    const bool skip[7] = {[TEST_FILE] = true};
    const char *batches = variant("truncated", skip);
    fill_file(TEST_FILE);
    char path[2048];
    snprintf(path, sizeof path, "%s/test_batch.bin", batches);
    write_bytes(path, filebuf, 5000 * CIFAR_RECORD_BYTES + 100);
    const char *want[] = {path, "15365100 bytes, expected 30730000 (10000 records of 3073 bytes)",
                          "truncated in record 5000", "100 of its 3073 bytes", NULL};
    expect_failure(at("truncated"), 1, want);
}

static void test_extra_record(void **state)
{
    (void)state;
    const bool skip[7] = {[1] = true};
    const char *batches = variant("extra", skip);
    fill_file(1);
    char path[2048];
    snprintf(path, sizeof path, "%s/data_batch_2.bin", batches);
    write_bytes(path, filebuf, FILE_BYTES + CIFAR_RECORD_BYTES);
    const char *want[] = {path, "30733073 bytes, expected 30730000", "10001 records", NULL};
    expect_failure(at("extra"), 1, want);
}

static void test_missing_file(void **state)
{
    (void)state;
    const bool skip[7] = {[3] = true};
    const char *batches = variant("missing", skip);
    char path[2048];
    snprintf(path, sizeof path, "%s/data_batch_4.bin", batches);
    const char *want[] = {path, "cannot open", NULL};
    expect_failure(at("missing"), 1, want);
}

/* A bad label in the first file and a truncated test file: both reported. */
static void test_two_bad_files(void **state)
{
    (void)state;
    const bool skip[7] = {[0] = true, [TEST_FILE] = true};
    const char *batches = variant("twobad", skip);
    char first[2048], test[2048];
    snprintf(first, sizeof first, "%s/data_batch_1.bin", batches);
    snprintf(test, sizeof test, "%s/test_batch.bin", batches);
    fill_file(0);
    filebuf[9999 * CIFAR_RECORD_BYTES] = 42;
    write_bytes(first, filebuf, FILE_BYTES);
    write_bytes(test, filebuf, 3 * CIFAR_RECORD_BYTES - 1);
    const char *want[] = {first, "record 9999", "label 42", test, "truncated in record 2", NULL};
    expect_failure(at("twobad"), 2, want);
}

static void test_meta_malformed(void **state)
{
    (void)state;
    const bool skip[7] = {[6] = true};
    const char *batches = variant("shortmeta", skip);
    write_meta(batches, "a\nb\n\nc\nd\ne\nf\ng\nh\ni\n"); /* nine names */
    char want_at[2048];
    snprintf(want_at, sizeof want_at, "%s/batches.meta.txt:10:", batches);
    const char *want[] = {want_at, "9 class names, expected 10", NULL};
    expect_failure(at("shortmeta"), 1, want);

    /* A name of any length is kept whole (no fixed-size name buffers). */
    batches = variant("longmeta", skip);
    write_meta(batches, "a\nb\nthis_name_is_far_longer_than_the_thirty_one_characters_of_old\nd\n"
                        "e\nf\ng\nh\ni\nj\n");
    struct data c;
    char *msgs;
    struct diag d;
    if (load(at("longmeta"), false, &c, &msgs, &d)) fail_msg("%s", msgs);
    free(msgs);
    assert_string_equal(c.class_names[2], "this_name_is_far_longer_than_the_thirty_one_characters_of_old");
    data_free(&c);
}

static void test_folder_missing(void **state)
{
    (void)state;
    char *saved = getenv("RUNNER_DATA") ? strdup(getenv("RUNNER_DATA")) : NULL;
    unsetenv("RUNNER_DATA");
    char root[512], want[1100];
    snprintf(root, sizeof root, "%s", at("nowhere"));
    snprintf(want, sizeof want, "CIFAR-10 not found: %s/cifar-10-batches-bin/ does not exist",
             root);
    const char *w[] = {want, "hint: looked for", "RUNNER_DATA=DIR", "data.root",
                       "data.download: true", "scripts/get_cifar10.sh", NULL};
    expect_failure(root, 1, w);
    assert_false(exists(root)); /* nothing created without download */

    setenv("RUNNER_DATA", root, 1);
    char came[1100];
    snprintf(came, sizeof came, "the root came from RUNNER_DATA=%s", root);
    const char *w2[] = {want, came, NULL};
    expect_failure(root, 1, w2);
    if (saved) setenv("RUNNER_DATA", saved, 1);
    else unsetenv("RUNNER_DATA");
    free(saved);
}

/* ---------------------------------------------------------------------------------------- */
/* Split, root */

/* CIFAR-100: records of coarse label, fine label, pixels; train.bin 50000, test.bin 10000. */
#define C100_RECORD (2 + CIFAR_IMAGE_BYTES)

static void write_c100(const char *root, int64_t train_records, int bad_at)
{
    char d100[1024], path[1200];
    snprintf(d100, sizeof d100, "%s/cifar-100-binary", root);
    mkdir(root, 0777); /* may exist: the files are rewritten */
    mkdir(d100, 0777);
    const char *files[2] = {"train.bin", "test.bin"};
    int64_t counts[2] = {train_records, CIFAR_FILE_RECORDS};
    for (int f = 0; f < 2; f++) {
        unsigned char *buf = malloc((size_t)counts[f] * C100_RECORD);
        assert_non_null(buf);
        for (int64_t r = 0; r < counts[f]; r++) {
            unsigned char *rec = buf + r * C100_RECORD;
            rec[0] = (unsigned char)((r + f) % 20);
            rec[1] = (unsigned char)((r * 7 + f) % 100);
            for (int p = 0; p < CIFAR_IMAGE_BYTES; p++) rec[2 + p] = (unsigned char)(r + p);
        }
        if (f == 0 && bad_at >= 0) buf[(size_t)bad_at * C100_RECORD + 1] = 100; /* fine 100 */
        snprintf(path, sizeof path, "%s/%s", d100, files[f]);
        write_bytes(path, buf, (size_t)counts[f] * C100_RECORD);
        free(buf);
    }
    char fine[4096] = "", coarse[1024] = "";
    for (int i = 0; i < 100; i++)
        snprintf(fine + strlen(fine), sizeof fine - strlen(fine), "fine_%d\n", i);
    for (int i = 0; i < 20; i++)
        snprintf(coarse + strlen(coarse), sizeof coarse - strlen(coarse), "coarse_%d\n", i);
    snprintf(path, sizeof path, "%s/fine_label_names.txt", d100);
    write_bytes(path, fine, strlen(fine));
    snprintf(path, sizeof path, "%s/coarse_label_names.txt", d100);
    write_bytes(path, coarse, strlen(coarse));
}

static void test_cifar100(void **state)
{
    (void)state;
    char root[600];
    snprintf(root, sizeof root, "%s", at("c100"));
    write_c100(root, 5 * CIFAR_FILE_RECORDS, -1);
    for (int coarse = 0; coarse < 2; coarse++) {
        struct data c;
        char *msgs;
        size_t len;
        FILE *mem = open_memstream(&msgs, &len);
        struct diag d = {.out = mem};
        enum status st = cifar100_load(root, false, coarse, NULL, &d, &c);
        fclose(mem);
        if (st) fail_msg("%s", msgs);
        free(msgs);
        assert_int_equal(c.kind, SPEC_DATASET_CIFAR100);
        assert_int_equal(c.classes, coarse ? 20 : 100);
        assert_string_equal(c.class_names[coarse ? 19 : 99], coarse ? "coarse_19" : "fine_99");
        assert_int_equal(c.train.n, 50000);
        assert_int_equal(c.test.n, 10000);
        for (int64_t r = 0; r < 50000; r += 997) {
            assert_int_equal(c.train.labels[r], coarse ? r % 20 : r * 7 % 100);
            assert_int_equal(c.train.pixels[r * CIFAR_IMAGE_BYTES + 5], (uint8_t)(r + 5));
        }
        assert_int_equal(c.test.labels[3], coarse ? 4 : 22);
        data_free(&c);
    }
    /* The names alone (runner export's metadata), and a root without them. */
    for (int coarse = 0; coarse < 2; coarse++) {
        struct data c;
        struct diag d = {0};
        assert_int_equal(cifar100_names(root, coarse, &d, &c), STATUS_OK);
        assert_int_equal(c.classes, coarse ? 20 : 100);
        assert_string_equal(c.class_names[0], coarse ? "coarse_0" : "fine_0");
        assert_string_equal(c.class_names[coarse ? 19 : 99], coarse ? "coarse_19" : "fine_99");
        assert_int_equal(c.test.n, 0);
        data_free(&c);
    }
    {
        struct data c;
        char *msgs;
        size_t len;
        FILE *mem = open_memstream(&msgs, &len);
        struct diag d = {.out = mem};
        assert_int_equal(cifar100_names(at("nowhere100"), false, &d, &c), STATUS_RUNTIME);
        fclose(mem);
        expect_in(msgs, "cifar-100-binary/fine_label_names.txt: cannot open");
        free(msgs);
    }
    /* A fine label of 100, and a train.bin one record short: each named. */
    snprintf(root, sizeof root, "%s", at("c100bad"));
    write_c100(root, 5 * CIFAR_FILE_RECORDS, 1234);
    struct data c;
    char *msgs;
    size_t len;
    FILE *mem = open_memstream(&msgs, &len);
    struct diag d = {.out = mem};
    assert_int_equal(cifar100_load(root, false, false, NULL, &d, &c), STATUS_RUNTIME);
    fclose(mem);
    expect_in(msgs, "train.bin: record 1234");
    expect_in(msgs, "has label 100, expected 0-19 (coarse) and 0-99 (fine)");
    free(msgs);
    write_c100(root, 5 * CIFAR_FILE_RECORDS - 1, -1);
    mem = open_memstream(&msgs, &len);
    d = (struct diag){.out = mem};
    assert_int_equal(cifar100_load(root, false, true, NULL, &d, &c), STATUS_RUNTIME);
    fclose(mem);
    expect_in(msgs, "it holds 49999 records");
    free(msgs);
    /* Missing: where it looked and how to get it. */
    mem = open_memstream(&msgs, &len);
    d = (struct diag){.out = mem};
    assert_int_equal(cifar100_load(at("nowhere100"), false, false, NULL, &d, &c), STATUS_RUNTIME);
    fclose(mem);
    expect_in(msgs, "CIFAR-100 not found");
    expect_in(msgs, "cifar-100-binary/");
    expect_in(msgs, "runner download --cifar100");
    free(msgs);
}

static bool sorted(const int64_t *v, int64_t n)
{
    for (int64_t i = 1; i < n; i++)
        if (v[i - 1] >= v[i]) return false;
    return true;
}

/* Checks one split: sizes, order, range, disjointness; marks its indices in seen (n). */
static void check_split(const struct data_split *s, int64_t n, int64_t ntrain, int64_t nval,
                        unsigned char *seen)
{
    assert_int_equal(s->ntrain, ntrain);
    assert_int_equal(s->nval, nval);
    assert_true(sorted(s->train, s->ntrain));
    assert_true(sorted(s->val, s->nval));
    memset(seen, 0, (size_t)n);
    for (int64_t i = 0; i < s->ntrain; i++) seen[s->train[i]] = 1;
    for (int64_t i = 0; i < s->nval; i++) {
        assert_true(s->val[i] >= 0 && s->val[i] < n);
        assert_int_equal(seen[s->val[i]], 0); /* disjoint */
        seen[s->val[i]] = 2;
    }
}

static void test_split(void **state)
{
    (void)state;
    const int64_t n = 50000;
    unsigned char *seen = malloc(n);
    struct data_split a, b, small, big, none;
    data_split(n, 0, 5000, &a);
    check_split(&a, n, 45000, 5000, seen);
    for (int64_t i = 0; i < n; i++) assert_int_not_equal(seen[i], 0); /* union: all n */
    assert_true(a.val[5000 - 1] > 5000); /* shuffled, not the first 5000 */

    data_split(n, 0, 5000, &b); /* the same every time */
    assert_memory_equal(a.val, b.val, 5000 * sizeof *a.val);
    assert_memory_equal(a.train, b.train, 45000 * sizeof *a.train);
    data_split_free(&b);
    assert_null(b.train);

    /* A subset is a prefix of the fixed order: its validation images are those of the full
     * split, and a smaller subset lies inside a bigger one. */
    data_split(n, 1000, 100, &small);
    check_split(&small, n, 900, 100, seen);
    data_split(n, 0, 100, &b);
    assert_memory_equal(small.val, b.val, 100 * sizeof *b.val);
    data_split_free(&b);
    data_split(n, 2000, 0, &big);
    check_split(&big, n, 2000, 0, seen);
    for (int64_t i = 0; i < small.ntrain; i++) assert_int_equal(seen[small.train[i]], 1);
    for (int64_t i = 0; i < small.nval; i++) assert_int_equal(seen[small.val[i]], 1);

    data_split(n, n + 1, 0, &none); /* subset beyond n: all of them, val 0: none validate */
    check_split(&none, n, n, 0, seen);
    for (int64_t i = 0; i < n; i++) assert_int_equal(none.train[i], i);

    data_split(10, 4, 9, &b); /* val beyond the subset: all of it validates */
    check_split(&b, 10, 0, 4, seen);
    data_split_free(&b);
    data_split_free(&a);
    data_split_free(&small);
    data_split_free(&big);
    data_split_free(&none);
    free(seen);
}

static void test_root(void **state)
{
    (void)state;
    char *saved = getenv("RUNNER_DATA") ? strdup(getenv("RUNNER_DATA")) : NULL;
    char out[4096];
    struct spec_data none = {0}, set = {.root = "/exp/data"};
    unsetenv("RUNNER_DATA");
    data_root(&none, out, sizeof out);
    assert_string_equal(out, "data/cifar10");
    assert_string_equal(data_root_source(&none), "the default");
    data_root(&set, out, sizeof out);
    assert_string_equal(out, "/exp/data");
    assert_string_equal(data_root_source(&set), "data.root");
    setenv("RUNNER_DATA", "/from/env", 1);
    data_root(&set, out, sizeof out);
    assert_string_equal(out, "/from/env");
    assert_string_equal(data_root_source(&set), "RUNNER_DATA");
    data_root(&none, out, sizeof out);
    assert_string_equal(out, "/from/env");
    setenv("RUNNER_DATA", "", 1); /* empty: as if unset */
    data_root(&set, out, sizeof out);
    assert_string_equal(out, "/exp/data");
    assert_string_equal(data_root_source(&set), "data.root");
    if (saved) setenv("RUNNER_DATA", saved, 1);
    else unsetenv("RUNNER_DATA");
    free(saved);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_meta_missing),
        cmocka_unit_test(test_bad_label),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_extra_record),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_two_bad_files),
        cmocka_unit_test(test_meta_malformed),
        cmocka_unit_test(test_cifar100),
        cmocka_unit_test(test_folder_missing),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_root),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
