/*
 * hooks_sandbox.c: what a hook's Lua state may use (hooks/README.md, "What a hook may do"):
 * the allowed standard libraries with the rest taken out or replaced by functions that
 * raise "X is not available to hooks", and the guarded replacements: io.open (paths checked
 * by hooks_path_resolve), require (NAME.lua from the hook folders only), load (text chunks
 * only), setmetatable (no __gc), collectgarbage ("count", "collect", "step"), print, and
 * the runner table (write, base64, log). Covered by tests/test_hooks_sandbox.c, one test per
 * attack; a sweep directory's own files by tests/test_sweep_report.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>

#include "hooks_impl.h"

/* ---------------------------------------------------------------------------------------- */
/* Paths */

/* The files and folders of a run directory that the runner writes (DESIGN.md, "Results of a
 * run"), and of a sweep directory (sweep.h): hooks may read them, never write them. */
static const char *const run_files[] = {"config.yaml", "metrics.jsonl", "metrics.csv",
                                        "summary.json", "confusion_matrix.csv", "per_class.csv",
                                        "run.log", "model.safetensors", NULL};
static const char *const run_dirs[] = {"checkpoints", "samples", "eval", NULL};
const struct hooks_own hooks_own_run = {.files = run_files, .dirs = run_dirs,
                                        .what = "the run's", .root = "the run directory"};

static const char *const sweep_files[] = {"sweep.csv", "sweep.sbatch", NULL};
static const char *const sweep_suffixes[] = {".yaml", NULL}; /* the point files */
static const char *const sweep_dirs[] = {"runs", "logs", NULL};
const struct hooks_own hooks_own_sweep = {.files = sweep_files, .suffixes = sweep_suffixes,
                                          .dirs = sweep_dirs, .what = "the sweep's",
                                          .root = "the sweep directory"};

enum hooks_access { HOOKS_READ, HOOKS_WRITE };

