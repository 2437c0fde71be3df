-- report.lua: writes report.html in the run directory, one self-contained page (images as data
-- URIs, charts as inline SVG, no network, readable without JavaScript, printable on A4).
-- on_start writes a page saying the run started, on_epoch_end refreshes it after every epoch
-- (with <meta http-equiv="refresh" content="30"> while the run is in progress), on_end writes
-- the final report. `runner report RUN_DIR` rewrites it from a finished run's files.
-- Covered by tests/test_report.py (structure) and tests/test_report_render.sh (drawing).
--
-- Structure (what the tests read):
--   <html data-state="started|running|finished|stopped">
--   <meta http-equiv="refresh" content="30">        only while the run is in progress
--   <span id="test-acc" data-value="0.291">29.1%</span>   fmt.percent(test_acc): %.1f and "%"
--                              (in progress: <span id="latest-acc"> with the last val_acc, or
--                              train_acc without a validation split)
--   <svg class="chart" id="chart-loss">  polylines data-series="train_loss", "val_loss"
--   <svg class="chart" id="chart-acc">   polylines data-series="train_acc", "val_acc" (in %)
--   <svg class="chart" id="chart-lr">    polyline data-series="lr"
--   <svg class="chart" id="chart-throughput">  polyline data-series="img_per_s"
--     each <polyline class="series" data-series="KEY" data-points="N" points="x,y ...">, N the
--     number of epochs with a value (a series without any, such as val_loss without a
--     validation split, is left out)
--   <table id="epochs">        one <tr data-epoch="E"> per epoch of run.history
--   <table id="confusion">     one <tr> per true class (row = true class, column = predicted);
--                              each cell <td data-count="N" data-true="T" data-predicted="P">
--   <table id="per-class">     one <tr data-class="NAME"> per class
--   <div id="samples-correct">, <div id="samples-wrong">: <figure class="sample-card"> each
--     with <img class="sample" src="data:image/png;base64,..."> (one per result.samples item)
--
-- Colours: train blue, validation orange, learning rate green, throughput purple, on every
-- chart; the confusion matrix shades each cell by its share of the true class.

local html = require "lib.html"
local page = require "lib.page"
local svg = require "lib.svg"
local fmt = require "lib.fmt"
local colour = require "lib.colour"

local REFRESH_SECONDS = page.REFRESH_SECONDS

local SERIES = {
  train = {colour = colour.category(1), marker = "circle", label = "train"},
  val = {colour = colour.category(2), marker = "square", dash = true, label = "validation"},
  lr = {colour = colour.category(3), marker = "diamond", label = "learning rate"},
  throughput = {colour = colour.category(4), marker = "circle", label = "img/s"},
  test = {colour = "#52606d"},
}

--------------------------------------------------------------------------------------------------
-- Small helpers

-- get(t, "a.b.c"): t.a.b.c, or nil where any step is missing or not a table.
local function get(t, path)
  for key in path:gmatch("[^.]+") do
    if type(t) ~= "table" then return nil end
    t = t[key]
  end
  return t
end

local function basename(path)
  return (tostring(path):gsub("^.*/", ""):gsub("%.ya?ml$", ""))
end

local function pct_format(v) return fmt.percent(v / 100, 1) end

