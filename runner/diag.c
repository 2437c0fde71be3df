/* diag.c: see diag.h. */
#include "diag.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

const char *diag_line(const struct source *src, int line, size_t *len)
{
    if (!src || !src->text || line < 1) return NULL;
    const char *p = src->text, *end = src->text + src->len;
    for (int l = 1; l < line; l++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) return NULL;
        p = nl + 1;
    }
    const char *e = p;
    while (e < end && *e != '\n' && *e != '\r') e++;
    *len = (size_t)(e - p);
    return p;
}

static void echo_line(FILE *out, struct mark m)
{
    size_t len;
    const char *line = diag_line(m.src, m.line, &len);
    if (!line) return;
    char num[16];
    int w = snprintf(num, sizeof num, "%d", m.line);
    if (w < 4) w = 4;
    fprintf(out, " %*d | ", w, m.line);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)line[i];
        fputc(c < 0x20 && c != '\t' ? '?' : c, out); /* keep the terminal sane */
    }
    fprintf(out, "\n %*s | ", w, "");
    /* Walk col-1 characters (UTF-8 lead bytes), copying tabs so the caret lines up. */
    int chars = 0;
    for (size_t i = 0; i < len && chars < m.col - 1; i++) {
        unsigned char c = (unsigned char)line[i];
        if ((c & 0xC0) == 0x80) continue;
        fputc(c == '\t' ? '\t' : ' ', out);
        chars++;
    }
    for (; chars < m.col - 1; chars++) fputc(' ', out);
    fputs("^\n", out);
}

void diag_error(struct diag *d, struct mark m, const char *fmt, ...)
{
    d->errors++;
    int max = d->max_shown > 0 ? d->max_shown : 20;
    d->last_shown = d->out && d->errors <= max;
    if (!d->out) return;
    if (d->errors == max + 1) fprintf(d->out, "(further errors not shown)\n");
    if (!d->last_shown) return;
    if (m.src && m.line > 0)
        fprintf(d->out, "%s:%d:%d: error: ", m.src->name, m.line, m.col);
    else if (m.src)
        fprintf(d->out, "%s: error: ", m.src->name);
    else
        fprintf(d->out, "runner: error: ");
    va_list ap;
    va_start(ap, fmt);
    vfprintf(d->out, fmt, ap);
    va_end(ap);
    fputc('\n', d->out);
    echo_line(d->out, m);
}

void diag_hint(struct diag *d, const char *fmt, ...)
{
    if (!d->out || !d->last_shown) return;
    fputs("hint: ", d->out);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(d->out, fmt, ap);
    va_end(ap);
    fputc('\n', d->out);
}

/* Optimal string alignment distance; words longer than 63 bytes are never "close". */
static int edit_distance(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    if (n > 63 || m > 63) return 1 << 20;
    int dp[64][64];
    for (size_t i = 0; i <= n; i++) dp[i][0] = (int)i;
    for (size_t j = 0; j <= m; j++) dp[0][j] = (int)j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            int cost = a[i - 1] != b[j - 1];
            int v = dp[i - 1][j] + 1;
            if (dp[i][j - 1] + 1 < v) v = dp[i][j - 1] + 1;
            if (dp[i - 1][j - 1] + cost < v) v = dp[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                dp[i - 2][j - 2] + 1 < v)
                v = dp[i - 2][j - 2] + 1;
            dp[i][j] = v;
        }
    return dp[n][m];
}

const char *diag_closest(const char *word, const char *const *cands, size_t n)
{
    const char *best = NULL;
    int best_d = 1 << 20;
    size_t wl = strlen(word);
    for (size_t i = 0; i < n; i++) {
        if (!cands[i]) continue;
        int dist = edit_distance(word, cands[i]);
        if (dist < best_d) {
            best_d = dist;
            best = cands[i];
        }
    }
    /* Plausible typos: up to a third of the word's length, at least 1, at most 3 edits. */
    int limit = (int)(wl / 3);
    if (limit < 1) limit = 1;
    if (limit > 3) limit = 3;
    return best_d <= limit ? best : NULL;
}