static bool inside(const char *path, const char *root)
{
    size_t n = strlen(root);
    if (n == 1 && root[0] == '/') return true;
    return strncmp(path, root, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* Whether real (a real path) may be read (inside any root) or written (inside the run
 * directory). */
static bool allowed(const struct hooks *h, const char *real, enum hooks_access how)
{
    for (size_t i = 0; i < (how == HOOKS_WRITE ? 1 : h->nroots); i++)
        if (inside(real, h->roots[i])) return true;
    return false;
}

/* Whether name ends with suffix, or with suffix and ".tmp". */
static bool ends_with(const char *name, const char *suffix)
{
    size_t n = strlen(name), k = strlen(suffix);
    if (n >= k && !strcmp(name + n - k, suffix)) return true;
    return n >= k + 4 && !strcmp(name + n - 4, ".tmp") && !strncmp(name + n - 4 - k, suffix, k);
}

/* Whether name, in the folder whose real path is dir (inside the write root), is one of the
 * runner's own files (h->own); then the reason in why. */
static bool own_file(const struct hooks *h, const char *dir, const char *name, char *why,
                     size_t size)
{
    const struct hooks_own *own = h->own;
    const char *rel = dir + strlen(h->dir);
    if (!strcmp(h->dir, "/")) rel = dir;
    const char *first = *rel == '/' ? rel + 1 : name;
    size_t len = *rel == '/' ? strcspn(first, "/") : strlen(first);
    for (const char *const *o = own->dirs; o && *o; o++)
        if (strlen(*o) == len && !strncmp(first, *o, len)) {
            snprintf(why, size, "%s/ holds %s own files", *o, own->what);
            return true;
        }
    if (*rel) return false;
    for (const char *const *o = own->files; o && *o; o++)
        if (!strncmp(name, *o, strlen(*o))) {
            snprintf(why, size, "%s is one of %s own files", *o, own->what);
            return true;
        }
    for (const char *const *o = own->suffixes; o && *o; o++)
        if (ends_with(name, *o)) {
            snprintf(why, size, "%s files here are %s own", *o, own->what);
            return true;
        }
    return false;
}

static bool refuse(char *why, size_t size, const char *path, const char *fmt, const char *arg)
{
    int k = snprintf(why, size, "%s: ", path);
    if (k >= 0 && (size_t)k < size) snprintf(why + k, size - (size_t)k, fmt, arg);
    return false;
}

/*
 * Resolves path as the sandbox sees it (relative to the run directory) into out: for
 * reading, the real path, which must lie inside one of h->roots; for writing, the real path
 * of its folder, inside the run directory, plus a final component that is a plain name, not
 * an existing symbolic link and not one of the runner's own files. False with the reason in
 * why (starting with path) when refused or when the folder does not exist.
 */
static bool hooks_path_resolve(const struct hooks *h, const char *path, enum hooks_access how,
                               char *out, size_t size, char *why, size_t why_size)
{
    char full[PATH_MAX + 256], parent[PATH_MAX + 256], real[PATH_MAX], root[PATH_MAX + 64];
    const char *refused = how == HOOKS_WRITE
                              ? "not allowed: hooks write only inside %s"
                              : "not allowed: hooks read only inside %s and the hook folders";
    snprintf(root, sizeof root, how == HOOKS_WRITE ? "%s %s" : "%s (%s)", h->own->root, h->dir);
    int n = path[0] == '/' ? snprintf(full, sizeof full, "%s", path)
                           : snprintf(full, sizeof full, "%s/%s", h->dir, path);
    if (!path[0]) return refuse(why, why_size, path, "%s", "an empty path");
    if (n < 0 || (size_t)n >= sizeof full) return refuse(why, why_size, path, "%s", "too long");
    char *slash = strrchr(full, '/');
    const char *name = slash + 1;
    if (!*name || !strcmp(name, ".") || !strcmp(name, ".."))
        return refuse(why, why_size, path, "%s", "does not name a file");
    snprintf(parent, sizeof parent, "%.*s", slash == full ? 1 : (int)(slash - full), full);
    if (!realpath(parent, real)) {
        /* The nearest folder that exists tells a refused path from a missing one. */
        int err = errno;
        for (;;) {
            char *cut = strrchr(parent, '/');
            if (cut == parent) cut[1] = '\0';
            else *cut = '\0';
            if (realpath(parent, real)) break;
            if (cut == parent) {
                snprintf(real, sizeof real, "/");
                break;
            }
        }
        if (!allowed(h, real, how)) return refuse(why, why_size, path, refused, root);
        return refuse(why, why_size, path, "%s", strerror(err));
    }
    if (!allowed(h, real, how)) return refuse(why, why_size, path, refused, root);
    n = snprintf(out, size, "%s%s%s", real, strcmp(real, "/") ? "/" : "", name);
    if (n < 0 || (size_t)n >= size) return refuse(why, why_size, path, "%s", "too long");
    if (how == HOOKS_WRITE) {
        struct stat st;
        if (lstat(out, &st) == 0 && S_ISLNK(st.st_mode))
            return refuse(why, why_size, path, "%s",
                          "not allowed: a symbolic link (hooks do not write through links)");
        char own[96];
        if (own_file(h, real, name, own, sizeof own))
            return refuse(why, why_size, path, "not allowed: %s", own);
        return true;
    }
    char target[PATH_MAX];
    if (realpath(out, target)) { /* a final symbolic link: where it leads must be allowed too */
        if (!allowed(h, target, how)) return refuse(why, why_size, path, refused, root);
        snprintf(out, size, "%s", target);
    }
    return true;
}

/* ---------------------------------------------------------------------------------------- */
/* Replaced functions */

static int unavailable(lua_State *L)
{
    return luaL_error(L, "%s is not available to hooks (hooks/README.md lists what is)",
                      lua_tostring(L, lua_upvalueindex(1)));
}

/* t[field] = a function that raises "shown is not available to hooks". */
static void stub(lua_State *L, int t, const char *field, const char *shown)
{
    lua_pushstring(L, shown);
    lua_pushcclosure(L, unavailable, 1);
    lua_setfield(L, t, field);
}

/* Calls the original function (upvalue 1) with the arguments on the stack. */
static int call_original(lua_State *L)
{
    int n = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, n, LUA_MULTRET);
    return lua_gettop(L);
}

/* t[field] = f with t's original t[field] as its upvalue. */
static void wrap(lua_State *L, int t, const char *field, lua_CFunction f)
{
    lua_getfield(L, t, field);
    lua_pushcclosure(L, f, 1);
    lua_setfield(L, t, field);
}

static int sandbox_io_open(lua_State *L)
{
    size_t len;
    const char *path = luaL_checklstring(L, 1, &len);
    const char *mode = luaL_optstring(L, 2, "r");
    char real[PATH_MAX + 256], why[PATH_MAX + 512];
    if (strlen(path) != len) return luaL_error(L, "io.open: the path holds a NUL byte");
    enum hooks_access how = strpbrk(mode, "wa+") ? HOOKS_WRITE : HOOKS_READ;
    if (!hooks_path_resolve(hooks_of(L)->owner, path, how, real, sizeof real, why, sizeof why)) {
        lua_pushnil(L);
        lua_pushstring(L, why);
        lua_pushinteger(L, EACCES);
        return 3;
    }
    lua_pushstring(L, real);
    lua_replace(L, 1);
    lua_settop(L, 2);
    return call_original(L);
}

static int sandbox_io_close(lua_State *L)
{
    luaL_checkudata(L, 1, LUA_FILEHANDLE); /* io.close() would close standard output */
    return call_original(L);
}

static int sandbox_load(lua_State *L)
{
    if (lua_gettop(L) < 3) lua_settop(L, 3);
    lua_pushliteral(L, "t"); /* text chunks only, whatever was asked */
    lua_replace(L, 3);
    return call_original(L);
}

static int sandbox_setmetatable(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL)
            return luaL_error(L, "setmetatable: __gc metamethods are not available to hooks "
                              "(a finalizer runs where no instruction budget can stop it)");
        lua_pop(L, 1);
    }
    return call_original(L);
}

