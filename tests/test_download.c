/*
 * test_download.c: the download (download.c) and the CIFAR-10 archive's download and unpacking
 * (data.c), against the HTTP/1.1 server of tests/http_server.h on 127.0.0.1 (an ephemeral
 * port, in a thread): it answers Range requests with 206 and Content-Range, and can answer
 * 404, 503 a number of times, cut a response short after a given byte (or hang there until
 * the client gives up), ignore Range (200 with the whole file) or flip a byte of the body, and
 * set a cancel flag once a response is sent. It logs every request. Covered: a plain
 * download (the start and end lines, no progress without a terminal; the progress line with
 * one); a file already there; resuming within a call and in the next call after a cut, from
 * exactly the byte received; a .part already whole (416); a server that ignores Range (the
 * download starts again from zero); the low-speed limit; 503 retried, and given up after the
 * last try; 404 not retried; a wrong MD5 and a wrong SHA-256 (both digests and the path named),
 * a SHA-256 checked, no checksum at all; connection refused, quickly; the cancel flag set
 * during a stalled transfer (a quick end, the .part kept, then resumed by the next call) and
 * during the wait between tries. Each checks the message and what is left on disk. Then
 * data_download end to end (a small archive whose batch files are links to one sparse file of
 * the right size), an archive without cifar-10-batches-bin/, tar missing (the checked archive
 * kept and used by the next call), cifar10_load through RUNNER_CIFAR10_URL and
 * RUNNER_CIFAR10_MD5, and MD5 and SHA-256 themselves against RFC 1321's and FIPS 180-2's
 * vectors. Nothing leaves 127.0.0.1.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "data.h"
#include "download.h"
#include "http_server.h"
#include "test_util.h"

#define BODY_BYTES (1 << 20)
#define BODY_MD5 "717f0920b9c39605f4ad6923e0e0953b" /* md5sum of body_fill's bytes */
#define BODY_SHA256 "f6a34d4c79c3d12c297589206bf216b084347471a53ea5e7fe9a46bd1230f098"
#define CUT 300000                                  /* where a response is cut short */

static char dir[256];

static const char *at(const char *name)
{
    return tmpdir_path(dir, name);
}

/* ---------------------------------------------------------------------------------------- */
/* Files */

/* The pattern whose MD5 is BODY_MD5: byte i is i * 31 + i / 256. */
static void body_fill(unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(i * 31 + (i >> 8));
}

static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f)) fail_msg("cannot write %s", path);
}

/* The whole file (caller frees), its size in *n. */
static unsigned char *read_all(const char *path, size_t *n)
{
    struct stat st;
    if (stat(path, &st)) fail_msg("cannot stat %s", path);
    *n = (size_t)st.st_size;
    return (unsigned char *)slurp(path);
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static long long size_of(const char *path)
{
    struct stat st;
    return stat(path, &st) ? -1 : (long long)st.st_size;
}

/* path holds exactly the body the server has at "/body". */
static void expect_body(const char *path)
{
    size_t n;
    unsigned char *got = read_all(path, &n);
    if (n != srv.files[0].len) fail_msg("%s: %zu bytes, expected %zu", path, n, srv.files[0].len);
    for (size_t i = 0; i < n; i++)
        if (got[i] != srv.files[0].bytes[i]) fail_msg("%s: byte %zu differs", path, i);
    free(got);
}

/* The names in folder d, sorted and joined by spaces ("" when empty or missing). */
static const char *listing(const char *d)
{
    static char out[1024];
    struct dirent **names;
    int n = scandir(d, &names, NULL, alphasort);
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (strcmp(names[i]->d_name, ".") && strcmp(names[i]->d_name, "..")) {
            if (out[0]) strcat(out, " ");
            strncat(out, names[i]->d_name, sizeof out - strlen(out) - 2);
        }
        free(names[i]);
    }
    if (n >= 0) free(names);
    return out;
}

/* ---------------------------------------------------------------------------------------- */
/* Helpers */

static void expect_in(const char *msgs, const char *want)
{
    if (!strstr(msgs, want)) fail_msg("expected \"%s\" in the messages:\n%s", want, msgs);
}

static int count_char(const char *s, char c)
{
    int n = 0;
    for (; *s; s++) n += *s == c;
    return n;
}

/* Short waits, so the retries take milliseconds. */
static struct download_options quick(int attempts)
{
    return (struct download_options){.attempts = attempts, .backoff_s = 0.01,
                                     .connect_timeout_s = 5, .low_speed_bytes = 1,
                                     .low_speed_time_s = 10};
}

/* download_file with the messages in *msgs (caller frees). */
static enum status fetch(const char *url, const char *path, const char *md5,
                         const struct download_options *o, char **msgs,
                         enum download_failure *why)
{
    size_t len;
    FILE *mem = open_memstream(msgs, &len);
    struct diag d = {.out = mem};
    enum status st = download_file(url, path, md5, o, &d, why);
    fclose(mem);
    return st;
}

