-- sweep_report.lua: writes sweep.html in a sweep directory, one self-contained page comparing
-- the sweep's points (charts as inline SVG, no network, readable without JavaScript, printable
-- on A4), in the visual language of report.lua (lib/page.lua). The sweep calls on_sweep(sweep)
-- after every point ends and at its end (hooks_sweep_report in runner/hooks_sweep.c, the table
-- in hooks/README.md, "Sweep reports"); the page refreshes itself every 30 seconds until no
-- point is pending or running. Covered by tests/test_sweep_report.c, which builds sweeps and
-- checks the page with tests/test_sweep_report.py, and tests/test_lua_hooks.lua (corner cases).
--
-- The best point: the done point with the highest best_val_acc in its summary.json; when no
-- done point has one (no validation split), the highest test_acc. Ties go to the earlier point.
--
-- Structure (what the tests read):
--   <html data-state="finished|running">
--   <meta http-equiv="refresh" content="30">        only while a point is pending or running
--   <p id="best" data-point="NAME" data-metric="best_val_acc|test_acc" data-value="0.851">
--     "Best: lr=3e-4 — 85.1% validation accuracy (test 84.6%)" (fmt.percent: %.1f and "%";
--     "Best so far:" while points are to run);
--     without data-point while no point is done
--   <table id="points">   one <tr data-point="NAME" data-status="STATUS" data-best="true|false"
--     data-run-dir="runs/NAME"> per point, in the sweep's order; in it
--       <td data-key="KEY" data-value="V"> per swept key (V typed: a number when it is one),
--       <td data-key="best_val_acc|final_val_acc|test_acc|seconds|img_per_s" data-value="X">:
--         summary.json's figure (train_img_per_s for img_per_s); a point without summary.json
--         shows its figures so far from metrics.jsonl with class="partial", and no data-value,
--       <a class="report" href="runs/NAME/report.html"> when that file exists (the only links
--         that leave the page)
--   <svg class="chart" id="chart-val-acc">  validation accuracy (%) per epoch, one
--     <polyline class="series" data-series="NAME" data-points="N"> per point that did not fail
--     and has metrics.jsonl lines with val_acc (N of them); id="chart-train-acc" with train_acc
--     when no point has validation; <ul class="legend" id="legend-acc"> names every line
--   <figure class="vs" data-key="KEY"> <svg class="chart" id="chart-vs-KEY'"> per swept key
--     whose values are all numbers (at least two of them different), KEY' being KEY with every
--     character outside [A-Za-z0-9_-] replaced by "-"; data-log-x="true" when the values are
--     all positive and the key's last component is lr or ends in _lr, or they span more than a
--     factor 20, else "false"; one <g class="point" data-point="NAME" data-metric="best_val_acc|
--     test_acc" data-x="V" data-y="Y"> per done point and figure it has (Y in %)
--   <ul id="unfinished">  one <li data-point="NAME" data-status="failed|interrupted"> per point
--     that failed or was interrupted, with the last error line of its log
--
-- Colours: one per point (lib/colour.lua's categories, by the point's place in the sweep, so a
-- point keeps its colour as the sweep goes on), the same in the table, the curves and their
-- legend; the best point's curve is drawn thicker.

local html = require "lib.html"
local page = require "lib.page"
local svg = require "lib.svg"
local fmt = require "lib.fmt"
local colour = require "lib.colour"

local REFRESH_SECONDS = page.REFRESH_SECONDS

-- The validation and test series' colours, as report.lua draws them.
local VAL_COLOUR, TEST_COLOUR = colour.category(2), "#52606d"

local STATUS_TEXT = {done = "done", running = "running", pending = "pending", failed = "failed",
  interrupted = "interrupted"}