static int sandbox_collectgarbage(lua_State *L)
{
    const char *opt = luaL_optstring(L, 1, "collect");
    if (strcmp(opt, "count") && strcmp(opt, "collect") && strcmp(opt, "step"))
        return luaL_error(L, "collectgarbage(\"%s\") is not available to hooks (only \"count\", "
                          "\"collect\" and \"step\")", opt);
    return call_original(L);
}

/* Library functions that loop in C as often as an argument says: the loop is charged to the
 * instruction budget first (the count hook sees only Lua instructions), so that
 * string.rep("", 1 << 62) or table.move({}, 1, 1 << 62, 2) cannot run for ages. */
static int sandbox_string_rep(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 2);
    if (n > 0) hooks_charge(L, (uint64_t)n);
    return call_original(L);
}

static int sandbox_table_move(lua_State *L)
{
    lua_Integer f = luaL_checkinteger(L, 2), e = luaL_checkinteger(L, 3);
    if (e >= f) hooks_charge(L, (uint64_t)e - (uint64_t)f + 1);
    return call_original(L);
}

/* table.insert and table.remove shift up to #t elements (#t may come from __len). */
static int sandbox_table_shift(lua_State *L)
{
    lua_Integer n = luaL_len(L, 1);
    if (n > 0) hooks_charge(L, (uint64_t)n);
    return call_original(L);
}

/* Writes the text (len bytes) and a newline to term and the log. */
static void say_line(lua_State *L, FILE *term, const char *text, size_t len)
{
    const struct hooks *h = hooks_of(L)->owner;
    FILE *out[2] = {term, h->log};
    for (int i = 0; i < 2; i++) {
        if (!out[i]) continue;
        fwrite(text, 1, len, out[i]);
        fputc('\n', out[i]);
        fflush(out[i]);
    }
}

static int sandbox_print(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
        if (i < n) luaL_addchar(&b, '\t');
    }
    luaL_pushresult(&b);
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    say_line(L, stdout, s, len);
    return 0;
}

static int runner_log(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    say_line(L, stderr, s, len);
    return 0;
}

static int runner_base64(lua_State *L)
{
    static const char digits[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0) |
                     (i + 2 < n ? s[i + 2] : 0);
        char q[4] = {digits[v >> 18], digits[v >> 12 & 63], i + 1 < n ? digits[v >> 6 & 63] : '=',
                     i + 2 < n ? digits[v & 63] : '='};
        luaL_addlstring(&b, q, 4);
    }
    luaL_pushresult(&b);
    return 1;
}

