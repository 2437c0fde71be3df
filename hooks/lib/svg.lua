-- lib/svg.lua: inline SVG line charts with round tick values, for self-contained HTML reports.
-- Covered by tests/test_lua_hooks.lua (ticks, log axes, point counts), tests/test_report.py (the
-- structure of report.lua's charts) and tests/test_report_render.sh (the charts are drawn).
--
--   local svg = require "lib.svg"
--   local text = svg.line_chart{
--     id = "chart-loss", title = "Loss", x_label = "epoch", y_label = "loss", x_integer = true,
--     series = {
--       {key = "train_loss", label = "train", colour = "#2f6db5", points = {{1, 2.2}, {2, 1.9}}},
--       {key = "val_loss", label = "validation", colour = "#d9730d", dash = true,
--        marker = "square", points = {{1, 2.1}, {2, 1.8}}},
--     },
--   }
--   svg.nice_ticks(0.13, 0.97, 5)   --> {0, 0.2, 0.4, 0.6, 0.8, 1}, 0.2
--   svg.log_ticks(2e-4, 0.3)        --> {0.0001, 0.001, 0.01, 0.1, 1}
--
-- The chart is one element:
--   <svg class="chart" id="ID" viewBox="0 0 W H" role="img" data-log-x="true"?>
--     <title>, <g class="grid">, <g class="axis axis-x">, <g class="axis axis-y">,
--     one <polyline class="series" data-series="KEY" data-points="N" points="x,y ..."> per
--     series with points, then its markers <g class="points" data-series="KEY">, and
--     <g class="legend"> (unless opts.legend is false).
-- data-log-x / data-log-y are "true" on a log axis, "false" when opts.log_x / log_y is false
-- (rather than nil), absent otherwise. A point given attributes ({x, y, attrs = {...}}) has
-- its marker inside <g class="point" ATTRS> (data-point, data-x, ... for tests to read).
-- Points whose y is nil are left out (and not counted in data-points); a series without points
-- is left out of the chart and its legend. On a log axis a value <= 0 is an error.

local html = require "lib.html"

local svg = {}

local escape = html.escape

--------------------------------------------------------------------------------------------------
-- Ticks

-- svg.nice_number(x, round): a number of the form 1, 2 or 5 times a power of ten near x > 0:
-- the nearest one when round is true, else the smallest one >= x.
function svg.nice_number(x, round)
  local exp = math.floor(math.log(x, 10))
  local f = x / 10 ^ exp
  local nf
  if round then
    nf = f < 1.5 and 1 or f < 3 and 2 or f < 7 and 5 or 10
  else
    nf = f <= 1 and 1 or f <= 2 and 2 or f <= 5 and 5 or 10
  end
  return nf * 10 ^ exp
end

local function clean(v)
  v = tonumber(string.format("%.12g", v))
  if v == 0 then v = 0.0 end
  return v
end

-- svg.nice_ticks(lo, hi, n): about n evenly spaced round tick values (1, 2 or 5 times a power of
-- ten apart) whose first is <= lo and whose last is >= hi, and the step between them. lo == hi
-- is widened by 10% of |lo| (or 1 when lo is 0) each way.
function svg.nice_ticks(lo, hi, n)
  n = n or 5
  if lo ~= lo or hi ~= hi or math.abs(lo) == math.huge or math.abs(hi) == math.huge then
    error(string.format("svg.nice_ticks: the range must be finite, got %s to %s", tostring(lo),
      tostring(hi)), 2)
  end
  if lo > hi then lo, hi = hi, lo end
  if lo == hi then
    local d = lo == 0 and 1 or math.abs(lo) * 0.1
    lo, hi = lo - d, hi + d
  end
  local step = svg.nice_number((hi - lo) / math.max(1, n - 1), true)
  local first = math.floor(lo / step + 1e-9)
  local last = math.ceil(hi / step - 1e-9)
  local ticks = {}
  for k = first, last do
    ticks[#ticks + 1] = clean(k * step)
  end
  return ticks, step
end

-- svg.log_ticks(lo, hi): tick values for a log axis over [lo, hi] (both > 0): powers of ten,
-- and 2 and 5 times them when the range spans two decades or less. The first tick is <= lo and
-- the last >= hi. Also returns the minor ticks (2..9 times each power of ten, within the range)
-- when the range spans six decades or less.
function svg.log_ticks(lo, hi)
  if not (lo > 0 and hi > 0) then
    error(string.format("svg.log_ticks: a log axis needs values > 0, got %s to %s", tostring(lo),
      tostring(hi)), 2)
  end
  if lo > hi then lo, hi = hi, lo end
  local dlo = math.floor(math.log(lo, 10) + 1e-9)
  local dhi = math.ceil(math.log(hi, 10) - 1e-9)
  if dhi == dlo then dhi = dlo + 1 end
  local ticks, minor = {}, {}
  if dhi - dlo <= 2 then
    local candidates = {}
    for d = dlo, dhi do
      for _, m in ipairs({1, 2, 5}) do
        candidates[#candidates + 1] = clean(m * 10.0 ^ d)
      end
    end
    local first, last = 1, #candidates
    for i, v in ipairs(candidates) do
      if v <= lo * (1 + 1e-9) then first = i end
    end
    for i = #candidates, 1, -1 do
      if candidates[i] >= hi * (1 - 1e-9) then last = i end
    end
    for i = first, last do ticks[#ticks + 1] = candidates[i] end
  else
    local every = math.ceil((dhi - dlo) / 8)
    local d = dlo
    while true do
      ticks[#ticks + 1] = clean(10.0 ^ d)
      if d >= dhi then break end
      d = d + every
    end
  end
  if dhi - dlo <= 6 then
    local a, b = ticks[1], ticks[#ticks]
    for d = dlo, dhi do
      for m = 2, 9 do
        local v = clean(m * 10.0 ^ d)
        if v > a and v < b then minor[#minor + 1] = v end
      end
    end
  end
  return ticks, minor
end

local function log_format(v)
  return string.format("%g", v)
end

-- svg.tick_format(step): a function writing tick values step apart with just enough decimals.
function svg.tick_format(step)
  local decimals = math.max(0, -math.floor(math.log(step, 10) + 1e-9))
  if decimals > 4 then return log_format end
  local f = "%." .. decimals .. "f"
  return function(v)
    if math.abs(v) >= 1e6 then return string.format("%g", v) end
    return string.format(f, v)
  end
end

--------------------------------------------------------------------------------------------------
-- Axes

-- An axis maps data values to a 0..1 fraction of its length.
local function make_axis(values, o)
  local axis = {log = o.log}
  local lo, hi = math.huge, -math.huge
  for _, v in ipairs(values) do
    if v < lo then lo = v end
    if v > hi then hi = v end
  end
  if o.min then lo = math.min(lo, o.min) end
  if o.max then hi = math.max(hi, o.max) end
  if lo == math.huge then lo, hi = o.min or (o.log and 1 or 0), o.max or (o.log and 10 or 1) end

  if o.log then
    if lo <= 0 then
      error(string.format("svg.line_chart: chart '%s': the %s axis is logarithmic but holds %g",
        o.chart, o.name, lo), 3)
    end
    axis.ticks, axis.minor = svg.log_ticks(lo, hi)
    axis.format = o.format or log_format
    if o.tight and lo < hi then
      axis.lo, axis.hi = lo, hi
    else
      axis.lo, axis.hi = axis.ticks[1], axis.ticks[#axis.ticks]
    end
    local llo, lhi = math.log(axis.lo, 10), math.log(axis.hi, 10)
    if o.tight then
      local pad = (lhi - llo) * 0.03
      llo, lhi = llo - pad, lhi + pad
      local a, b = 10 ^ llo * (1 - 1e-9), 10 ^ lhi * (1 + 1e-9)
      local function inside(list)
        local kept = {}
        for _, v in ipairs(list) do
          if v >= a and v <= b then kept[#kept + 1] = v end
        end
        return kept
      end
      axis.ticks, axis.minor = inside(axis.ticks), inside(axis.minor)
    end
    axis.t = function(v) return (math.log(v, 10) - llo) / (lhi - llo) end
  else
    local ticks, step
    if o.integer and lo == hi then
      ticks, step = {lo}, 1
      axis.lo, axis.hi = lo - 0.5, hi + 0.5
    else
      ticks, step = svg.nice_ticks(lo, hi, o.n or 6)
      if o.integer and step < 1 then
        step = 1
        ticks = {}
        for v = math.floor(lo), math.ceil(hi) do ticks[#ticks + 1] = v end
      end
      if o.tight and lo < hi then
        local pad = (hi - lo) * 0.03
        axis.lo, axis.hi = lo - pad, hi + pad
      else
        axis.lo, axis.hi = ticks[1], ticks[#ticks]
      end
    end
    axis.ticks = {}
    for _, v in ipairs(ticks) do
      if v >= axis.lo - 1e-9 * step and v <= axis.hi + 1e-9 * step then
        axis.ticks[#axis.ticks + 1] = v
      end
    end
    axis.minor = {}
    axis.format = o.format or svg.tick_format(step)
    local alo, ahi = axis.lo, axis.hi
    axis.t = function(v) return (v - alo) / (ahi - alo) end
  end
  return axis
end

--------------------------------------------------------------------------------------------------
-- Markers

local function marker(shape, x, y, r, colour, tip)
  local body
  if shape == "square" then
    body = string.format('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"',
      x - r * 0.9, y - r * 0.9, r * 1.8, r * 1.8, colour)
  elseif shape == "diamond" then
    body = string.format('<path d="M%.1f %.1fl%.1f %.1fl%.1f %.1fl%.1f %.1fz" fill="%s"',
      x, y - r * 1.25, r * 1.25, r * 1.25, -r * 1.25, r * 1.25, -r * 1.25, -r * 1.25, colour)
  else
    body = string.format('<circle cx="%.1f" cy="%.1f" r="%.1f" fill="%s"', x, y, r, colour)
  end
  if tip then
    return body .. ' stroke="#ffffff" stroke-width="1"><title>' .. escape(tip) .. "</title>"
      .. (shape == "square" and "</rect>" or shape == "diamond" and "</path>" or "</circle>")
  end
  return body .. ' stroke="#ffffff" stroke-width="1"/>'
end

--------------------------------------------------------------------------------------------------
-- Line chart

local FONT = 'font-family="system-ui, -apple-system, \'Segoe UI\', Roboto, \'Helvetica Neue\', '
  .. 'Arial, \'Liberation Sans\', sans-serif"'

-- svg.line_chart(opts): an <svg class="chart"> string. opts:
--   id        element id (required), title (drawn at the top left and as the <title>)
--   series    array of {key =, label =, colour = "#rrggbb", points = {{x, y}, ...},
--             dash = true for a dashed line, marker = "circle" | "square" | "diamond",
--             width = the line's stroke width (default 2), format = function(y) for the
--             tooltips}; a point may also hold tip = its marker's tooltip text and
--             attrs = attributes of <g class="point"> around its marker
--   legend    false: no legend drawn in the chart (the page draws its own)
--   marker_radius      the markers' radius (default: by the number of points, none past 150
--                      per series; 0: none); points given attrs always get a marker
--   x_label, y_label   axis titles
--   log_x, log_y       logarithmic axes (every value must be > 0)
--   x_integer          integer x ticks only (epochs)
--   x_tight, y_tight   the axis spans the data (plus 3%) instead of the enclosing round ticks
--   x_min, x_max, y_min, y_max   values the axis must include
--   x_format, y_format functions writing a tick value
--   x_name             the x value's name in tooltips ("epoch")
--   vlines             array of {x =, label =, top = true}: dashed vertical reference lines,
--                      labelled at the bottom of the plot (at the top with top = true)
--   hlines             array of {y =, label =, colour =}: dotted horizontal reference lines
--   width, height      the viewBox size (default 540 x 300)
function svg.line_chart(opts)
  local id = assert(opts.id, "svg.line_chart: opts.id is required")
  local W, H = opts.width or 540, opts.height or 300

  local series = {}
  local xs, ys = {}, {}
  for _, s in ipairs(opts.series or {}) do
    local pts = {}
    for _, p in ipairs(s.points or {}) do
      local x, y = p[1], p[2]
      if x ~= nil and y ~= nil and y == y then
        pts[#pts + 1] = {x, y, tip = p.tip, attrs = p.attrs}
        xs[#xs + 1], ys[#ys + 1] = x, y
      end
    end
    if #pts > 0 then
      series[#series + 1] = {s = s, points = pts}
    end
  end
  for _, v in ipairs(opts.vlines or {}) do xs[#xs + 1] = v.x end
  for _, v in ipairs(opts.hlines or {}) do ys[#ys + 1] = v.y end

  local xa = make_axis(xs, {log = opts.log_x, integer = opts.x_integer, tight = opts.x_tight,
    min = opts.x_min, max = opts.x_max, format = opts.x_format, n = 7, chart = id, name = "x"})
  local ya = make_axis(ys, {log = opts.log_y, tight = opts.y_tight, min = opts.y_min,
    max = opts.y_max, format = opts.y_format, n = 6, chart = id, name = "y"})

  local ylabels, widest = {}, 0
  for i, v in ipairs(ya.ticks) do
    ylabels[i] = ya.format(v)
    widest = math.max(widest, #ylabels[i])
  end
  local left = 22 + (opts.y_label and 18 or 0) + widest * 6.6
  local right, top = 18, 44
  local bottom = 30 + (opts.x_label and 18 or 0)
  local pw, ph = W - left - right, H - top - bottom
  local function sx(v) return left + xa.t(v) * pw end
  local function sy(v) return top + (1 - ya.t(v)) * ph end

  local out = {}
  local function add(s) out[#out + 1] = s end
  local function addf(...) out[#out + 1] = string.format(...) end

  local function log_attr(name, log)
    if log == nil then return "" end
    return string.format(' data-log-%s="%s"', name, log and "true" or "false")
  end
  addf('<svg class="chart" id="%s" viewBox="0 0 %d %d" role="img" aria-labelledby="%s-title"%s%s '
    .. 'xmlns="http://www.w3.org/2000/svg" %s font-size="12">',
    escape(id), W, H, escape(id), log_attr("x", opts.log_x), log_attr("y", opts.log_y), FONT)
  addf('<title id="%s-title">%s</title>', escape(id), escape(opts.title or id))
  if opts.title then
    addf('<text class="chart-title" x="%.1f" y="20" font-size="14" font-weight="600" '
      .. 'fill="#1f2933">%s</text>', left, escape(opts.title))
  end

  -- Grid and frame.
  add('<g class="grid" stroke="#e4e7eb" stroke-width="1">')
  for _, v in ipairs(xa.minor) do
    addf('<line class="minor" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#f1f3f5"/>',
      sx(v), top, sx(v), top + ph)
  end
  for _, v in ipairs(ya.minor) do
    addf('<line class="minor" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#f1f3f5"/>',
      left, sy(v), left + pw, sy(v))
  end
  for _, v in ipairs(xa.ticks) do
    addf('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>', sx(v), top, sx(v), top + ph)
  end
  for _, v in ipairs(ya.ticks) do
    addf('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>', left, sy(v), left + pw, sy(v))
  end
  add("</g>")
  addf('<rect class="frame" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" '
    .. 'stroke="#9aa5b1" stroke-width="1"/>', left, top, pw, ph)

  -- Axes: ticks, their values and the axis titles.
  add('<g class="axis axis-x" fill="#52606d" font-size="11">')
  for _, v in ipairs(xa.ticks) do
    addf('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#9aa5b1"/>',
      sx(v), top + ph, sx(v), top + ph + 4)
    addf('<text class="tick" x="%.1f" y="%.1f" text-anchor="middle">%s</text>',
      sx(v), top + ph + 17, escape(xa.format(v)))
  end
  if opts.x_label then
    addf('<text class="axis-label" x="%.1f" y="%.1f" text-anchor="middle" font-size="12" '
      .. 'fill="#323f4b">%s</text>', left + pw / 2, H - 8, escape(opts.x_label))
  end
  add("</g>")
  add('<g class="axis axis-y" fill="#52606d" font-size="11">')
  for i, v in ipairs(ya.ticks) do
    addf('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#9aa5b1"/>',
      left - 4, sy(v), left, sy(v))
    addf('<text class="tick" x="%.1f" y="%.1f" text-anchor="end">%s</text>',
      left - 7, sy(v) + 4, escape(ylabels[i]))
  end
  if opts.y_label then
    addf('<text class="axis-label" x="%.1f" y="%.1f" text-anchor="middle" font-size="12" '
      .. 'fill="#323f4b" transform="rotate(-90 %.1f %.1f)">%s</text>',
      14, top + ph / 2, 14, top + ph / 2, escape(opts.y_label))
  end
  add("</g>")

  -- Reference lines.
  for _, v in ipairs(opts.vlines or {}) do
    local x = sx(v.x)
    addf('<g class="vline"><line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#7b8794" '
      .. 'stroke-width="1" stroke-dasharray="2 3"/>', x, top, x, top + ph)
    if v.label then
      local anchor = x > left + pw * 0.8 and "end" or "start"
      addf('<text x="%.1f" y="%.1f" text-anchor="%s" font-size="10.5" fill="#52606d">%s</text>',
        anchor == "end" and x - 4 or x + 4, v.top and top + 13 or top + ph - 6, anchor,
        escape(v.label))
    end
    add("</g>")
  end

  for _, v in ipairs(opts.hlines or {}) do
    local y = sy(v.y)
    addf('<g class="hline"><line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" '
      .. 'stroke-width="1.5" stroke-dasharray="1 3" stroke-linecap="round"/>',
      left, y, left + pw, y, v.colour or "#52606d")
    if v.label then
      addf('<text x="%.1f" y="%.1f" font-size="10.5" fill="%s">%s</text>',
        left + 5, y > top + 16 and y - 5 or y + 13, v.colour or "#52606d", escape(v.label))
    end
    add("</g>")
  end

  -- Series: lines first, then every marker above every line.
  local n_max, tagged = 0, false
  for _, e in ipairs(series) do
    n_max = math.max(n_max, #e.points)
    for _, p in ipairs(e.points) do tagged = tagged or p.attrs ~= nil end
  end
  local r = opts.marker_radius or (n_max <= 25 and 3.6 or n_max <= 60 and 2.8 or n_max <= 150
    and 2 or 0)
  if tagged then r = math.max(r, 3.6) end
  for _, e in ipairs(series) do
    local s = e.s
    local coords = {}
    for i, p in ipairs(e.points) do
      coords[i] = string.format("%.1f,%.1f", sx(p[1]), sy(p[2]))
    end
    addf('<polyline class="series" data-series="%s" data-points="%d" points="%s" fill="none" '
      .. 'stroke="%s" stroke-width="%s" stroke-linejoin="round" stroke-linecap="round"%s/>',
      escape(s.key or s.label), #e.points, table.concat(coords, " "), s.colour or "#2f6db5",
      s.width and string.format("%g", s.width) or "2", s.dash and ' stroke-dasharray="6 4"' or "")
  end
  if r > 0 then
    for _, e in ipairs(series) do
      local s = e.s
      local vf = s.format or function(y) return string.format("%.4g", y) end
      addf('<g class="points" data-series="%s">', escape(s.key or s.label))
      for _, p in ipairs(e.points) do
        local tip = p.tip or string.format("%s %s: %s %s", opts.x_name or "x", xa.format(p[1]),
          s.label or s.key, vf(p[2]))
        if p.attrs then
          local attrs = {class = "point"}
          for k, v in pairs(p.attrs) do attrs[k] = v end
          add("<g" .. html.attrs(attrs) .. ">")
        end
        add(marker(s.marker, sx(p[1]), sy(p[2]), r, s.colour or "#2f6db5", tip))
        if p.attrs then add("</g>") end
      end
      add("</g>")
    end
  end

  -- Legend, right-aligned in the title row.
  if #series == 0 then
    addf('<text class="empty" x="%.1f" y="%.1f" text-anchor="middle" fill="#7b8794">'
      .. 'no data yet</text>', left + pw / 2, top + ph / 2)
  elseif opts.legend ~= false then
    add('<g class="legend" font-size="12" fill="#323f4b">')
    local x = W - right
    for i = #series, 1, -1 do
      local s = series[i].s
      local label = s.label or s.key
      local w = 34 + #label * 6.8
      x = x - w
      addf('<g class="legend-item" data-series="%s">', escape(s.key or label))
      addf('<line x1="%.1f" y1="16" x2="%.1f" y2="16" stroke="%s" stroke-width="2"%s/>',
        x, x + 22, s.colour or "#2f6db5", s.dash and ' stroke-dasharray="6 4"' or "")
      add(marker(s.marker, x + 11, 16, 3.4, s.colour or "#2f6db5"))
      addf('<text x="%.1f" y="20">%s</text>', x + 27, escape(label))
      add("</g>")
      x = x - 8
    end
    add("</g>")
  end
  add("</svg>")
  return table.concat(out)
end

return svg
