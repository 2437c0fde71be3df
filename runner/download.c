/*
 * download.c: download_file through libcurl (a Range request to resume the .part, retries
 * with a doubling wait, a progress line, a cancel flag read by the progress callback), and a
 * file's MD5 or SHA-256 through OpenSSL's EVP digest API. See download.h; covered by
 * tests/test_download.c.
 */
#include "download.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "run_files.h"


#ifndef RUNNER_VERSION
#define RUNNER_VERSION "0.1.0"
#endif

#define DIGEST_CHUNK (1 << 16) /* bytes read at a time: the archive is 170 MB */
#define PROGRESS_EVERY_S 0.25  /* the progress line is redrawn at most this often */
#define PAUSE_SLICE_S 0.05     /* the wait between tries looks at the cancel flag this often */

/* ---------------------------------------------------------------------------------------- */
/* Digests: MD5 and SHA-256 */

/* The last libcrypto error as text, for a message. */
static const char *crypto_error(char *buf, size_t size)
{
    unsigned long e = ERR_get_error();
    if (!e) return "no reason given";
    ERR_error_string_n(e, buf, size);
    return buf;
}

/* Adds f's bytes to ctx; false with errno set on a read error (errno 0: libcrypto failed). */
static bool digest_stream(EVP_MD_CTX *ctx, FILE *f)
{
    unsigned char *buf = malloc(DIGEST_CHUNK);
    if (!buf) abort();
    bool ok = true;
    size_t got;
    while (ok && (got = fread(buf, 1, DIGEST_CHUNK, f)) > 0)
        ok = EVP_DigestUpdate(ctx, buf, got) == 1;
    if (ok && ferror(f)) ok = false;
    else if (!ok) errno = 0;
    free(buf);
    return ok;
}

/* The digest md of the file at path as lowercase hex and a NUL in out (2 * bytes + 1). */
static enum status digest_file(const char *path, const EVP_MD *md, const char *md_name,
                               unsigned bytes, char *out, struct diag *d)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        diag_error(d, (struct mark){0}, "%s: cannot open: %s", path, strerror(errno));
        return STATUS_RUNTIME;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx) abort();
    unsigned char sum[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    bool ok = EVP_DigestInit_ex(ctx, md, NULL) == 1;
    if (!ok) errno = 0;
    ok = ok && digest_stream(ctx, f);
    int err = errno;
    if (ok && (EVP_DigestFinal_ex(ctx, sum, &len) != 1 || len != bytes)) {
        ok = false;
        err = 0;
    }
    EVP_MD_CTX_free(ctx);
    fclose(f);
    if (!ok) {
        char why[256];
        diag_error(d, (struct mark){0}, "%s: cannot compute its %s: %s", path, md_name,
                   err ? strerror(err) : crypto_error(why, sizeof why));
        return STATUS_RUNTIME;
    }
    for (unsigned i = 0; i < bytes; i++) snprintf(out + 2 * i, 3, "%02x", sum[i]);
    return STATUS_OK;
}

enum status download_md5_file(const char *path, char out[33], struct diag *d)
{
    return digest_file(path, EVP_md5(), "MD5", 16, out, d);
}

enum status download_sha256_file(const char *path, char out[65], struct diag *d)
{
    return digest_file(path, EVP_sha256(), "SHA-256", 32, out, d);
}

