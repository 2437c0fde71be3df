/*
 * test_hooks_sandbox.c: the hooks' sandbox (hooks_sandbox.c) in the fixture of
 * hooks_fixture.h: what hooks may use, working; then one test per attack (the debug library,
 * binary chunks, dofile, process and file functions of os and io, C modules, require outside
 * the hook folders, io.open and runner.write outside the run directory, through symbolic
 * links or over the run's own files, collectgarbage, finalizers), each asserting the message
 * and that nothing changed on disk.
 */
#include "hooks_fixture.h"

/* ---------------------------------------------------------------------------------------- */
/* What hooks may use */

static void test_sandbox_allowed(void **state)
{
    (void)state;
    open_one("local util = require 'lib.util'\n"
             "function on_start(run)\n"
             "  print('twice=' .. util.twice(21),\n"
             "    'same=' .. tostring(require('lib.util') == util))\n"
             "  print(string.format('%5.2f', math.pi), ('abc'):upper(), utf8.char(233),\n"
             "    table.concat({1, 2}, '+'), type(os.time()), type(os.clock()),\n"
             "    os.date('!%Y', 0),\n"
             "    os.getenv('RUNNER_TEST_OUTSIDE') ~= nil)\n"
             "  local co = coroutine.wrap(function() coroutine.yield(1) end)\n"
             "  print('co=' .. co(), 'load=' .. load('return 1 + 1')())\n"
             "  print(runner.base64(''), runner.base64('f'), runner.base64('fo'),\n"
             "    runner.base64('foo'), runner.base64('foob'), runner.base64('\\0\\255\\128'))\n"
             "  runner.log('logged line')\n"
             "  local f = assert(io.open('metrics.jsonl'))\n"
             "  print('read=' .. #f:read('a')); f:close()\n"
             "  f = assert(io.open(os.getenv('RUNNER_TEST_HOOKS') .. '/lib/util.lua'))\n"
             "  print('hook dir read=' .. #f:read('a')); io.close(f)\n"
             "  f = assert(io.open('notes.txt', 'w')); f:write('note'); f:close()\n"
             "  print('count=' .. math.type(collectgarbage('count')))\n"
             "end\n");
    setenv("RUNNER_TEST_HOOKS", F.hooks, 1);
    start_expect(HOOK_OK);
    log_has("twice=42\tsame=true\n");
    log_has(" 3.14\tABC\t\xc3\xa9\t1+2\tnumber\tnumber\t1970\ttrue\n");
    log_has("co=1\tload=2\n");
    log_has("\tZg==\tZm8=\tZm9v\tZm9vYg==\tAP+A\n");
    log_has("logged line\n");
    char want[64];
    snprintf(want, sizeof want, "read=%zu\n", strlen(metrics_jsonl));
    log_has(want);
    log_has("hook dir read=");
    log_has("count=float\n");
    char *note = slurp(in(F.run, "notes.txt"));
    assert_non_null(note);
    assert_string_equal(note, "note");
    free(note);
}

static void test_runner_write_atomic(void **state)
{
    (void)state;
    open_one("function on_start(run)\n"
             "  runner.write('report.html', '<html>one</html>')\n"
             "  runner.write('report.html', '<html>two</html>')\n"
             "end\n");
    start_expect(HOOK_OK);
    char *s = slurp(in(F.run, "report.html"));
    assert_non_null(s);
    assert_string_equal(s, "<html>two</html>");
    free(s);
    assert_false(exists(F.run, "report.html.tmp"));
}

/* ---------------------------------------------------------------------------------------- */
/* The sandbox: one test per attack */

/* Runs src as on_start, expects it to fail with message, and checks that outside/ and the
 * run directory's victim file are as they were. */
static void attack(const char *src, const char *message)
{
    open_one(src);
    start_expect(HOOK_FAILED);
    log_has(message);
    outside_untouched();
    char *v = slurp(in(F.run, "victim.txt"));
    assert_non_null(v);
    assert_string_equal(v, "victim\n");
    free(v);
}

static void test_no_debug(void **state)
{
    (void)state;
    attack("function on_start() print(type(package.loaded.debug)); debug.sethook() end\n",
           "attempt to index a nil value (global 'debug')");
    log_has("nil\n");
}

static void test_no_require_debug(void **state)
{
    (void)state;
    attack("function on_start() require 'debug' end\n", "module 'debug' not found");
}

static void test_no_binary_chunks(void **state)
{
    (void)state;
    attack("function on_start()\n"
           "  local f, err = load('\\27Lua\\84\\0\\25\\147\\13\\10\\26\\10', 'x', 'b')\n"
           "  print('binary:', f, err)\n"
           "  string.dump(on_start)\n"
           "end\n",
           "string.dump is not available to hooks");
    log_has("binary:\tnil\tattempt to load a binary chunk (mode is 't')\n");
}

static void test_no_dofile(void **state)
{
    (void)state;
    attack("function on_start() dofile(os.getenv('RUNNER_TEST_OUTSIDE') .. '/evil.lua') end\n",
           "dofile is not available to hooks");
    log_lacks("EVIL LOADED");
}

