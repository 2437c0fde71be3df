/*
 * hooks_sweep.c: the sweep report's call (hooks.h, "Sweep reports"): hooks_sweep_report opens
 * one hook file (hooks/sweep_report.lua) in a fresh sandboxed Lua state whose write root is
 * the sweep directory, reads every point's metrics.jsonl and summary.json with
 * hooks_tables.c's readers, and calls on_sweep(sweep) with the table hooks/README.md
 * describes. Covered by tests/test_sweep_report.c.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "hooks_impl.h"
#include "node.h"

/* One point's files, read before the call. */
struct point_files {
    struct hooks_files files; /* empty when the point has no run directory */
    char *error;              /* why its files could not be read (malloc'd), or NULL */
};

/* What the call gets. */
struct sweep_call {
    const struct hooks_sweep *sw;
    const char *dir;             /* the sweep directory, its real path */
    const struct point_files *pf; /* one per point */
};

/* ---------------------------------------------------------------------------------------- */
/* The table */

/* A value as typed: an integer or a number when it reads as one (as a YAML plain scalar
 * does: "20", "3e-4", "0.5"), else the text. */
static void push_typed(lua_State *L, const char *text)
{
    int64_t i;
    if (node_text_is_int(text) && hooks_parse_int(text, &i)) {
        lua_pushinteger(L, (lua_Integer)i);
        return;
    }
    if (node_text_is_int(text) || node_text_is_float(text)) {
        double x = strtod(text, NULL);
        if (isfinite(x)) {
            lua_pushnumber(L, x);
            return;
        }
    }
    lua_pushstring(L, text);
}

static void push_point(lua_State *L, const struct hooks_sweep *sw,
                       const struct hooks_sweep_point *p, const struct point_files *pf)
{
    lua_createtable(L, 0, 10);
    hooks_set_string(L, "name", p->name);
    hooks_set_string(L, "status", p->status);
    hooks_set_string(L, "run_dir", p->run_dir);
    hooks_set_string(L, "log", p->log);
    hooks_set_string(L, "error", pf->error);
    for (int typed = 1; typed >= 0; typed--) {
        lua_createtable(L, 0, sw->nkeys > 0 ? sw->nkeys : 0);
        for (int k = 0; p->values && k < sw->nkeys; k++) {
            if (!p->values[k] || !sw->keys[k]) continue;
            if (typed) push_typed(L, p->values[k]);
            else lua_pushstring(L, p->values[k]);
            lua_setfield(L, -2, sw->keys[k]);
        }
        lua_setfield(L, -2, typed ? "values" : "text");
    }
    if (pf->files.summary) {
        hooks_push_json(L, pf->files.summary);
        lua_setfield(L, -2, "summary");
    }
    hooks_push_history(L, &pf->files);
    lua_setfield(L, -2, "history");
}

static void push_sweep(lua_State *L, const struct sweep_call *c)
{
    const struct hooks_sweep *sw = c->sw;
    int nkeys = sw->nkeys > 0 ? sw->nkeys : 0, npoints = sw->npoints > 0 ? sw->npoints : 0;
    lua_createtable(L, 0, 6);
    hooks_set_string(L, "name", sw->name);
    hooks_set_string(L, "dir", c->dir);
    hooks_set_string(L, "base", sw->base);
    lua_pushboolean(L, sw->finished);
    lua_setfield(L, -2, "finished");
    lua_createtable(L, nkeys, 0);
    for (int k = 0; k < nkeys; k++) {
        lua_pushstring(L, sw->keys[k]);
        lua_rawseti(L, -2, (lua_Integer)k + 1);
    }
    lua_setfield(L, -2, "keys");
    lua_createtable(L, npoints, 0);
    for (int i = 0; i < npoints; i++) {
        push_point(L, sw, &sw->points[i], &c->pf[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "points");
}

/* In protected mode: builds the table and calls on_sweep. */
static int call_on_sweep(lua_State *L)
{
    const struct sweep_call *c = lua_touserdata(L, 1);
    lua_settop(L, 0);
    int t = lua_getglobal(L, "on_sweep");
    if (t == LUA_TNIL) return luaL_error(L, "the hook defines no function on_sweep(sweep)");
    if (t != LUA_TFUNCTION)
        return luaL_error(L, "on_sweep is %s, not a function", luaL_typename(L, -1));
    push_sweep(L, c);
    lua_call(L, 1, 0);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* The call */

/* Reads each point's files into pf (npoints of them); false when some could not be read
 * (each reported, its message in pf[i].error). */
static bool read_points(struct hooks *h, const struct hooks_sweep *sw, struct point_files *pf,
                        int npoints, struct arena *a)
{
    bool ok = true;
    for (int i = 0; i < npoints; i++) {
        const struct hooks_sweep_point *p = &sw->points[i];
        if (!p->run_dir) continue;
        const char *dir = p->run_dir[0] == '/' ? p->run_dir
                                                : arena_printf(a, "%s/%s", sw->dir, p->run_dir);
        char err[700];
        if (hooks_files_read_metrics(&pf[i].files, dir, err, sizeof err)) continue;
        hooks_files_free(&pf[i].files);
        pf[i].files = (struct hooks_files){0};
        pf[i].error = strdup(err);
        hooks_say(h, stderr, "hook %s: on_sweep: point %s: %s; it is shown without its "
                  "figures\n", h->hooks[0].file, p->name ? p->name : "?", err);
        h->errors++;
        ok = false;
    }
    return ok;
}

enum status hooks_sweep_report(const char *hook_file, const struct hooks_sweep *sw,
                               const char *const *hook_dirs, size_t ndirs, struct diag *d)
{
    struct spec_hook hook = {.file = hook_file};
    struct hooks *h;
    if (hooks_open_root(&hook, 1, sw->dir, &hooks_own_sweep, hook_dirs, ndirs, NULL, d, &h))
        return STATUS_RUNTIME;
    int npoints = sw->npoints > 0 ? sw->npoints : 0;
    struct point_files *pf = calloc(npoints ? (size_t)npoints : 1, sizeof *pf);
    if (!pf) {
        diag_error(d, (struct mark){0}, "hooks: out of memory");
        hooks_free(h);
        return STATUS_RUNTIME;
    }
    struct arena a = {0};
    bool ok = read_points(h, sw, pf, npoints, &a);
    struct sweep_call c = {.sw = sw, .dir = h->dir, .pf = pf};
    ok &= hooks_run_protected(h, &h->hooks[0], call_on_sweep, &c, "on_sweep");
    for (int i = 0; i < npoints; i++) {
        hooks_files_free(&pf[i].files);
        free(pf[i].error);
    }
    free(pf);
    arena_free(&a);
    hooks_free(h);
    return ok ? STATUS_OK : STATUS_RUNTIME;
}
