-- lib/page.lua: the frame every report page shares (report.lua's report.html, sweep_report.lua's
-- sweep.html): one style sheet, the <head> and the closing footer and script, the title row
-- with its badge, facts and contents links, and the headline cards. Covered by
-- tests/test_report.py and tests/test_sweep_report.py (through the pages) and
-- tests/test_lua_hooks.lua.
--
--   local html = require "lib.html"
--   local page = require "lib.page"
--   local b = html.builder()
--   page.begin(b, {title = "quick \u{2013} 29.1% test accuracy", state = "finished",
--     generator = "runner hooks/report.lua", css = EXTRA_CSS, refresh = nil})
--   page.header(b, {title = "quick", badge = {class = "finished", text = "finished"},
--     meta = {{"device", "cpu"}, {"commit", nil}}, toc = {{"summary", "Summary"}}})
--   page.card(b, "Test accuracy", "29.1%", "10,000 test images", {primary = true, id = "test-acc"})
--   page.finish(b, "Written by hooks/report.lua on 2026-11-25 14:03:59.")
--
-- The page is self-contained: no network, readable without JavaScript (the script only sorts
-- tables and opens <details> before printing), printable on A4.

local page = {}

-- How often, in seconds, a page of a run or sweep still in progress reloads itself.
page.REFRESH_SECONDS = 30

