/*
 * test_hooks.c: the Lua hooks (hooks.c, hooks_tables.c, json.c's full mode) in the fixture of
 * hooks_fixture.h: the tables hooks get, checked value by value; stop requests and malformed
 * returns; error reports (file, function, message, traceback; the other hooks still called;
 * the failed hook called again next time); errors while opening; run files that cannot be
 * parsed; and the limits: the instruction budget (pcall loops, coroutines and library loops
 * in C included) and the memory cap, after which the state still works. The sandbox's
 * attacks are in test_hooks_sandbox.c.
 */
#include "hooks_fixture.h"
#include "json.h"

/* ---------------------------------------------------------------------------------------- */
/* Tables */

static void test_run_table(void **state)
{
    (void)state;
    const struct node *config = yaml("name: tree\noptimizer: {lr: 0.3, nesterov: false}\n"
                                     "train: {epochs: 7}\nlist: [1, two, 3.5, \"4\", null]\n"
                                     "nothing: null\n");
    struct hook_src s = {"h.lua",
        "function on_start(run)\n"
        "  print(string.format('name=%s dir=%s', run.name, run.dir))\n"
        "  print('classes=' .. table.concat(run.classes, ',') .. ' n=' .. #run.classes)\n"
        "  print(string.format('history=%d e1=%s loss=%.8f val2=%s lr2=%g', #run.history,\n"
        "    math.type(run.history[1].epoch), run.history[2].train_loss,\n"
        "    tostring(run.history[2].val_loss), run.history[2].lr))\n"
        "  local c = run.config\n"
        "  print(string.format('config name=%s lr=%s %s nesterov=%s epochs=%s %s', c.name,\n"
        "    c.optimizer.lr, math.type(c.optimizer.lr), tostring(c.optimizer.nesterov),\n"
        "    c.train.epochs, math.type(c.train.epochs)))\n"
        "  print(string.format('list=%d %s %s %s %s %s nothing=%s', #c.list,\n"
        "    math.type(c.list[1]), c.list[2], c.list[3], type(c.list[4]), tostring(c.list[5]),\n"
        "    tostring(c.nothing)))\n"
        "  print(string.format('args patience=%s %s min_delta=%s', run.args.patience,\n"
        "    math.type(run.args.patience), run.args.min_delta))\n"
        "  print(string.format('device=%s precision=%s commit=%s started=%s epochs=%s',\n"
        "    run.device, run.precision, run.commit, run.started, math.tointeger(run.epochs)))\n"
        "  print('config_text=' .. #run.config_text .. ':' .. run.config_text:sub(1, 11))\n"
        "end\n",
        yaml("patience: 5\nmin_delta: 0.001\n")};
    assert_int_equal(open_hooks(&s, 1, NULL), STATUS_OK);
    struct hooks_info in_tree = info;
    in_tree.config = config;
    assert_int_equal(hooks_start(F.h, &in_tree), HOOK_OK);
    char real[4096], line[4200];
    assert_non_null(realpath(F.run, real));
    snprintf(line, sizeof line, "name=quick dir=%s\n", real);
    log_has(line);
    log_has("classes=cat,dog,ship n=3\n");
    log_has("history=2 e1=integer loss=1.97217341 val2=nil lr2=8e-07\n");
    log_has("config name=tree lr=0.3 float nesterov=false epochs=7 integer\n");
    log_has("list=4 integer two 3.5 string nil nothing=nil\n");
    log_has("args patience=5 integer min_delta=0.001\n");
    log_has("device=cpu precision=fp32 commit=abc123 started=2026-11-25 14:03:59 epochs=2\n");
    char want[64];
    snprintf(want, sizeof want, "config_text=%zu:name: quick", strlen(config_yaml));
    log_has(want);
}

/* With no tree given, run.config is the run directory's config.yaml; with no classes, the
 * confusion matrix's header; with no args, an empty table. */
