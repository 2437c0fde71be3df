-- test_lua_hooks.lua HOOKS_DIR: unit tests of the hook libraries (hooks/lib/svg.lua, html.lua,
-- fmt.lua, colour.lua, page.lua), of hooks/early_stop.lua and of sweep_report.lua's corner
-- cases, run with a standalone Lua 5.4 interpreter:
--   lua5.4 tests/test_lua_hooks.lua hooks
-- early_stop.lua is loaded into a fresh environment per case, with a `runner` table that
-- records runner.log lines, and fed epochs one by one as the runner does; sweep_report.lua
-- likewise, its runner.write kept in memory. Prints every failure and exits 1 if there was one.

local hooks = arg[1] or "hooks"
package.path = hooks .. "/?.lua;" .. package.path

local svg = require "lib.svg"
local html = require "lib.html"
local fmt = require "lib.fmt"
local colour = require "lib.colour"
local page = require "lib.page"

local failures, checks = 0, 0

local function check(cond, what)
  checks = checks + 1
  if not cond then
    failures = failures + 1
    print("FAIL: " .. what)
  end
end

local function eq(got, want, what)
  check(got == want, string.format("%s: got %s, expected %s", what, tostring(got), tostring(want)))
end

local function list(t)
  local out = {}
  for i, v in ipairs(t) do out[i] = string.format("%g", v) end
  return "{" .. table.concat(out, ", ") .. "}"
end

--------------------------------------------------------------------------------------------------
-- lib/svg.lua: ticks

eq(list((svg.nice_ticks(0.13, 0.97, 5))), "{0, 0.2, 0.4, 0.6, 0.8, 1}", "nice_ticks(0.13, 0.97, 5)")
eq(list((svg.nice_ticks(1.97, 2.22, 5))), "{1.95, 2, 2.05, 2.1, 2.15, 2.2, 2.25}",
  "nice_ticks(1.97, 2.22, 5)")
eq(list((svg.nice_ticks(0, 100, 6))), "{0, 20, 40, 60, 80, 100}", "nice_ticks(0, 100, 6)")
eq(list((svg.nice_ticks(-3, 7, 5))), "{-4, -2, 0, 2, 4, 6, 8}", "nice_ticks(-3, 7, 5)")
eq(list((svg.nice_ticks(0, 0, 5))), "{-1, -0.5, 0, 0.5, 1}", "nice_ticks(0, 0, 5)")

