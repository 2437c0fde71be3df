#!/bin/sh
# test_report_render.sh RUN_DIR: draws RUN_DIR/report.html (hooks/report.lua's page) with headless
# Chromium at 1280x4000 and checks the screenshot is not blank: a valid PNG (chunk CRCs, inflated
# with zlib, scanline filters undone) with at least 1% of its pixels not white and at least 64
# distinct colours (charts, heatmap, images). The page is drawn from a copy in an empty folder
# with its <script> elements removed, so it must be self-contained and readable without
# JavaScript. Skipped (77) where no Chromium is installed, or RUN_DIR does not exist (CTest's
# report_render draws the run report_real_data keeps, which is skipped without the data),
# unless CI=true: then either fails. Set REPORT_SCREENSHOT=FILE to keep the screenshot.
set -u
run=${1:?usage: test_report_render.sh RUN_DIR}
html=$run/report.html
skip() {
    if [ "${CI:-}" = true ]; then
        echo "FAIL: $*"
        exit 1
    fi
    echo "skipped: $*"
    exit 77
}

browser=
for b in chromium chromium-browser google-chrome google-chrome-stable; do
    if command -v "$b" >/dev/null 2>&1; then browser=$b; break; fi
done
[ -n "$browser" ] || skip "no Chromium (apt-get install chromium)"
[ -d "$run" ] || skip "no run at $run"
[ -s "$html" ] || { echo "FAIL: $html missing or empty"; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
shot=${REPORT_SCREENSHOT:-$tmp/report.png}
case $shot in /*) ;; *) shot=$(pwd)/$shot ;; esac
mkdir "$tmp/page"
/usr/bin/python3 -c '
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
open(sys.argv[2], "w", encoding="utf-8").write(re.sub(r"(?is)<script\b.*?</script>", "", text))
' "$html" "$tmp/page/report.html" || { echo "FAIL: cannot copy $html"; exit 1; }
# A fresh profile per run, so a stale profile lock or a running browser cannot interfere.
timeout 120 "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --user-data-dir="$tmp/profile" --screenshot="$shot" --window-size=1280,4000 \
    "file://$tmp/page/report.html" >"$tmp/log" 2>&1
rc=$?
if [ ! -s "$shot" ]; then
    echo "FAIL: $browser wrote no screenshot (exit $rc):"
    sed 's/^/  /' "$tmp/log" | tail -20
    exit 1
fi

/usr/bin/python3 - "$shot" <<'EOF'
import struct, sys, zlib

path = sys.argv[1]
data = open(path, "rb").read()
def fail(msg):
    print(f"FAIL: screenshot {path}: {msg}")
    sys.exit(1)

if data[:8] != b"\x89PNG\r\n\x1a\n":
    fail("not a PNG")
pos, idat, ihdr = 8, [], None
while pos < len(data):
    length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + length]
    (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
    if zlib.crc32(ctype + body) & 0xFFFFFFFF != crc:
        fail(f"chunk {ctype!r} has a bad CRC")
    if ctype == b"IHDR":
        ihdr = struct.unpack(">IIBBBBB", body)
    elif ctype == b"IDAT":
        idat.append(body)
    elif ctype == b"IEND":
        break
    pos += 12 + length
if ihdr is None or not idat:
    fail("no IHDR or IDAT")
width, height, depth, colour_type, _, _, interlace = ihdr
bpp = {2: 3, 6: 4}.get(colour_type)
if depth != 8 or bpp is None or interlace:
    fail(f"unexpected format: depth {depth}, colour type {colour_type}, interlace {interlace}")
raw = zlib.decompress(b"".join(idat))
stride = width * bpp
if len(raw) != height * (stride + 1):
    fail(f"IDAT inflates to {len(raw)} bytes, expected {height * (stride + 1)}")

# Undo the scanline filters, row by row.
prev = bytearray(stride)
white = (255,) * 3
colours = set()
inked = 0
for y in range(height):
    f = raw[y * (stride + 1)]
    row = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    if f == 1:
        for i in range(bpp, stride):
            row[i] = (row[i] + row[i - bpp]) & 255
    elif f == 2:
        row = bytearray((a + b) & 255 for a, b in zip(row, prev))
    elif f == 3:
        for i in range(stride):
            left = row[i - bpp] if i >= bpp else 0
            row[i] = (row[i] + ((left + prev[i]) >> 1)) & 255
    elif f == 4:
        for i in range(stride):
            a = row[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            row[i] = (row[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    elif f != 0:
        fail(f"row {y}: unknown filter {f}")
    prev = row
    # Count pixels (RGB, alpha ignored) on every row; the colour set saturates quickly.
    for x in range(0, stride, bpp):
        px = (row[x], row[x + 1], row[x + 2])
        if px != white:
            inked += 1
            if len(colours) < 4096:
                colours.add(px)
total = width * height
share = inked / total
print(f"screenshot {width}x{height}: {share:.1%} of pixels not white, "
      f"{len(colours)}{'+' if len(colours) >= 4096 else ''} distinct colours")
if share < 0.01:
    fail(f"only {share:.2%} of the pixels are not white: the page looks blank")
if len(colours) < 64:
    fail(f"only {len(colours)} distinct colours: no charts or images drawn")
EOF
[ $? -eq 0 ] || exit 1
echo "report.html renders: ok"
