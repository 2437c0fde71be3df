/*
 * url.c: model.pretrained's URLs, lexically; see url.h. Covered by tests/test_pretrained_url.c.
 */
#include "url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "download.h"

#define READABLE_MAX 96 /* characters of the readable part of a cache name, at most */
#define HASH_DIGITS 16  /* of the URL's SHA-256 in a cache name */

/* --------------------------------------------------------------------------------------- */
/* Syntax */

static bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* The length of text's scheme when "SCHEME://" begins it (RFC 3986: a letter, then letters,
 * digits, '+', '-', '.'), else 0. */
static size_t scheme_len(const char *text)
{
    if (!is_alpha(text[0])) return 0;
    size_t n = 1;
    while (is_alpha(text[n]) || is_digit(text[n]) || (text[n] && strchr("+-.", text[n]))) n++;
    return strncmp(text + n, "://", 3) == 0 ? n : 0;
}

static bool scheme_is(const char *text, const char *scheme)
{
    size_t n = strlen(scheme);
    return scheme_len(text) == n && strncasecmp(text, scheme, n) == 0;
}

bool url_has_scheme(const char *text)
{
    return scheme_len(text) > 0;
}

const char *url_problem(const char *text)
{
    for (const char *p = text; *p; p++)
        if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
            return "a URL holds no spaces, control or non-ASCII characters";
    if (scheme_is(text, "http") || scheme_is(text, "https")) {
        const char *host = strstr(text, "://") + 3;
        return strcspn(host, "/?#") ? NULL : "the URL names no host";
    }
    if (!scheme_is(text, "hf")) return "only http://, https:// and hf:// URLs are downloaded";
    const char *p = text + 5;
    int parts = 0;
    if (strpbrk(p, "?#")) return "hf://OWNER/REPO[/FILE] takes no '?' or '#'";
    while (*p) {
        size_t n = strcspn(p, "/");
        if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return "hf://OWNER/REPO[/FILE] has an empty, '.' or '..' component";
        parts++;
        p += n;
        if (*p == '/' && !*++p) return "hf://OWNER/REPO[/FILE] ends with '/'";
    }
    return parts >= 2 ? NULL : "hf:// needs OWNER/REPO[/FILE]";
}

/* --------------------------------------------------------------------------------------- */
/* hf:// */

/* For hf://OWNER/REPO[/FILE]: OWNER/REPO's length within text + 5, and FILE (or the default). */
static size_t hf_split(const char *text, const char **file)
{
    const char *repo = text + 5, *slash = strchr(repo, '/');
    const char *rest = slash ? strchr(slash + 1, '/') : NULL;
    *file = rest ? rest + 1 : URL_HF_DEFAULT_FILE;
    return rest ? (size_t)(rest - repo) : strlen(repo);
}

bool url_resolve(const char *text, char *buf, size_t size)
{
    int n;
    if (scheme_is(text, "hf")) {
        const char *endpoint = getenv("HF_ENDPOINT"), *file;
        if (!endpoint || !*endpoint) endpoint = URL_HF_DEFAULT_ENDPOINT;
        size_t elen = strlen(endpoint);
        while (elen && endpoint[elen - 1] == '/') elen--;
        size_t rlen = hf_split(text, &file);
        n = snprintf(buf, size, "%.*s/%.*s/resolve/main/%s", (int)elen, endpoint, (int)rlen,
                     text + 5, file);
    } else {
        n = snprintf(buf, size, "%s", text);
    }
    return n > 0 && (size_t)n < size;
}

/* --------------------------------------------------------------------------------------- */
/* Cache names */

/* Appends n characters of s to out (at *k, READABLE_MAX at most): those of a file name as
 * they are, any other as '_'. */
static void append_safe(char *out, size_t *k, const char *s, size_t n)
{
    for (size_t i = 0; i < n && *k < READABLE_MAX; i++) {
        char c = s[i];
        out[(*k)++] = is_alpha(c) || is_digit(c) || c == '.' || c == '_' || c == '-' ? c : '_';
    }
    out[*k] = 0;
}

/* The readable part of text's cache name, into out (READABLE_MAX + 1 bytes). */
static void readable(const char *text, char *out)
{
    size_t k = 0;
    out[0] = 0;
    if (scheme_is(text, "hf")) {
        const char *file, *repo = text + 5;
        size_t rlen = hf_split(text, &file);
        for (const char *p = repo, *end = repo + rlen; p < end;) {
            size_t n = strcspn(p, "/");
            if (n > (size_t)(end - p)) n = (size_t)(end - p);
            append_safe(out, &k, p, n);
            append_safe(out, &k, "--", 2);
            p += n + 1;
        }
        for (const char *p = file; *p;) {
            size_t n = strcspn(p, "/");
            append_safe(out, &k, p, n);
            p += n;
            if (*p == '/') {
                append_safe(out, &k, "--", 2);
                p++;
            }
        }
    } else {
        const char *host = strstr(text, "://") + 3;
        size_t hlen = strcspn(host, "/?#");
        const char *path = host + hlen;
        size_t plen = strcspn(path, "?#");
        while (plen && path[plen - 1] == '/') plen--;
        const char *base = path + plen;
        while (base > path && base[-1] != '/') base--;
        if (base < path + plen) append_safe(out, &k, base, (size_t)(path + plen - base));
        else append_safe(out, &k, host, hlen);
    }
    if (out[0] == '.' || out[0] == '-') out[0] = '_'; /* neither hidden nor option-like */
}

bool url_cache_name(const char *text, char *buf, size_t size)
{
    char url[8192], hash[65], name[READABLE_MAX + 1];
    if (!url_resolve(text, url, sizeof url)) return false;
    download_sha256_text(url, strlen(url), hash);
    readable(text, name);
    static const char ext[] = ".safetensors";
    size_t n = strlen(name), e = sizeof ext - 1;
    bool keep_ext = n > e && strcmp(name + n - e, ext) == 0;
    if (keep_ext) name[n - e] = 0;
    int w = snprintf(buf, size, "%s%s%.*s%s", name, name[0] ? "-" : "", HASH_DIGITS, hash,
                     keep_ext ? ext : "");
    return w > 0 && (size_t)w < size;
}
