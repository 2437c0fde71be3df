-- lib/fmt.lua: number, percentage and duration formatting for reports, so every page writes a
-- figure the same way. Covered by tests/test_report.py (it checks the test accuracy as written
-- by fmt.percent) and tests/test_lua_hooks.lua.
--
--   local fmt = require "lib.fmt"
--   fmt.percent(0.291)        --> "29.1%"
--   fmt.thousands(878.56)     --> "879"
--   fmt.thousands(12345)      --> "12,345"
--   fmt.duration(125.4)       --> "2 min 05 s"
--   fmt.number(0.00004)       --> "4e-05"
--
-- A nil argument gives "–" (an en dash), so a missing figure shows as missing, never as 0.

local fmt = {}

fmt.MISSING = "\u{2013}"

-- fmt.percent(fraction, digits): fraction * 100 with `digits` decimals (default 1) and "%".
function fmt.percent(fraction, digits)
  if fraction == nil then return fmt.MISSING end
  return string.format("%." .. (digits or 1) .. "f%%", fraction * 100)
end

-- fmt.fixed(x, digits): x with `digits` decimals (default 4).
function fmt.fixed(x, digits)
  if x == nil then return fmt.MISSING end
  return string.format("%." .. (digits or 4) .. "f", x)
end

-- fmt.thousands(x): x rounded to an integer, with "," between groups of three digits.
function fmt.thousands(x)
  if x == nil then return fmt.MISSING end
  local s = string.format("%d", math.floor(x + 0.5))
  local sign, digits = s:match("^(-?)(%d+)$")
  digits = digits:reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^,", "")
  return sign .. digits
end

-- fmt.number(x): a short general form with 4 significant digits (%.4g): 0.2, 8e-07, 1.972.
function fmt.number(x)
  if x == nil then return fmt.MISSING end
  if math.type(x) == "integer" then return string.format("%d", x) end
  return string.format("%.4g", x)
end

-- fmt.count(n): a large count in a short form: 308650 -> "309k", 23520842 -> "23.5M".
function fmt.count(n)
  if n == nil then return fmt.MISSING end
  if n >= 1e9 then return string.format("%.3gG", n / 1e9) end
  if n >= 1e6 then return string.format("%.3gM", n / 1e6) end
  if n >= 1e3 then return string.format("%.3gk", n / 1e3) end
  return string.format("%d", math.floor(n + 0.5))
end

-- fmt.duration(seconds): "0.84 s", "9.98 s", "42 s", "2 min 05 s", "3 h 07 min".
function fmt.duration(seconds)
  if seconds == nil then return fmt.MISSING end
  if seconds < 10 then return string.format("%.2f s", seconds) end
  if seconds < 60 then return string.format("%.0f s", seconds) end
  local s = math.floor(seconds + 0.5)
  if s < 3600 then return string.format("%d min %02d s", s // 60, s % 60) end
  local m = (s + 30) // 60
  return string.format("%d h %02d min", m // 60, m % 60)
end

return fmt
