/*
 * http_server.h: an HTTP/1.1 server for the download tests (tests/test_download.c,
 * tests/test_pretrained_url.c), on 127.0.0.1 at an ephemeral port, in a thread. It serves the
 * files given to serve_file, answers Range requests with 206 and Content-Range, and can answer
 * 404, 503 a number of times, cut a response short after a given byte (or hang there until
 * the client gives up), ignore Range (200 with the whole file) or flip a byte of the body, and
 * set a cancel flag once a response is sent. It logs every request's path and Range header.
 *
 *     serve_file("/body", bytes, n);          // bytes owned by the server from here
 *     if (server_start()) return -1;         // srv.port is its port
 *     server_reset();                        // every mode off, the log cleared
 *     srv.cut_times = 1, srv.cut_at = 1000;  // the next response stops after byte 1000
 *     ... download url_of("/body") ...
 *     assert_int_equal(requests(), 2);
 *     assert_string_equal(range_of(1), "bytes=1000-");
 *     server_stop();                         // refuses connections until server_start again
 *     server_free_files();
 *
 * One server per test program (its state is the static srv). Connections are served one at a
 * time, each closed after its response.
 */
#ifndef RUNNER_TEST_HTTP_SERVER_H
#define RUNNER_TEST_HTTP_SERVER_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define CANCEL_DELAY_US 200000 /* from a response's last byte sent to srv.cancel set */
#define MAX_LOG 16
#define STALL_MS 8000 /* how long a stalled response hangs, at most */

struct served {
    const char *path; /* as requested, "/body" */
    unsigned char *bytes;
    size_t len;
};

static struct {
    int fd, port;
    pthread_t thread;
    atomic_bool stop;
    pthread_mutex_t lock;
    /* what it does, set between downloads (server_reset) */
    struct served files[4];
    int nfiles;
    bool not_found;     /* 404 to everything */
    bool ignore_range;  /* 200 and the whole file, Range or not */
    bool corrupt;       /* the body's middle byte flipped */
    int fail_503;       /* the next this many requests get 503 */
    int cut_times;      /* the next this many responses end at file byte cut_at ... */
    long long cut_at;
    bool stall;         /* ... and then hang until the client leaves, instead of closing */
    volatile sig_atomic_t *cancel; /* set to SIGINT CANCEL_DELAY_US after the next file's bytes */
    /* what it saw */
    int requests;
    char range[MAX_LOG][64];   /* each request's Range header, "" when it had none */
    char target[MAX_LOG][256]; /* each request's path, "/body" */
} srv;

/* Needs _GNU_SOURCE, defined before the first #include, for strcasestr. */

static inline bool send_all(int c, const void *p, size_t n)
{
    const char *q = p;
    while (n) {
        ssize_t w = send(c, q, n, MSG_NOSIGNAL);
        if (w <= 0) return false;
        q += w;
        n -= (size_t)w;
    }
    return true;
}

/* Reads the request's head (up to the blank line) into buf; false on EOF or a 2 s silence. */
static inline bool read_request(int c, char *buf, size_t size)
{
    size_t n = 0;
    while (n + 1 < size) {
        struct pollfd p = {c, POLLIN, 0};
        if (poll(&p, 1, 2000) <= 0) return false;
        ssize_t got = recv(c, buf + n, size - 1 - n, 0);
        if (got <= 0) return false;
        n += (size_t)got;
        buf[n] = '\0';
        if (strstr(buf, "\r\n\r\n")) return true;
    }
    return false;
}

/* Waits (up to ms) until the client closes its end, reading whatever it sends. */
static inline void wait_close(int c, int ms)
{
    char buf[512];
    struct pollfd p = {c, POLLIN, 0};
    while (poll(&p, 1, ms) > 0 && recv(c, buf, sizeof buf, 0) > 0) continue;
}

static inline void status_only(int c, const char *status)
{
    char head[256];
    int n = snprintf(head, sizeof head, "HTTP/1.1 %s\r\nContent-Length: 6\r\nConnection: close"
                     "\r\n\r\nsorry\n", status);
    send_all(c, head, (size_t)n);
}

/* bytes [start, end) of f, its middle byte flipped when corrupt. */
static inline void send_body(int c, const struct served *f, size_t start, size_t end, bool corrupt)
{
    size_t mid = f->len / 2;
    if (!corrupt || mid < start || mid >= end) {
        send_all(c, f->bytes + start, end - start);
        return;
    }
    unsigned char flipped = f->bytes[mid] ^ 0xff;
    if (send_all(c, f->bytes + start, mid - start) && send_all(c, &flipped, 1))
        send_all(c, f->bytes + mid + 1, end - mid - 1);
}