-- Extra style for this page; the rest is lib/page.lua's.
local CSS = [[
p.lead{font-size:19px;margin:22px 0 18px;line-height:1.4}
p.lead b{font-weight:650}
p.lead .value{color:var(--accent);font-weight:650}
.status{display:inline-block;padding:0 8px;border-radius:999px;font-size:12px;font-weight:600;
border:1px solid currentColor;-webkit-print-color-adjust:exact;print-color-adjust:exact}
.status.done{color:var(--good);background:#eef7f1}
.status.running{color:var(--accent);background:#eef3fa}
.status.pending{color:var(--muted);background:var(--soft)}
.status.failed{color:var(--bad);background:#fbeeee}
.status.interrupted{color:#9a5b00;background:#fdf4e6}
.badge.running{color:var(--accent);background:#eef3fa}
table.data tr.best td{background:#f1f7f3;-webkit-print-color-adjust:exact;
print-color-adjust:exact}
table.data tr.best td:first-child{box-shadow:inset 3px 0 0 var(--good)}
table.data td.partial{color:var(--muted);font-style:italic}
#points th,#points td{padding:5px 7px}
#points thead th{white-space:normal}
#points td.point{font-weight:500;font-size:13px}
table.data td.point .star{color:var(--good);margin-left:4px}
table.data .early{color:#9a5b00;font-size:12px;margin-left:4px;cursor:help}
table.data tr.failed td,table.data tr.pending td{color:var(--muted)}
ul.legend{list-style:none;margin:6px 0 0;padding:0;display:flex;flex-wrap:wrap;gap:2px 16px;
font-size:13px}
ul.legend li{white-space:nowrap}
ul.legend li.best{font-weight:600}
ul.legend .line{display:inline-block;width:18px;height:0;border-top:3px solid;margin-right:6px;
vertical-align:4px;-webkit-print-color-adjust:exact;print-color-adjust:exact}
ul.legend .line.thin{border-top-width:2px}
ul.legend .line.dash{border-top-style:dashed}
figure.wide{margin:0}
figure.wide svg.chart{max-height:480px}
figure.wide figcaption{font-size:13px;color:var(--muted);margin-top:4px}
#versus .charts{grid-template-columns:repeat(2,minmax(0,1fr))}
@media screen and (max-width:760px){#versus .charts{grid-template-columns:1fr}}
ul.unfinished{margin:0;padding:0;list-style:none}
ul.unfinished li{padding:8px 0;border-bottom:1px solid var(--line)}
ul.unfinished code{display:block;margin-top:4px;color:var(--bad);white-space:pre-wrap;
overflow-wrap:anywhere}
ul.unfinished li[data-status=interrupted] code{color:#9a5b00}
dl.setup{display:grid;grid-template-columns:max-content 1fr;gap:4px 18px;margin:0;font-size:14px}
dl.setup dt{color:var(--muted)}
dl.setup dd{margin:0;overflow-wrap:anywhere}
]]

--------------------------------------------------------------------------------------------------
-- Small helpers

local function short_labels(keys)
  local last, count, labels = {}, {}, {}
  for i, key in ipairs(keys) do
    last[i] = key:match("([^.]+)$") or key
    count[last[i]] = (count[last[i]] or 0) + 1
  end
  for i, key in ipairs(keys) do
    labels[key] = count[last[i]] > 1 and key or last[i]
  end
  return labels
end

-- "runs/lr=3e-4/report.html" as a relative URL: every byte but letters, digits and -._~/=,+
-- percent-encoded.
local function url_path(path)
  return (path:gsub("[^%w%-%._~/=,+]", function(c) return string.format("%%%02X", c:byte()) end))
end

-- The chart id of a swept key: "optimizer.lr" -> "chart-vs-optimizer-lr".
local function vs_id(key)
  return "chart-vs-" .. key:gsub("[^%w_%-]", "-")
end

-- text escaped, with a line break allowed after every "_" and ",".
local function breakable(b, text)
  b:raw((html.escape(text):gsub("([_,])", "%1<wbr>")))
  return b
end

local function exists(path)
  local f = io.open(path, "r")
  if not f then return false end
  f:close()
  return true
end

-- The last error line of a log (its last 8 KiB): the last line saying "error", else the last
-- line that is not the sweep's own "sweep: ..." outcome; and that outcome line.
local function log_reason(path)
  local f = path and io.open(path, "r")
  if not f then return nil end
  local size = f:seek("end")
  f:seek("set", math.max(0, size - 8192))
  local text = f:read("a") or ""
  f:close()
  local last, err, outcome
  for line in text:gmatch("[^\r\n]+") do
    line = line:gsub("%s+$", "")
    if line:match("^sweep: ") then
      outcome = line
    elseif line ~= "" then
      last = line
      if line:lower():find("error", 1, true) then err = line end
    end
  end
  return err or last, outcome
end

local function mean(list)
  if #list == 0 then return nil end
  local s = 0
  for _, v in ipairs(list) do s = s + v end
  return s / #list
end

--------------------------------------------------------------------------------------------------
-- The figures

-- Per point: its label, colour, figures (from summary.json, else so far from metrics.jsonl).
local function point_facts(sweep, labels, metric)
  local facts = {}
  for i, p in ipairs(sweep.points) do
    local parts = {}
    for _, key in ipairs(sweep.keys) do
      if p.text[key] ~= nil then parts[#parts + 1] = labels[key] .. "=" .. p.text[key] end
    end
    local h = p.history or {}
    local f = {
      p = p, index = i, colour = colour.category(i),
      label = #parts > 0 and table.concat(parts, ", ") or p.name,
      summary = p.summary, epochs = #h, curve = {},
    }
    local s = p.summary
    if s then
      f.best_val_acc, f.final_val_acc, f.test_acc = s.best_val_acc, s.final_val_acc, s.test_acc
      f.seconds, f.img_per_s, f.stopped = s.seconds, s.train_img_per_s, s.stopped
      f.epochs = s.epochs or f.epochs
    else
      local secs, ips = 0, {}
      for _, row in ipairs(h) do
        if row.val_acc ~= nil and (f.best_val_acc == nil or row.val_acc > f.best_val_acc) then
          f.best_val_acc = row.val_acc
        end
        secs = secs + (row.seconds or 0)
        if row.img_per_s then ips[#ips + 1] = row.img_per_s end
      end
      f.final_val_acc = h[#h] and h[#h].val_acc
      if #h > 0 then f.seconds, f.img_per_s = secs, mean(ips) end
      f.partial = true
    end
    if p.status ~= "failed" then
      for _, row in ipairs(h) do
        if row[metric] ~= nil and row.epoch ~= nil then
          f.curve[#f.curve + 1] = {row.epoch, row[metric] * 100}
        end
      end
    end
    facts[i] = f
  end
  return facts
end

-- The best done point's facts, and the figure it is best by ("best_val_acc" or "test_acc").
local function best_point(facts)
  for _, key in ipairs({"best_val_acc", "test_acc"}) do
    local best
    for _, f in ipairs(facts) do
      if f.p.status == "done" and f.summary and f[key] ~= nil
          and (best == nil or f[key] > best[key]) then
        best = f
      end
    end
    if best then return best, key end
  end
  return nil
end

--------------------------------------------------------------------------------------------------
-- Sections

local function counts_of(sweep)
  local c = {done = 0, running = 0, pending = 0, failed = 0, interrupted = 0}
  for _, p in ipairs(sweep.points) do c[p.status] = (c[p.status] or 0) + 1 end
  return c
end

-- "N status" for each of the statuses (in that order) that some point has, joined by sep.
local function counts_text(c, statuses, sep)
  local parts = {}
  for _, st in ipairs(statuses) do
    if (c[st] or 0) > 0 then parts[#parts + 1] = string.format("%d %s", c[st], st) end
  end
  return table.concat(parts, sep)
end

local function header(b, sweep, state, counts, has_vs, unfinished)
  local toc = {{"summary", "Summary"}, {"points-section", "Points"}, {"curves", "Curves"}}
  if has_vs then toc[#toc + 1] = {"versus", "Accuracy against the swept values"} end
  if unfinished then toc[#toc + 1] = {"unfinished-section", "Did not finish"} end
  toc[#toc + 1] = {"setup", "Setup"}
  page.header(b, {
    title = sweep.name or "sweep",
    badge = {class = state, text = state == "finished" and "finished" or "in progress"},
    meta = {
      {"points", string.format("%d (%s)", #sweep.points,
        counts_text(counts, {"done", "running", "pending", "interrupted", "failed"}, ", "))},
      {"base", sweep.base},
      {"directory", sweep.dir},
    },
    toc = toc,
  })
  if state == "running" then
    b:tag("p", {class = "notice"}, string.format("In progress: %d of %d points done. This page "
      .. "refreshes every %d seconds.", counts.done, #sweep.points, REFRESH_SECONDS))
  end
end

local function headline(b, best, by, facts, finished)
  if not best then
    b:tag("p", {id = "best", class = "lead"}, #facts == 0 and "The sweep has no points."
      or "No point has finished yet.")
    return
  end
  b:open("p", {id = "best", class = "lead", ["data-point"] = best.p.name, ["data-metric"] = by,
    ["data-value"] = best[by]})
  b:text(finished and "Best: " or "Best so far: "):tag("b", nil, best.label):text(" \u{2014} ")
  if by == "best_val_acc" then
    b:tag("span", {class = "value"}, fmt.percent(best.best_val_acc))
    b:text(" validation accuracy")
    if best.test_acc then b:text(" (test " .. fmt.percent(best.test_acc) .. ")") end
  else
    b:tag("span", {class = "value"}, fmt.percent(best.test_acc))
    b:text(" test accuracy (no validation split)")
  end
  b:close("p")
end

local function summary_section(b, sweep, facts, best, by, counts)
  b:open("section", {id = "summary"})
  b:tag("h2", nil, "Summary")
  headline(b, best, by, facts, sweep.finished)
  b:open("div", {class = "headline"})
  local done = {}
  for _, f in ipairs(facts) do
    if f.p.status == "done" and f.summary then done[#done + 1] = f end
  end
  if best then
    page.card(b, by == "best_val_acc" and "Best val accuracy" or "Best test accuracy",
      fmt.percent(best[by]), best.label, {primary = true})
  else
    page.card(b, "Best accuracy", fmt.MISSING, "when a point is done", {primary = true})
  end
  local n = #sweep.points
  local rest = counts_text(counts, {"running", "pending", "interrupted", "failed"}, " \u{00b7} ")
  page.card(b, "Points done", string.format("%d / %d", counts.done, n),
    rest ~= "" and rest or "all done",
    {progress = n > 0 and counts.done / n or nil})
  if by == "test_acc" then
    local h = best.p.history or {}
    page.card(b, "Train accuracy", fmt.percent(h[#h] and h[#h].train_acc),
      "the best point's last epoch")
  else
    page.card(b, "Test accuracy", fmt.percent(best and best.test_acc),
      best and "of the best point" or "of the best point, when one is done")
  end

  local lo, hi, second
  for _, f in ipairs(done) do
    local v = by and f[by]
    if v ~= nil then
      lo = lo and math.min(lo, v) or v
      hi = hi and math.max(hi, v) or v
      if f ~= best and (second == nil or v > second[by]) then second = f end
    end
  end
  page.card(b, "Runner-up", second and fmt.percent(second[by]) or fmt.MISSING,
    second and string.format("%s (%s points)", second.label,
      (string.format("%.1f", (second[by] - best[by]) * 100):gsub("^%-", "\u{2212}")))
      or "when two points are done")
  page.card(b, "Range", (lo and hi) and string.format("%s \u{2013} %s",
      fmt.percent(lo), fmt.percent(hi)) or fmt.MISSING,
    by == "test_acc" and "test accuracy of the done points"
      or "best val accuracy of the done points")
  local total, ips, done_seconds = 0, {}, {}
  for _, f in ipairs(facts) do
    total = total + (f.seconds or 0)
  end
  for _, f in ipairs(done) do
    done_seconds[#done_seconds + 1] = f.seconds or 0
    if f.img_per_s then ips[#ips + 1] = f.img_per_s end
  end
  page.card(b, "Time", fmt.duration(total), #done > 0
    and string.format("%s per done point", fmt.duration(mean(done_seconds)))
    or "all points together")
  page.card(b, "Throughput", #ips > 0 and (fmt.thousands(mean(ips)) .. " img/s") or fmt.MISSING,
    "training, mean of the done points")
  b:close("div")
  b:close("section")
end

local function figure_cell(b, f, key, text)
  local partial = f.partial and f[key] ~= nil
  b:tag("td", {["data-key"] = key, ["data-value"] = (not f.partial) and f[key] or nil,
    class = partial and "partial" or nil,
    title = partial and "so far, from metrics.jsonl (the point has no summary.json)" or nil},
    text)
end

local function points_section(b, sweep, facts, best, labels)
  b:open("section", {id = "points-section", class = "flow"})
  b:tag("h2", nil, "Points")
  b:open("div", {class = "scroll"})
  b:open("table", {id = "points", class = "data sortable"})
  b:open("thead"):open("tr")
  b:tag("th", {["data-sort"] = "text", scope = "col"}, "point")
  for _, key in ipairs(sweep.keys) do
    local numeric = true
    for _, p in ipairs(sweep.points) do
      if p.values[key] ~= nil and type(p.values[key]) ~= "number" then numeric = false end
    end
    b:open("th", {["data-sort"] = numeric and "number" or "text", scope = "col", title = key})
    breakable(b, labels[key]):close("th")
  end
  for _, hd in ipairs({{"status", "text", "text"}, {"best val", "number"},
      {"final val", "number"}, {"test", "number"}, {"epochs", "number"}, {"time", "number"},
      {"img/s", "number"}, {"report"}}) do
    b:tag("th", {["data-sort"] = hd[2], scope = "col", class = hd[3]}, hd[1])
  end
  b:close("tr"):close("thead")
  b:open("tbody")
  for _, f in ipairs(facts) do
    local p = f.p
    local is_best = best == f
    local classes = {}
    if is_best then classes[#classes + 1] = "best" end
    if p.status == "failed" or p.status == "pending" then classes[#classes + 1] = p.status end
    b:open("tr", {["data-point"] = p.name, ["data-status"] = p.status,
      ["data-best"] = is_best and "true" or "false", ["data-run-dir"] = p.run_dir,
      class = #classes > 0 and table.concat(classes, " ") or nil})
    b:open("td", {class = "point text", ["data-value"] = string.format("%05d", f.index)})
    b:void("span", {class = "swatch", style = "background:" .. f.colour}):close("span")
    b:text(p.name)
    if is_best then b:tag("span", {class = "star", title = "the best point"}, "\u{2605}") end
    b:close("td")
    for _, key in ipairs(sweep.keys) do
      b:tag("td", {["data-key"] = key, ["data-value"] = p.values[key]}, p.text[key] or fmt.MISSING)
    end
    b:open("td", {class = "text", ["data-value"] = p.status})
    b:tag("span", {class = "status " .. p.status}, STATUS_TEXT[p.status] or p.status)
    if f.stopped then
      b:tag("span", {class = "early", title = "stopped early: " .. f.stopped}, "early stop")
    end
    b:close("td")
    figure_cell(b, f, "best_val_acc", fmt.percent(f.best_val_acc))
    figure_cell(b, f, "final_val_acc", fmt.percent(f.final_val_acc))
    figure_cell(b, f, "test_acc", fmt.percent(f.test_acc))
    b:tag("td", {["data-value"] = f.epochs}, (f.epochs > 0 or f.summary) and f.epochs
      or fmt.MISSING)
    figure_cell(b, f, "seconds", fmt.duration(f.seconds))
    figure_cell(b, f, "img_per_s", fmt.thousands(f.img_per_s))
    local report = p.run_dir and (p.run_dir .. "/report.html")
    if report and exists(report) then
      b:open("td"):tag("a", {class = "report", href = url_path(report)}, "report"):close("td")
    else
      b:tag("td", {class = "muted"}, fmt.MISSING)
    end
    b:close("tr")
  end
  b:close("tbody"):close("table"):close("div")
  b:tag("p", {class = "muted"}, "Accuracies are summary.json's (italic: so far, from "
    .. "metrics.jsonl, for a point that has not finished). Click a column's title to sort by it."
    .. (best and " \u{2605} marks the best point." or ""))
  b:close("section")
end

local function legend(b, id, items)
  b:open("ul", {class = "legend", id = id})
  for _, it in ipairs(items) do
    b:open("li", {["data-series"] = it.key, class = it.best and "best" or nil})
    b:void("span", {class = "line" .. (it.thin and " thin" or "") .. (it.dash and " dash" or ""),
      style = "border-top-color:" .. it.colour}):close("span")
    b:text(it.label)
    b:close("li")
  end
  b:close("ul")
end

local function curves_section(b, facts, best, metric)
  b:open("section", {id = "curves"})
  b:tag("h2", nil, "Curves")
  local series, items = {}, {}
  -- The best point last, so its line lies on top.
  local order = {}
  for _, f in ipairs(facts) do
    if f ~= best then order[#order + 1] = f end
  end
  if best then order[#order + 1] = best end
  for _, f in ipairs(order) do
    if #f.curve > 0 then
      series[#series + 1] = {key = f.p.name, label = f.label, colour = f.colour, points = f.curve,
        width = f == best and 3.2 or 1.8, dash = f.p.status == "interrupted",
        format = function(v) return fmt.percent(v / 100) end}
    end
  end
  for _, f in ipairs(facts) do
    if #f.curve > 0 then
      items[#items + 1] = {key = f.p.name, colour = f.colour, best = f == best,
        thin = f ~= best, dash = f.p.status == "interrupted",
        label = f.label .. (f == best and " \u{2605}" or "")
          .. ((f.p.status ~= "done") and (" (" .. f.p.status .. ")") or "")}
    end
  end
  b:open("figure", {class = "wide"})
  b:raw(svg.line_chart{
    id = metric == "val_acc" and "chart-val-acc" or "chart-train-acc",
    title = (metric == "val_acc" and "Validation" or "Train") .. " accuracy per epoch",
    x_label = "epoch", y_label = "accuracy (%)", x_name = "epoch", x_integer = true,
    x_tight = true, legend = false, width = 900, height = 380, series = series,
    marker_radius = #series > 4 and 2.2 or nil,
  })
  if #items > 0 then legend(b, "legend-acc", items) end
  local notes = {}
  if metric ~= "val_acc" then notes[#notes + 1] = "No point has a validation split: train "
    .. "accuracy (augmented batches) instead." end
  notes[#notes + 1] = "One line per point that has finished an epoch (failed points are left "
    .. "out); the best point's is thicker, an interrupted point's dashed."
  b:tag("figcaption", nil, table.concat(notes, " "))
  b:close("figure")
  b:close("section")
end

-- The swept keys whose values are all numbers, at least two of them different.
local function numeric_keys(sweep)
  local out = {}
  for _, key in ipairs(sweep.keys) do
    local numeric, seen, distinct = true, {}, 0
    local lo, hi
    for _, p in ipairs(sweep.points) do
      local v = p.values[key]
      if v ~= nil then
        if type(v) ~= "number" then numeric = false break end
        if not seen[v] then seen[v], distinct = true, distinct + 1 end
        lo = lo and math.min(lo, v) or v
        hi = hi and math.max(hi, v) or v
      end
    end
    if numeric and distinct >= 2 then
      local last = key:match("([^.]+)$") or key
      local log = lo > 0 and (last == "lr" or last:match("_lr$") ~= nil or hi / lo > 20)
      out[#out + 1] = {key = key, log = log, integer = true}
      for _, p in ipairs(sweep.points) do
        local v = p.values[key]
        if v ~= nil and math.type(v) ~= "integer" then out[#out].integer = false end
      end
    end
  end
  return out
end

local function vs_chart(b, sweep, facts, best, by, k, labels)
  local key = k.key
  -- Points grouped by the values of the other swept keys: one line each.
  local groups, order = {}, {}
  for _, f in ipairs(facts) do
    local x = f.p.values[key]
    if f.p.status == "done" and f.summary and x ~= nil then
      local parts = {}
      for _, other in ipairs(sweep.keys) do
        if other ~= key and f.p.text[other] ~= nil then
          parts[#parts + 1] = labels[other] .. "=" .. f.p.text[other]
        end
      end
      local g = table.concat(parts, ", ")
      if not groups[g] then
        groups[g] = {label = g, points = {}}
        order[#order + 1] = groups[g]
      end
      table.insert(groups[g].points, f)
    end
  end
  local many = #order > 1
  local series, items = {}, {}
  for gi, g in ipairs(order) do
    table.sort(g.points, function(a, c) return a.p.values[key] < c.p.values[key] end)
    local col = many and colour.category(gi) or nil
    for _, m in ipairs({{"best_val_acc", "best val", VAL_COLOUR, "square", false},
        {"test_acc", "test", TEST_COLOUR, "circle", true}}) do
      local pts = {}
      for _, f in ipairs(g.points) do
        local v = f[m[1]]
        if v ~= nil then
          pts[#pts + 1] = {f.p.values[key], v * 100,
            tip = string.format("%s: %s %s", f.label, m[2], fmt.percent(v)),
            attrs = {["data-point"] = f.p.name, ["data-metric"] = m[1],
              ["data-x"] = f.p.values[key], ["data-y"] = v * 100}}
        end
      end
      if #pts > 0 then
        local skey = m[1] .. (many and (":" .. g.label) or "")
        series[#series + 1] = {key = skey, label = many and (m[2] .. ", " .. g.label) or m[2],
          colour = col or m[3], marker = m[4], dash = m[5], points = pts,
          format = function(v) return fmt.percent(v / 100) end}
        if many and m[1] == "best_val_acc" then
          items[#items + 1] = {key = g.label, colour = col, label = g.label}
        end
      end
    end
  end
  local vlines = {}
  if best and best.p.values[key] ~= nil then
    vlines[1] = {x = best.p.values[key], label = "best", top = true}
  end
  local label = labels[key]
  b:open("figure", {class = "vs", ["data-key"] = key})
  b:raw(svg.line_chart{
    id = vs_id(key), title = string.format("Accuracy against %s", label),
    x_label = key .. (k.log and " (log scale)" or ""), y_label = "accuracy (%)", x_name = label,
    log_x = k.log, x_integer = (not k.log) and k.integer or nil, x_tight = true,
    legend = not many, series = series, vlines = vlines,
  })
  if many then
    legend(b, "legend-" .. vs_id(key), items)
  end
  local caption = string.format("The final figures of each done point against %s: best "
    .. "validation accuracy (solid) and test accuracy (dashed).", key)
  if many then
    caption = caption .. " One colour per combination of the other swept values."
  end
  b:tag("figcaption", nil, caption)
  b:close("figure")
end

local function versus_section(b, sweep, facts, best, by, keys, labels)
  b:open("section", {id = "versus", class = "flow"})
  b:tag("h2", nil, "Accuracy against the swept values")
  b:open("div", {class = "charts"})
  for _, k in ipairs(keys) do vs_chart(b, sweep, facts, best, by, k, labels) end
  b:close("div")
  b:close("section")
end

local function unfinished_section(b, list)
  b:open("section", {id = "unfinished-section"})
  b:tag("h2", nil, "Did not finish")
  b:open("ul", {id = "unfinished", class = "unfinished"})
  for _, f in ipairs(list) do
    local p = f.p
    local reason, outcome = log_reason(p.log)
    if not reason and p.run_dir then reason, outcome = log_reason(p.run_dir .. "/run.log") end
    if p.error then reason = p.error end
    b:open("li", {["data-point"] = p.name, ["data-status"] = p.status})
    b:void("span", {class = "swatch", style = "background:" .. f.colour}):close("span")
    b:tag("b", nil, p.name):text(" ")
    b:tag("span", {class = "status " .. p.status}, STATUS_TEXT[p.status] or p.status)
    local done = f.epochs > 0 and string.format(" after %d epoch%s", f.epochs,
      f.epochs == 1 and "" or "s") or " before its first epoch"
    b:tag("span", {class = "muted"}, done .. (outcome and (" \u{00b7} " .. outcome) or "")
      .. (p.log and (" \u{00b7} log: " .. p.log) or ""))
    if reason then b:tag("code", nil, reason) end
    b:close("li")
  end
  b:close("ul")
  b:tag("p", {class = "muted"}, "Failed points have no curve. The sweep runs an unfinished point "
    .. "again when it is started again (an interrupted one resumes from its checkpoint).")
  b:close("section")
end

local function setup_section(b, sweep, labels)
  b:open("section", {id = "setup"})
  b:tag("h2", nil, "Setup")
  b:open("dl", {class = "setup"})
  if sweep.base then b:tag("dt", nil, "base experiment"):tag("dd", nil, sweep.base) end
  for _, key in ipairs(sweep.keys) do
    local seen, values = {}, {}
    for _, p in ipairs(sweep.points) do
      local t = p.text[key]
      if t ~= nil and not seen[t] then
        seen[t] = true
        values[#values + 1] = t
      end
    end
    b:tag("dt", nil, key):tag("dd", nil, table.concat(values, ", "))
  end
  b:tag("dt", nil, "directory"):tag("dd", nil, sweep.dir)
  b:tag("dt", nil, "files"):tag("dd", nil, "runs/<point>/ (each a run directory with its own "
    .. "report.html), sweep.csv (this table as CSV)")
  b:close("dl")
  b:close("section")
end

--------------------------------------------------------------------------------------------------
-- The page

local function render(sweep)
  sweep.keys = sweep.keys or {}
  sweep.points = sweep.points or {}
  local labels = short_labels(sweep.keys)
  local metric = "train_acc"
  for _, p in ipairs(sweep.points) do
    for _, row in ipairs(p.history or {}) do
      if row.val_acc ~= nil then metric = "val_acc" end
    end
    if p.summary and p.summary.best_val_acc ~= nil then metric = "val_acc" end
  end
  local facts = point_facts(sweep, labels, metric)
  local best, by = best_point(facts)
  local counts = counts_of(sweep)
  local state = sweep.finished and "finished" or "running"
  local keys = numeric_keys(sweep)
  local unfinished = {}
  for _, f in ipairs(facts) do
    if f.p.status == "failed" or f.p.status == "interrupted" then
      unfinished[#unfinished + 1] = f
    end
  end

  local title = (sweep.name or "sweep") .. " \u{2013} "
  if best then
    title = title .. "best " .. best.label .. ", " .. fmt.percent(best[by])
  else
    title = title .. (state == "finished" and "no point done" or "in progress")
  end
  local b = html.builder()
  page.begin(b, {title = title, state = state, generator = "runner hooks/sweep_report.lua",
    css = CSS, refresh = state == "running" and REFRESH_SECONDS or nil})
  header(b, sweep, state, counts, #keys > 0, #unfinished > 0)
  summary_section(b, sweep, facts, best, by, counts)
  points_section(b, sweep, facts, best, labels)
  curves_section(b, facts, best, metric)
  if #keys > 0 then versus_section(b, sweep, facts, best, by, keys, labels) end
  if #unfinished > 0 then unfinished_section(b, unfinished) end
  setup_section(b, sweep, labels)
  page.finish(b, string.format("Written by hooks/sweep_report.lua on %s%s.",
    os.date("%Y-%m-%d %H:%M:%S"), state == "running" and string.format("; refreshes every %d "
    .. "seconds until every point has run", REFRESH_SECONDS) or ""))
  return b:result()
end

--------------------------------------------------------------------------------------------------
-- Hook function

function on_sweep(sweep)
  runner.write("sweep.html", render(sweep))
end
