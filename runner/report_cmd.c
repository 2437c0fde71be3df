/*
 * report_cmd.c: `runner report RUN_DIR`; see report_cmd.h. Covered by tests/test_cli.sh.
 */
#include "report_cmd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hooks.h"
#include "json.h"
#include "paths.h"
#include "spec.h"
#include "yaml_load.h"

static bool readable_file(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && !S_ISDIR(sb.st_mode) && access(path, R_OK) == 0;
}

/* The hook file that path (as config.yaml has it) names now, or NULL (reported). */
static const char *find_hook(struct arena *a, const struct node *n, struct diag *d)
{
    const char *dir = spec_hooks_dir();
    const char *tried[3] = {n->text};
    size_t k = 1;
    if (dir && n->text[0] != '/') tried[k++] = path_join(a, dir, n->text);
    const char *base = strrchr(n->text, '/');
    if (dir && base) tried[k++] = path_join(a, dir, base + 1);
    for (size_t i = 0; i < k; i++)
        if (readable_file(tried[i])) return tried[i];
    diag_error(d, n->mark, "cannot find hook '%s'", n->text);
    diag_hint(d, "looked for %s%s%s%s%s (paths in config.yaml are relative to where the run was "
              "started)", tried[0], k > 1 ? ", " : "", k > 1 ? tried[1] : "", k > 2 ? ", " : "",
              k > 2 ? tried[2] : "");
    return NULL;
}

/* config.yaml's hooks: list into *hooks (arena); false (reported) when an item is malformed
 * or its file cannot be found. */
static bool read_hooks(struct arena *a, const struct node *root, struct diag *d,
                       struct spec_hook **hooks, size_t *n)
{
    struct node *key, *list = node_map_get(root, "hooks", &key);
    *n = 0;
    *hooks = NULL;
    if (!list || node_is_null(list)) return true;
    if (list->kind != NODE_SEQ) {
        diag_error(d, list->mark, "hooks must be a list, got %s", node_describe(a, list));
        return false;
    }
    *hooks = arena_alloc(a, (list->n + 1) * sizeof **hooks);
    bool ok = true;
    for (size_t i = 0; i < list->n; i++) {
        const struct node *item = list->items[i], *file = item, *args = NULL;
        if (item->kind == NODE_MAP) {
            file = node_map_get(item, "file", NULL);
            args = node_map_get(item, "args", NULL);
        }
        if (!file || file->kind != NODE_SCALAR || node_is_null(file)) {
            diag_error(d, item->mark, "a hook is a path or {file: PATH, args: {...}}, got %s",
                       node_describe(a, item));
            ok = false;
            continue;
        }
        const char *path = find_hook(a, file, d);
        if (!path) {
            ok = false;
            continue;
        }
        (*hooks)[(*n)++] = (struct spec_hook){
            .mark = file->mark, .file = path, .args = args && !node_is_null(args) ? args : NULL};
    }
    return ok;
}

/* A string field of summary.json, or def. */
static const char *summary_string(const struct json *summary, const char *key, const char *def)
{
    const struct json *v = json_get(summary, key);
    return v && v->kind == JSON_STRING ? v->str : def;
}

/* Checks that run_dir holds a finished run and reads its config.yaml and summary.json. */
static enum status read_run(struct arena *a, const char *run_dir, struct diag *d,
                            struct node **root, const struct json **summary)
{
    struct stat sb;
    if (stat(run_dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        diag_error(d, (struct mark){0}, "%s: not a run directory: %s", run_dir,
                   stat(run_dir, &sb) != 0 ? strerror(errno) : "not a directory");
        return STATUS_CONFIG;
    }
    static const char *const needed[] = {"config.yaml", "summary.json"};
    for (size_t i = 0; i < ARRAY_LEN(needed); i++) {
        const char *path = arena_printf(a, "%s/%s", run_dir, needed[i]);
        if (access(path, F_OK) != 0) {
            diag_error(d, (struct mark){0}, "%s is not a finished run: it has no %s", run_dir,
                       needed[i]);
            if (i == 1)
                diag_hint(d, "summary.json is written when a run ends; a run that is still "
                          "going, or was interrupted, has none yet");
            return STATUS_CONFIG;
        }
    }
    struct source *src;
    if (yaml_load_file(a, d, arena_printf(a, "%s/config.yaml", run_dir), (struct mark){0}, &src,
                       root))
        return STATUS_CONFIG;
    const char *path = arena_printf(a, "%s/summary.json", run_dir);
    char *text = path_read_text(path);
    if (!text) {
        diag_error(d, (struct mark){0}, "%s: cannot read: %s", path, strerror(errno));
        return STATUS_CONFIG;
    }
    struct json_parser p = {.arena = a, .s = (const unsigned char *)text, .len = strlen(text),
                            .full = true, .what = "the file"};
    *summary = json_parse(&p);
    free(text);
    if (!*summary || (*summary)->kind != JSON_OBJECT) {
        diag_error(d, (struct mark){0}, "%s: %s%s", path,
                   *summary ? "expected an object, got " : "bad JSON: ",
                   *summary ? json_describe(*summary) : p.err);
        return STATUS_CONFIG;
    }
    return STATUS_OK;
}

enum status report_run(const char *run_dir)
{
    struct arena a = {0};
    struct diag d = {.out = stderr};
    struct node *root;
    const struct json *summary;
    struct spec_hook *hooks;
    size_t n;
    enum status st = read_run(&a, run_dir, &d, &root, &summary);
    if (!st && !read_hooks(&a, root, &d, &hooks, &n)) st = STATUS_CONFIG;
    if (st) {
        arena_free(&a);
        return st;
    }
    if (!n) {
        printf("%s: its config.yaml lists no hooks\n", run_dir);
        arena_free(&a);
        return STATUS_OK;
    }
    size_t ndirs;
    const char **dirs = hooks_folders(&a, hooks, n, &ndirs);
    struct hooks *h;
    if (hooks_open(hooks, n, run_dir, dirs, ndirs, NULL, &d, &h)) {
        arena_free(&a);
        return STATUS_RUNTIME;
    }
    const struct json *epochs = json_get(summary, "epochs");
    const struct node *name = node_map_get(root, "name", NULL);
    struct hooks_info info = {
        .name = summary_string(summary, "name",
                               name && name->kind == NODE_SCALAR ? name->text : NULL),
        .device = summary_string(summary, "device", NULL),
        .precision = summary_string(summary, "precision", NULL),
        .commit = summary_string(summary, "commit", NULL),
        .started = summary_string(summary, "started", ""),
        .epochs = epochs && epochs->kind == JSON_INT ? epochs->num : 0,
        .config = root};
    enum hook_outcome o1 = hooks_start(h, &info);
    enum hook_outcome o2 = hooks_end(h, &info, summary_string(summary, "stopped", NULL));
    hooks_free(h);
    arena_free(&a);
    if (o1 == HOOK_FAILED || o2 == HOOK_FAILED) {
        fprintf(stderr, "runner report: a hook failed (above)\n");
        return STATUS_RUNTIME;
    }
    printf("runner report: %zu hook%s ran on %s\n", n, n == 1 ? "" : "s", run_dir);
    return STATUS_OK;
}