void download_sha256_text(const void *bytes, size_t n, char out[65])
{
    unsigned char sum[32];
    unsigned len = 0;
    if (EVP_Digest(bytes, n, sum, &len, EVP_sha256(), NULL) != 1 || len != 32) abort();
    for (unsigned i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", sum[i]);
}

/* Whether s is exactly n hex digits (either case). */
static bool is_hex(const char *s, size_t n)
{
    return strlen(s) == n && strspn(s, "0123456789abcdefABCDEF") == n;
}

/* "MD5" or "SHA-256" for a checksum of 32 or 64 hex digits; NULL for anything else. */
static const char *digest_name(const char *sum)
{
    return is_hex(sum, 32) ? "MD5" : is_hex(sum, 64) ? "SHA-256" : NULL;
}

/* The checksum of path of sum's kind (see digest_name) into got (65 bytes). */
static enum status digest_of(const char *path, const char *sum, char got[65], struct diag *d)
{
    return strlen(sum) == 32 ? download_md5_file(path, got, d)
                             : download_sha256_file(path, got, d);
}

/* ---------------------------------------------------------------------------------------- */
/* Small helpers */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_code;

static void curl_init(void) { curl_init_code = curl_global_init(CURL_GLOBAL_DEFAULT); }

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static bool is_cancelled(const volatile sig_atomic_t *cancel)
{
    return cancel && *cancel;
}

/* Waits s seconds, in slices, so that a cancel ends the wait within PAUSE_SLICE_S (a signal
 * that lands in this thread ends the slice under way); false when cancelled. */
static bool pause_s(double s, const volatile sig_atomic_t *cancel)
{
    double end = now_s() + s, left;
    while (!is_cancelled(cancel) && (left = end - now_s()) > 0) {
        double slice = left < PAUSE_SLICE_S ? left : PAUSE_SLICE_S;
        struct timespec ts = {(time_t)slice, (long)((slice - (double)(time_t)slice) * 1e9)};
        nanosleep(&ts, NULL);
    }
    return !is_cancelled(cancel);
}

/* The size of path, -1 when there is no such file. */
static long long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* bytes as "12345 bytes" below 0.1 MB, else "0.1 MB", "170.5 MB" (decimal), into buf. */
static const char *size_text(long long bytes, char *buf, size_t size)
{
    if (bytes < 100000) snprintf(buf, size, "%lld bytes", bytes);
    else snprintf(buf, size, "%.1f MB", (double)bytes / 1e6);
    return buf;
}

void download_say(struct diag *d, const char *fmt, ...)
{
    if (!d->out) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("runner: ", d->out);
    vfprintf(d->out, fmt, ap);
    fputc('\n', d->out);
    va_end(ap);
    fflush(d->out);
}

struct download_options download_defaults(FILE *out)
{
    return (struct download_options){.attempts = 3, .backoff_s = 2.0, .connect_timeout_s = 20,
                                     .low_speed_bytes = 1024, .low_speed_time_s = 30,
                                     .progress = out && isatty(fileno(out))};
}

/* ---------------------------------------------------------------------------------------- */
/* One try */

/* What one try's callbacks share. */
struct transfer {
    FILE *part;          /* the .part, opened for appending */
    int write_errno;     /* errno of a failed write, else 0 */
    long long offset;    /* bytes in the .part when the try began */
    FILE *out;           /* where the progress line goes; NULL: none */
    double start, shown; /* when the try began, and when the line was last drawn */
    bool drawn;          /* a progress line is on the screen */
    bool complete;       /* it shows the last byte */
    const volatile sig_atomic_t *cancel; /* the options' cancel flag; NULL: none */
    bool cancelled;      /* the progress callback aborted the transfer for it */
};

static size_t on_write(char *p, size_t size, size_t n, void *user)
{
    struct transfer *t = user;
    errno = 0;
    size_t w = fwrite(p, 1, size * n, t->part);
    if (w != size * n) t->write_errno = errno ? errno : EIO;
    return w;
}

/* "  42.1 / 170.5 MB  24%  3.9 MB/s  ETA 0:33", over the line drawn before. total and now
 * count this try's bytes (libcurl's dltotal and dlnow); 0 total: unknown. */
static void progress_draw(struct transfer *t, long long total, long long now)
{
    double elapsed = now_s() - t->start, rate = elapsed > 0 ? (double)now / elapsed : 0;
    long long done = t->offset + now, whole = total > 0 ? t->offset + total : 0;
    char eta[32] = "--:--";
    if (whole && rate > 0) run_files_clock((double)(whole - done) / rate, eta, sizeof eta);
    if (whole)
        fprintf(t->out, "\r  %.1f / %.1f MB  %3d%%  %.1f MB/s  ETA %s\033[K", (double)done / 1e6,
                (double)whole / 1e6, (int)(100 * done / whole), rate / 1e6, eta);
    else
        fprintf(t->out, "\r  %.1f MB  %.1f MB/s\033[K", (double)done / 1e6, rate / 1e6);
    fflush(t->out);
    t->drawn = true;
    t->shown = now_s();
}

/* Called by libcurl as bytes arrive and, while none do, about once a second: non-zero (the
 * transfer ends with CURLE_ABORTED_BY_CALLBACK) once the cancel flag is set. */
static int on_progress(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)ultotal, (void)ulnow;
    struct transfer *t = user;
    if (is_cancelled(t->cancel)) {
        t->cancelled = true;
        return 1;
    }
    bool last = dltotal > 0 && dlnow == dltotal;
    if (t->out && dlnow > 0 && !t->complete &&
        (last || now_s() - t->shown >= PROGRESS_EVERY_S)) {
        progress_draw(t, (long long)dltotal, (long long)dlnow);
        t->complete = last;
    }
    return 0;
}