static void test_run_config_from_file(void **state)
{
    (void)state;
    open_one("function on_start(run)\n"
             "  local c = run.config\n"
             "  print(string.format('name=%s lr=%s decay=%s %s fdf=%s subset=%s %s root=%s',\n"
             "    c.name, c.optimizer.lr, c.optimizer.weight_decay, math.type(c.optimizer.lr),\n"
             "    c.schedule.final_div_factor, c.data.subset, type(c.data.subset),\n"
             "    tostring(c.data.root)))\n"
             "  print('pretrained=' .. tostring(c.model.pretrained) .. ' p=' ..\n"
             "    c.augment.train[1].hflip.p)\n"
             "  print('classes=' .. table.concat(run.classes, ',') .. ' args=' ..\n"
             "    type(run.args) .. ' ' .. tostring(next(run.args)))\n"
             "end\n");
    struct hooks_info no_tree = info;
    no_tree.classes = NULL;
    no_tree.nclasses = 0;
    assert_int_equal(hooks_start(F.h, &no_tree), HOOK_OK);
    log_has("name=quick lr=0.2 decay=0.0005 float fdf=10000.0 subset=3000 string root=nil\n");
    log_has("pretrained=nil p=0.5\n");
    log_has("classes=cat,dog,ship args=table nil\n");
}

/* No metrics yet (on_start of a new run): an empty history. */
static void test_run_without_metrics(void **state)
{
    (void)state;
    assert_int_equal(unlink(in(F.run, "metrics.jsonl")), 0);
    open_one("function on_start(run) print('history=' .. #run.history) end\n");
    start_expect(HOOK_OK);
    log_has("history=0\n");
}

static void test_result_table(void **state)
{
    (void)state;
    open_one("function on_end(run, r)\n"
             "  local rows, total, diag = #r.confusion, 0, 0\n"
             "  for t = 1, rows do\n"
             "    assert(#r.confusion[t] == rows)\n"
             "    for p = 1, rows do total = total + r.confusion[t][p] end\n"
             "    diag = diag + r.confusion[t][t]\n"
             "  end\n"
             "  print(string.format('confusion %dx%d total=%d diag=%d c32=%d %s', rows,\n"
             "    #r.confusion[1], total, diag, r.confusion[3][2], math.type(r.confusion[1][1])))\n"
             "  local pc = r.per_class[2]\n"
             "  print(string.format('per_class=%d %s p=%.6f r=%.6f f1=%.6f support=%s %s',\n"
             "    #r.per_class, pc.class, pc.precision, pc.recall, pc.f1, pc.support,\n"
             "    math.type(pc.support)))\n"
             "  for i, s in ipairs(r.samples) do\n"
             "    print(string.format('sample %d %s %d %s %s %.2f %s', i, s.file, s.index,\n"
             "      s.true_label, s.predicted, s.confidence, tostring(s.correct)))\n"
             "  end\n"
             "  print(string.format('acc=%s loss=%s f1=%s best_val=%s best_epoch=%s %s',\n"
             "    r.test_acc, r.test_loss, r.macro_f1, tostring(r.best_val_acc), r.best_epoch,\n"
             "    math.type(r.best_epoch)))\n"
             "  print(string.format('seconds=%s ips=%s commit=%s tta=%s stopped=%s', r.seconds,\n"
             "    r.train_img_per_s, r.summary.commit, tostring(r.summary.flip_tta),\n"
             "    tostring(r.stopped)))\n"
             "end\n");
    assert_int_equal(hooks_end(F.h, &info, "plateau"), HOOK_OK);
    log_has("confusion 3x3 total=28 diag=18 c32=0 integer\n");
    log_has("per_class=3 dog p=0.777778 r=0.700000 f1=0.736842 support=10 integer\n");
    log_has("sample 1 samples/correct_000_cat.png 1 cat cat 0.90 true\n");
    log_has("sample 2 samples/wrong_000_dog_as_ship.png 7 dog ship 0.41 false\n");
    log_has("acc=0.642857 loss=1.25 f1=0.641692 best_val=nil best_epoch=2 integer\n");
    log_has("seconds=9.983 ips=878.56 commit=abc123 tta=false stopped=plateau\n");
    assert_int_equal(hooks_end(F.h, &info, NULL), HOOK_OK);
    log_has("stopped=nil\n");
}

