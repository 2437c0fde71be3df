/*
 * hooks.c: the hooks' Lua states (one per hook file), their limits (an instruction budget
 * per call through a count hook, a memory cap through the state's allocator) and the calls
 * on_start, on_epoch_end and on_end, every error reported with the hook's file, the function
 * and Lua's traceback. See hooks.h; the sandbox is hooks_sandbox.c, the tables
 * hooks_tables.c, the sweep report's call hooks_sweep.c. Covered by tests/test_hooks.c.
 */
#include "hooks.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "hooks_impl.h"
#include "paths.h"

enum hook_fn { HOOK_FN_START, HOOK_FN_EPOCH_END, HOOK_FN_END, HOOK_FN_COUNT };
static const char *const fn_names[] = {"on_start", "on_epoch_end", "on_end"};
_Static_assert(ARRAY_LEN(fn_names) == HOOK_FN_COUNT, "a name for every hook function");

enum { HOOK_COUNT_STEP = 10000 }; /* instructions between two looks at the budget */

struct hook *hooks_of(lua_State *L)
{
    void *ud;
    lua_getallocf(L, &ud);
    return ud;
}

void hooks_say(const struct hooks *h, FILE *term, const char *fmt, ...)
{
    FILE *out[2] = {term, h->log};
    for (int i = 0; i < 2; i++) {
        if (!out[i]) continue;
        va_list ap;
        va_start(ap, fmt);
        vfprintf(out[i], fmt, ap);
        va_end(ap);
        fflush(out[i]);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Limits */

/* The state's allocator: refuses to grow past the cap (Lua then raises "not enough memory"). */
static void *hook_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct hook *k = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        k->mem -= old;
        return NULL;
    }
    if (nsize > old && (k->mem >= k->mem_cap || nsize - old > k->mem_cap - k->mem)) {
        k->mem_refused = true;
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (p) k->mem = k->mem - old + nsize;
    return p;
}

static void count_hook(lua_State *L, lua_Debug *ar);

/* Raises the budget's error at the given level (0 in a hook, where it is the Lua function
 * that was running; 1 in a C function, its caller), and from then on has the count hook fire
 * at every instruction, so that a pcall loop cannot outlast the budget: the first
 * instruction outside the pcall raises the error again. */
static void budget_error(lua_State *L, struct hook *k, int level)
{
    lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);
    char msg[160];
    snprintf(msg, sizeof msg, "the instruction budget of %llu Lua instructions per call ran "
             "out (an endless loop?)", (unsigned long long)k->budget);
    luaL_where(L, level);
    lua_pushstring(L, msg);
    lua_concat(L, 2);
    lua_error(L);
}

/* Runs every k->step instructions of every coroutine of the state. */
static void count_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    struct hook *k = hooks_of(L);
    int step = lua_gethookcount(L);
    k->used += (uint64_t)step;
    if (k->used > k->budget) budget_error(L, k, 0);
    if (step != k->step) lua_sethook(L, count_hook, LUA_MASKCOUNT, k->step);
}

void hooks_charge(lua_State *L, uint64_t n)
{
    struct hook *k = hooks_of(L);
    k->used = n > UINT64_MAX - k->used ? UINT64_MAX : k->used + n;
    if (k->used > k->budget) budget_error(L, k, 1);
}

/* "the hook's Lua state reached its memory cap of 512 MiB", in buf. */
static const char *cap_note(const struct hook *k, char *buf, size_t size)
{
    if (k->mem_cap % (1 << 20))
        snprintf(buf, size, "the hook's Lua state reached its memory cap of %zu bytes",
                 k->mem_cap);
    else
        snprintf(buf, size, "the hook's Lua state reached its memory cap of %zu MiB",
                 k->mem_cap >> 20);
    return buf;
}

/* A fresh budget (and memory flag) for one call. */
static void limits_reset(struct hook *k)
{
    k->used = 0;
    k->mem_refused = false;
    k->step = k->budget < HOOK_COUNT_STEP ? (int)(k->budget ? k->budget : 1) : HOOK_COUNT_STEP;
    lua_sethook(k->L, count_hook, LUA_MASKCOUNT, k->step);
}