static void test_no_loadfile(void **state)
{
    (void)state;
    attack("function on_start() loadfile(os.getenv('RUNNER_TEST_OUTSIDE') .. '/evil.lua') end\n",
           "loadfile is not available to hooks");
}

static void test_no_os_execute(void **state)
{
    (void)state;
    attack("function on_start()\n"
           "  os.execute('touch ' .. os.getenv('RUNNER_TEST_OUTSIDE') .. '/pwned')\n"
           "end\n",
           "os.execute is not available to hooks");
}

static void test_no_os_exit(void **state)
{
    (void)state;
    attack("function on_start() os.exit(3) end\n", "os.exit is not available to hooks");
}

static void test_no_os_remove(void **state)
{
    (void)state;
    attack("function on_start() os.remove('victim.txt') end\n",
           "os.remove is not available to hooks");
}

static void test_no_os_rename(void **state)
{
    (void)state;
    attack("function on_start()\n"
           "  os.rename('victim.txt', os.getenv('RUNNER_TEST_OUTSIDE') .. '/moved')\n"
           "end\n",
           "os.rename is not available to hooks");
}

static void test_no_os_tmpname(void **state)
{
    (void)state;
    attack("function on_start() os.tmpname() end\n", "os.tmpname is not available to hooks");
}

static void test_no_io_popen(void **state)
{
    (void)state;
    attack("function on_start()\n"
           "  io.popen('touch ' .. os.getenv('RUNNER_TEST_OUTSIDE') .. '/pwned')\n"
           "end\n",
           "io.popen is not available to hooks");
}

static void test_no_io_output(void **state)
{
    (void)state;
    attack("function on_start() io.output(os.getenv('RUNNER_TEST_OUTSIDE') .. '/out') end\n",
           "io.output is not available to hooks");
}

static void test_no_io_input(void **state)
{
    (void)state;
    attack("function on_start() io.input('/etc/passwd') end\n",
           "io.input is not available to hooks");
}

static void test_no_io_tmpfile(void **state)
{
    (void)state;
    attack("function on_start() io.tmpfile() end\n", "io.tmpfile is not available to hooks");
}

static void test_no_io_lines(void **state)
{
    (void)state;
    attack("function on_start() for l in io.lines('/etc/passwd') do print(l) end end\n",
           "io.lines is not available to hooks");
    log_lacks("root:");
}

static void test_no_package_loadlib(void **state)
{
    (void)state;
    attack("function on_start() package.loadlib('libc.so.6', 'system') end\n",
           "package.loadlib is not available to hooks");
}

static void test_no_c_modules(void **state)
{
    (void)state;
    attack("function on_start()\n"
           "  package.cpath = '/usr/lib/x86_64-linux-gnu/lua/5.4/?.so;'\n"
           "    .. '/usr/local/lib/lua/5.4/?.so'\n"
           "  print('searchers=' .. #package.searchers)\n"
           "  require 'lpeg'\n"
           "end\n",
           "module 'lpeg' not found");
    log_has("searchers=1\n");
}

static void test_require_dotdot(void **state)
{
    (void)state;
    attack("function on_start() require '..outside.evil' end\n",
           "require \"..outside.evil\": a module name is words separated by dots");
    log_lacks("EVIL LOADED");
}

static void test_require_absolute(void **state)
{
    (void)state;
    attack("function on_start() require(os.getenv('RUNNER_TEST_OUTSIDE') .. '/evil') end\n",
           "a module name is words separated by dots");
    log_lacks("EVIL LOADED");
}

static void test_require_package_path(void **state)
{
    (void)state;
    attack("function on_start()\n"
           "  package.path = os.getenv('RUNNER_TEST_OUTSIDE') .. '/?.lua'\n"
           "  require 'widen'\n"
           "end\n",
           "module 'widen' not found");
    log_lacks("WIDEN LOADED");
}

/* hooks/evil.lua is a link to outside/evil.lua. */
static void test_require_symlink_out(void **state)
{
    (void)state;
    attack("function on_start() require 'evil' end\n",
           "evil.lua: not allowed: hooks read only inside the run directory");
    log_lacks("EVIL LOADED");
}

/* io.open refusals return nil, the reason and EACCES (13), as io.open's own failures do. */
static void test_open_write_parent(void **state)
{
    (void)state;
    attack("function on_start()\n"
           "  print(io.open('../outside/new.txt', 'w'))\n"
           "  assert(io.open('../victim_copy', 'w'))\n"
           "end\n",
           "../victim_copy: not allowed: hooks write only inside the run directory");
    log_has("nil\t../outside/new.txt: not allowed: hooks write only inside the run directory");
    log_has("\t13\n");
    assert_false(exists(F.base, "victim_copy"));
}

static void test_open_write_absolute(void **state)
{
    (void)state;
    attack("function on_start()\n"
           "  assert(io.open(os.getenv('RUNNER_TEST_OUTSIDE') .. '/new.txt', 'w'))\n"
           "end\n",
           "/outside/new.txt: not allowed: hooks write only inside the run directory");
}