/* A run's file that cannot be parsed: reported with its line, and no hook is called. */
static void test_bad_run_file(void **state)
{
    (void)state;
    write_file(F.run, "metrics.jsonl", "{\"epoch\": 1}\n{\"epoch\": 2,}\n");
    open_one("function on_start(run) print('CALLED') end\n");
    start_expect(HOOK_FAILED);
    log_has("metrics.jsonl:2:13: expected a string key, got '}'");
    log_has("no hook was called");
    log_lacks("CALLED");
    assert_int_equal(hooks_error_count(F.h), 1);
    write_file(F.run, "metrics.jsonl", metrics_jsonl);
    write_file(F.run, "summary.json", "{\n  \"a\": 1,\n  \"b\": tru\n}\n");
    assert_int_equal(hooks_end(F.h, &info, NULL), HOOK_FAILED);
    log_has("summary.json:3:8: unexpected 't'");
    write_file(F.run, "summary.json", summary_json);
    write_file(F.run, "per_class.csv", "class,precision,recall,f1,support\ncat,high,1,1,8\n");
    assert_int_equal(hooks_end(F.h, &info, NULL), HOOK_FAILED);
    log_has("per_class.csv: class 'cat': precision, recall and f1 must be numbers");
    log_lacks("CALLED");
    assert_int_equal(hooks_error_count(F.h), 3);
}