-- The style sheet. Colours: --train and --accent blue, --val orange, --good green, --bad red.
page.CSS = [[
:root{--fg:#1f2933;--muted:#616e7c;--faint:#9aa5b1;--line:#e4e7eb;--soft:#f5f7fa;
--accent:#2f6db5;--train:#2f6db5;--val:#d9730d;--good:#2f7d4f;--bad:#b83232}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:#fff;color:var(--fg);font:15px/1.5 system-ui,-apple-system,"Segoe UI",
Roboto,"Helvetica Neue",Arial,"Noto Sans","Liberation Sans",sans-serif}
main{max-width:1120px;margin:0 auto;padding:28px 32px 40px}
h1{font-size:30px;line-height:1.2;margin:0;font-weight:650;letter-spacing:-.01em}
h2{font-size:19px;margin:0 0 14px;padding-bottom:6px;border-bottom:1px solid var(--line);
break-after:avoid;font-weight:600}
h3{font-size:15px;margin:18px 0 8px;font-weight:600;break-after:avoid;page-break-after:avoid}
p{margin:6px 0}
a{color:var(--accent)}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace;
font-size:13px}
.muted{color:var(--muted)}
.num{font-variant-numeric:tabular-nums}
header.top{display:flex;flex-wrap:wrap;align-items:baseline;gap:8px 14px}
.badge{display:inline-block;padding:2px 10px;border-radius:999px;font-size:13px;font-weight:600;
border:1px solid currentColor;-webkit-print-color-adjust:exact;print-color-adjust:exact}
.badge.finished{color:var(--good);background:#eef7f1}
.badge.running,.badge.started{color:var(--accent);background:#eef3fa}
.badge.stopped{color:#9a5b00;background:#fdf4e6}
.meta{display:flex;flex-wrap:wrap;gap:2px 22px;margin:10px 0 0;color:var(--muted);font-size:14px}
.meta b{color:var(--fg);font-weight:600}
nav.toc{margin:14px 0 0;font-size:14px;display:flex;flex-wrap:wrap;gap:4px 16px}
nav.toc a{text-decoration:none}
nav.toc a:hover{text-decoration:underline}
.notice{margin:18px 0 0;padding:10px 14px;border-left:4px solid var(--accent);
background:var(--soft);-webkit-print-color-adjust:exact;print-color-adjust:exact}
.notice.stop{border-left-color:#d99a00;background:#fdf8ec}
section{margin-top:34px;break-inside:avoid;page-break-inside:avoid}
section.flow{break-inside:auto;page-break-inside:auto}
.headline{display:grid;grid-template-columns:1.35fr repeat(3,1fr);gap:12px}
.card{border:1px solid var(--line);border-radius:10px;padding:12px 16px;min-width:0}
.card .label{font-size:12px;text-transform:uppercase;letter-spacing:.05em;color:var(--muted);
font-weight:600}
.card .value{font-size:25px;font-weight:600;line-height:1.25;margin-top:2px;
font-variant-numeric:tabular-nums;white-space:nowrap}
.card .sub{font-size:13px;color:var(--muted);margin-top:2px}
.card.primary{grid-row:span 2;display:flex;flex-direction:column;justify-content:center;
border-color:#c9d8ec;background:#f6f9fd;-webkit-print-color-adjust:exact;print-color-adjust:exact}
.card.primary .value{font-size:52px;color:var(--accent);letter-spacing:-.02em}
.progress{height:6px;border-radius:3px;background:var(--line);margin-top:8px;overflow:hidden;
-webkit-print-color-adjust:exact;print-color-adjust:exact}
.progress span{display:block;height:100%;background:var(--accent)}
details{margin-top:12px}
details>summary{cursor:pointer;color:var(--accent);font-size:14px}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(440px,1fr));gap:18px 28px}
.charts figure{margin:0;break-inside:avoid;page-break-inside:avoid}
.charts figcaption{font-size:13px;color:var(--muted);margin-top:2px}
svg.chart{display:block;width:100%;height:auto;max-height:420px;overflow:visible}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
table.data{width:100%;font-size:14px}
table.data th,table.data td{padding:5px 10px;border-bottom:1px solid var(--line);text-align:right;
white-space:nowrap}
table.data th:first-child,table.data td:first-child{text-align:left}
table.data thead th{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);
font-weight:600;border-bottom:1px solid var(--faint);vertical-align:bottom}
table.data tbody tr:hover{background:var(--soft)}
table.data tr.best td{font-weight:600}
table.data .text{text-align:left}
th[data-sort]{cursor:pointer;user-select:none}
th[aria-sort=ascending]::after{content:" \25B2";font-size:9px}
th[aria-sort=descending]::after{content:" \25BC";font-size:9px}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:5px;
vertical-align:-1px;-webkit-print-color-adjust:exact;print-color-adjust:exact}
.bar{display:inline-block;width:64px;height:8px;background:var(--line);border-radius:2px;
margin-left:8px;vertical-align:0;overflow:hidden;-webkit-print-color-adjust:exact;
print-color-adjust:exact}
.bar span{display:block;height:100%;background:var(--accent)}
.scroll{overflow-x:auto}
footer{margin-top:40px;padding-top:10px;border-top:1px solid var(--line);font-size:12px;
color:var(--muted)}
@media screen and (max-width:760px){main{padding:18px 14px}.headline{grid-template-columns:1fr 1fr}
.card.primary{grid-column:span 2;grid-row:auto}.charts{grid-template-columns:1fr}}
@media print{
@page{size:A4;margin:12mm 11mm}
body{font-size:11pt}
main{max-width:none;padding:0}
nav.toc,details>summary::marker{display:none}
a{color:inherit;text-decoration:none}
section{margin-top:20px}
.headline{grid-template-columns:1.3fr repeat(3,1fr);gap:8px}
.card{padding:8px 12px}
.card .value{font-size:17pt}
.card.primary .value{font-size:34pt}
.charts{grid-template-columns:1fr;gap:14px}
.charts figure{width:80%;margin:0 auto}
svg.chart{max-height:none}
.scroll{overflow:visible}
table.data{font-size:9pt}
table.data th,table.data td{padding:3px 6px}
table.data thead th{font-size:8pt}
table.data tbody tr:hover{background:none}
}
]]

