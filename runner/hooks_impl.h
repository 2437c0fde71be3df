/*
 * hooks_impl.h: what hooks.c, hooks_sandbox.c, hooks_tables.c and hooks_sweep.c share; not
 * for other modules (hooks.h is the interface). Covered by tests/test_hooks.c,
 * tests/test_hooks_sandbox.c and tests/test_sweep_report.c.
 */
#ifndef RUNNER_HOOKS_IMPL_H
#define RUNNER_HOOKS_IMPL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <lua.h>

#include "arena.h"
#include "common.h"
#include "hooks.h"
#include "json.h"
#include "node.h"

/* One hook file and its Lua state. The struct is the state's allocator data, so it never
 * moves (struct hooks holds an array allocated once). */
struct hook {
    struct hooks *owner;
    const char *file;        /* as given (spec_hook.file) */
    const struct node *args; /* run.args, or NULL */
    lua_State *L;
    size_t mem, mem_cap;     /* bytes the state holds, and may hold */
    bool mem_refused;        /* an allocation was refused since the call began */
    uint64_t used, budget;   /* instructions run in this call, and allowed */
    int step;                /* instructions between count hooks */
};

/* What the runner writes in a hook's write root: hooks may read it, never write it (nor
 * NAME.tmp beside it). NULL-terminated lists; a file is refused when its name starts with one
 * of files, ends with one of suffixes (a .tmp after it included), or lies in one of dirs. */
struct hooks_own {
    const char *const *files;    /* in the root itself: "summary.json" */
    const char *const *suffixes; /* in the root itself: ".yaml" */
    const char *const *dirs;     /* folders of the root, and everything in them: "runs" */
    const char *what;            /* "the run's", in messages */
    const char *root;            /* "the run directory", in messages */
};

/* A run directory's (hooks_open) and a sweep directory's (hooks_sweep_report). */
extern const struct hooks_own hooks_own_run, hooks_own_sweep;

struct hooks {
    struct hook *hooks;
    size_t n;
    char *dir;      /* the run directory (the write root), its real path */
    const struct hooks_own *own; /* what of dir hooks may not write */
    char **roots;   /* real paths that may be read: dir first, then the hook folders */
    size_t nroots;
    FILE *log;      /* may be NULL */
    int errors;     /* reported hook errors */
    char *stop;     /* the last stop reason */
};

/* The hook whose state L (or a coroutine of it) is. */
struct hook *hooks_of(lua_State *L);

/* Counts n instructions against the budget of the call under way (for library functions
 * whose loops run in C: string.rep, table.move, ...); raises the budget's error past it. */
void hooks_charge(lua_State *L, uint64_t n);

/* Writes to term (stdout or stderr) and to the log, flushing both. */
void hooks_say(const struct hooks *h, FILE *term, const char *fmt, ...) PRINTF_LIKE(3, 4);

/* hooks_open with the write root dir guarded by own (hooks_open passes &hooks_own_run). */
MUST_CHECK enum status hooks_open_root(const struct spec_hook *hooks, size_t n, const char *dir,
                                       const struct hooks_own *own,
                                       const char *const *hook_dirs, size_t ndirs, FILE *log,
                                       struct diag *d, struct hooks **out);

/* Runs f (a lua_CFunction given the light userdata arg as its only argument) in protected
 * mode in k's state under fresh limits; on an error, reports "hook FILE: what: message" and
 * the traceback, counts it, and returns false. */
bool hooks_run_protected(struct hooks *h, struct hook *k, lua_CFunction f, void *arg,
                         const char *what);

/* ---------------------------------------------------------------------------------------- */
/* hooks_sandbox.c */

/* A lua_CFunction, called in protected mode on a fresh state: opens the allowed libraries
 * and takes out or wraps everything else (hooks.h, README.md). */
int hooks_sandbox_open(lua_State *L);

/* ---------------------------------------------------------------------------------------- */
/* hooks_tables.c */

struct hooks_per_class {
    const char *name;
    double precision, recall, f1;
    int64_t support;
};

struct hooks_sample {
    const char *file; /* as in index.csv, relative to samples/ */
    int64_t index;
    const char *true_label, *predicted;
    double confidence;
};

/* The run directory's files, parsed; everything lives in the arena. */
struct hooks_files {
    struct arena arena;
    const char *config_text;       /* config.yaml, or NULL when absent */
    const struct node *config;     /* info->config, or config.yaml parsed; NULL when neither */
    const struct json **history;   /* metrics.jsonl's rows (objects) */
    size_t nhistory;
    const struct json *summary;    /* summary.json (an object), or NULL */
    const char **classes;          /* confusion_matrix.csv's header, nconfusion names */
    size_t nconfusion;
    int64_t *confusion;            /* (nconfusion, nconfusion) row-major: [true][predicted] */
    struct hooks_per_class *per_class;
    size_t nper_class;
    struct hooks_sample *samples;
    size_t nsamples;
};

/* Reads the files (results: also summary.json and the evaluation tables); false with the
 * message in err when a file exists but cannot be read or parsed. Free with
 * hooks_files_free either way. */
bool hooks_files_read(struct hooks_files *f, const char *dir, const struct node *config,
                      bool results, char *err, size_t err_size);
/* Reads dir/metrics.jsonl and dir/summary.json only (history, summary), as above: a file
 * that is not there (nor dir) leaves its fields empty. The run may be writing metrics.jsonl
 * as it is read: a last line without its newline that does not parse is left out. */
bool hooks_files_read_metrics(struct hooks_files *f, const char *dir, char *err,
                              size_t err_size);
void hooks_files_free(struct hooks_files *f);

/* Whether s is a whole base-10 integer that strtoll reads without overflow; its value in *out. */
bool hooks_parse_int(const char *s, int64_t *out);

/* Sets field key of the table on top of the stack to the string value; nothing when value is
 * NULL (may raise Lua errors, as the push functions below). */
void hooks_set_string(lua_State *L, const char *key, const char *value);

/* Push one value each (need 8 free stack slots; may raise Lua errors, so call them from a
 * protected C function). */
void hooks_push_json(lua_State *L, const struct json *v);      /* null: nil */
void hooks_push_history(lua_State *L, const struct hooks_files *f); /* run.history */
void hooks_push_run(lua_State *L, const struct hooks_files *f, const struct hooks_info *info,
                    const char *dir, const struct node *args);
void hooks_push_result(lua_State *L, const struct hooks_files *f, const char *stopped);

#endif
