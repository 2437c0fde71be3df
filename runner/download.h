/*
 * download.h: one file fetched over HTTP(S) (or file://) with libcurl, resumed, retried and
 * checked against its MD5 or SHA-256 (OpenSSL's EVP digests).
 *
 *     struct download_options o = download_defaults(d.out);   // 3 tries, progress on a tty
 *     enum download_failure why;
 *     if (download_file(url, "data/x.tar.gz", "c32a1d4a...", &o, &d, &why)) return 1;
 *
 * The bytes go to PATH.part. A try that fails part-way keeps them, and the next try (or the
 * next call, in a later run of the program) asks only for the rest with a Range request; a
 * server that answers the whole file instead (200, not 206) is asked again from byte zero,
 * the .part emptied. Once whole, the .part's checksum (when there is one) is checked and it
 * is renamed to PATH: a file named PATH is always whole and checked. Nothing is written to
 * stdout; d->out gets one line when the download starts and one when it ends (with progress,
 * a line updated in place in between), one line per retry, and the errors. A cancel flag
 * (set by a signal handler) stops the transfer, or the wait between tries, within about a
 * second: the .part is kept for the next call to resume, and nothing is retried. Covered by
 * tests/test_download.c.
 *
 * Threads: download_file may be called from any thread, one call per thread at a time. libcurl
 * is initialised (curl_global_init) once, by the first call, under pthread_once; it is never
 * cleaned up (the process's exit does that).
 */
#ifndef RUNNER_DOWNLOAD_H
#define RUNNER_DOWNLOAD_H

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>

#include "common.h"
#include "diag.h"

struct download_options {
    int attempts;          /* tries in all for transient failures (>= 1) */
    double backoff_s;      /* the wait before the second try, doubled before each later one */
    long connect_timeout_s; /* a connection not made within this is a failed try */
    long low_speed_bytes;  /* a try slower than low_speed_bytes per second ... */
    long low_speed_time_s; /* ... for low_speed_time_s seconds is abandoned (and retried) */
    bool progress;         /* a progress line updated in place on d->out (for a terminal) */
    const volatile sig_atomic_t *cancel; /* non-zero (a signal came): stop now; NULL: none */
};

/* 3 tries, 2 s then 4 s apart; 20 s to connect; abandoned below 1 KB/s for 30 s; progress
 * when out is a terminal; no cancel flag. */
struct download_options download_defaults(FILE *out);

/* Why download_file failed: what the caller may add to the message. */
enum download_failure {
    DOWNLOAD_FAILURE_NONE,
    DOWNLOAD_FAILURE_CONNECT,     /* host not found or no connection: the machine may be offline */
    DOWNLOAD_FAILURE_HTTP,        /* the server answered an HTTP error (4xx, or 5xx every try) */
    DOWNLOAD_FAILURE_INTERRUPTED, /* cut short or too slow every try; the .part is kept */
    DOWNLOAD_FAILURE_CHECKSUM,    /* the whole file's checksum is wrong; the .part is deleted */
    DOWNLOAD_FAILURE_CANCELLED,   /* *o->cancel was set; not retried, the .part is kept */
    DOWNLOAD_FAILURE_OTHER,       /* a bad URL, an unreadable file:// path, a disk error */
};

/*
 * Downloads url into path (through path.part, see above) and checks it against sum: 32 hex
 * digits (either case) are an MD5, 64 a SHA-256; NULL: no check (the file is whole when the
 * server has sent every byte it announced). Any other sum is an error. A path already there
 * with the right checksum (without one: at all) is kept, with the wrong one replaced. A wrong
 * checksum after the download is an error naming the URL, both digests and path. Transient
 * failures (no connection, a timeout, a transfer cut short, HTTP 5xx) are retried up to
 * o->attempts tries in all; HTTP 4xx is not retried. *o->cancel set during a try or the wait
 * after one ends the call at once (libcurl's progress callback aborts the transfer), without
 * another try. On failure nothing is left at path; the .part is deleted after HTTP 4xx and a
 * wrong checksum, kept (the message says so) after transient failures and a cancel, and
 * removed when empty. o NULL: download_defaults(d->out). why (may be NULL) says what failed.
 * Returns STATUS_RUNTIME on failure, with the message (naming the URL) in d.
 */
MUST_CHECK enum status download_file(const char *url, const char *path, const char *sum,
                                     const struct download_options *o, struct diag *d,
                                     enum download_failure *why);

/* The MD5 of the file at path as 32 lowercase hex digits and a NUL; STATUS_RUNTIME, with the
 * message in d, when it cannot be read. */
MUST_CHECK enum status download_md5_file(const char *path, char out[33], struct diag *d);
/* The same for its SHA-256: 64 lowercase hex digits and a NUL. */
MUST_CHECK enum status download_sha256_file(const char *path, char out[65], struct diag *d);
/* The SHA-256 of n bytes in memory, as 64 lowercase hex digits and a NUL. */
void download_sha256_text(const void *bytes, size_t n, char out[65]);

/* "runner: ..." and a newline on d->out, when there is one (flushed): the download's lines,
 * and those of what downloads through it (pretrained.c). */
void download_say(struct diag *d, const char *fmt, ...) PRINTF_LIKE(2, 3);

#endif