/* One request on c: logged, then answered as srv is set. */
static inline void serve(int c)
{
    char req[8192], path[256] = "", range[64] = "";
    if (!read_request(c, req, sizeof req) || sscanf(req, "GET %255s ", path) != 1) return;
    const char *r = strcasestr(req, "\r\nRange:");
    if (r) {
        for (r += 8; *r == ' '; r++) continue;
        snprintf(range, sizeof range, "%.*s", (int)strcspn(r, "\r\n"), r);
    }
    pthread_mutex_lock(&srv.lock);
    if (srv.requests < MAX_LOG) {
        snprintf(srv.range[srv.requests], sizeof srv.range[0], "%s", range);
        snprintf(srv.target[srv.requests], sizeof srv.target[0], "%s", path);
    }
    srv.requests++;
    const struct served *f = NULL;
    for (int i = 0; i < srv.nfiles; i++)
        if (strcmp(srv.files[i].path, path) == 0) f = &srv.files[i];
    bool fail = srv.fail_503 > 0, ignore = srv.ignore_range, corrupt = srv.corrupt;
    if (fail) srv.fail_503--;
    if (srv.not_found) f = NULL;
    long long cut = -1;
    bool stall = false;
    if (!fail && f && srv.cut_times > 0) {
        srv.cut_times--;
        cut = srv.cut_at;
        stall = srv.stall;
    }
    volatile sig_atomic_t *cancel = srv.cancel;
    srv.cancel = NULL;
    pthread_mutex_unlock(&srv.lock);

    if (fail || !f) {
        status_only(c, fail ? "503 Service Unavailable" : "404 Not Found");
        return;
    }
    long long start = 0, len = (long long)f->len;
    char head[512];
    int n;
    if (range[0] && !ignore) {
        if (sscanf(range, "bytes=%lld-", &start) != 1 || start < 0) {
            status_only(c, "400 Bad Request");
            return;
        }
        if (start >= len) {
            n = snprintf(head, sizeof head, "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range:"
                         " bytes */%lld\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", len);
            send_all(c, head, (size_t)n);
            return;
        }
        n = snprintf(head, sizeof head, "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes "
                     "%lld-%lld/%lld\r\nContent-Length: %lld\r\nConnection: close\r\n\r\n",
                     start, len - 1, len, len - start);
    } else {
        n = snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Length: %lld\r\n"
                     "Connection: close\r\n\r\n", len);
    }
    long long end = cut > start && cut < len ? cut : len;
    if (send_all(c, head, (size_t)n)) send_body(c, f, (size_t)start, (size_t)end, corrupt);
    if (cancel) {
        usleep(CANCEL_DELAY_US);
        *cancel = SIGINT; /* as a signal handler would */
    }
    if (stall) wait_close(c, STALL_MS);
}

static inline void *server_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&srv.stop)) {
        struct pollfd p = {srv.fd, POLLIN, 0};
        if (poll(&p, 1, 20) <= 0) continue;
        int c = accept(srv.fd, NULL, NULL);
        if (c < 0) continue;
        serve(c);
        shutdown(c, SHUT_WR); /* the client reads to the end, then closes */
        wait_close(c, 1000);
        close(c);
    }
    return NULL;
}

/* A TCP socket bound to 127.0.0.1 on an ephemeral port (its number in *port); -1 on failure. */
static inline int bind_local(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) ||
        getsockname(fd, (struct sockaddr *)&a, &len)) {
        if (fd >= 0) close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

/* Starts serving, on a new port after a server_stop; 0, or -1 on failure. */
static inline int server_start(void)
{
    static bool once;
    if (!once) pthread_mutex_init(&srv.lock, NULL);
    once = true;
    atomic_store(&srv.stop, false);
    if ((srv.fd = bind_local(&srv.port)) < 0 || listen(srv.fd, 8)) return -1;
    return pthread_create(&srv.thread, NULL, server_main, NULL) ? -1 : 0;
}

/* Stops serving and closes the socket: connections to srv.port are refused from here. The
 * files stay, for a server_start. */
static inline void server_stop(void)
{
    atomic_store(&srv.stop, true);
    pthread_join(srv.thread, NULL);
    close(srv.fd);
}

/* Frees what serve_file was given (after server_stop). */
static inline void server_free_files(void)
{
    for (int i = 0; i < srv.nfiles; i++) free(srv.files[i].bytes);
    srv.nfiles = 0;
}

/* Every mode off and the log cleared (the files stay). */
static inline void server_reset(void)
{
    pthread_mutex_lock(&srv.lock);
    srv.not_found = srv.ignore_range = srv.corrupt = srv.stall = false;
    srv.fail_503 = srv.cut_times = srv.requests = 0;
    srv.cut_at = 0;
    srv.cancel = NULL;
    memset(srv.range, 0, sizeof srv.range);
    memset(srv.target, 0, sizeof srv.target);
    pthread_mutex_unlock(&srv.lock);
}

static inline int requests(void)
{
    pthread_mutex_lock(&srv.lock);
    int n = srv.requests;
    pthread_mutex_unlock(&srv.lock);
    return n;
}

/* The Range header of request i (0-based) of those since server_reset. */
static inline const char *range_of(int i)
{
    static char r[64];
    pthread_mutex_lock(&srv.lock);
    snprintf(r, sizeof r, "%s", srv.range[i]);
    pthread_mutex_unlock(&srv.lock);
    return r;
}

/* The path of request i (0-based) of those since server_reset. */
static inline const char *path_of(int i)
{
    static char r[256];
    pthread_mutex_lock(&srv.lock);
    snprintf(r, sizeof r, "%s", srv.target[i]);
    pthread_mutex_unlock(&srv.lock);
    return r;
}

/* Serves bytes (malloc'ed; freed by server_free_files) at path; at most four files. */
static inline void serve_file(const char *path, unsigned char *bytes, size_t len)
{
    srv.files[srv.nfiles++] = (struct served){path, bytes, len};
}

/* http://127.0.0.1:PORT/path, in one of four buffers used in turn. */
static inline const char *url_of(const char *path)
{
    static char url[4][128];
    static int k;
    k = (k + 1) % 4;
    snprintf(url[k], sizeof url[k], "http://127.0.0.1:%d%s", srv.port, path);
    return url[k];
}

#endif