-- Over many ranges: the ticks enclose the range, are evenly spaced by 1, 2 or 5 times a power
-- of ten, and are written without floating-point noise.
for _, r in ipairs({{0.001, 0.0047}, {8e-7, 0.2}, {1234, 98765}, {0.3, 0.6}, {1, 15}, {-0.7, -0.1},
    {42, 42.5}, {0.2816, 0.9613}, {17.85, 67.35}, {1e-9, 3e-9}}) do
  for n = 3, 10 do
    local ticks, step = svg.nice_ticks(r[1], r[2], n)
    local what = string.format("nice_ticks(%g, %g, %d) = %s", r[1], r[2], n, list(ticks))
    check(ticks[1] <= r[1] and ticks[#ticks] >= r[2], what .. ": does not enclose the range")
    check(#ticks >= 2 and #ticks <= 2 * n + 1, what .. ": " .. #ticks .. " ticks")
    local mantissa = step / 10 ^ math.floor(math.log(step, 10) + 1e-9)
    check(math.abs(mantissa - 1) < 1e-9 or math.abs(mantissa - 2) < 1e-9
      or math.abs(mantissa - 5) < 1e-9, what .. ": step " .. step .. " is not 1, 2 or 5 x 10^k")
    for i = 2, #ticks do
      check(math.abs(ticks[i] - ticks[i - 1] - step) <= step * 1e-6, what .. ": uneven spacing")
      check(#string.format("%.12g", ticks[i]) <= 14, what .. ": noisy tick " .. ticks[i])
    end
  end
end

eq(list((svg.log_ticks(2e-4, 0.3))), "{0.0001, 0.001, 0.01, 0.1, 1}", "log_ticks(2e-4, 0.3)")
eq(list((svg.log_ticks(0.01, 0.5))), "{0.01, 0.02, 0.05, 0.1, 0.2, 0.5}", "log_ticks(0.01, 0.5)")
eq(list((svg.log_ticks(0.05, 0.2))), "{0.05, 0.1, 0.2}", "log_ticks(0.05, 0.2)")
eq(#(svg.log_ticks(1, 1e12)), 7, "log_ticks(1, 1e12): every other decade")
check(not pcall(svg.log_ticks, 0, 1), "log_ticks(0, 1) must fail")

eq(svg.tick_format(0.05)(0.1), "0.10", "tick_format(0.05)(0.1)")
eq(svg.tick_format(5)(15), "15", "tick_format(5)(15)")
eq(svg.tick_format(1e-7)(3e-7), "3e-07", "tick_format(1e-7)(3e-7)")

--------------------------------------------------------------------------------------------------
-- lib/svg.lua: charts

local chart = svg.line_chart{
  id = "chart-t", title = "T <&>", x_label = "epoch", y_label = "loss", x_integer = true,
  series = {
    {key = "a", label = "a", colour = "#000000", points = {{1, 2}, {2, 1.5}, {3, 1.2}}},
    {key = "b", label = "b", colour = "#ff0000", points = {{1, 2.1}, {2, nil}, {3, 1.1}}},
    {key = "c", label = "c", colour = "#00ff00", points = {{1, nil}}},
  },
}
check(chart:match('^<svg class="chart" id="chart%-t"'), "line_chart: starts with svg.chart#chart-t")
check(chart:find('data-series="a" data-points="3"', 1, true), "line_chart: series a has 3 points")
check(chart:find('data-series="b" data-points="2"', 1, true), "line_chart: nil y left out of b")
check(not chart:find('data-series="c"', 1, true), "line_chart: a series without points is left out")
check(chart:find("T &lt;&amp;&gt;", 1, true), "line_chart: the title is escaped")
check(not chart:find("data-log-x", 1, true), "line_chart: linear x has no data-log-x")

local one = svg.line_chart{id = "one", x_integer = true,
  series = {{key = "a", points = {{1, 0.5}}}}}
check(one:find('data-points="1"', 1, true), "line_chart: a single epoch is drawn")
check(not one:find("nan", 1, true) and not one:find("inf", 1, true),
  "line_chart: a single epoch gives finite coordinates")

local sweep = svg.line_chart{id = "sweep", log_x = true,
  series = {{key = "acc", points = {{1e-4, 0.4}, {1e-3, 0.6}, {1e-2, 0.8}, {0.1, 0.7}}}}}
check(sweep:find('data-log-x="true"', 1, true), "line_chart log_x: marked data-log-x")
local xs = {}
for x in sweep:match('data%-series="acc"[^>]* points="([^"]*)"'):gmatch("([%d.]+),") do
  xs[#xs + 1] = tonumber(x)
end
eq(#xs, 4, "line_chart log_x: 4 points")
if #xs == 4 then
  check(math.abs((xs[2] - xs[1]) - (xs[3] - xs[2])) < 0.2 and
    math.abs((xs[3] - xs[2]) - (xs[4] - xs[3])) < 0.2,
    "line_chart log_x: decades are evenly spaced: " .. list(xs))
end
check(not pcall(svg.line_chart, {id = "bad", log_x = true,
  series = {{key = "a", points = {{0, 1}}}}}), "line_chart log_x with x = 0 must fail")

local opts = svg.line_chart{id = "opts", log_x = false, legend = false, marker_radius = 0,
  series = {{key = "a", width = 3.5, points = {{1, 1}, {2, 2, tip = "two"}}}}}
check(opts:find('data-log-x="false"', 1, true), "line_chart log_x = false: data-log-x=\"false\"")
check(not opts:find('class="legend"', 1, true), "line_chart legend = false: no legend")
check(opts:find('data%-series="a" data%-points="2"[^>]*stroke%-width="3.5"'),
  "line_chart: a series' width")
check(not opts:find("<title>two</title>", 1, true), "line_chart marker_radius = 0: no markers")
local tagged = svg.line_chart{id = "tagged", marker_radius = 0,
  series = {{key = "b", points = {{1, 2, attrs = {["data-point"] = "p&q", ["data-x"] = 1},
    tip = "one"}, {2, 3}}}}}
check(tagged:find('<g class="point" data-point="p&amp;q" data-x="1"><circle', 1, true),
  "line_chart: a point's attrs on <g class=\"point\"> around its marker, whatever the radius")
check(tagged:find("<title>one</title>", 1, true), "line_chart: a point's own tooltip")

--------------------------------------------------------------------------------------------------
-- lib/html.lua, lib/fmt.lua, lib/colour.lua, lib/page.lua

eq(html.escape([[<a href="x">'&']]), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;", "html.escape")
eq(html.attrs({class = "c", id = "i", open = true, hidden = false, ["data-n"] = 3.0}),
  ' id="i" class="c" data-n="3" open', "html.attrs order and values")
eq(html.builder():open("td", {["data-count"] = 7}):text("a<b"):close("td"):result(),
  '<td data-count="7">a&lt;b</td>', "html.builder")

eq(fmt.percent(0.291), "29.1%", "fmt.percent(0.291)")
eq(fmt.percent(0.6356), "63.6%", "fmt.percent(0.6356)")
eq(fmt.percent(nil), fmt.MISSING, "fmt.percent(nil)")
eq(fmt.thousands(12345), "12,345", "fmt.thousands(12345)")
eq(fmt.thousands(878.56), "879", "fmt.thousands(878.56)")
eq(fmt.thousands(-1234567), "-1,234,567", "fmt.thousands(-1234567)")
eq(fmt.duration(9.983), "9.98 s", "fmt.duration(9.983)")
eq(fmt.duration(125.4), "2 min 05 s", "fmt.duration(125.4)")
eq(fmt.duration(3 * 3600 + 7 * 60 + 10), "3 h 07 min", "fmt.duration(3 h 7 min 10 s)")
eq(fmt.count(308650), "309k", "fmt.count(308650)")

eq(colour.scale(colour.BLUES, 0), "#f7fbff", "colour.scale(0)")
eq(colour.scale(colour.BLUES, 1), "#08306b", "colour.scale(1)")
eq(colour.text_on("#08306b"), "#ffffff", "colour.text_on(dark blue)")
eq(colour.text_on("#f7fbff"), "#1f2933", "colour.text_on(near white)")
eq(colour.hsl(0, 1, 0.5), "#ff0000", "colour.hsl(red)")
eq(colour.hsl(240, 1, 0.25), "#000080", "colour.hsl(navy)")
eq(colour.category(1), "#2f6db5", "colour.category(1)")
local seen_colours = {}
for i = 1, 40 do
  local c = colour.category(i)
  check(not seen_colours[c], "colour.category: " .. c .. " handed out twice (" .. i .. ")")
  seen_colours[c] = true
  check(colour.luminance(c) < 0.45,
    "colour.category(" .. i .. ") " .. c .. " is too light on white")
end

local pb = html.builder()
page.begin(pb, {title = "t <1>", state = "running", generator = "g", css = ".x{}", refresh = 30})
page.header(pb, {title = "T", badge = {class = "running", text = "in progress"},
  meta = {{"a", "1"}, {"b", nil}}, toc = {{"s", "S"}}})
page.card(pb, "L", "V", "sub", {primary = true, id = "v", data_value = 0.5, progress = 0.25})
page.finish(pb, "done & dusted")
local pt = pb:result()
check(pt:find('^<!DOCTYPE html>\n<html data%-state="running" lang="en">'), "page.begin: <html>")
check(pt:find('<meta content="30" http-equiv="refresh">', 1, true), "page.begin: the refresh")
check(pt:find("<title>t &lt;1&gt;</title>", 1, true), "page.begin: the title, escaped")
check(pt:find(".x{}</style>", 1, true), "page.begin: the page's own style after the sheet")
check(pt:find('<span id="state" class="badge running">in progress</span>', 1, true),
  "page.header: the badge")
check(pt:find("<span>a <b>1</b></span>", 1, true) and not pt:find("<span>b ", 1, true),
  "page.header: facts, nil ones left out")
check(pt:find('<a href="#s">S</a>', 1, true), "page.header: the contents")
check(pt:find('<div class="card primary">', 1, true) and
  pt:find('<span id="v" data-value="0.5">V</span>', 1, true) and
  pt:find('style="width:25.0%"', 1, true), "page.card")
check(pt:find("<footer>done &amp; dusted</footer>\n</main>\n<script>", 1, true), "page.finish")
check(pt:find("</html>\n$"), "page.finish: the end")

--------------------------------------------------------------------------------------------------
-- early_stop.lua

local function load_hook(file)
  local env = setmetatable({}, {__index = _G})
  env.logged = {}
  env.runner = {log = function(text) env.logged[#env.logged + 1] = text end}
  local chunk = assert(loadfile(hooks .. "/" .. file, "t", env))
  chunk()
  return env
end

-- history(values, key): metrics rows with `key` set from values (other metrics filled in).
local function history(values, key)
  local rows = {}
  for i, v in ipairs(values) do
    rows[i] = {epoch = i, step = 10 * i, train_loss = 2 - 0.05 * i, train_acc = 0.1 + 0.02 * i,
      val_loss = 1.0, val_acc = 0.5, lr = 0.1, seconds = 1.0, img_per_s = 100.0}
    rows[i][key] = v
  end
  return rows
end

-- run_hook(rows, args, config): feeds the rows epoch by epoch; returns the epoch it stopped at
-- (nil when it did not) and its reason, or nil and the error.
local function run_hook(rows, args, config, from)
  local env = load_hook("early_stop.lua")
  local function run_table(n)
    local h = {}
    for i = 1, n do h[i] = rows[i] end
    return {name = "t", dir = "/tmp", config = config or {data = {val_split = 100}},
      history = h, args = args or {}, epochs = #rows}
  end
  local ok, err = pcall(env.on_start, run_table(0))
  if not ok then return nil, err end
  for e = from or 1, #rows do
    local ok2, ret = pcall(env.on_epoch_end, run_table(e), rows[e])
    if not ok2 then return nil, ret end
    if ret and ret.stop then return e, ret.stop end
  end
  return nil, nil
end

local plateau = {2.1, 1.8, 1.5, 1.2, 0.9, 0.7, 0.5123, 0.5125, 0.5119, 0.52, 0.5115, 0.53, 0.55,
  0.56, 0.57, 0.58, 0.59, 0.6, 0.61, 0.62}
local at, why = run_hook(history(plateau, "val_loss"), {})
eq(at, 16, "early_stop defaults: best 0.5115 at epoch 11, patience 5")
eq(why, "val_loss did not improve for 5 epochs (best 0.5115 at epoch 11)", "early_stop reason")

at, why = run_hook(history(plateau, "val_loss"), {patience = 5, min_delta = 0.001})
eq(at, 12, "early_stop min_delta 0.001: best 0.5123 at epoch 7")
eq(why, "val_loss did not improve by more than 0.001 for 5 epochs (best 0.5123 at epoch 7)",
  "early_stop reason with min_delta")

at = run_hook(history(plateau, "val_loss"), {patience = 1})
eq(at, 8, "early_stop patience 1")

local acc = {0.2, 0.3, 0.4, 0.45, 0.45, 0.44, 0.46, 0.46, 0.45, 0.44, 0.43}
at, why = run_hook(history(acc, "val_acc"), {monitor = "val_acc", patience = 3})
eq(at, 10, "early_stop val_acc (max): best 0.46 at epoch 7")
eq(why, "val_acc did not improve for 3 epochs (best 0.4600 at epoch 7)",
  "early_stop val_acc reason")

at = run_hook(history(acc, "val_acc"), {monitor = "val_acc", mode = "min", patience = 2})
eq(at, 3, "early_stop val_acc with mode min")

at, why = run_hook(history({2, 1.9, 1.8, 1.7, 1.6, 1.5}, "train_loss"),
  {monitor = "train_loss", patience = 1})
check(at == nil and why == nil, "early_stop: an improving train_loss never stops")

local nan = {1.0, 0.9, 0 / 0, 0 / 0, 0.95}
at = run_hook(history(nan, "val_loss"), {patience = 3})
eq(at, 5, "early_stop: NaN epochs count as not improving")

-- A resumed run: a fresh state, first called after epoch 9 with the history of epochs 1..9.
at, why = run_hook(history(plateau, "val_loss"), {patience = 5, min_delta = 0.001}, nil, 9)
eq(at, 12, "early_stop resumed at epoch 9 replays the history")

-- No validation split.
local noval = history({1, 2, 3}, "val_loss")
for _, r in ipairs(noval) do r.val_loss, r.val_acc = nil, nil end
at, why = run_hook(noval, {}, {data = {val_split = 0}})
check(at == nil and tostring(why):find("no validation split", 1, true)
  and tostring(why):find("data.val_split: 0", 1, true),
  "early_stop without validation: a clear error, got " .. tostring(why))
local env = load_hook("early_stop.lua")
local ok, err = pcall(env.on_epoch_end, {history = {noval[1], noval[2]}, args = {},
  config = {data = {val_split = 0}}}, noval[2])
check(not ok and tostring(err):find("epoch 2's metrics", 1, true),
  "early_stop without validation names the epoch, got " .. tostring(err))

-- Bad args.
for _, case in ipairs({
    {{patience = 0}, "args.patience must be an integer >= 1, got 0"},
    {{patience = 2.5}, "args.patience must be an integer >= 1, got 2.5"},
    {{min_delta = -1}, "args.min_delta must be a number >= 0, got -1"},
    {{monitor = "loss"}, "args.monitor must be one of train_acc, train_loss, val_acc, val_loss"},
    {{mode = "up"}, 'args.mode must be min or max, got "up"'},
    {{patiense = 3}, "unknown arg 'patiense'"}}) do
  at, why = run_hook(history(plateau, "val_loss"), case[1])
  check(at == nil and tostring(why):find(case[2], 1, true),
    string.format("early_stop bad args: expected '%s', got %s", case[2], tostring(why)))
end
at = run_hook(history(plateau, "val_loss"), {patience = 5.0})
eq(at, 16, "early_stop: patience 5.0 reads as 5")

--------------------------------------------------------------------------------------------------
-- sweep_report.lua: corner cases (the page itself is checked by tests/test_sweep_report.c)

local function sweep_page(sweep)
  local env = load_hook("sweep_report.lua")
  local written = {}
  env.runner.write = function(path, text) written[path] = text end
  local ok, err = pcall(env.on_sweep, sweep)
  if not ok then return nil, err end
  return written["sweep.html"]
end

local function point(name, status, values, extra)
  local p = {name = name, status = status, run_dir = "/nonexistent/runs/" .. name,
    values = values or {}, text = {}, history = {}}
  for k, v in pairs(p.values) do p.text[k] = tostring(v) end
  for k, v in pairs(extra or {}) do p[k] = v end
  return p
end

local text, err = sweep_page({name = "empty", dir = "/tmp/empty", keys = {}, points = {},
  finished = true})
check(text and text:find("The sweep has no points.", 1, true), "sweep_report: no points: "
  .. tostring(err))

text, err = sweep_page({name = "waiting", dir = "/tmp/w", keys = {"optimizer.lr"},
  finished = false, points = {point("lr=0.1", "pending", {["optimizer.lr"] = 0.1}),
    point("lr=0.01", "running", {["optimizer.lr"] = 0.01})}})
check(text and text:find("No point has finished yet.", 1, true)
  and text:find('http-equiv="refresh"', 1, true), "sweep_report: nothing done yet: "
  .. tostring(err))
check(text and not text:find('data-best="true"', 1, true), "sweep_report: no best point yet")

local function done(name, values, acc)
  return point(name, "done", values, {summary = {best_val_acc = acc, test_acc = acc - 0.01,
    seconds = 10, train_img_per_s = 100}, history = {{epoch = 1, val_acc = acc}}})
end
text, err = sweep_page({name = "zero", dir = "/tmp/z", keys = {"optimizer.lr", "optimizer.type"},
  finished = true, points = {
    done("a", {["optimizer.lr"] = 0, ["optimizer.type"] = "sgd"}, 0.5),
    done("b", {["optimizer.lr"] = 0.01, ["optimizer.type"] = "adamw"}, 0.7),
    done("c", {["optimizer.lr"] = 0.1, ["optimizer.type"] = "sgd"}, 0.7)}})
check(text and text:find('id="chart%-vs%-optimizer%-lr"[^>]*data%-log%-x="false"'),
  "sweep_report: lr = 0 makes a linear axis: " .. tostring(err))
check(text and not text:find("chart-vs-optimizer-type", 1, true),
  "sweep_report: no chart against a key of words")
check(text and text:find('<p id="best" class="lead" data-metric="best_val_acc" data-point="b"',
  1, true), "sweep_report: a tie goes to the earlier point")
check(text and text:find('data-sort="text" scope="col" title="optimizer.type"', 1, true),
  "sweep_report: a key of words sorts as text")

--------------------------------------------------------------------------------------------------

if failures > 0 then
  print(string.format("%d of %d checks failed", failures, checks))
  os.exit(1)
end
print(string.format("hook libraries, early_stop.lua and sweep_report.lua: %d checks ok", checks))