/* json.c's full mode, as metrics.jsonl and summary.json need it. */
static void test_json_full(void **state)
{
    (void)state;
    const char *text = "{\"a\": 1.5e3, \"b\": true, \"c\": null, \"d\": [1, -2.5, false], "
                       "\"e\": \"x\\u00e9\", \"f\": -0, \"g\": 12345678901234567890}";
    struct json_parser p = {.arena = &F.arena, .s = (const unsigned char *)text,
                            .len = strlen(text), .full = true};
    const struct json *v = json_parse(&p);
    if (!v) fail_msg("%s at %zu", p.err, p.err_at);
    assert_int_equal(json_get(v, "a")->kind, JSON_NUMBER);
    assert_true(json_get(v, "a")->real == 1500.0);
    assert_true(json_get(v, "b")->kind == JSON_BOOL && json_get(v, "b")->boolean);
    assert_int_equal(json_get(v, "c")->kind, JSON_NULL);
    const struct json *d = json_get(v, "d");
    assert_int_equal(d->n, 3);
    assert_true(d->first->kind == JSON_INT && d->first->num == 1);
    assert_true(d->first->next->kind == JSON_NUMBER && d->first->next->real == -2.5);
    assert_string_equal(json_get(v, "e")->str, "x\xc3\xa9");
    assert_true(json_get(v, "f")->kind == JSON_INT && json_get(v, "f")->num == 0);
    assert_true(json_get(v, "g")->kind == JSON_NUMBER && json_get(v, "g")->real > 1.2e19);
    static const struct {
        const char *text, *err;
        size_t at;
    } bad[] = {{"1.", "expected a digit after '.'", 2}, {"[tru]", "unexpected 't'", 1},
               {"1e", "expected a digit in the exponent", 2}, {"NaN", "unexpected 'N'", 0},
               {"{\"a\": 1} 2", "unexpected data after the input's object", 9}};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        struct json_parser q = {.arena = &F.arena, .s = (const unsigned char *)bad[i].text,
                                .len = strlen(bad[i].text), .full = true};
        assert_null(json_parse(&q));
        assert_string_equal(q.err, bad[i].err);
        assert_int_equal(q.err_at, bad[i].at);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Calls, stops and errors */

static void test_stop_request(void **state)
{
    (void)state;
    struct hook_src s[] = {
        {"quiet.lua", "function on_epoch_end(run, e) print('quiet ' .. e.epoch) end\n", NULL},
        {"ignored.lua", "function on_epoch_end() return {note = 'no stop here'} end\n", NULL},
        {"first.lua",
         "function on_epoch_end(run, epoch)\n"
         "  assert(epoch == run.history[#run.history])\n"
         "  if epoch.epoch == 2 and epoch.val_acc == nil then return {stop = 'plateau'} end\n"
         "end\n", NULL},
        {"second.lua", "function on_epoch_end() print('second called') return {stop = 'late'} "
                       "end\n", NULL}};
    assert_int_equal(open_hooks(s, 4, NULL), STATUS_OK);
    const char *why = NULL;
    assert_int_equal(hooks_epoch_end(F.h, &info, &why), HOOK_STOP);
    assert_string_equal(why, "plateau");
    log_has("quiet 2\n");
    log_has("second called\n");
    assert_int_equal(hooks_error_count(F.h), 0);
    write_file(F.run, "metrics.jsonl", "{\"epoch\": 1, \"val_acc\": 0.5}\n");
    assert_int_equal(hooks_epoch_end(F.h, &info, &why), HOOK_STOP);
    assert_string_equal(why, "late");
}

static void test_malformed_returns(void **state)
{
    (void)state;
    struct hook_src s[] = {
        {"yes.lua", "function on_epoch_end() return true end\n", NULL},
        {"number.lua", "function on_epoch_end() return {stop = 5} end\n", NULL},
        {"empty.lua", "function on_epoch_end() return {stop = ''} end\n", NULL},
        {"fine.lua", "function on_epoch_end() return nil end\n", NULL}};
    assert_int_equal(open_hooks(s, 4, NULL), STATUS_OK);
    const char *why = "unset";
    assert_int_equal(hooks_epoch_end(F.h, &info, &why), HOOK_FAILED);
    assert_null(why);
    log_has("yes.lua: on_epoch_end: on_epoch_end returned boolean; it may return nothing or "
            "{stop = \"reason\"}");
    log_has("number.lua: on_epoch_end: on_epoch_end returned {stop = number}; stop must be a "
            "non-empty string, the reason");
    log_has("empty.lua: on_epoch_end: on_epoch_end returned {stop = \"\"}");
    log_lacks("fine.lua");
    assert_int_equal(hooks_error_count(F.h), 3);
}

static void test_error_report(void **state)
{
    (void)state;
    struct hook_src s[] = {
        {"bad.lua",
         "local calls = 0\n"
         "local function inner() error('boom ' .. calls) end\n"
         "function on_start(run) calls = calls + 1; inner() end\n"
         "function on_epoch_end(run) calls = calls + 1; print('bad still works ' .. calls) end\n",
         NULL},
        {"good.lua", "function on_start(run) print('good called') end\n", NULL}};
    assert_int_equal(open_hooks(s, 2, NULL), STATUS_OK);
    start_expect(HOOK_FAILED);
    char want[800];
    const char *bad = in(F.hooks, "bad.lua");
    snprintf(want, sizeof want, "hook %s: on_start: %s:2: boom 1\nstack traceback:\n", bad, bad);
    log_has(want);
    snprintf(want, sizeof want, "%s:2: in upvalue 'inner'", bad);
    log_has(want);
    snprintf(want, sizeof want, "%s:3: in function 'on_start'", bad);
    log_has(want);
    log_lacks("[C]: in ?");
    log_has("good called\n");
    const char *why;
    assert_int_equal(hooks_epoch_end(F.h, &info, &why), HOOK_OK);
    log_has("bad still works 2\n");
    assert_int_equal(hooks_error_count(F.h), 1);
}

/* Errors while opening: each names the file; every hook is tried. */
static void test_open_errors(void **state)
{
    (void)state;
    struct hook_src s[] = {{"syntax.lua", "function on_start(run)\n  if x then\nend\n", NULL},
                           {"top.lua", "local t = nil\nprint(t.field)\n", NULL},
                           {"notfn.lua", "on_start = 5\n", NULL}};
    char *msgs;
    assert_int_equal(open_hooks(s, 3, &msgs), STATUS_CONFIG);
    assert_null(F.h);
    char want[800];
    snprintf(want, sizeof want, "hook '%s': %s:4: 'end' expected (to close 'function' at line "
             "1) near <eof>", in(F.hooks, "syntax.lua"), in(F.hooks, "syntax.lua"));
    if (!strstr(msgs, want)) fail_msg("expected '%s' in:\n%s", want, msgs);
    snprintf(want, sizeof want, "%s:2: attempt to index a nil value (local 't')",
             in(F.hooks, "top.lua"));
    if (!strstr(msgs, want)) fail_msg("expected '%s' in:\n%s", want, msgs);
    if (!strstr(msgs, "on_start is number; it must be a function")) fail_msg("%s", msgs);
    free(msgs);

    struct spec_hook missing = {.file = in(F.hooks, "missing.lua")};
    FILE *mem = open_memstream(&msgs, &(size_t){0});
    struct diag d = {.out = mem};
    assert_int_equal(hooks_open(&missing, 1, F.run, NULL, 0, NULL, &d, &F.h), STATUS_CONFIG);
    fclose(mem);
    if (!strstr(msgs, "missing.lua: No such file or directory")) fail_msg("%s", msgs);
    free(msgs);
}

/* ---------------------------------------------------------------------------------------- */
/* Limits */

static void test_budget(void **state)
{
    (void)state;
    open_one("function on_start() while true do end end\n"
             "function on_epoch_end() print('alive after the loop') end\n");
    hooks_set_limits(F.h, 100000, 0);
    start_expect(HOOK_FAILED);
    char want[600];
    snprintf(want, sizeof want, "hook %s: on_start: %s:1: the instruction budget of 100000 Lua "
             "instructions per call ran out", in(F.hooks, "h.lua"), in(F.hooks, "h.lua"));
    log_has(want);
    const char *why;
    assert_int_equal(hooks_epoch_end(F.h, &info, &why), HOOK_OK);
    log_has("alive after the loop\n");
}

/* pcall cannot swallow the budget: the loop around it runs out too; nor can a coroutine. */
static void test_budget_pcall_loop(void **state)
{
    (void)state;
    open_one("function on_start()\n"
             "  while true do pcall(function() while true do end end) end\n"
             "end\n"
             "function on_end()\n"
             "  coroutine.wrap(function() while true do end end)()\n"
             "end\n");
    hooks_set_limits(F.h, 100000, 0);
    start_expect(HOOK_FAILED);
    log_has("the instruction budget of 100000 Lua instructions per call ran out");
    assert_int_equal(hooks_end(F.h, &info, NULL), HOOK_FAILED);
    assert_int_equal(hooks_error_count(F.h), 2);
}

/* Library loops that run in C are charged to the budget before they start. */
static void test_budget_c_loops(void **state)
{
    (void)state;
    struct hook_src s[] = {
        {"rep.lua", "function on_start() string.rep('', 1 << 62) end\n", NULL},
        {"move.lua", "function on_start() table.move({}, 1, 1 << 62, 2) end\n", NULL},
        {"insert.lua",
         "function on_start()\n"
         "  local t = setmetatable({}, {__len = function() return 1 << 62 end})\n"
         "  table.insert(t, 1, 'x')\n"
         "end\n", NULL},
        {"fine.lua", "function on_start() print(#string.rep('ab', 3, ',')) end\n", NULL}};
    assert_int_equal(open_hooks(s, 4, NULL), STATUS_OK);
    hooks_set_limits(F.h, 1000000, 0);
    start_expect(HOOK_FAILED);
    assert_int_equal(hooks_error_count(F.h), 3);
    char want[600];
    snprintf(want, sizeof want, "hook %s: on_start: %s:1: the instruction budget of 1000000 "
             "Lua instructions per call ran out", in(F.hooks, "rep.lua"), in(F.hooks, "rep.lua"));
    log_has(want);
    snprintf(want, sizeof want, "hook %s: on_start: %s:1: the instruction budget",
             in(F.hooks, "move.lua"), in(F.hooks, "move.lua"));
    log_has(want);
    snprintf(want, sizeof want, "hook %s: on_start: %s:3: the instruction budget",
             in(F.hooks, "insert.lua"), in(F.hooks, "insert.lua"));
    log_has(want);
    log_has("8\n");
}

static void test_memory_cap(void **state)
{
    (void)state;
    open_one("function on_start()\n"
             "  local t, i = {}, 0\n"
             "  while true do i = i + 1; t[i] = string.rep('x', 4096) .. i end\n"
             "end\n"
             "function on_epoch_end()\n"
             "  local big = string.rep('y', 1 << 30)\n"
             "end\n"
             "function on_end() print('alive, ' .. #string.rep('z', 1000)) end\n");
    hooks_set_limits(F.h, HOOKS_DEFAULT_INSTRUCTIONS, 16 << 20);
    start_expect(HOOK_FAILED);
    char want[600];
    snprintf(want, sizeof want, "hook %s: on_start: not enough memory\nhook %s: the hook's Lua "
             "state reached its memory cap of 16 MiB\n", in(F.hooks, "h.lua"),
             in(F.hooks, "h.lua"));
    log_has(want);
    const char *why;
    assert_int_equal(hooks_epoch_end(F.h, &info, &why), HOOK_FAILED);
    assert_int_equal(hooks_end(F.h, &info, NULL), HOOK_OK);
    log_has("alive, 1000\n");
}

int main(void)
{
    static const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_run_table),
        T(test_run_config_from_file),
        T(test_run_without_metrics),
        T(test_result_table),
        T(test_bad_run_file),
        T(test_json_full),
        T(test_stop_request),
        T(test_malformed_returns),
        T(test_error_report),
        T(test_open_errors),
        T(test_budget),
        T(test_budget_pcall_loop),
        T(test_budget_c_loops),
        T(test_memory_cap),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