/* run/link_file -> outside/secret.txt */
static void test_open_write_symlink_file(void **state)
{
    (void)state;
    attack("function on_start() assert(io.open('link_file', 'w')) end\n",
           "link_file: not allowed: a symbolic link (hooks do not write through links)");
}

/* run/link_dir -> outside/ */
static void test_open_write_symlink_dir(void **state)
{
    (void)state;
    attack("function on_start() assert(io.open('link_dir/new.txt', 'w')) end\n",
           "link_dir/new.txt: not allowed: hooks write only inside the run directory");
}

static void test_open_append_outside(void **state)
{
    (void)state;
    attack("function on_start()\n"
           "  local out = os.getenv('RUNNER_TEST_OUTSIDE')\n"
           "  print(io.open(out .. '/secret.txt', 'a'))\n"
           "  assert(io.open(out .. '/secret.txt', 'r+'))\n"
           "end\n",
           "/outside/secret.txt: not allowed: hooks write only inside the run directory");
    log_has("nil\t");
}

static void test_open_read_outside(void **state)
{
    (void)state;
    attack("function on_start()\n"
           "  print(io.open('link_file'))\n"
           "  print(io.open('../outside/secret.txt'))\n"
           "  assert(io.open('/etc/passwd'))\n"
           "end\n",
           "/etc/passwd: not allowed: hooks read only inside the run directory");
    log_has("link_file: not allowed: hooks read only inside the run directory");
    log_has("../outside/secret.txt: not allowed: hooks read only inside the run directory");
}

/* A missing folder outside gives the same refusal as an existing one (no probing). */
static void test_open_missing_outside(void **state)
{
    (void)state;
    attack("function on_start()\n"
           "  print(io.open('nowhere/x.txt', 'w'))\n"
           "  assert(io.open('/nonexistent_dir/x.txt'))\n"
           "end\n",
           "/nonexistent_dir/x.txt: not allowed: hooks read only inside the run directory");
    log_has("nowhere/x.txt: No such file or directory");
}

static void test_open_own_files(void **state)
{
    (void)state;
    attack("function on_start()\n"
           "  print(io.open('samples/index.csv', 'w'))\n"
           "  print(io.open('checkpoints/x.safetensors', 'w'))\n"
           "  print(io.open('summary.json.tmp', 'w'))\n"
           "  assert(io.open('summary.json', 'w'))\n"
           "end\n",
           "summary.json: not allowed: summary.json is one of the run's own files");
    log_has("samples/index.csv: not allowed: samples/ holds the run's own files");
    log_has("checkpoints/x.safetensors: not allowed: checkpoints/ holds the run's own files");
    log_has("summary.json.tmp: not allowed: summary.json is one of the run's own files");
    assert_false(exists(F.run, "summary.json.tmp"));
    char *s = slurp(in(F.run, "summary.json"));
    assert_string_equal(s, summary_json);
    free(s);
}

static void test_runner_write_outside(void **state)
{
    (void)state;
    attack("function on_start() runner.write('../outside/report.html', 'x') end\n",
           "runner.write: ../outside/report.html: not allowed: hooks write only inside the run "
           "directory");
}

static void test_runner_write_symlink(void **state)
{
    (void)state;
    attack("function on_start() runner.write('link_file', 'x') end\n",
           "runner.write: link_file: not allowed: a symbolic link");
}

static void test_collectgarbage_options(void **state)
{
    (void)state;
    attack("function on_start() collectgarbage('collect'); collectgarbage('stop') end\n",
           "collectgarbage(\"stop\") is not available to hooks");
}

static void test_no_finalizers(void **state)
{
    (void)state;
    attack("function on_start()\n"
           "  local f = assert(io.open('notes.txt', 'w'))\n"
           "  print('file metatable=' .. tostring(getmetatable(f)))\n"
           "  f:close()\n"
           "  setmetatable({}, {__gc = function() while true do end end})\n"
           "end\n",
           "setmetatable: __gc metamethods are not available to hooks");
    log_has("file metatable=file\n");
}


int main(void)
{
    static const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_sandbox_allowed),
        T(test_runner_write_atomic),
        T(test_no_debug),
        T(test_no_require_debug),
        T(test_no_binary_chunks),
        T(test_no_dofile),
        T(test_no_loadfile),
        T(test_no_os_execute),
        T(test_no_os_exit),
        T(test_no_os_remove),
        T(test_no_os_rename),
        T(test_no_os_tmpname),
        T(test_no_io_popen),
        T(test_no_io_output),
        T(test_no_io_input),
        T(test_no_io_tmpfile),
        T(test_no_io_lines),
        T(test_no_package_loadlib),
        T(test_no_c_modules),
        T(test_require_dotdot),
        T(test_require_absolute),
        T(test_require_package_path),
        T(test_require_symlink_out),
        T(test_open_write_parent),
        T(test_open_write_absolute),
        T(test_open_write_symlink_file),
        T(test_open_write_symlink_dir),
        T(test_open_append_outside),
        T(test_open_read_outside),
        T(test_open_missing_outside),
        T(test_open_own_files),
        T(test_runner_write_outside),
        T(test_runner_write_symlink),
        T(test_collectgarbage_options),
        T(test_no_finalizers),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