/* How one try ended. */
enum try_end {
    TRY_DONE,          /* the whole file is in the .part (its checksum is still to be checked) */
    TRY_RANGE_IGNORED, /* asked to resume, the server would send the whole file: start at 0 */
    TRY_TRANSIENT,     /* worth another try */
    TRY_FAILED,        /* not worth another: HTTP 4xx, a bad URL, a disk error */
    TRY_CANCELLED,     /* aborted for the cancel flag: no other try */
};

struct try_result {
    CURLcode code;   /* libcurl's result */
    long http;       /* the last response's HTTP status, 0 when there was none */
    bool connect;    /* the failure was finding or reaching the host */
    char message[CURL_ERROR_SIZE + 4400]; /* room for a path */
};

static void set_options(CURL *h, const char *url, const struct download_options *o,
                        struct transfer *t, char *errbuf)
{
    curl_easy_setopt(h, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85 */
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https,file");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#endif
    curl_easy_setopt(h, CURLOPT_USERAGENT, "runner/" RUNNER_VERSION);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(h, CURLOPT_FAILONERROR, 1L); /* 4xx and 5xx: CURLE_HTTP_RETURNED_ERROR */
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);    /* no SIGALRM for timeouts: threads are safe */
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, o->connect_timeout_s);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, o->low_speed_bytes);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, o->low_speed_time_s);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(h, CURLOPT_RESUME_FROM_LARGE, (curl_off_t)t->offset);
    /* always: the callback draws the progress line (when t->out) and reads the cancel flag */
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, t);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
}

static bool transient_code(CURLcode c)
{
    switch (c) {
    case CURLE_COULDNT_RESOLVE_PROXY: case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT: case CURLE_PARTIAL_FILE: case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SSL_CONNECT_ERROR: case CURLE_GOT_NOTHING: case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR: case CURLE_HTTP2: case CURLE_HTTP2_STREAM:
        return true;
    default:
        return false;
    }
}

/* Sorts a finished transfer's result (c) into an end, with its message in r. */
static enum try_end classify(CURL *h, CURLcode c, const struct transfer *t, const char *part,
                             const char *errbuf, struct try_result *r)
{
    curl_off_t connect_us = 0;
    r->code = c;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->http);
    curl_easy_getinfo(h, CURLINFO_CONNECT_TIME_T, &connect_us);
    snprintf(r->message, sizeof r->message, "%s", *errbuf ? errbuf : curl_easy_strerror(c));
    r->connect = c == CURLE_COULDNT_RESOLVE_PROXY || c == CURLE_COULDNT_RESOLVE_HOST ||
                 c == CURLE_COULDNT_CONNECT ||
                 (c == CURLE_OPERATION_TIMEDOUT && r->http == 0 && connect_us == 0);
    if (c == CURLE_OK) return TRY_DONE;
    if (c == CURLE_ABORTED_BY_CALLBACK && t->cancelled) return TRY_CANCELLED;
    if (c == CURLE_RANGE_ERROR && t->offset > 0) return TRY_RANGE_IGNORED;
    /* 416 to a resume: the .part is as long as the file already (its checksum tells). */
    if (c == CURLE_HTTP_RETURNED_ERROR && r->http == 416 && t->offset > 0) return TRY_DONE;
    if (t->write_errno) {
        snprintf(r->message, sizeof r->message, "cannot write %s: %s", part,
                 strerror(t->write_errno));
        return TRY_FAILED;
    }
    if (c == CURLE_HTTP_RETURNED_ERROR) {
        snprintf(r->message, sizeof r->message, "the server answered HTTP %ld", r->http);
        return r->http >= 500 ? TRY_TRANSIENT : TRY_FAILED;
    }
    return transient_code(c) ? TRY_TRANSIENT : TRY_FAILED;
}