/* runner.write(path, text): text into path.tmp, then renamed over path. */
static int runner_write(lua_State *L)
{
    size_t plen, len;
    const char *path = luaL_checklstring(L, 1, &plen);
    const char *text = luaL_checklstring(L, 2, &len);
    char real[PATH_MAX + 256], tmp[PATH_MAX + 260], why[PATH_MAX + 512];
    if (strlen(path) != plen) return luaL_error(L, "runner.write: the path holds a NUL byte");
    if (!hooks_path_resolve(hooks_of(L)->owner, path, HOOKS_WRITE, real, sizeof real, why,
                            sizeof why))
        return luaL_error(L, "runner.write: %s", why);
    snprintf(tmp, sizeof tmp, "%s.tmp", real);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd < 0) return luaL_error(L, "runner.write: %s: %s", tmp, strerror(errno));
    for (size_t done = 0; done < len;) {
        ssize_t k = write(fd, text + done, len - done);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            int err = k < 0 ? errno : EIO;
            close(fd);
            unlink(tmp);
            return luaL_error(L, "runner.write: %s: %s", tmp, strerror(err));
        }
        done += (size_t)k;
    }
    if (close(fd) || rename(tmp, real)) {
        int err = errno;
        unlink(tmp);
        return luaL_error(L, "runner.write: %s: %s", path, strerror(err));
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* require */

/* name: words of [A-Za-z0-9_-] separated by single dots. */
static bool module_name_ok(const char *name)
{
    size_t word = 0;
    for (const char *p = name;; p++) {
        if (*p == '.' || !*p) {
            if (!word) return false;
            if (!*p) return true;
            word = 0;
        } else if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                   (*p >= '0' && *p <= '9') || *p == '_' || *p == '-') {
            word++;
        } else {
            return false;
        }
    }
}

/* The only searcher: NAME.lua (dots as folders) in each hook folder, in order. */
static int sandbox_searcher(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    const struct hooks *h = hooks_of(L)->owner;
    if (!module_name_ok(name))
        return luaL_error(L, "require \"%s\": a module name is words separated by dots "
                          "(\"lib.svg\" loads lib/svg.lua from the hook folders)", name);
    char rel[512], path[PATH_MAX + 600], real[PATH_MAX + 256], why[PATH_MAX + 512];
    if (snprintf(rel, sizeof rel, "%s.lua", name) >= (int)sizeof rel)
        return luaL_error(L, "require \"%s\": name too long", name);
    for (char *p = rel; *p && strcmp(p, ".lua"); p++)
        if (*p == '.') *p = '/';
    luaL_Buffer tried;
    luaL_buffinit(L, &tried);
    for (size_t i = 1; i < h->nroots; i++) {
        snprintf(path, sizeof path, "%s/%s", h->roots[i], rel);
        if (access(path, R_OK) != 0) {
            lua_pushfstring(L, "%sno file '%s'", i > 1 ? "\n\t" : "", path);
            luaL_addvalue(&tried);
            continue;
        }
        if (!hooks_path_resolve(h, path, HOOKS_READ, real, sizeof real, why, sizeof why))
            return luaL_error(L, "require \"%s\": %s", name, why);
        if (luaL_loadfilex(L, real, "t") != LUA_OK)
            return luaL_error(L, "error loading module '%s': %s", name, lua_tostring(L, -1));
        lua_pushstring(L, real);
        return 2;
    }
    luaL_pushresult(&tried);
    return 1;
}

/* ---------------------------------------------------------------------------------------- */
/* The state's libraries */

/* Removes every key of table t but those named in keep (NULL-terminated). */
static void keep_only(lua_State *L, int t, const char *const *keep)
{
    t = lua_absindex(L, t);
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        bool kept = false;
        for (const char *const *k = keep; *k && !kept; k++)
            kept = lua_type(L, -1) == LUA_TSTRING && !strcmp(lua_tostring(L, -1), *k);
        if (kept) continue;
        lua_pushvalue(L, -1);
        lua_pushnil(L);
        lua_rawset(L, t);
    }
}

/* Leaves the global table `name` on the stack. */
static int global_table(lua_State *L, const char *name)
{
    lua_getglobal(L, name);
    return lua_gettop(L);
}