void hooks_set_limits(struct hooks *h, uint64_t instructions, size_t memory)
{
    for (size_t i = 0; i < h->n; i++) {
        if (instructions) h->hooks[i].budget = instructions;
        if (memory) h->hooks[i].mem_cap = memory;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Protected calls */

/* The message handler: the error as text, and the traceback. */
static int message_handler(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            msg = lua_tostring(L, -1);
        else
            msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* What one call gets and gives back. */
struct call {
    struct hooks *h;
    struct hook *k;
    enum hook_fn fn;
    const struct hooks_info *info;
    const struct hooks_files *files;
    const char *stopped;
    char *stop; /* on_epoch_end: the stop reason asked for (malloc'd) */
};

/* Sets c->stop from on_epoch_end's return value (at the top of the stack), or raises. */
static void check_return(lua_State *L, struct call *c)
{
    int t = lua_type(L, -1);
    if (t == LUA_TNIL) return;
    if (t != LUA_TTABLE)
        luaL_error(L, "on_epoch_end returned %s; it may return nothing or {stop = \"reason\"}",
                   luaL_typename(L, -1));
    int s = lua_getfield(L, -1, "stop");
    if (s == LUA_TNIL) return;
    size_t len = 0;
    const char *why = s == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
    if (len == 0)
        luaL_error(L, "on_epoch_end returned {stop = %s}; stop must be a non-empty string, "
                   "the reason", why ? "\"\"" : luaL_typename(L, -1));
    c->stop = strdup(why);
    if (!c->stop) luaL_error(L, "not enough memory");
}

/* In protected mode: builds the arguments and calls the function, if the hook defines it. */
static int call_protected(lua_State *L)
{
    struct call *c = lua_touserdata(L, 1);
    lua_settop(L, 0);
    int t = lua_getglobal(L, fn_names[c->fn]);
    if (t == LUA_TNIL) return 0;
    if (t != LUA_TFUNCTION)
        return luaL_error(L, "%s is %s, not a function", fn_names[c->fn], luaL_typename(L, -1));
    hooks_push_run(L, c->files, c->info, c->h->dir, c->k->args);
    int nargs = 2;
    if (c->fn == HOOK_FN_EPOCH_END) {
        lua_getfield(L, -1, "history");
        lua_rawgeti(L, -1, (lua_Integer)lua_rawlen(L, -1));
        lua_remove(L, -2);
    } else if (c->fn == HOOK_FN_END) {
        hooks_push_result(L, c->files, c->stopped);
    } else {
        nargs = 1;
    }
    lua_call(L, nargs, 1);
    if (c->fn == HOOK_FN_EPOCH_END) check_return(L, c);
    return 0;
}

bool hooks_run_protected(struct hooks *h, struct hook *k, lua_CFunction f, void *arg,
                         const char *what)
{
    lua_State *L = k->L;
    lua_settop(L, 0);
    lua_pushcfunction(L, message_handler);
    lua_pushcfunction(L, f);
    lua_pushlightuserdata(L, arg);
    limits_reset(k);
    int rc = lua_pcall(L, 1, 0, 1);
    if (rc == LUA_OK) {
        lua_settop(L, 0);
        return true;
    }
    const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "(no message)";
    char note[128];
    /* The last frame is call_protected's, which tells the reader nothing (and when it is the
     * only one, neither does the traceback's title). */
    static const char *const tails[] = {"\n\t[C]: in ?", "\nstack traceback:"};
    size_t len = strlen(msg);
    for (size_t i = 0; i < ARRAY_LEN(tails); i++) {
        size_t tl = strlen(tails[i]);
        if (len > tl && !strncmp(msg + len - tl, tails[i], tl)) len -= tl;
    }
    hooks_say(h, stderr, "hook %s: %s: %.*s\n", k->file, what, (int)len, msg);
    if (k->mem_refused)
        hooks_say(h, stderr, "hook %s: %s\n", k->file, cap_note(k, note, sizeof note));
    h->errors++;
    lua_settop(L, 0);
    if (k->mem_refused || rc == LUA_ERRMEM) lua_gc(L, LUA_GCCOLLECT);
    return false;
}

/* Calls fn of every hook; the outcome over all of them. */
static enum hook_outcome call_all(struct hooks *h, enum hook_fn fn, const struct hooks_info *info,
                                  const char *stopped)
{
    free(h->stop);
    h->stop = NULL;
    if (!h->n) return HOOK_OK;
    struct hooks_files files;
    char err[600];
    if (!hooks_files_read(&files, h->dir, info->config, fn == HOOK_FN_END, err, sizeof err)) {
        hooks_say(h, stderr, "hooks: %s: %s; no hook was called\n", fn_names[fn], err);
        hooks_files_free(&files);
        h->errors++;
        return HOOK_FAILED;
    }
    bool failed = false;
    for (size_t i = 0; i < h->n; i++) {
        struct call c = {.h = h, .k = &h->hooks[i], .fn = fn, .info = info, .files = &files,
                         .stopped = stopped};
        failed |= !hooks_run_protected(h, &h->hooks[i], call_protected, &c, fn_names[fn]);
        if (c.stop && !h->stop) h->stop = c.stop;
        else free(c.stop);
    }
    hooks_files_free(&files);
    return h->stop ? HOOK_STOP : failed ? HOOK_FAILED : HOOK_OK;
}

enum hook_outcome hooks_start(struct hooks *h, const struct hooks_info *info)
{
    return call_all(h, HOOK_FN_START, info, NULL);
}

enum hook_outcome hooks_epoch_end(struct hooks *h, const struct hooks_info *info,
                                  const char **stop)
{
    enum hook_outcome o = call_all(h, HOOK_FN_EPOCH_END, info, NULL);
    *stop = h->stop;
    return o;
}

enum hook_outcome hooks_end(struct hooks *h, const struct hooks_info *info, const char *stopped)
{
    return call_all(h, HOOK_FN_END, info, stopped);
}

int hooks_error_count(const struct hooks *h) { return h->errors; }

/* ---------------------------------------------------------------------------------------- */
/* Opening */

static int panic(lua_State *L)
{
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "runner: fatal: a hook's Lua state failed outside a protected call: %s\n",
            msg ? msg : "?");
    abort();
}

/* In protected mode: checks that what the file defined under the functions' names is a
 * function. */
static int check_defined(lua_State *L)
{
    for (int f = 0; f < HOOK_FN_COUNT; f++) {
        int t = lua_getglobal(L, fn_names[f]);
        if (t != LUA_TNIL && t != LUA_TFUNCTION)
            return luaL_error(L, "%s is %s; it must be a function", fn_names[f],
                              luaL_typename(L, -1));
        lua_pop(L, 1);
    }
    return 0;
}

/* Message text with the memory cap's note when the state ran into it (malloc'd). */
static char *error_text(const struct hook *k, const char *msg)
{
    char *text = NULL, note[128];
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    if (!mem) return NULL;
    fputs(msg ? msg : "(no message)", mem);
    if (k->mem_refused) fprintf(mem, "\n%s", cap_note(k, note, sizeof note));
    fclose(mem);
    return text;
}

/* Opens k's state, sandboxed, and runs its file; false with *msg (malloc'd; NULL when memory
 * ran out) on failure. */
static bool hook_open(struct hook *k, char **msg)
{
    *msg = NULL;
    lua_State *L = k->L = lua_newstate(hook_alloc, k);
    if (!L) return false;
    lua_atpanic(L, panic);
    lua_pushcfunction(L, message_handler);
    lua_pushcfunction(L, hooks_sandbox_open);
    limits_reset(k);
    int rc = lua_pcall(L, 0, 0, 1);
    if (rc == LUA_OK) {
        rc = luaL_loadfilex(L, k->file, "t");
        if (rc == LUA_OK) rc = lua_pcall(L, 0, 0, 1);
    }
    if (rc == LUA_OK) {
        lua_pushcfunction(L, check_defined);
        rc = lua_pcall(L, 0, 0, 1);
    }
    if (rc != LUA_OK)
        *msg = error_text(k, lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL);
    lua_settop(L, 0);
    return rc == LUA_OK;
}

/* The real path of dir into a malloc'd string, or NULL. */
static char *real_dir(const char *dir)
{
    char buf[PATH_MAX];
    return realpath(dir, buf) ? strdup(buf) : NULL;
}

enum status hooks_open(const struct spec_hook *hooks, size_t n, const char *run_dir,
                       const char *const *hook_dirs, size_t ndirs, FILE *log, struct diag *d,
                       struct hooks **out)
{
    return hooks_open_root(hooks, n, run_dir, &hooks_own_run, hook_dirs, ndirs, log, d, out);
}

enum status hooks_open_root(const struct spec_hook *hooks, size_t n, const char *dir,
                            const struct hooks_own *own, const char *const *hook_dirs,
                            size_t ndirs, FILE *log, struct diag *d, struct hooks **out)
{
    *out = NULL;
    struct hooks *h = calloc(1, sizeof *h);
    if (!h) goto oom;
    h->log = log;
    h->own = own;
    h->dir = real_dir(dir);
    if (!h->dir) {
        diag_error(d, (struct mark){0}, "hooks: %s %s: %s", own->root, dir, strerror(errno));
        hooks_free(h);
        return STATUS_RUNTIME;
    }
    h->roots = calloc(ndirs + 1, sizeof *h->roots);
    h->hooks = calloc(n ? n : 1, sizeof *h->hooks);
    if (!h->roots || !h->hooks || !(h->roots[0] = strdup(h->dir))) goto oom;
    h->nroots = 1;
    for (size_t i = 0; i < ndirs; i++)
        if (hook_dirs[i] && (h->roots[h->nroots] = real_dir(hook_dirs[i]))) h->nroots++;
    enum status st = STATUS_OK;
    for (size_t i = 0; i < n; i++, h->n++) {
        struct hook *k = &h->hooks[i];
        *k = (struct hook){.owner = h, .file = hooks[i].file, .args = hooks[i].args,
                           .budget = HOOKS_DEFAULT_INSTRUCTIONS, .mem_cap = HOOKS_DEFAULT_MEMORY};
        char *msg;
        if (hook_open(k, &msg)) continue;
        if (!k->L || !msg) {
            free(msg);
            goto oom_counted;
        }
        diag_error(d, hooks[i].mark, "hook '%s': %s", k->file, msg);
        free(msg);
        st = STATUS_CONFIG;
    }
    if (st) {
        hooks_free(h);
        return st;
    }
    *out = h;
    return STATUS_OK;
oom_counted:
    h->n++;
oom:
    diag_error(d, (struct mark){0}, "hooks: out of memory");
    hooks_free(h);
    return STATUS_RUNTIME;
}

void hooks_free(struct hooks *h)
{
    if (!h) return;
    for (size_t i = 0; i < h->n; i++)
        if (h->hooks[i].L) {
            limits_reset(&h->hooks[i]);
            lua_close(h->hooks[i].L);
        }
    for (size_t i = 0; i < h->nroots; i++) free(h->roots[i]);
    free(h->roots);
    free(h->hooks);
    free(h->dir);
    free(h->stop);
    free(h);
}

/* The folders require() may load from: each hook's own folder, then the project's hooks/. */
const char **hooks_folders(struct arena *a, const struct spec_hook *hooks, size_t n,
                                 size_t *count)
{
    const char **dirs = arena_alloc(a, (n + 1) * sizeof *dirs);
    *count = 0;
    for (size_t i = 0; i <= n; i++) {
        const char *dir = i < n ? path_dirname(a, hooks[i].file) : spec_hooks_dir();
        bool seen = !dir;
        for (size_t j = 0; j < *count && !seen; j++) seen = strcmp(dirs[j], dir) == 0;
        if (!seen) dirs[(*count)++] = dir;
    }
    return dirs;
}
