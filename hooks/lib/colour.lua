-- lib/colour.lua: colour scales for heatmaps and a readable text colour on any background.
-- Covered by tests/test_lua_hooks.lua and tests/test_report_render.sh (report.lua's confusion
-- matrix).
--
--   local colour = require "lib.colour"
--   local bg = colour.scale(colour.BLUES, 0.8)   --> "#1d5fa3"-like hex string
--   local fg = colour.text_on(bg)               --> "#ffffff" on dark cells, else near black

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

-- colour.luminance(hex): relative luminance (WCAG 2), 0 for black to 1 for white.
function colour.luminance(hex)
  local function lin(v)
    v = v / 255
    return v <= 0.03928 and v / 12.92 or ((v + 0.055) / 1.055) ^ 2.4
  end
  local r, g, b = colour.rgb(hex)
  return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b)
end

-- colour.text_on(bg): white or near black, whichever contrasts more with hex bg.
function colour.text_on(bg)
  local l = colour.luminance(bg)
  local dark = colour.luminance("#1f2933")
  local contrast_white = 1.05 / (l + 0.05)
  local contrast_dark = (l + 0.05) / (dark + 0.05)
  return contrast_white > contrast_dark and "#ffffff" or "#1f2933"
end

return colour