int hooks_sandbox_open(lua_State *L)
{
    static const struct {
        const char *name;
        lua_CFunction open;
    } libs[] = {{"_G", luaopen_base},           {LUA_LOADLIBNAME, luaopen_package},
                {LUA_COLIBNAME, luaopen_coroutine}, {LUA_TABLIBNAME, luaopen_table},
                {LUA_IOLIBNAME, luaopen_io},        {LUA_OSLIBNAME, luaopen_os},
                {LUA_STRLIBNAME, luaopen_string},   {LUA_MATHLIBNAME, luaopen_math},
                {LUA_UTF8LIBNAME, luaopen_utf8}};
    for (size_t i = 0; i < ARRAY_LEN(libs); i++) {
        luaL_requiref(L, libs[i].name, libs[i].open, 1);
        lua_pop(L, 1);
    }
    /* The libraries are changed in place: package.loaded holds the same tables. */
    static const char *const base[] = {
        "assert", "error", "getmetatable", "ipairs", "next", "pairs", "pcall", "rawequal",
        "rawget", "rawlen", "rawset", "select", "setmetatable", "tonumber", "tostring", "type",
        "xpcall", "_G", "_VERSION", "print", "load", "collectgarbage", "require", "coroutine",
        "table", "io", "os", "string", "math", "utf8", "package", NULL};
    lua_pushglobaltable(L);
    int g = lua_gettop(L);
    keep_only(L, g, base);
    wrap(L, g, "load", sandbox_load);
    wrap(L, g, "setmetatable", sandbox_setmetatable);
    wrap(L, g, "collectgarbage", sandbox_collectgarbage);
    lua_pushcfunction(L, sandbox_print);
    lua_setfield(L, g, "print");
    stub(L, g, "dofile", "dofile");
    stub(L, g, "loadfile", "loadfile");

    static const char *const os_keep[] = {"time", "clock", "date", "getenv", "difftime", NULL};
    int t = global_table(L, "os");
    keep_only(L, t, os_keep);
    static const char *const os_gone[] = {"execute", "exit", "remove", "rename", "tmpname",
                                          "setlocale"};
    char shown[32];
    for (size_t i = 0; i < ARRAY_LEN(os_gone); i++) {
        snprintf(shown, sizeof shown, "os.%s", os_gone[i]);
        stub(L, t, os_gone[i], shown);
    }

    static const char *const io_keep[] = {"open", "close", "type", NULL};
    t = global_table(L, "io");
    keep_only(L, t, io_keep);
    wrap(L, t, "open", sandbox_io_open);
    wrap(L, t, "close", sandbox_io_close);
    static const char *const io_gone[] = {"popen", "lines", "input", "output", "tmpfile",
                                          "read", "write"};
    for (size_t i = 0; i < ARRAY_LEN(io_gone); i++) {
        snprintf(shown, sizeof shown, "io.%s", io_gone[i]);
        stub(L, t, io_gone[i], shown);
    }
    /* Nothing may reach a file handle's metatable (and swap in a __gc). */
    luaL_getmetatable(L, LUA_FILEHANDLE);
    lua_pushliteral(L, "file");
    lua_setfield(L, -2, "__metatable");

    t = global_table(L, "string");
    stub(L, t, "dump", "string.dump");
    wrap(L, t, "rep", sandbox_string_rep);

    t = global_table(L, "table");
    wrap(L, t, "move", sandbox_table_move);
    wrap(L, t, "insert", sandbox_table_shift);
    wrap(L, t, "remove", sandbox_table_shift);

    static const char *const package_keep[] = {"loaded", "config", NULL};
    t = global_table(L, "package");
    keep_only(L, t, package_keep);
    stub(L, t, "loadlib", "package.loadlib");
    lua_createtable(L, 1, 0);
    lua_pushcfunction(L, sandbox_searcher);
    lua_rawseti(L, -2, 1);
    lua_setfield(L, t, "searchers");

    static const luaL_Reg runner[] = {
        {"write", runner_write}, {"base64", runner_base64}, {"log", runner_log}, {NULL, NULL}};
    luaL_newlib(L, runner);
    lua_setfield(L, g, "runner");
    lua_settop(L, 0);
    return 0;
}