-- Sorts tables with class "sortable" when a header with data-sort is clicked; cells sort by
-- their data-value, else their text. Without JavaScript the tables read as they are. Before
-- printing, every <details> opens.
page.SCRIPT = [[
(function(){
function key(td,num){var v=td.getAttribute('data-value');if(v===null)v=td.textContent.trim();
return num?parseFloat(v):v.toLowerCase();}
document.querySelectorAll('table.sortable').forEach(function(table){
var heads=table.querySelectorAll('thead th[data-sort]');
heads.forEach(function(th){th.addEventListener('click',function(){
var col=Array.prototype.indexOf.call(th.parentNode.children,th);
var num=th.getAttribute('data-sort')==='number';
var dir=th.getAttribute('aria-sort')==='ascending'?-1:1;
heads.forEach(function(h){h.removeAttribute('aria-sort');});
th.setAttribute('aria-sort',dir>0?'ascending':'descending');
var body=table.tBodies[0];var rows=Array.prototype.slice.call(body.rows);
rows.sort(function(a,b){var x=key(a.cells[col],num),y=key(b.cells[col],num);
if(num){if(isNaN(x))return 1;if(isNaN(y))return -1;}
return x<y?-dir:x>y?dir:0;});
rows.forEach(function(r){body.appendChild(r);});});});});
window.addEventListener('beforeprint',function(){
document.querySelectorAll('details').forEach(function(d){d.open=true;});});
})();
]]

-- page.begin(b, o): the doctype, <html lang="en" data-state=o.state>, the <head> (charset,
-- viewport, <meta http-equiv="refresh" content=o.refresh> when o.refresh is set, generator
-- o.generator, <title> o.title, the style sheet followed by o.css), then <body><main>.
function page.begin(b, o)
  b:raw("<!DOCTYPE html>\n")
  b:open("html", {lang = "en", ["data-state"] = o.state}):raw("\n<head>\n")
  b:void("meta", {charset = "utf-8"})
  b:void("meta", {name = "viewport", content = "width=device-width, initial-scale=1"})
  if o.refresh then
    b:void("meta", {["http-equiv"] = "refresh", content = tostring(o.refresh)})
  end
  b:void("meta", {name = "generator", content = o.generator})
  b:tag("title", nil, o.title)
  b:raw("\n<style>", page.CSS, o.css or "", "</style>\n</head>\n<body>\n<main>\n")
  return b
end

-- page.finish(b, footer): <footer> with the text footer, then closes the page with the script.
function page.finish(b, footer)
  b:tag("footer", nil, footer)
  b:raw("\n</main>\n<script>", page.SCRIPT, "</script>\n</body>\n</html>\n")
  return b
end

-- page.header(b, o): the title row (<h1> o.title and, with o.badge = {class =, text =, id =},
-- <span class="badge CLASS">), the facts o.meta ({{label, value}, ...}; nil values are left
-- out) and, with o.toc ({{id, text}, ...}), a <nav class="toc"> of links to those ids.
function page.header(b, o)
  b:open("header", {class = "top"})
  b:tag("h1", nil, o.title)
  if o.badge then
    b:tag("span", {class = "badge " .. o.badge.class, id = o.badge.id or "state"}, o.badge.text)
  end
  b:close("header")

  b:open("div", {class = "meta"})
  for _, item in ipairs(o.meta or {}) do
    if item[2] ~= nil then
      b:open("span"):text(item[1] .. " "):tag("b", nil, item[2]):close("span")
    end
  end
  b:close("div")

  if o.toc then
    b:open("nav", {class = "toc"})
    for _, t in ipairs(o.toc) do
      b:tag("a", {href = "#" .. t[1]}, t[2])
    end
    b:close("nav")
  end
  return b
end

-- page.card(b, label, value, sub, attrs): a headline card (inside <div class="headline">):
-- label, the value large, sub under it. attrs: primary = true (the large card spanning two
-- rows), id and data_value (the value is then <span id=ID data-value=DATA_VALUE>), progress
-- (a fraction: a progress bar).
function page.card(b, label, value, sub, attrs)
  attrs = attrs or {}
  b:open("div", {class = "card" .. (attrs.primary and " primary" or "")})
  b:tag("div", {class = "label"}, label)
  b:open("div", {class = "value"})
  if attrs.id then
    b:tag("span", {id = attrs.id, ["data-value"] = attrs.data_value}, value)
  else
    b:text(value)
  end
  b:close("div")
  if attrs.progress then
    b:open("div", {class = "progress"})
    b:void("span", {style = string.format("width:%.1f%%", attrs.progress * 100)}):close("span")
    b:close("div")
  end
  if sub then b:tag("div", {class = "sub"}, sub) end
  b:close("div")
  return b
end

return page