local function read_binary(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local bytes = f:read("a")
  f:close()
  return bytes
end

-- The figures of an unfinished or finished run that several sections use.
local function facts(run, result)
  local h = run.history or {}
  local f = {
    epochs_done = #h,
    epochs_planned = run.epochs or get(run.config, "train.epochs"),
    has_val = false,
    train_seconds = 0,
  }
  for _, row in ipairs(h) do
    if row.val_loss ~= nil or row.val_acc ~= nil then f.has_val = true end
    f.train_seconds = f.train_seconds + (row.seconds or 0)
    if row.val_acc ~= nil and (f.best_val_acc == nil or row.val_acc > f.best_val_acc) then
      f.best_val_acc, f.best_epoch = row.val_acc, row.epoch
    end
  end
  if result and result.best_val_acc ~= nil then
    f.best_val_acc, f.best_epoch = result.best_val_acc, result.best_epoch
  end
  f.last = h[#h]
  return f
end

--------------------------------------------------------------------------------------------------
-- Page frame

-- What only this page needs beyond lib/page.lua's style sheet: the setup list, the
-- configuration, the confusion matrix and the sample images.
local CSS = [[
.setup{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:2px 28px;
margin:0;font-size:14px}
.setup div{display:flex;gap:10px;padding:4px 0;border-bottom:1px dotted var(--line)}
.setup dt{color:var(--muted);min-width:118px;flex:none}
.setup dd{margin:0;min-width:0;overflow-wrap:anywhere}
pre.config{background:var(--soft);border:1px solid var(--line);border-radius:8px;padding:12px 14px;
overflow:auto;max-height:640px;line-height:1.45;-webkit-print-color-adjust:exact;
print-color-adjust:exact}
.matrix-wrap{display:flex;flex-wrap:wrap;gap:16px 32px;align-items:flex-start}
table.heatmap{font-size:13px;-webkit-print-color-adjust:exact;print-color-adjust:exact}
table.heatmap td{width:54px;min-width:40px;height:38px;text-align:center;border:1px solid #fff;
padding:0 4px}
table.heatmap td.diag{font-weight:700;outline:1.5px solid #1f2933;outline-offset:-2px}
table.heatmap th{font-weight:500;color:var(--fg);font-size:13px}
table.heatmap tbody th{text-align:right;padding:0 10px 0 0;white-space:nowrap}
table.heatmap thead th.col{vertical-align:bottom;padding:0 0 6px;height:96px}
table.heatmap thead th.col span{writing-mode:vertical-rl;transform:rotate(180deg);
white-space:nowrap;display:inline-block}
table.heatmap th.axis{font-size:12px;text-transform:uppercase;letter-spacing:.05em;
color:var(--muted);font-weight:600;text-align:center}
table.heatmap th.axis-true{text-align:right;padding-right:10px;vertical-align:bottom}
.scale{font-size:12px;color:var(--muted);max-width:220px}
.scale .ramp{height:12px;width:200px;border-radius:2px;margin:6px 0 2px;
-webkit-print-color-adjust:exact;print-color-adjust:exact}
.scale .ends{display:flex;justify-content:space-between;width:200px}
.samples{display:grid;grid-template-columns:repeat(auto-fill,minmax(112px,1fr));gap:14px 10px}
.sample-card{margin:0;text-align:center;break-inside:avoid;page-break-inside:avoid}
img.sample{width:96px;height:96px;image-rendering:pixelated;image-rendering:crisp-edges;
display:block;margin:0 auto;border-radius:3px;border:3px solid var(--good)}
.sample-card.wrong img.sample{border-color:var(--bad)}
.sample-card figcaption{font-size:12px;line-height:1.35;margin-top:4px}
.sample-card .true{color:var(--muted)}
.sample-card .pred{font-weight:600;color:var(--good);overflow-wrap:anywhere}
.sample-card .conf{color:var(--muted);font-size:11px}
.sample-card.wrong .pred{color:var(--bad)}
.sample-card .missing{width:96px;height:96px;margin:0 auto;display:flex;align-items:center;
justify-content:center;border:1px dashed var(--faint);color:var(--muted);font-size:11px}
@media print{
pre.config{max-height:none;overflow:visible;white-space:pre-wrap}
.samples{grid-template-columns:repeat(6,1fr)}
}
]]

--------------------------------------------------------------------------------------------------
-- Sections

local function state_of(phase, run, result)
  if phase == "end" then
    return (result and result.stopped) and "stopped" or "finished"
  end
  return #(run.history or {}) == 0 and "started" or "running"
end

local STATE_TEXT = {started = "started", running = "in progress", finished = "finished",
  stopped = "stopped early"}

local function header(b, run, result, state, f)
  local toc = {{"training", "Training"}}
  if state ~= "started" then table.insert(toc, 1, {"summary", "Summary"}) end
  if result then
    toc[#toc + 1] = {"confusion-section", "Confusion matrix"}
    toc[#toc + 1] = {"per-class-section", "Per class"}
    toc[#toc + 1] = {"samples", "Samples"}
  end
  toc[#toc + 1] = {"setup", "Setup"}
  page.header(b, {
    title = run.name or "run",
    badge = {class = state, text = STATE_TEXT[state]},
    meta = {
      {"started", run.started},
      {"device", run.device},
      {"precision", run.precision},
      {"commit", run.commit},
      {"directory", run.dir},
    },
    toc = toc,
  })

  if state == "started" then
    b:tag("p", {class = "notice"}, string.format("The run started%s and has not finished an "
      .. "epoch yet. This page refreshes every %d seconds; the figures appear after the first "
      .. "epoch.", run.started and (" at " .. run.started) or "", REFRESH_SECONDS))
  elseif state == "running" then
    b:tag("p", {class = "notice"}, string.format("Training: epoch %d of %s finished. This "
      .. "page refreshes every %d seconds; the test results appear when the run ends.",
      f.epochs_done, tostring(f.epochs_planned or "?"), REFRESH_SECONDS))
  elseif state == "stopped" then
    b:open("p", {class = "notice stop"})
    b:tag("b", nil, "Training stopped early: "):text(result.stopped)
    b:close("p")
  end
end

local card = page.card

local function model_fact(run, result)
  local graph = get(run.config, "model.graph") or get(run.config, "model")
  local name = type(graph) == "string" and basename(graph) or nil
  local params = result and get(result, "summary.parameters")
  return name, params
end

local function model_card(b, run, result)
  local name, params = model_fact(run, result)
  card(b, "Model", name or fmt.MISSING,
    params and string.format("%s parameters", fmt.thousands(params)) or nil)
end

local function summary_section(b, run, result, state, f)
  b:open("section", {id = "summary"})
  b:tag("h2", nil, "Summary")
  b:open("div", {class = "headline"})
  local planned = f.epochs_planned
  if result then
    card(b, "Test accuracy", fmt.percent(result.test_acc),
      result.test_acc and string.format("%s test images",
        fmt.thousands(f.test_images or 0)) or "no test evaluation",
      {primary = true, id = "test-acc", data_value = result.test_acc})
    if f.has_val then
      card(b, "Best val accuracy", fmt.percent(f.best_val_acc),
        string.format("epoch %s · final %s", tostring(f.best_epoch or "?"),
          fmt.percent(result.final_val_acc or (f.last and f.last.val_acc))))
    else
      card(b, "Best val accuracy", fmt.MISSING, "no validation split")
    end
    card(b, "Test loss", fmt.fixed(result.test_loss), "macro F1 " .. fmt.fixed(result.macro_f1, 3))
    model_card(b, run, result)
    card(b, "Epochs", tostring(f.epochs_done),
      (result.stopped and "stopped early, " or "") .. "of " .. tostring(planned or "?")
        .. " planned" .. (f.epochs_done > 0 and (", " .. fmt.duration(f.train_seconds
        / f.epochs_done) .. " each") or ""))
    card(b, "Time", fmt.duration(result.seconds),
      fmt.duration(f.train_seconds) .. " of it training")
    card(b, "Throughput", fmt.thousands(result.train_img_per_s) .. " img/s",
      "training, on " .. tostring(run.device or "?"))
  else
    local last = f.last or {}
    if f.has_val then
      card(b, "Validation accuracy", fmt.percent(last.val_acc),
        last.epoch and string.format("epoch %d · best %s (epoch %s)", last.epoch,
          fmt.percent(f.best_val_acc), tostring(f.best_epoch)) or "after the first epoch",
        {primary = true, id = "latest-acc", data_value = last.val_acc})
    else
      card(b, "Train accuracy", fmt.percent(last.train_acc),
        last.epoch and string.format("epoch %d · no validation split", last.epoch)
          or "after the first epoch",
        {primary = true, id = "latest-acc", data_value = last.train_acc})
    end
    card(b, "Epoch", string.format("%d / %s", f.epochs_done, tostring(planned or "?")),
      (planned and planned > 0) and string.format("%.0f%% done", 100 * f.epochs_done / planned)
        or nil,
      {progress = planned and planned > 0 and f.epochs_done / planned or nil})
    card(b, "Train loss", fmt.fixed(last.train_loss), "accuracy " .. fmt.percent(last.train_acc))
    card(b, "Val loss", fmt.fixed(last.val_loss),
      f.has_val and ("accuracy " .. fmt.percent(last.val_acc)) or "no validation split")
    local eta
    if planned and f.epochs_done > 0 and planned > f.epochs_done then
      eta = f.train_seconds / f.epochs_done * (planned - f.epochs_done)
    end
    card(b, "Elapsed", fmt.duration(f.train_seconds),
      eta and ("about " .. fmt.duration(eta) .. " to go") or "training time")
    card(b, "Throughput", last.img_per_s and (fmt.thousands(last.img_per_s) .. " img/s")
      or fmt.MISSING, "last epoch, on " .. tostring(run.device or "?"))
    model_card(b, run, result)
  end
  b:close("div")
  b:close("section")
end

local function column(history, key, scale)
  local pts = {}
  for _, row in ipairs(history) do
    local v = row[key]
    if v ~= nil and row.epoch ~= nil then pts[#pts + 1] = {row.epoch, v * (scale or 1)} end
  end
  return pts
end

local function series(kind, key, history, scale, fmt_value)
  local s = SERIES[kind]
  return {key = key, label = s.label, colour = s.colour, marker = s.marker, dash = s.dash,
    points = column(history, key, scale), format = fmt_value}
end

local function training_section(b, run, result, f)
  local h = run.history or {}
  b:open("section", {id = "training", class = "flow"})
  b:tag("h2", nil, "Training")
  if #h == 0 then
    b:tag("p", {class = "muted"}, "No epoch has finished yet.")
    b:close("section")
    return
  end
  local loss_fmt = function(v) return string.format("%.4f", v) end
  local planned = f.epochs_planned
  local x_max = (result == nil and planned and planned <= 400) and planned or nil

  b:open("div", {class = "charts"})
  b:open("figure")
  b:raw(svg.line_chart{
    id = "chart-loss", title = "Loss", x_label = "epoch", y_label = "loss", x_name = "epoch",
    x_integer = true, x_tight = true, x_max = x_max,
    series = {series("train", "train_loss", h, 1, loss_fmt),
      series("val", "val_loss", h, 1, loss_fmt)},
  })
  b:tag("figcaption", nil, "Cross-entropy per epoch: train (mean over the epoch's batches, "
    .. "augmented)" .. (f.has_val and " and validation (after the epoch)." or
    "; no validation split."))
  b:close("figure")

  local vlines, hlines = {}, {}
  if f.best_epoch then vlines[1] = {x = f.best_epoch, label = "best val"} end
  if result and result.test_acc then
    hlines[1] = {y = result.test_acc * 100, label = "test " .. fmt.percent(result.test_acc),
      colour = SERIES.test.colour}
  end
  b:open("figure")
  b:raw(svg.line_chart{
    id = "chart-acc", title = "Accuracy", x_label = "epoch", y_label = "accuracy (%)",
    x_name = "epoch", x_integer = true, x_tight = true, x_max = x_max,
    series = {series("train", "train_acc", h, 100, pct_format),
      series("val", "val_acc", h, 100, pct_format)},
    vlines = vlines, hlines = hlines,
  })
  b:tag("figcaption", nil, "Top-1 accuracy per epoch" .. (result and result.test_acc
    and "; the dotted line is the final test accuracy." or "."))
  b:close("figure")

  b:open("figure")
  b:raw(svg.line_chart{
    id = "chart-lr", title = "Learning rate", x_label = "epoch", y_label = "learning rate",
    x_name = "epoch", x_integer = true, x_tight = true, x_max = x_max,
    series = {series("lr", "lr", h, 1, function(v) return string.format("%.4g", v) end)},
  })
  local schedule = get(run.config, "schedule.type")
  b:tag("figcaption", nil, "At the end of each epoch" .. (schedule and (" (" .. schedule
    .. " schedule).") or "."))
  b:close("figure")

  b:open("figure")
  b:raw(svg.line_chart{
    id = "chart-throughput", title = "Throughput", x_label = "epoch", y_label = "images / s",
    x_name = "epoch", x_integer = true, x_tight = true, x_max = x_max, y_min = 0,
    series = {series("throughput", "img_per_s", h, 1, function(v) return fmt.thousands(v) end)},
  })
  b:tag("figcaption", nil, string.format("Training images per second; %s of training in all.",
    fmt.duration(f.train_seconds)))
  b:close("figure")
  b:close("div")

  -- Per-epoch table.
  b:open("details", {open = #h <= 20})
  b:tag("summary", nil, string.format("Metrics of every epoch (%d)", #h))
  b:open("div", {class = "scroll"})
  b:open("table", {id = "epochs", class = "data sortable"})
  b:open("thead"):open("tr")
  local heads = {
    {"epoch"}, {"step"},
    {"train loss", "train"}, {"train acc", "train"},
    {"val loss", "val"}, {"val acc", "val"},
    {"lr", "lr"}, {"time"}, {"img/s"},
  }
  for _, hd in ipairs(heads) do
    b:open("th", {["data-sort"] = "number", scope = "col"})
    if hd[2] then
      b:void("span", {class = "swatch", style = "background:" .. SERIES[hd[2]].colour})
      b:close("span")
    end
    b:text(hd[1]):close("th")
  end
  b:close("tr"):close("thead")
  b:open("tbody")
  for _, row in ipairs(h) do
    b:open("tr", {["data-epoch"] = row.epoch,
      class = (row.epoch == f.best_epoch) and "best" or nil})
    b:tag("td", nil, row.epoch)
    b:tag("td", nil, row.step ~= nil and fmt.thousands(row.step) or fmt.MISSING)
    b:tag("td", {["data-value"] = row.train_loss}, fmt.fixed(row.train_loss))
    b:tag("td", {["data-value"] = row.train_acc}, fmt.percent(row.train_acc, 2))
    b:tag("td", {["data-value"] = row.val_loss}, fmt.fixed(row.val_loss))
    b:tag("td", {["data-value"] = row.val_acc}, fmt.percent(row.val_acc, 2))
    b:tag("td", {["data-value"] = row.lr}, fmt.number(row.lr))
    b:tag("td", {["data-value"] = row.seconds}, fmt.duration(row.seconds))
    b:tag("td", {["data-value"] = row.img_per_s}, fmt.thousands(row.img_per_s))
    b:close("tr")
  end
  b:close("tbody"):close("table"):close("div")
  if f.best_epoch then
    b:tag("p", {class = "muted"}, string.format("Bold: the epoch with the best validation "
      .. "accuracy (%d).", f.best_epoch))
  end
  b:close("details")
  b:close("section")
end

-- The name of class i (1-based): run.classes[i], else per_class[i].class, else its index from 0.
local function class_name(run, per_class, i)
  return (run.classes and run.classes[i]) or (per_class[i] and per_class[i].class)
    or tostring(i - 1)
end

local function confusion_section(b, run, result)
  local m = result.confusion or {}
  local n = #m
  if n == 0 then return end
  local names = {}
  for i = 1, n do names[i] = class_name(run, result.per_class, i) end
  local total, correct = 0, 0
  local row_sum = {}
  for t = 1, n do
    row_sum[t] = 0
    for p = 1, n do row_sum[t] = row_sum[t] + (m[t][p] or 0) end
    total = total + row_sum[t]
    correct = correct + (m[t][t] or 0)
  end

  b:open("section", {id = "confusion-section"})
  b:tag("h2", nil, "Confusion matrix")
  b:tag("p", {class = "muted"}, string.format("%s test images; each row is a true class, each "
    .. "column the class predicted. Cells are shaded by their share of the row (the recall on the "
    .. "diagonal); hover a cell for the percentage.", fmt.thousands(total)))
  b:open("div", {class = "matrix-wrap"})
  b:open("div", {class = "scroll"})
  b:open("table", {id = "confusion", class = "heatmap", ["data-classes"] = n,
    ["data-total"] = total})
  b:open("thead")
  b:open("tr"):tag("th"):tag("th", {class = "axis", colspan = n}, "predicted class"):close("tr")
  b:open("tr"):tag("th", {class = "axis axis-true"}, "true class")
  for p = 1, n do
    b:open("th", {class = "col", scope = "col"}):tag("span", nil, names[p]):close("th")
  end
  b:close("tr"):close("thead")
  b:open("tbody")
  for t = 1, n do
    b:open("tr", {["data-class"] = names[t]})
    b:tag("th", {scope = "row"}, names[t])
    for p = 1, n do
      local count = m[t][p] or 0
      local share = row_sum[t] > 0 and count / row_sum[t] or 0
      local bg = colour.scale(colour.BLUES, share ^ 0.75)
      b:tag("td", {
        ["data-count"] = count, ["data-true"] = names[t], ["data-predicted"] = names[p],
        class = t == p and "diag" or nil,
        style = string.format("background:%s;color:%s", bg, colour.text_on(bg)),
        title = string.format("true %s, predicted %s: %s (%s of %s)", names[t], names[p],
          fmt.thousands(count), fmt.percent(share), names[t]),
      }, count)
    end
    b:close("tr")
  end
  b:close("tbody"):close("table"):close("div")

  local stops = {}
  for i = 0, 8 do
    stops[#stops + 1] = string.format("%s %g%%", colour.scale(colour.BLUES, (i / 8) ^ 0.75),
      i * 12.5)
  end
  b:open("div", {class = "scale"})
  b:text("Share of the true class")
  b:void("div", {class = "ramp", style = "background:linear-gradient(to right," ..
    table.concat(stops, ",") .. ")"}):close("div")
  b:open("div", {class = "ends"}):tag("span", nil, "0%"):tag("span", nil, "50%")
    :tag("span", nil, "100%"):close("div")
  b:tag("p", nil, string.format("Diagonal: %s of %s correct (%s).", fmt.thousands(correct),
    fmt.thousands(total), fmt.percent(total > 0 and correct / total or nil)))
  b:close("div")
  b:close("div")
  b:close("section")
end

local function per_class_section(b, run, result)
  local rows = result.per_class or {}
  if #rows == 0 then return end
  local m = result.confusion or {}
  b:open("section", {id = "per-class-section"})
  b:tag("h2", nil, "Per class")
  b:open("div", {class = "scroll"})
  b:open("table", {id = "per-class", class = "data sortable"})
  b:open("thead"):open("tr")
  for _, hd in ipairs({{"class", "text"}, {"precision", "number"}, {"recall", "number"},
      {"F1", "number"}, {"support", "number"}, {"most often mistaken for", "number", "text"}}) do
    b:tag("th", {["data-sort"] = hd[2], scope = "col", class = hd[3]}, hd[1])
  end
  b:close("tr"):close("thead")
  b:open("tbody")
  local sum = {precision = 0, recall = 0, f1 = 0, support = 0}
  for i, r in ipairs(rows) do
    b:open("tr", {["data-class"] = r.class})
    b:tag("td", nil, r.class)
    b:tag("td", {["data-value"] = r.precision}, fmt.fixed(r.precision, 3))
    b:tag("td", {["data-value"] = r.recall}, fmt.fixed(r.recall, 3))
    b:open("td", {["data-value"] = r.f1}):text(fmt.fixed(r.f1, 3))
    b:open("span", {class = "bar"})
      :void("span", {style = string.format("width:%.1f%%", (r.f1 or 0) * 100)}):close("span")
    b:close("span"):close("td")
    b:tag("td", {["data-value"] = r.support}, fmt.thousands(r.support))
    local worst, worst_count = nil, 0
    for p, count in ipairs(m[i] or {}) do
      if p ~= i and count > worst_count then worst, worst_count = p, count end
    end
    if worst then
      local name = class_name(run, rows, worst)
      local share = (r.support and r.support > 0) and worst_count / r.support or nil
      b:open("td", {class = "text", ["data-value"] = worst_count}):text(name)
      b:tag("span", {class = "muted"}, string.format(" \u{00b7} %s (%s)",
        fmt.thousands(worst_count), fmt.percent(share)))
      b:close("td")
    else
      b:tag("td", {class = "text", ["data-value"] = 0}, fmt.MISSING)
    end
    b:close("tr")
    for k in pairs(sum) do sum[k] = sum[k] + (r[k] or 0) end
  end
  b:close("tbody")
  local n = #rows
  b:open("tfoot"):open("tr")
  b:tag("th", {scope = "row"}, "macro mean")
  b:tag("th", nil, fmt.fixed(sum.precision / n, 3))
  b:tag("th", nil, fmt.fixed(sum.recall / n, 3))
  b:tag("th", nil, fmt.fixed(sum.f1 / n, 3))
  b:tag("th", nil, fmt.thousands(sum.support))
  b:tag("th")
  b:close("tr"):close("tfoot")
  b:close("table"):close("div")
  b:close("section")
end

local function sample_grid(b, id, title, items, note)
  b:tag("h3", nil, string.format("%s (%d)", title, #items))
  if #items == 0 then
    b:tag("p", {class = "muted", id = id}, "None among the samples.")
    return
  end
  if note then b:tag("p", {class = "muted"}, note) end
  b:open("div", {class = "samples", id = id})
  for _, s in ipairs(items) do
    local conf = fmt.percent(s.confidence, 0)
    b:open("figure", {class = "sample-card " .. (s.correct and "correct" or "wrong"),
      ["data-index"] = s.index, ["data-true"] = s.true_label, ["data-predicted"] = s.predicted,
      ["data-confidence"] = s.confidence})
    local bytes = s.file and read_binary(s.file)
    if bytes then
      b:void("img", {class = "sample", width = 96, height = 96, loading = "eager",
        src = "data:image/png;base64," .. runner.base64(bytes),
        alt = string.format("test image %s: %s, predicted %s (%s)", tostring(s.index),
          s.true_label, s.predicted, conf),
        title = string.format("test image %s: %s", tostring(s.index), s.file)})
    else
      b:tag("div", {class = "missing"}, "image missing")
    end
    b:open("figcaption")
    b:tag("div", {class = "true"}, "true " .. tostring(s.true_label))
    b:tag("div", {class = "pred"},
      (s.correct and "\u{2713} " or "\u{2717} ") .. tostring(s.predicted))
    b:tag("div", {class = "conf"}, conf .. " confident")
    b:close("figcaption")
    b:close("figure")
  end
  b:close("div")
end

local function samples_section(b, run, result)
  local samples = result.samples or {}
  if #samples == 0 then return end
  local right, wrong = {}, {}
  for _, s in ipairs(samples) do
    if s.correct then right[#right + 1] = s else wrong[#wrong + 1] = s end
  end
  b:open("section", {id = "samples", class = "flow"})
  b:tag("h2", nil, "Test samples")
  b:tag("p", {class = "muted"}, "32 \u{00d7} 32 test images shown at 3\u{00d7}; under each, "
    .. "the true class and the prediction with the model's confidence (softmax probability).")
  sample_grid(b, "samples-wrong", "Misclassified", wrong)
  sample_grid(b, "samples-correct", "Correctly classified", right)
  b:close("section")
end

local function describe_augment(list)
  if type(list) ~= "table" then return nil end
  local names = {}
  for _, item in ipairs(list) do
    if type(item) == "table" then
      for k in pairs(item) do names[#names + 1] = k end
    elseif type(item) == "string" then
      names[#names + 1] = item
    end
  end
  return #names > 0 and table.concat(names, ", ") or "none"
end

local function setup_section(b, run, result, state)
  local c = run.config or {}
  local rows = {}
  local function row(label, value)
    if value ~= nil and value ~= "" then rows[#rows + 1] = {label, tostring(value)} end
  end
  local name, params = model_fact(run, result)
  row("model", name and (params and string.format("%s (%s parameters)", name, fmt.count(params))
    or name))
  local data = get(c, "data") or {}
  local parts = {}
  if data.dataset then parts[#parts + 1] = tostring(data.dataset) end
  if data.subset and data.subset ~= 0 then
    parts[#parts + 1] = "subset " .. fmt.thousands(data.subset)
  end
  if data.val_split ~= nil then
    parts[#parts + 1] = (data.val_split == 0) and "no validation split"
      or ("validation " .. fmt.thousands(data.val_split))
  end
  row("data", table.concat(parts, ", "))
  local o = get(c, "optimizer") or {}
  local opt = {}
  if o.type then opt[#opt + 1] = tostring(o.type) end
  if o.lr then opt[#opt + 1] = "lr " .. fmt.number(o.lr) end
  if o.momentum and o.momentum ~= 0 then
    opt[#opt + 1] = "momentum " .. fmt.number(o.momentum) .. (o.nesterov and " (Nesterov)" or "")
  end
  if o.weight_decay and o.weight_decay ~= 0 then
    opt[#opt + 1] = "weight decay " .. fmt.number(o.weight_decay)
  end
  row("optimizer", table.concat(opt, ", "))
  local s = get(c, "schedule") or {}
  if s.type then
    local extra = {}
    if s.warmup_epochs and s.warmup_epochs ~= 0 then
      extra[#extra + 1] = "warmup " .. fmt.number(s.warmup_epochs) .. " epochs"
    end
    if s.type == "onecycle" and s.pct_start then
      extra[#extra + 1] = "peak at " .. fmt.percent(s.pct_start, 0)
    end
    row("schedule", tostring(s.type) .. (#extra > 0 and (", " .. table.concat(extra, ", ")) or ""))
  end
  local t = get(c, "train") or {}
  row("epochs", t.epochs)
  row("batch size", t.batch_size)
  if t.label_smoothing and t.label_smoothing ~= 0 then
    row("label smoothing", fmt.number(t.label_smoothing))
  end
  row("augmentation", describe_augment(get(c, "augment.train")))
  row("seed", c.seed)
  if result and result.summary then
    local sm = result.summary
    if sm.threads then row("threads", sm.threads) end
    if sm.flip_tta ~= nil then row("flip TTA", sm.flip_tta and "yes" or "no") end
    if sm.steps then row("steps", fmt.thousands(sm.steps)) end
  end

  b:open("section", {id = "setup"})
  b:tag("h2", nil, "Setup")
  b:open("dl", {class = "setup"})
  for _, r in ipairs(rows) do
    b:open("div"):tag("dt", nil, r[1]):tag("dd", nil, r[2]):close("div")
  end
  b:close("dl")
  local text = run.config_text or ""
  local _, lines = text:gsub("\n", "")
  b:open("details", {open = state == "started"})
  b:tag("summary", nil, string.format("Configuration: config.yaml (%d lines)", lines))
  b:tag("pre", {class = "config", id = "config"}, text)
  b:close("details")
  b:close("section")
end

--------------------------------------------------------------------------------------------------
-- The page

local function render(run, result, phase)
  -- `runner report` gives "" for what the run's files do not record (`started`).
  for _, key in ipairs({"started", "device", "precision", "commit"}) do
    if run[key] == "" then run[key] = nil end
  end
  local state = state_of(phase, run, result)
  local f = facts(run, result)
  if result then
    local total = 0
    for _, r in ipairs(result.per_class or {}) do total = total + (r.support or 0) end
    if total == 0 then
      for _, row in ipairs(result.confusion or {}) do
        for _, v in ipairs(row) do total = total + v end
      end
    end
    f.test_images = total
  end

  local b = html.builder()
  local title = (run.name or "run") .. " \u{2013} "
  if result and result.test_acc then
    title = title .. fmt.percent(result.test_acc) .. " test accuracy"
  elseif state == "running" then
    title = title .. string.format("epoch %d of %s", f.epochs_done,
      tostring(f.epochs_planned or "?"))
  else
    title = title .. STATE_TEXT[state]
  end
  local in_progress = state == "started" or state == "running"
  page.begin(b, {title = title, state = state, generator = "runner hooks/report.lua", css = CSS,
    refresh = in_progress and REFRESH_SECONDS or nil})

  header(b, run, result, state, f)
  if state ~= "started" then summary_section(b, run, result, state, f) end
  training_section(b, run, result, f)
  if result then
    confusion_section(b, run, result)
    per_class_section(b, run, result)
    samples_section(b, run, result)
  end
  setup_section(b, run, result, state)

  page.finish(b, string.format("Written by hooks/report.lua on %s%s.",
    os.date("%Y-%m-%d %H:%M:%S"), in_progress and string.format("; refreshes every %d seconds "
    .. "until the run ends", REFRESH_SECONDS) or ""))
  return b:result()
end

local function write(run, result, phase)
  runner.write("report.html", render(run, result, phase))
end

--------------------------------------------------------------------------------------------------
-- Hook functions

function on_start(run)
  write(run, nil, "start")
end

function on_epoch_end(run, epoch)
  write(run, nil, "epoch")
end

function on_end(run, result)
  write(run, result, "end")
  runner.log("report: " .. run.dir .. "/report.html")
end
