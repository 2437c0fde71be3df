-- lib/colour.lua: colour scales for heatmaps, distinct colours for the lines of one chart, and
-- a readable text colour on any background. Covered by tests/test_lua_hooks.lua and
-- tests/test_report_render.sh (report.lua's confusion matrix).
--
--   local colour = require "lib.colour"
--   local bg = colour.scale(colour.BLUES, 0.8)   --> "#1d5fa3"-like hex string
--   local fg = colour.text_on(bg)               --> "#ffffff" on dark cells, else near black
--   colour.category(3)                          --> "#3f8f5b", the third line colour

local colour = {}

-- A sequential white-to-blue scale (after ColorBrewer "Blues"), from 0 to 1.
colour.BLUES = {"#f7fbff", "#deebf7", "#c6dbef", "#9ecae1", "#6baed6", "#4292c6", "#2171b5",
                "#08519c", "#08306b"}

-- colour.rgb(hex): r, g, b (0 to 255) of "#rrggbb".
function colour.rgb(hex)
  local r, g, b = hex:match("^#(%x%x)(%x%x)(%x%x)$")
  if not r then error("colour.rgb: expected #rrggbb, got " .. tostring(hex), 2) end
  return tonumber(r, 16), tonumber(g, 16), tonumber(b, 16)
end

-- colour.hex(r, g, b): "#rrggbb", each channel rounded and clamped to 0..255.
function colour.hex(r, g, b)
  local function c(v) return math.max(0, math.min(255, math.floor(v + 0.5))) end
  return string.format("#%02x%02x%02x", c(r), c(g), c(b))
end

-- colour.mix(a, b, t): the colour t of the way from hex a to hex b (t in 0..1).
function colour.mix(a, b, t)
  local ar, ag, ab = colour.rgb(a)
  local br, bg, bb = colour.rgb(b)
  return colour.hex(ar + (br - ar) * t, ag + (bg - ag) * t, ab + (bb - ab) * t)
end

-- colour.scale(stops, t): t (clamped to 0..1) on a scale of evenly spaced hex stops.
function colour.scale(stops, t)
  if t ~= t then t = 0 end
  t = math.max(0, math.min(1, t))
  local pos = t * (#stops - 1)
  local i = math.min(#stops - 2, math.floor(pos))
  return colour.mix(stops[i + 1], stops[i + 2], pos - i)
end

-- Colours for the lines of one chart, in the order they are handed out: distinct from one
-- another, dark enough on white, the first four those report.lua gives train, validation,
-- learning rate and throughput.
colour.CATEGORIES = {"#2f6db5", "#d9730d", "#3f8f5b", "#7a5195", "#1b9aaa", "#d45087", "#8c6d31",
                     "#52606d", "#b83232", "#6b8e23"}

-- colour.hsl(h, s, l): "#rrggbb" of hue h (degrees), saturation s and lightness l (0 to 1).
function colour.hsl(h, s, l)
  h = (h % 360) / 60
  local c = (1 - math.abs(2 * l - 1)) * s
  local x = c * (1 - math.abs(h % 2 - 1))
  local m = l - c / 2
  local r, g, b
  if h < 1 then r, g, b = c, x, 0
  elseif h < 2 then r, g, b = x, c, 0
  elseif h < 3 then r, g, b = 0, c, x
  elseif h < 4 then r, g, b = 0, x, c
  elseif h < 5 then r, g, b = x, 0, c
  else r, g, b = c, 0, x end
  return colour.hex((r + m) * 255, (g + m) * 255, (b + m) * 255)
end

-- colour.category(i): the i-th line colour (1-based): colour.CATEGORIES, then hues a golden
-- angle apart, so that any number of lines get colours that differ from their neighbours'.
function colour.category(i)
  if i <= #colour.CATEGORIES then return colour.CATEGORIES[i] end
  local k = i - #colour.CATEGORIES
  return colour.hsl(17 + k * 137.508, 0.55, k % 2 == 0 and 0.38 or 0.46)
end

-- colour.luminance(hex): relative luminance (WCAG 2), 0 for black to 1 for white.
function colour.luminance(hex)
  local function lin(v)
    v = v / 255
    return v <= 0.03928 and v / 12.92 or ((v + 0.055) / 1.055) ^ 2.4
  end
  local r, g, b = colour.rgb(hex)
  return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)
end

local DARK_TEXT = "#1f2933"
local DARK_LUMINANCE = colour.luminance(DARK_TEXT)

-- colour.text_on(bg): white or near black, whichever contrasts more with hex bg.
function colour.text_on(bg)
  local l = colour.luminance(bg)
  local contrast_white = 1.05 / (l + 0.05)
  local contrast_dark = (l + 0.05) / (DARK_LUMINANCE + 0.05)
  return contrast_white > contrast_dark and "#ffffff" or DARK_TEXT
end

return colour
