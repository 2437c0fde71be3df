-- lib/html.lua: HTML escaping and a small string builder for hooks that write pages.
-- Covered by tests/test_lua_hooks.lua and, through report.lua's page, tests/test_report.py.
--
--   local html = require "lib.html"
--   local b = html.builder()
--   b:open("table", {id = "confusion", class = "matrix"})
--   b:tag("td", {["data-count"] = 12}, "12")   -- text is escaped
--   b:close("table")
--   local text = b:result()
--
-- Attributes are written in a fixed order (id, class, then the others sorted by name), so the
-- same input gives the same page byte for byte. A value of true writes a bare attribute
-- (`open`); false and nil leave the attribute out. Numbers are written with %.10g; integers as
-- integers.

local html = {}

--------------------------------------------------------------------------------------------------
-- Escaping

local ESCAPES = {["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;"}

-- html.escape(value): value (any type, through tostring) with & < > " ' escaped, safe both as
-- element text and inside a quoted attribute value.
function html.escape(value)
  return (tostring(value):gsub("[&<>\"']", ESCAPES))
end

local function value_text(value)
  if math.type(value) == "float" then
    if value == math.floor(value) and math.abs(value) < 2 ^ 53 then
      return string.format("%d", value)
    end
    return string.format("%.10g", value)
  end
  return tostring(value)
end

-- html.attrs(t): ` name="value"` for every attribute of t (see the ordering rules above), or "".
function html.attrs(t)
  if not t then return "" end
  local names = {}
  for name, value in pairs(t) do
    if value ~= nil and value ~= false and name ~= "id" and name ~= "class" then
      names[#names + 1] = name
    end
  end
  table.sort(names)
  if t.class then table.insert(names, 1, "class") end
  if t.id then table.insert(names, 1, "id") end
  local out = {}
  for _, name in ipairs(names) do
    local value = t[name]
    if value == true then
      out[#out + 1] = " " .. name
    else
      out[#out + 1] = string.format(' %s="%s"', name, html.escape(value_text(value)))
    end
  end
  return table.concat(out)
end

-- html.tag(name, attrs, text): one element holding escaped text (nil text: an empty element).
function html.tag(name, attrs, text)
  local body = text ~= nil and html.escape(value_text(text)) or ""
  return "<" .. name .. html.attrs(attrs) .. ">" .. body .. "</" .. name .. ">"
end

--------------------------------------------------------------------------------------------------
-- Builder

local Builder = {}
Builder.__index = Builder

-- html.builder(): an empty builder. Its methods return the builder, so calls can be chained.
function html.builder()
  return setmetatable({parts = {}}, Builder)
end

-- b:raw(...): appends strings as they are (markup already built).
function Builder:raw(...)
  local parts = self.parts
  for i = 1, select("#", ...) do
    parts[#parts + 1] = select(i, ...)
  end
  return self
end

-- b:text(value): appends escaped text.
function Builder:text(value)
  self.parts[#self.parts + 1] = html.escape(value_text(value))
  return self
end

-- b:open(name, attrs) / b:close(name): a start tag / an end tag.
function Builder:open(name, attrs)
  self.parts[#self.parts + 1] = "<" .. name .. html.attrs(attrs) .. ">"
  return self
end

function Builder:close(name)
  self.parts[#self.parts + 1] = "</" .. name .. ">"
  return self
end

-- b:void(name, attrs): an element without content or end tag (img, meta, br): its start tag.
Builder.void = Builder.open

-- b:tag(name, attrs, text): a whole element holding escaped text.
function Builder:tag(name, attrs, text)
  self.parts[#self.parts + 1] = html.tag(name, attrs, text)
  return self
end

-- b:result(): everything appended, as one string.
function Builder:result()
  return table.concat(self.parts)
end

return html