/* One request for what the .part lacks, appended to it. */
static enum try_end try_once(const char *url, const char *part, const struct download_options *o,
                             FILE *progress, struct try_result *r)
{
    *r = (struct try_result){0};
    struct transfer t = {.part = fopen(part, "ab"), .out = progress, .start = now_s(),
                         .cancel = o->cancel};
    struct stat st;
    if (!t.part || fstat(fileno(t.part), &st)) {
        snprintf(r->message, sizeof r->message, "cannot open %s: %s", part, strerror(errno));
        if (t.part) fclose(t.part);
        return TRY_FAILED;
    }
    t.offset = (long long)st.st_size;
    CURL *h = curl_easy_init();
    if (!h) {
        fclose(t.part);
        snprintf(r->message, sizeof r->message, "libcurl could not start a transfer");
        return TRY_FAILED;
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    set_options(h, url, o, &t, errbuf);
    CURLcode c = curl_easy_perform(h);
    if (fclose(t.part) && !t.write_errno) t.write_errno = errno;
    if (c == CURLE_OK && t.write_errno) c = CURLE_WRITE_ERROR;
    if (t.drawn) fputs("\r\033[K", progress); /* the line gives way to what follows */
    enum try_end end = classify(h, c, &t, part, errbuf, r);
    curl_easy_cleanup(h);
    return end;
}

/* ---------------------------------------------------------------------------------------- */
/* The download */

/* Reports the last try's failure; deletes the .part after HTTP 4xx, keeps it (saying so)
 * otherwise unless it is empty. */
static enum status report_failure(const char *url, const char *part, enum try_end end,
                                  const struct try_result *r, int tries, struct diag *d,
                                  enum download_failure *why)
{
    bool client = end == TRY_FAILED && r->http >= 400 && r->http < 500;
    char after[64] = "";
    if (end == TRY_TRANSIENT && tries > 1)
        snprintf(after, sizeof after, " (after %d tries)", tries);
    diag_error(d, (struct mark){0}, "cannot download %s: %s%s", url, r->message, after);
    *why = r->connect             ? DOWNLOAD_FAILURE_CONNECT
           : r->http >= 400        ? DOWNLOAD_FAILURE_HTTP
           : end == TRY_TRANSIENT ? DOWNLOAD_FAILURE_INTERRUPTED
                                  : DOWNLOAD_FAILURE_OTHER;
    if (r->connect) diag_hint(d, "the machine may be offline, or unable to reach the host");
    if (r->code == CURLE_PEER_FAILED_VERIFICATION || r->code == CURLE_SSL_CACERT_BADFILE)
        diag_hint(d, "no trusted certificate authority vouched for the server: the machine may "
                     "lack its CA certificates (/etc/ssl/certs)");
    long long kept = file_size(part);
    if (client || kept == 0) {
        remove(part);
    } else if (kept > 0) {
        diag_hint(d, "the %lld bytes received are kept in %s: running again resumes the "
                     "download from there", kept, part);
    }
    return STATUS_RUNTIME;
}

/* Reports a cancel: what the .part keeps for the next call (an empty one is removed). */
static enum status report_cancelled(const char *url, const char *part, struct diag *d,
                                    enum download_failure *why)
{
    *why = DOWNLOAD_FAILURE_CANCELLED;
    long long kept = file_size(part);
    char bytes[32];
    if (kept > 0) {
        diag_error(d, (struct mark){0}, "%s: download interrupted; %s kept in %s, the next run "
                   "resumes it", url, size_text(kept, bytes, sizeof bytes), part);
        return STATUS_RUNTIME;
    }
    if (kept == 0) remove(part);
    diag_error(d, (struct mark){0}, "%s: download interrupted before its first byte", url);
    return STATUS_RUNTIME;
}

/* Checks the whole .part's checksum (none when sum is NULL) and renames it to path; a wrong
 * checksum deletes it. */
static enum status finish(const char *url, const char *part, const char *path, const char *sum,
                          double start, struct diag *d, enum download_failure *why)
{
    char got[65], checked[32] = "";
    *why = DOWNLOAD_FAILURE_OTHER;
    if (sum) {
        if (digest_of(part, sum, got, d)) return STATUS_RUNTIME;
        if (strcasecmp(got, sum) != 0) { /* a checksum pasted in capitals is the same */
            remove(part);
            diag_error(d, (struct mark){0}, "%s: %s mismatch: got %s, expected %s: the download "
                       "is damaged or not the file expected (deleted, not kept as %s)", url,
                       digest_name(sum), got, sum, path);
            *why = DOWNLOAD_FAILURE_CHECKSUM;
            return STATUS_RUNTIME;
        }
        snprintf(checked, sizeof checked, ", %s checked", digest_name(sum));
    }
    long long size = file_size(part);
    if (rename(part, path)) {
        diag_error(d, (struct mark){0}, "%s: cannot rename to %s: %s", part, path,
                   strerror(errno));
        return STATUS_RUNTIME;
    }
    char took[32], bytes[32];
    download_say(d, "downloaded %s in %s%s: %s", size_text(size, bytes, sizeof bytes),
        run_files_clock(now_s() - start, took, sizeof took), checked, path);
    *why = DOWNLOAD_FAILURE_NONE;
    return STATUS_OK;
}

/* Whether path is already there with the right checksum (else it is removed); without one
 * (sum NULL), whether it is there at all. */
static bool already_there(const char *path, const char *sum, struct diag *d)
{
    if (file_size(path) < 0) return false;
    if (!sum) {
        download_say(d, "%s is already there", path);
        return true;
    }
    char got[65];
    struct diag quiet = {0};
    if (digest_of(path, sum, got, &quiet) == STATUS_OK && strcasecmp(got, sum) == 0) {
        download_say(d, "%s is already there, %s checked", path, digest_name(sum));
        return true;
    }
    remove(path);
    return false;
}

/* The start line: what, where, and how much an earlier try left. */
static void say_start(const char *url, const char *path, const char *part, struct diag *d)
{
    const char *slash = strrchr(path, '/');
    int dir_len = slash ? (int)(slash - path) : 1;
    long long have = file_size(part);
    char resume[96] = "", bytes[32];
    if (have > 0)
        snprintf(resume, sizeof resume, " (resuming after the %s of an earlier try)",
                 size_text(have, bytes, sizeof bytes));
    download_say(d, "downloading %s into %.*s%s", url, dir_len, slash ? path : ".", resume);
}

enum status download_file(const char *url, const char *path, const char *sum,
                          const struct download_options *o, struct diag *d,
                          enum download_failure *why)
{
    enum download_failure ignored;
    if (!why) why = &ignored;
    *why = DOWNLOAD_FAILURE_OTHER;
    if (sum && !digest_name(sum)) {
        diag_error(d, (struct mark){0}, "cannot download %s: its checksum \"%s\" is neither an "
                   "MD5 (32 hex digits) nor a SHA-256 (64)", url, sum);
        return STATUS_RUNTIME;
    }
    struct download_options def = download_defaults(d->out);
    if (!o) o = &def;
    if (pthread_once(&curl_once, curl_init) || curl_init_code != CURLE_OK) {
        diag_error(d, (struct mark){0}, "cannot download %s: libcurl could not start: %s", url,
                   curl_easy_strerror(curl_init_code));
        return STATUS_RUNTIME;
    }
    if (already_there(path, sum, d)) {
        *why = DOWNLOAD_FAILURE_NONE;
        return STATUS_OK;
    }
    char part[4200];
    snprintf(part, sizeof part, "%s.part", path);
    say_start(url, path, part, d);
    double start = now_s(), wait = o->backoff_s;
    int tries = 1;
    struct try_result r;
    enum try_end end;
    FILE *progress = o->progress ? d->out : NULL;
    for (;;) {
        if (is_cancelled(o->cancel)) return report_cancelled(url, part, d, why);
        if ((end = try_once(url, part, o, progress, &r)) == TRY_DONE) break;
        if (end == TRY_CANCELLED || (end == TRY_TRANSIENT && is_cancelled(o->cancel)))
            return report_cancelled(url, part, d, why);
        if (end == TRY_RANGE_IGNORED) { /* at most once a try: the .part is empty after it */
            FILE *f = fopen(part, "wb");
            if (!f || fclose(f)) {
                diag_error(d, (struct mark){0}, "%s: cannot empty it: %s", part, strerror(errno));
                return STATUS_RUNTIME;
            }
            download_say(d, "the server sent the whole file instead of the rest: starting again "
                            "from the first byte");
            continue;
        }
        if (end == TRY_FAILED || tries >= o->attempts)
            return report_failure(url, part, end, &r, tries, d, why);
        download_say(d, "download failed (%s); trying again in %.3g s (try %d of %d)", r.message,
            wait, tries + 1, o->attempts);
        if (!pause_s(wait, o->cancel)) return report_cancelled(url, part, d, why);
        wait *= 2;
        tries++;
    }
    return finish(url, part, path, sum, start, d, why);
}
