/*
 * test_bad_yaml.c: the bad-input suite. Every tests/bad_yaml/NN_*.yaml holds one mistake and,
 * in its first lines, the message written by hand that the loader must print:
 *
 *     # expect: LINE:COL: error: MESSAGE        (in this file; or FILE:LINE:COL / <command line>:...)
 *     # hint: HINT                              (the hint line; "#" alone: no hint expected)
 *     # args: key=value ...                     (command-line overrides, optional)
 *
 * Each file must give exit status 2 with exactly one error, that first line verbatim, the
 * offending line echoed and a caret under the column, and the hint (or none): from loading
 * the experiment or, once it loads, from expanding its graph (model_build). Files named
 * _*.yaml are helpers the cases extend or name (graph files: _g_*.yaml). Run from CTest with
 * the suite's directory.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "model.h"
#include "spec.h"

struct expectation {
    char expect[1024], hint[1024];
    bool has_hint;
    char args_buf[1024];
    const char *args[16];
    size_t nargs;
};

static void read_header(const char *file, struct expectation *e)
{
    FILE *f = fopen(file, "rb");
    assert_non_null(f);
    char line[1024];
    memset(e, 0, sizeof *e);
    while (fgets(line, sizeof line, f) && line[0] == '#') {
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, "# expect: ", 10) == 0) snprintf(e->expect, sizeof e->expect, "%s", line + 10);
        if (strncmp(line, "# hint: ", 8) == 0) {
            snprintf(e->hint, sizeof e->hint, "hint: %s", line + 8);
            e->has_hint = true;
        }
        if (strncmp(line, "# args: ", 8) == 0) {
            snprintf(e->args_buf, sizeof e->args_buf, "%s", line + 8);
            for (char *t = strtok(e->args_buf, " "); t && e->nargs < 16; t = strtok(NULL, " "))
                e->args[e->nargs++] = t;
        }
    }
    fclose(f);
    if (!e->expect[0]) fail_msg("%s has no '# expect:' line", file);
}

/* Line `n` (1-based) of a file, as the echo shows it (control characters as '?'). */
static void source_line(const char *file, const struct expectation *e, int n, char *out,
                        size_t size)
{
    out[0] = '\0';
    if (strcmp(file, "<command line>") == 0) {
        if (n >= 1 && (size_t)n <= e->nargs) snprintf(out, size, "%s", e->args[n - 1]);
        return;
    }
    FILE *f = fopen(file, "rb");
    assert_non_null(f);
    char buf[4096];
    for (int i = 1; fgets(buf, sizeof buf, f); i++)
        if (i == n) {
            buf[strcspn(buf, "\r\n")] = '\0';
            for (char *p = buf; *p; p++)
                if ((unsigned char)*p < 0x20 && *p != '\t') *p = '?';
            snprintf(out, size, "%s", buf);
            break;
        }
    fclose(f);
}

static void run_case(void **state)
{
    const char *file = *state;
    struct expectation e;
    read_header(file, &e);

    char *out = NULL;
    size_t outlen = 0;
    FILE *mem = open_memstream(&out, &outlen);
    struct diag d = {.out = mem};
    struct spec *s = NULL;
    enum status st = spec_load(file, e.args, e.nargs, &d, &s);
    if (st == STATUS_OK) {
        /* A graph case: the experiment is fine, its graph is not. */
        struct graph *g = NULL;
        st = model_build(s, &d, &g);
        graph_free(g);
        spec_free(s);
        if (st == STATUS_OK) st = (enum status)-1;
        s = NULL;
    }
    fclose(mem);

    /* The expected first line: a bare LINE:COL is in this file. */
    char want[1200];
    if (e.expect[0] >= '0' && e.expect[0] <= '9')
        snprintf(want, sizeof want, "%s:%s", file, e.expect);
    else
        snprintf(want, sizeof want, "%s", e.expect);

    char *lines[8] = {0};
    size_t nl = 0;
    for (char *p = out, *q; p && *p && nl < 8; p = q ? q + 1 : NULL) {
        q = strchr(p, '\n');
        if (q) *q = '\0';
        lines[nl++] = p;
    }
    if (st != STATUS_CONFIG || d.errors != 1 || nl < 1 || strcmp(lines[0], want) != 0) {
        print_error("%s: status %d, %d errors\n  expected: %s\n  got:      %s\n", file, st,
                    d.errors, want, nl ? lines[0] : "(nothing)");
        free(out);
        fail();
    }
    assert_null(s);

    /* The echoed line and the caret under the column. */
    char name[512];
    int line = 0, col = 0;
    const char *pos = strstr(want, ": error: ");
    assert_non_null(pos);
    const char *c2 = pos;
    while (c2 > want && c2[-1] != ':') c2--;
    col = atoi(c2);
    const char *c1 = c2 - 1;
    while (c1 > want && c1[-1] != ':') c1--;
    line = atoi(c1);
    snprintf(name, sizeof name, "%.*s", (int)(c1 - 1 - want), want);
    char src[4096];
    source_line(name, &e, line, src, sizeof src);
    assert_true(nl >= 3);
    const char *bar1 = strstr(lines[1], " | "), *bar2 = strstr(lines[2], " | ");
    assert_non_null(bar1);
    assert_non_null(bar2);
    if (strcmp(bar1 + 3, src) != 0)
        fail_msg("%s: echoed line '%s', source line %d is '%s'", file, bar1 + 3, line, src);
    const char *caret = strchr(bar2 + 3, '^');
    assert_non_null(caret);
    if (caret - (bar2 + 3) != col - 1)
        fail_msg("%s: caret at column %d, expected %d", file, (int)(caret - (bar2 + 3)) + 1, col);

    if (e.has_hint) {
        if (nl < 4 || strcmp(lines[3], e.hint) != 0)
            fail_msg("%s:\n  expected: %s\n  got:      %s", file, e.hint, nl >= 4 ? lines[3] : "(no hint)");
    } else if (nl >= 4) {
        fail_msg("%s: unexpected extra line: %s", file, lines[3]);
    }
    free(out);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    if (argc < 2 || chdir(argv[1]) != 0) {
        fprintf(stderr, "usage: test_bad_yaml DIR (the tests/bad_yaml directory)\n");
        return 1;
    }
    setenv("RUNNER_HOOKS_DIR", "_hooks", 1);
    DIR *dir = opendir(".");
    if (!dir) return 1;
    char *names[512];
    size_t n = 0;
    for (struct dirent *de; (de = readdir(dir)) && n < 512;) {
        size_t len = strlen(de->d_name);
        if (de->d_name[0] >= '0' && de->d_name[0] <= '9' && len > 5 &&
            strcmp(de->d_name + len - 5, ".yaml") == 0)
            names[n++] = strdup(de->d_name);
    }
    closedir(dir);
    qsort(names, n, sizeof *names, by_name);
    if (n < 40) {
        fprintf(stderr, "the suite needs at least 40 broken files, found %zu\n", n);
        return 1;
    }
    struct CMUnitTest *tests = calloc(n, sizeof *tests);
    for (size_t i = 0; i < n; i++) {
        tests[i].name = names[i];
        tests[i].test_func = run_case;
        tests[i].initial_state = names[i];
    }
    int failed = _cmocka_run_group_tests("bad_yaml", tests, n, NULL, NULL);
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(tests);
    return failed;
}