static enum status fetch_cifar(const char *root, const char *url, const char *md5,
                               const struct download_options *o, char **msgs)
{
    size_t len;
    FILE *mem = open_memstream(msgs, &len);
    struct diag d = {.out = mem};
    enum status st = data_download(root, url, md5, o, &d);
    fclose(mem);
    return st;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The messages of a download read through a pipe, as they are written: *cancel is set once
 * they contain `when`. */
struct watcher {
    int fd; /* the pipe's reading end */
    const char *when;
    volatile sig_atomic_t *cancel;
    char text[8192];
    size_t len;
};

static void *watch(void *arg)
{
    struct watcher *w = arg;
    ssize_t got;
    while (w->len + 1 < sizeof w->text &&
           (got = read(w->fd, w->text + w->len, sizeof w->text - 1 - w->len)) > 0) {
        w->len += (size_t)got;
        w->text[w->len] = '\0';
        if (strstr(w->text, w->when)) *w->cancel = SIGTERM;
    }
    return NULL;
}

/* download_file with *cancel (o->cancel) set by another thread once its messages contain
 * `when`; the messages in *msgs (caller frees). */
static enum status fetch_cancelled_at(const char *when, volatile sig_atomic_t *cancel,
                                      const char *url, const char *path,
                                      const struct download_options *o, char **msgs,
                                      enum download_failure *why)
{
    int p[2];
    if (pipe(p)) fail_msg("pipe failed");
    struct watcher *w = calloc(1, sizeof *w);
    assert_non_null(w);
    *w = (struct watcher){.fd = p[0], .when = when, .cancel = cancel};
    pthread_t t;
    FILE *out = fdopen(p[1], "w");
    if (!out) fail_msg("cannot open the watcher's pipe");
    if (pthread_create(&t, NULL, watch, w)) fail_msg("cannot start the watcher");
    struct diag d = {.out = out};
    enum status st = download_file(url, path, BODY_MD5, o, &d, why);
    fclose(out); /* the watcher reads to the end */
    pthread_join(t, NULL);
    close(p[0]);
    *msgs = strdup(w->text);
    free(w);
    return st;
}

/* ---------------------------------------------------------------------------------------- */
/* Setup: the server and what it serves */

/* root/src/cifar-10-batches-bin/: the six batch files as links to one sparse file of the right
 * size (all labels 0 but record 1234's, 7) and batches.meta.txt; tarred into
 * dir/cifar.tar.gz. A folder of another name into dir/other.tar.gz. */
static int make_archives(void)
{
    static const char *const batches[] = {"data_batch_1", "data_batch_2", "data_batch_3",
                                          "data_batch_4", "data_batch_5", "test_batch"};
    char zeros[512], link[1024], cmd[2048];
    snprintf(zeros, sizeof zeros, "%s", at("zeros.bin"));
    int fd = open(zeros, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    unsigned char seven = 7;
    if (fd < 0 || ftruncate(fd, (off_t)CIFAR_FILE_RECORDS * CIFAR_RECORD_BYTES) ||
        pwrite(fd, &seven, 1, (off_t)1234 * CIFAR_RECORD_BYTES) != 1 || close(fd))
        return -1;
    if (mkdir(at("src"), 0777) || mkdir(at("src/cifar-10-batches-bin"), 0777) ||
        mkdir(at("src/other"), 0777))
        return -1;
    for (int b = 0; b < 6; b++) {
        snprintf(link, sizeof link, "%s/src/cifar-10-batches-bin/%s.bin", dir, batches[b]);
        if (symlink(zeros, link)) return -1;
    }
    write_file(at("src/cifar-10-batches-bin"), "batches.meta.txt",
               "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n");
    write_file(at("src/other"), "readme.txt", "not CIFAR-10\n");
    snprintf(cmd, sizeof cmd, "tar -czf '%s/cifar.tar.gz' -C '%s/src' cifar-10-batches-bin && "
             "tar -czf '%s/other.tar.gz' -C '%s/src' other", dir, dir, dir, dir);
    return system(cmd) ? -1 : 0;
}

static int setup(void **state)
{
    (void)state;
    /* Straight to 127.0.0.1, whatever proxy the environment names. */
    const char *proxies[] = {"http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY",
                             "all_proxy", "ALL_PROXY"};
    for (size_t i = 0; i < ARRAY_LEN(proxies); i++) unsetenv(proxies[i]);
    if (tmpdir_make(dir, sizeof dir, "test_download") || make_archives()) return -1;
    unsigned char *body = malloc(BODY_BYTES);
    if (!body) return -1;
    body_fill(body, BODY_BYTES);
    serve_file("/body", body, BODY_BYTES); /* files[0] */
    size_t n;
    unsigned char *a = read_all(at("cifar.tar.gz"), &n);
    serve_file("/cifar.tar.gz", a, n);
    a = read_all(at("other.tar.gz"), &n);
    serve_file("/other.tar.gz", a, n);
    return server_start();
}

static int teardown(void **state)
{
    (void)state;
    server_stop();
    server_free_files();
    return tmpdir_remove(dir);
}

/* ---------------------------------------------------------------------------------------- */
/* download_file */

/* One request, the file whole; a line at the start and one at the end, nothing between. */
static void test_plain(void **state)
{
    (void)state;
    server_reset();
    char path[512], part[600], *msgs, want[1024];
    snprintf(path, sizeof path, "%s", at("plain.bin"));
    snprintf(part, sizeof part, "%s.part", path);
    struct download_options o = quick(3);
    enum download_failure why;
    /* The checksum in capitals is the same checksum. */
    if (fetch(url_of("/body"), path, "717F0920B9C39605F4AD6923E0E0953B", &o, &msgs, &why))
        fail_msg("%s", msgs);
    assert_int_equal(why, DOWNLOAD_FAILURE_NONE);
    expect_body(path);
    assert_false(exists(part));
    assert_int_equal(requests(), 1);
    assert_string_equal(range_of(0), "");
    snprintf(want, sizeof want, "runner: downloading %s into %s\n", url_of("/body"), dir);
    if (strncmp(msgs, want, strlen(want))) fail_msg("expected \"%s\" first in:\n%s", want, msgs);
    expect_in(msgs, "runner: downloaded 1.0 MB in 0:00, MD5 checked: ");
    assert_int_equal(count_char(msgs, '\n'), 2);
    assert_int_equal(count_char(msgs, '\r'), 0);
    free(msgs);

    /* Called again: the file is there and right, so nothing is fetched. */
    if (fetch(url_of("/body"), path, BODY_MD5, &o, &msgs, NULL)) fail_msg("%s", msgs);
    expect_in(msgs, "is already there, MD5 checked");
    assert_int_equal(requests(), 1);
    free(msgs);

    /* A wrong file under the name is replaced. */
    write_bytes(path, "stale", 5);
    if (fetch(url_of("/body"), path, BODY_MD5, &o, &msgs, NULL)) fail_msg("%s", msgs);
    expect_body(path);
    assert_int_equal(requests(), 2);
    free(msgs);
}

/* With progress: a line redrawn in place (\r), with the total, rate and ETA, cleared at the
 * end; then the end line. */
static void test_progress(void **state)
{
    (void)state;
    server_reset();
    char *msgs;
    struct download_options o = quick(1);
    o.progress = true;
    if (fetch(url_of("/body"), at("progress.bin"), BODY_MD5, &o, &msgs, NULL))
        fail_msg("%s", msgs);
    expect_in(msgs, "\r  1.0 / 1.0 MB  100%  ");
    expect_in(msgs, " MB/s  ETA 0:00\033[K");
    expect_in(msgs, "\r\033[Krunner: downloaded 1.0 MB");
    assert_int_equal(count_char(msgs, '\n'), 2);
    free(msgs);
}

/* Cut short after CUT bytes: the second try asks for bytes=CUT- and the file ends whole. */
static void test_resume_retry(void **state)
{
    (void)state;
    server_reset();
    srv.cut_times = 1;
    srv.cut_at = CUT;
    char *msgs;
    struct download_options o = quick(3);
    if (fetch(url_of("/body"), at("retry.bin"), BODY_MD5, &o, &msgs, NULL)) fail_msg("%s", msgs);
    assert_int_equal(requests(), 2);
    assert_string_equal(range_of(0), "");
    assert_string_equal(range_of(1), "bytes=300000-");
    expect_in(msgs, "runner: download failed (");
    expect_in(msgs, "trying again in 0.01 s (try 2 of 3)");
    expect_body(at("retry.bin"));
    assert_false(exists(at("retry.bin.part")));
    free(msgs);
}

/* Cut short with one try: an error that keeps the .part and says so; the next call (a new run)
 * resumes from exactly there. */
static void test_resume_next_run(void **state)
{
    (void)state;
    server_reset();
    srv.cut_times = 1;
    srv.cut_at = CUT;
    char path[512], part[600], *msgs, want[1024];
    snprintf(path, sizeof path, "%s", at("nextrun.bin"));
    snprintf(part, sizeof part, "%s.part", path);
    struct download_options o = quick(1);
    enum download_failure why;
    assert_int_equal(fetch(url_of("/body"), path, BODY_MD5, &o, &msgs, &why), STATUS_RUNTIME);
    assert_int_equal(why, DOWNLOAD_FAILURE_INTERRUPTED);
    snprintf(want, sizeof want, "runner: error: cannot download %s: ", url_of("/body"));
    expect_in(msgs, want);
    snprintf(want, sizeof want, "hint: the 300000 bytes received are kept in %s: running again "
             "resumes the download from there", part);
    expect_in(msgs, want);
    free(msgs);
    assert_false(exists(path));
    assert_int_equal(size_of(part), CUT);

    if (fetch(url_of("/body"), path, BODY_MD5, &o, &msgs, NULL)) fail_msg("%s", msgs);
    expect_in(msgs, "(resuming after the 0.3 MB of an earlier try)");
    assert_int_equal(requests(), 2);
    assert_string_equal(range_of(1), "bytes=300000-");
    expect_body(path);
    assert_false(exists(part));
    free(msgs);
}

/* A .part already whole (the run before stopped before checking it): the server answers 416
 * to the Range beyond its end, and the .part is checked and kept. */
static void test_part_complete(void **state)
{
    (void)state;
    server_reset();
    char path[512], part[600], *msgs;
    snprintf(path, sizeof path, "%s", at("whole.bin"));
    snprintf(part, sizeof part, "%s.part", path);
    write_bytes(part, srv.files[0].bytes, srv.files[0].len);
    struct download_options o = quick(3);
    if (fetch(url_of("/body"), path, BODY_MD5, &o, &msgs, NULL)) fail_msg("%s", msgs);
    free(msgs);
    assert_int_equal(requests(), 1);
    assert_string_equal(range_of(0), "bytes=1048576-");
    expect_body(path);
    assert_false(exists(part));
}

/* A server that ignores Range: the .part (here of wrong bytes) is emptied and the download
 * starts again from the first byte, in the same call. */
static void test_range_ignored(void **state)
{
    (void)state;
    server_reset();
    srv.ignore_range = true;
    char path[512], part[600], *msgs;
    snprintf(path, sizeof path, "%s", at("ignored.bin"));
    snprintf(part, sizeof part, "%s.part", path);
    unsigned char junk[1000];
    memset(junk, 0xee, sizeof junk);
    write_bytes(part, junk, sizeof junk);
    struct download_options o = quick(1);
    if (fetch(url_of("/body"), path, BODY_MD5, &o, &msgs, NULL)) fail_msg("%s", msgs);
    assert_int_equal(requests(), 2);
    assert_string_equal(range_of(0), "bytes=1000-");
    assert_string_equal(range_of(1), "");
    expect_in(msgs, "(resuming after the 1000 bytes of an earlier try)\n");
    expect_in(msgs, "the server sent the whole file instead of the rest: starting again from "
                    "the first byte");
    expect_body(path);
    assert_false(exists(part));
    free(msgs);
}

/* A connection that stalls after 500 bytes is abandoned at the low-speed limit and resumed. */
static void test_stall(void **state)
{
    (void)state;
    server_reset();
    srv.cut_times = 1;
    srv.cut_at = 500;
    srv.stall = true;
    char *msgs;
    struct download_options o = quick(2);
    o.low_speed_bytes = 1000;
    o.low_speed_time_s = 1;
    double t0 = now_s();
    if (fetch(url_of("/body"), at("stall.bin"), BODY_MD5, &o, &msgs, NULL)) fail_msg("%s", msgs);
    double took = now_s() - t0;
    if (took > 4.5) fail_msg("the stalled try was abandoned after %.1f s, expected ~1-2 s", took);
    assert_int_equal(requests(), 2);
    assert_string_equal(range_of(1), "bytes=500-");
    expect_in(msgs, "runner: download failed (Operation too slow.");
    expect_in(msgs, "trying again");
    expect_body(at("stall.bin"));
    free(msgs);
}

/* The cancel flag set (as a signal handler sets it) while a transfer stalls after CUT bytes:
 * download_file returns within about a second instead of waiting out the stall or the
 * low-speed limit, with no other try; the .part keeps the bytes received and the message says
 * so; nothing is at path. The next call, without the flag, asks for the rest and ends with
 * the whole file. */
static void test_cancel(void **state)
{
    (void)state;
    server_reset();
    static volatile sig_atomic_t cancel;
    cancel = 0;
    srv.cut_times = 1;
    srv.cut_at = CUT;
    srv.stall = true;
    srv.cancel = &cancel;
    char path[512], part[600], *msgs, want[1024], kept_text[64], range[64];
    snprintf(path, sizeof path, "%s", at("cancel.bin"));
    snprintf(part, sizeof part, "%s.part", path);
    struct download_options o = quick(3);
    o.cancel = &cancel;
    enum download_failure why;
    double t0 = now_s();
    assert_int_equal(fetch(url_of("/body"), path, BODY_MD5, &o, &msgs, &why), STATUS_RUNTIME);
    double took = now_s() - t0;
    if (took > 3.0)
        fail_msg("a cancelled download returned after %.1f s (the stall is %d s)", took,
                 STALL_MS / 1000);
    assert_int_equal(why, DOWNLOAD_FAILURE_CANCELLED);
    assert_int_equal(requests(), 1);
    long long kept = size_of(part);
    if (kept <= 0 || kept > CUT) fail_msg("%s: %lld bytes, expected 1 to %d", part, kept, CUT);
    if (kept < 100000) snprintf(kept_text, sizeof kept_text, "%lld bytes", kept);
    else snprintf(kept_text, sizeof kept_text, "%.1f MB", (double)kept / 1e6);
    snprintf(want, sizeof want, "runner: error: %s: download interrupted; %s kept in %s, the "
             "next run resumes it\n", url_of("/body"), kept_text, part);
    expect_in(msgs, want);
    assert_null(strstr(msgs, "trying again"));
    free(msgs);
    assert_false(exists(path));

    o.cancel = NULL;
    if (fetch(url_of("/body"), path, BODY_MD5, &o, &msgs, &why)) fail_msg("%s", msgs);
    assert_int_equal(why, DOWNLOAD_FAILURE_NONE);
    assert_int_equal(requests(), 2);
    snprintf(range, sizeof range, "bytes=%lld-", kept);
    assert_string_equal(range_of(1), range);
    expect_in(msgs, "(resuming after the ");
    expect_body(path);
    assert_false(exists(part));
    free(msgs);
}

/* The cancel flag set during the 5 s wait after a 503: the wait ends at once, without another
 * try; nothing was received, so nothing is left. Called with the flag still set: no request. */
static void test_cancel_wait(void **state)
{
    (void)state;
    server_reset();
    srv.fail_503 = 100;
    static volatile sig_atomic_t cancel;
    cancel = 0;
    char path[512], part[600], *msgs, want[1024];
    snprintf(path, sizeof path, "%s", at("cancel_wait.bin"));
    snprintf(part, sizeof part, "%s.part", path);
    struct download_options o = quick(3);
    o.backoff_s = 5;
    o.cancel = &cancel;
    enum download_failure why;
    double t0 = now_s();
    assert_int_equal(fetch_cancelled_at("trying again in 5 s (try 2 of 3)", &cancel,
                                        url_of("/body"), path, &o, &msgs, &why),
                     STATUS_RUNTIME);
    double took = now_s() - t0;
    if (took > 2.0) fail_msg("the wait cancelled ended after %.1f s (it is 5 s)", took);
    assert_int_equal(why, DOWNLOAD_FAILURE_CANCELLED);
    assert_int_equal(requests(), 1);
    snprintf(want, sizeof want, "runner: error: %s: download interrupted before its first "
             "byte\n", url_of("/body"));
    expect_in(msgs, want);
    free(msgs);
    assert_false(exists(path));
    assert_false(exists(part));

    assert_int_equal(fetch(url_of("/body"), path, BODY_MD5, &o, &msgs, &why), STATUS_RUNTIME);
    assert_int_equal(why, DOWNLOAD_FAILURE_CANCELLED);
    assert_int_equal(requests(), 1);
    expect_in(msgs, want);
    free(msgs);
}

/* 503 twice, then the file: three tries. 503 every time: an error after the third, naming the
 * status; nothing left. */
static void test_server_error(void **state)
{
    (void)state;
    server_reset();
    srv.fail_503 = 2;
    char *msgs, want[1024];
    struct download_options o = quick(3);
    if (fetch(url_of("/body"), at("flaky.bin"), BODY_MD5, &o, &msgs, NULL)) fail_msg("%s", msgs);
    assert_int_equal(requests(), 3);
    expect_body(at("flaky.bin"));
    free(msgs);

    server_reset();
    srv.fail_503 = 100;
    enum download_failure why;
    assert_int_equal(fetch(url_of("/body"), at("down.bin"), BODY_MD5, &o, &msgs, &why),
                     STATUS_RUNTIME);
    assert_int_equal(why, DOWNLOAD_FAILURE_HTTP);
    assert_int_equal(requests(), 3);
    snprintf(want, sizeof want, "runner: error: cannot download %s: the server answered HTTP 503 "
             "(after 3 tries)", url_of("/body"));
    expect_in(msgs, want);
    free(msgs);
    assert_false(exists(at("down.bin")));
    assert_false(exists(at("down.bin.part")));
}

/* 404: one request, no retry; an earlier .part is deleted. */
static void test_not_found(void **state)
{
    (void)state;
    server_reset();
    srv.not_found = true;
    char path[512], part[600], *msgs, want[1024];
    snprintf(path, sizeof path, "%s", at("gone.bin"));
    snprintf(part, sizeof part, "%s.part", path);
    write_bytes(part, "12345", 5);
    struct download_options o = quick(3);
    enum download_failure why;
    assert_int_equal(fetch(url_of("/body"), path, BODY_MD5, &o, &msgs, &why), STATUS_RUNTIME);
    assert_int_equal(why, DOWNLOAD_FAILURE_HTTP);
    assert_int_equal(requests(), 1);
    snprintf(want, sizeof want, "runner: error: cannot download %s: the server answered HTTP 404\n",
             url_of("/body"));
    expect_in(msgs, want);
    free(msgs);
    assert_false(exists(path));
    assert_false(exists(part));
}

/* A body that does not match: got and expected in the message, the .part deleted. */
static void test_bad_checksum(void **state)
{
    (void)state;
    server_reset();
    srv.corrupt = true;
    char *msgs, want[1024];
    struct download_options o = quick(3);
    enum download_failure why;
    assert_int_equal(fetch(url_of("/body"), at("bad.bin"), BODY_MD5, &o, &msgs, &why),
                     STATUS_RUNTIME);
    assert_int_equal(why, DOWNLOAD_FAILURE_CHECKSUM);
    assert_int_equal(requests(), 1);
    snprintf(want, sizeof want, "runner: error: %s: MD5 mismatch: got ", url_of("/body"));
    expect_in(msgs, want);
    snprintf(want, sizeof want, ", expected " BODY_MD5 ": the download is damaged or not the "
             "file expected (deleted, not kept as %s)", at("bad.bin"));
    expect_in(msgs, want);
    assert_null(strstr(msgs, "got " BODY_MD5));
    free(msgs);
    assert_false(exists(at("bad.bin")));
    assert_false(exists(at("bad.bin.part")));

    /* The right body with the wrong checksum: the digest got is the body's. */
    server_reset();
    const char *wrong = "0123456789abcdef0123456789abcdef";
    assert_int_equal(fetch(url_of("/body"), at("bad.bin"), wrong, &o, &msgs, &why),
                     STATUS_RUNTIME);
    expect_in(msgs, "MD5 mismatch: got " BODY_MD5 ", expected 0123456789abcdef0123456789abcdef");
    free(msgs);
    assert_false(exists(at("bad.bin.part")));
}

/* A checksum of 64 hex digits is a SHA-256: checked (either case), and a wrong one names both
 * digests and the path, nothing kept; without a checksum the file is taken as sent; a checksum
 * of another length is refused before any request. */
static void test_sha256(void **state)
{
    (void)state;
    server_reset();
    char *msgs, want[1024], upper[65];
    struct download_options o = quick(3);
    enum download_failure why;
    for (int i = 0; i < 64; i++) upper[i] = (char)toupper(BODY_SHA256[i]);
    upper[64] = 0;
    if (fetch(url_of("/body"), at("s.bin"), upper, &o, &msgs, &why)) fail_msg("%s", msgs);
    expect_in(msgs, "runner: downloaded 1.0 MB in 0:00, SHA-256 checked: ");
    expect_body(at("s.bin"));
    free(msgs);
    if (fetch(url_of("/body"), at("s.bin"), BODY_SHA256, &o, &msgs, NULL)) fail_msg("%s", msgs);
    expect_in(msgs, "is already there, SHA-256 checked");
    assert_int_equal(requests(), 1);
    free(msgs);

    const char *wrong = "00000000000000000000000000000000000000000000000000000000000000ff";
    assert_int_equal(fetch(url_of("/body"), at("w.bin"), wrong, &o, &msgs, &why), STATUS_RUNTIME);
    assert_int_equal(why, DOWNLOAD_FAILURE_CHECKSUM);
    snprintf(want, sizeof want, "runner: error: %s: SHA-256 mismatch: got " BODY_SHA256
             ", expected %s: the download is damaged or not the file expected (deleted, not "
             "kept as %s)", url_of("/body"), wrong, at("w.bin"));
    expect_in(msgs, want);
    free(msgs);
    assert_false(exists(at("w.bin")));
    assert_false(exists(at("w.bin.part")));

    server_reset();
    if (fetch(url_of("/body"), at("n.bin"), NULL, &o, &msgs, &why)) fail_msg("%s", msgs);
    expect_in(msgs, "runner: downloaded 1.0 MB in 0:00: ");
    assert_null(strstr(msgs, "checked"));
    expect_body(at("n.bin"));
    free(msgs);
    if (fetch(url_of("/body"), at("n.bin"), NULL, &o, &msgs, NULL)) fail_msg("%s", msgs);
    snprintf(want, sizeof want, "runner: %s is already there\n", at("n.bin"));
    assert_string_equal(msgs, want);
    assert_int_equal(requests(), 1);
    free(msgs);

    assert_int_equal(fetch(url_of("/body"), at("x.bin"), "abc", &o, &msgs, &why), STATUS_RUNTIME);
    expect_in(msgs, "its checksum \"abc\" is neither an MD5 (32 hex digits) nor a SHA-256 (64)");
    assert_int_equal(requests(), 1);
    free(msgs);
}

/* Nothing listening (a bound port that does not listen): every try refused at once; the error
 * says the machine may be offline; nothing is left. Through data_download too, which adds the
 * RUNNER_DATA hint and removes the data folder it made. */
static void test_refused(void **state)
{
    (void)state;
    int port = 0, fd = bind_local(&port);
    assert_true(fd >= 0);
    char url[128], *msgs, want[1024], root[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/cifar.tar.gz", port);
    struct download_options o = quick(3);
    enum download_failure why;
    double t0 = now_s();
    assert_int_equal(fetch(url, at("refused.bin"), BODY_MD5, &o, &msgs, &why), STATUS_RUNTIME);
    if (now_s() - t0 > 2) fail_msg("a refused connection took %.1f s", now_s() - t0);
    assert_int_equal(why, DOWNLOAD_FAILURE_CONNECT);
    snprintf(want, sizeof want, "runner: error: cannot download %s: ", url);
    expect_in(msgs, want);
    expect_in(msgs, "(after 3 tries)\nhint: the machine may be offline, or unable to reach the "
                    "host\n");
    expect_in(msgs, "(try 3 of 3)");
    free(msgs);
    assert_false(exists(at("refused.bin")));
    assert_false(exists(at("refused.bin.part")));

    snprintf(root, sizeof root, "%s", at("offline"));
    assert_int_equal(fetch_cifar(root, url, CIFAR10_MD5, &o, &msgs), STATUS_RUNTIME);
    expect_in(msgs, want);
    expect_in(msgs, "hint: without internet access, RUNNER_DATA can point at a copy of the data "
                    "(a folder holding cifar-10-batches-bin/)");
    free(msgs);
    assert_false(exists(root));
    close(fd);
}

/* ---------------------------------------------------------------------------------------- */
/* data_download and cifar10_load */

/* The archive unpacked: cifar-10-batches-bin/ alone is left in the (new, nested) root. */
static void test_unpack(void **state)
{
    (void)state;
    server_reset();
    char root[512], md5[33], *msgs;
    struct diag d = {.out = stderr};
    assert_int_equal(download_md5_file(at("cifar.tar.gz"), md5, &d), STATUS_OK);
    snprintf(root, sizeof root, "%s/made/by/download", at("dl"));
    struct download_options o = quick(3);
    if (fetch_cifar(root, url_of("/cifar.tar.gz"), md5, &o, &msgs)) fail_msg("%s", msgs);
    free(msgs);
    assert_string_equal(listing(root), "cifar-10-batches-bin");
    char batches[600];
    snprintf(batches, sizeof batches, "%s/cifar-10-batches-bin", root);
    assert_string_equal(listing(batches), "batches.meta.txt data_batch_1.bin data_batch_2.bin "
                                          "data_batch_3.bin data_batch_4.bin data_batch_5.bin "
                                          "test_batch.bin");
}

/* A whole, checked archive without cifar-10-batches-bin/: an error, and nothing left. */
static void test_unpack_not_cifar(void **state)
{
    (void)state;
    server_reset();
    char root[512], md5[33], *msgs;
    struct diag d = {.out = stderr};
    assert_int_equal(download_md5_file(at("other.tar.gz"), md5, &d), STATUS_OK);
    snprintf(root, sizeof root, "%s", at("notcifar"));
    struct download_options o = quick(3);
    assert_int_equal(fetch_cifar(root, url_of("/other.tar.gz"), md5, &o, &msgs), STATUS_RUNTIME);
    expect_in(msgs, "cifar-10-binary.tar.gz: the archive from ");
    expect_in(msgs, "did not contain cifar-10-batches-bin/ (deleted)");
    free(msgs);
    assert_false(exists(root));
}

/* Without tar: the error says so and keeps the checked archive; the next call unpacks it
 * without downloading again. */
static void test_no_tar(void **state)
{
    (void)state;
    server_reset();
    char root[512], md5[33], *msgs, kept[700];
    struct diag d = {.out = stderr};
    assert_int_equal(download_md5_file(at("cifar.tar.gz"), md5, &d), STATUS_OK);
    snprintf(root, sizeof root, "%s", at("notar"));
    snprintf(kept, sizeof kept, "hint: the checked archive is kept at %s/cifar-10-binary.tar.gz",
             root);
    struct download_options o = quick(3);
    char *path = strdup(getenv("PATH") ? getenv("PATH") : "");
    setenv("PATH", at("empty"), 1);
    enum status st = fetch_cifar(root, url_of("/cifar.tar.gz"), md5, &o, &msgs);
    setenv("PATH", path, 1);
    free(path);
    assert_int_equal(st, STATUS_RUNTIME);
    expect_in(msgs, "tar is not installed (or not on PATH): it is needed to unpack");
    expect_in(msgs, kept);
    free(msgs);
    assert_string_equal(listing(root), "cifar-10-binary.tar.gz");

    if (fetch_cifar(root, url_of("/cifar.tar.gz"), md5, &o, &msgs)) fail_msg("%s", msgs);
    expect_in(msgs, "cifar-10-binary.tar.gz is already there, MD5 checked");
    free(msgs);
    assert_int_equal(requests(), 1);
    assert_string_equal(listing(root), "cifar-10-batches-bin");
}

/* cifar10_load with download from the mirror RUNNER_CIFAR10_URL names (RUNNER_CIFAR10_MD5 its
 * checksum): the data loads. With a wrong checksum: the MD5 error, then "not found". */
static void test_load_downloads(void **state)
{
    (void)state;
    server_reset();
    char md5[33], *msgs;
    struct diag d = {.out = stderr};
    assert_int_equal(download_md5_file(at("cifar.tar.gz"), md5, &d), STATUS_OK);
    setenv("RUNNER_CIFAR10_URL", url_of("/cifar.tar.gz"), 1);
    setenv("RUNNER_CIFAR10_MD5", md5, 1);
    struct data c;
    size_t len;
    FILE *mem = open_memstream(&msgs, &len);
    d = (struct diag){.out = mem};
    enum status st = cifar10_load(at("fetched"), true, NULL, &d, &c);
    fclose(mem);
    if (st) fail_msg("%s", msgs);
    free(msgs);
    assert_int_equal(c.train.n, 5 * CIFAR_FILE_RECORDS);
    assert_int_equal(c.train.labels[1234], 7);
    assert_int_equal(c.train.labels[1235], 0);
    assert_int_equal(c.test.labels[1234], 7);
    data_free(&c);

    setenv("RUNNER_CIFAR10_MD5", "0123456789abcdef0123456789abcdef", 1);
    mem = open_memstream(&msgs, &len);
    d = (struct diag){.out = mem};
    assert_int_equal(cifar10_load(at("unfetched"), true, NULL, &d, &c), STATUS_RUNTIME);
    fclose(mem);
    expect_in(msgs, "MD5 mismatch: got ");
    expect_in(msgs, "CIFAR-10 not found");
    expect_in(msgs, "scripts/get_cifar10.sh");
    assert_null(c.train.pixels);
    free(msgs);
    assert_false(exists(at("unfetched")));
    unsetenv("RUNNER_CIFAR10_URL");
    unsetenv("RUNNER_CIFAR10_MD5");
}

/* ---------------------------------------------------------------------------------------- */
/* MD5 and SHA-256 */

static void test_md5(void **state)
{
    (void)state;
    static const char *const vectors[][2] = {
        {"", "d41d8cd98f00b204e9800998ecf8427e"},
        {"a", "0cc175b9c0f1b6a831c399e269772661"},
        {"abc", "900150983cd24fb0d6963f7d28e17f72"},
        {"message digest", "f96b697d7cb7938d525a2f31aaf161d0"},
        {"abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"},
        {"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
         "d174ab98d277d9f5a5611c2c9f419d9f"},
        {"1234567890123456789012345678901234567890123456789012345678901234567890123456789"
         "0",
         "57edf4a22be3c955ac49da2e2107b67a"},
    };
    char out[33], *msgs;
    struct diag d = {.out = stderr};
    for (size_t i = 0; i < ARRAY_LEN(vectors); i++) {
        write_bytes(at("vector"), vectors[i][0], strlen(vectors[i][0]));
        assert_int_equal(download_md5_file(at("vector"), out, &d), STATUS_OK);
        if (strcmp(out, vectors[i][1]))
            fail_msg("md5(\"%s\") = %s, expected %s", vectors[i][0], out, vectors[i][1]);
    }
    /* 1 MiB: read in many chunks. */
    write_bytes(at("pattern.bin"), srv.files[0].bytes, srv.files[0].len);
    assert_int_equal(download_md5_file(at("pattern.bin"), out, &d), STATUS_OK);
    assert_string_equal(out, BODY_MD5);

    size_t len;
    FILE *mem = open_memstream(&msgs, &len);
    d = (struct diag){.out = mem};
    assert_int_equal(download_md5_file(at("no-such-file"), out, &d), STATUS_RUNTIME);
    fclose(mem);
    expect_in(msgs, "no-such-file: cannot open: No such file or directory");
    free(msgs);

    /* SHA-256: FIPS 180-2's examples, a file, the pattern, and bytes in memory. */
    static const char *const sha[][2] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    };
    char out256[65];
    d = (struct diag){.out = stderr};
    for (size_t i = 0; i < ARRAY_LEN(sha); i++) {
        write_bytes(at("vector"), sha[i][0], strlen(sha[i][0]));
        assert_int_equal(download_sha256_file(at("vector"), out256, &d), STATUS_OK);
        assert_string_equal(out256, sha[i][1]);
        download_sha256_text(sha[i][0], strlen(sha[i][0]), out256);
        assert_string_equal(out256, sha[i][1]);
    }
    assert_int_equal(download_sha256_file(at("pattern.bin"), out256, &d), STATUS_OK);
    assert_string_equal(out256, BODY_SHA256);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain),
        cmocka_unit_test(test_progress),
        cmocka_unit_test(test_resume_retry),
        cmocka_unit_test(test_resume_next_run),
        cmocka_unit_test(test_part_complete),
        cmocka_unit_test(test_range_ignored),
        cmocka_unit_test(test_stall),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_cancel_wait),
        cmocka_unit_test(test_server_error),
        cmocka_unit_test(test_not_found),
        cmocka_unit_test(test_bad_checksum),
        cmocka_unit_test(test_sha256),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_unpack),
        cmocka_unit_test(test_unpack_not_cifar),
        cmocka_unit_test(test_no_tar),
        cmocka_unit_test(test_load_downloads),
        cmocka_unit_test(test_md5),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
