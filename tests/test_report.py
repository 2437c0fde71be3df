#!/usr/bin/python3
"""test_report.py RUN_DIR: checks the structure of RUN_DIR/report.html, as hooks/report.lua writes
it, against the run's own files (python3 standard library only).

A finished run (summary.json present):
  - the page is self-contained: no src/href to anything but data: URIs and #fragments, no
    external script or style sheet, and no <meta http-equiv="refresh">;
  - <svg class="chart" id="chart-loss"> holds <polyline class="series"> with data-series
    "train_loss" and "val_loss", "chart-acc" holds "train_acc" and "val_acc", "chart-lr" holds
    "lr"; each has data-points equal to the number of metrics.jsonl lines with that metric, and
    as many x,y pairs in points; a metric no line has (val_* without a validation split) has
    no series;
  - <table id="epochs"> has one row per metrics.jsonl line;
  - <table id="confusion"> is a square of <td data-count> cells, one row and column per class of
    per_class.csv, equal to confusion_matrix.csv, summing to the test set size (the sum of
    per_class.csv's support);
  - every <img class="sample"> is a data:image/png;base64 URI that decodes to a valid PNG (the
    signature, every chunk's CRC, IHDR 32x32, IDAT inflating to the size IHDR implies), equal
    to one of the files in samples/index.csv, as many as its rows;
  - <span id="test-acc"> reads summary.json's test_acc as report.lua writes it: "%.1f%%" of
    test_acc * 100.
A run in progress (no summary.json): the charts as above, the refresh <meta>, no test results.

Exits 0 when every check passes, else 1 with a message naming the first failure.
"""

import base64
import csv
import json
import os
import re
import struct
import sys
import zlib

from page_check import Elements, Failure, check, main, read_jsonl, read_page

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------------------------
# HTML


class Report(Elements):
    """Collects what the checks need from the page in one pass."""

    def __init__(self):
        super().__init__()
        self.charts = {}           # chart id -> {series key -> attrs of its polyline}
        self.chart = None
        self.tables = {}           # table id -> list of rows, each a list of (tag, attrs, text)
        self.table = None
        self.row = None
        self.cell = None
        self.images = []           # attrs of every <img class="sample">
        self.refresh = False
        self.texts = {}            # id -> text content (for the ids in WANT_TEXT)
        self.text_ids = []
        self.external = []         # src/href values that are not data: or #fragment
        self.scripts_with_src = 0

    WANT_TEXT = {"test-acc", "latest-acc", "state"}

    def start(self, tag, attrs, classes):
        if attrs.get("id") in self.WANT_TEXT:
            self.texts[attrs["id"]] = ""
            self.text_ids.append((attrs["id"], len(self.stack)))
        for name in ("src", "href"):
            value = attrs.get(name)
            if value is not None and not (value.startswith("data:") or value.startswith("#")):
                self.external.append(f"<{tag} {name}=\"{value[:80]}\">")
        if tag == "script" and "src" in attrs:
            self.scripts_with_src += 1
        if tag == "link" and (attrs.get("rel") or "").lower() == "stylesheet":
            self.external.append("<link rel=stylesheet>")
        if tag == "meta" and (attrs.get("http-equiv") or "").lower() == "refresh":
            self.refresh = True
        if tag == "svg" and "chart" in classes:
            self.chart = attrs.get("id")
            check(self.chart, "an <svg class=\"chart\"> has no id")
            self.charts[self.chart] = {}
        if tag == "polyline" and "series" in classes:
            check(self.chart is not None, "a polyline.series outside any svg.chart")
            key = attrs.get("data-series")
            check(key, f"chart '{self.chart}': a polyline.series without data-series")
            check(key not in self.charts[self.chart],
                  f"chart '{self.chart}': two series named '{key}'")
            self.charts[self.chart][key] = attrs
        if tag == "table" and attrs.get("id"):
            self.table = attrs["id"]
            self.tables[self.table] = []
        if tag == "tr" and self.table is not None:
            self.row = []
            self.row_attrs = attrs
            self.row_in_body = any(t == "tbody" for t, _ in self.stack)
        if tag in ("td", "th") and self.row is not None:
            self.cell = [tag, attrs, ""]
        if tag == "img" and "sample" in classes:
            self.images.append(attrs)

    def end(self, tag):
        self.text_ids = [(i, depth) for i, depth in self.text_ids if depth < len(self.stack)]
        if tag == "svg":
            self.chart = None
        if tag in ("td", "th") and self.cell is not None and self.row is not None:
            self.row.append(tuple(self.cell))
            self.cell = None
        if tag == "tr" and self.row is not None:
            if self.row_in_body:
                self.tables[self.table].append((self.row_attrs, self.row))
            self.row = None
        if tag == "table":
            self.table = None

    def text(self, data):
        if self.cell is not None:
            self.cell[2] += data
        for i, _ in self.text_ids:
            self.texts[i] += data


# --------------------------------------------------------------------------------------------
# PNG


def check_png(data, what):
    """A valid PNG of 32x32 pixels: signature, chunk CRCs, IHDR, IDAT size; returns (w, h)."""
    check(data[:8] == PNG_SIGNATURE, f"{what}: not a PNG (signature {data[:8]!r})")
    pos = 8
    chunks = []
    while pos < len(data):
        check(pos + 8 <= len(data), f"{what}: truncated chunk header at byte {pos}")
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        check(len(body) == length and pos + 12 + length <= len(data),
              f"{what}: chunk {ctype!r} truncated")
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        check(zlib.crc32(ctype + body) & 0xFFFFFFFF == crc,
              f"{what}: chunk {ctype!r} at byte {pos} has a bad CRC")
        chunks.append((ctype, body))
        pos += 12 + length
        if ctype == b"IEND":
            break
    check(chunks and chunks[0][0] == b"IHDR", f"{what}: the first chunk is not IHDR")
    check(chunks[-1][0] == b"IEND", f"{what}: no IEND chunk")
    ihdr = chunks[0][1]
    check(len(ihdr) == 13, f"{what}: IHDR is {len(ihdr)} bytes, expected 13")
    width, height, depth, ctype, _comp, _filt, interlace = struct.unpack(">IIBBBBB", ihdr)
    check((width, height) == (32, 32), f"{what}: IHDR says {width}x{height}, expected 32x32")
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(ctype)
    check(channels is not None, f"{what}: unknown colour type {ctype}")
    check(depth in (1, 2, 4, 8, 16), f"{what}: bit depth {depth}")
    idat = b"".join(body for t, body in chunks if t == b"IDAT")
    check(idat, f"{what}: no IDAT chunk")
    try:
        raw = zlib.decompress(idat)
    except zlib.error as e:
        raise Failure(f"{what}: IDAT does not inflate: {e}")
    if interlace == 0:
        row = (width * channels * depth + 7) // 8
        expect = height * (1 + row)
        check(len(raw) == expect, f"{what}: IDAT inflates to {len(raw)} bytes, expected {expect}")
        for y in range(height):
            check(raw[y * (1 + row)] <= 4, f"{what}: row {y} has filter type {raw[y * (1 + row)]}")
    return width, height


# --------------------------------------------------------------------------------------------
# The run's files


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def count_pairs(points):
    return len(re.findall(r"-?[\d.]+(?:e[-+]?\d+)?\s*,\s*-?[\d.]+(?:e[-+]?\d+)?", points or ""))


# --------------------------------------------------------------------------------------------
# Checks


def check_charts(page, history):
    wanted = {
        "chart-loss": ("train_loss", "val_loss"),
        "chart-acc": ("train_acc", "val_acc"),
        "chart-lr": ("lr",),
    }
    for chart, keys in wanted.items():
        check(chart in page.charts, f"no <svg class=\"chart\" id=\"{chart}\">")
        for key in keys:
            n = sum(1 for row in history if row.get(key) is not None)
            series = page.charts[chart].get(key)
            if n == 0:
                check(series is None, f"{chart}: series '{key}' drawn, but no epoch has {key}")
                continue
            check(series is not None, f"{chart}: no polyline.series data-series=\"{key}\" "
                  f"({n} epochs have {key})")
            points = series.get("data-points")
            check(points is not None and points.isdigit() and int(points) == n,
                  f"{chart}: series '{key}' has data-points={points!r}, metrics.jsonl has {n}")
            pairs = count_pairs(series.get("points"))
            check(pairs == n, f"{chart}: series '{key}' draws {pairs} points, expected {n}")


def check_epochs(page, history):
    check("epochs" in page.tables, "no <table id=\"epochs\">")
    rows = page.tables["epochs"]
    check(len(rows) == len(history),
          f"table#epochs has {len(rows)} rows, metrics.jsonl has {len(history)} lines")
    for (attrs, _), row in zip(rows, history):
        check(attrs.get("data-epoch") == str(row.get("epoch")),
              f"table#epochs: row data-epoch={attrs.get('data-epoch')!r}, "
              f"expected {row.get('epoch')}")


def check_confusion(page, run):
    per_class = read_csv(os.path.join(run, "per_class.csv"))
    header = per_class[0]
    check("support" in header, "per_class.csv has no support column")
    classes = [r[0] for r in per_class[1:] if r]
    support = sum(int(r[header.index("support")]) for r in per_class[1:] if r)
    matrix = read_csv(os.path.join(run, "confusion_matrix.csv"))
    expected = [[int(v) for v in r[1:]] for r in matrix[1:] if r]

    check("confusion" in page.tables, "no <table id=\"confusion\">")
    rows = []
    for _, cells in page.tables["confusion"]:
        counts = [c for c in cells if c[0] == "td" and "data-count" in c[1]]
        if counts:
            rows.append(counts)
    n = len(classes)
    check(len(rows) == n, f"table#confusion has {len(rows)} rows of counts, expected {n} (classes)")
    total = 0
    for t, row in enumerate(rows):
        check(len(row) == n, f"table#confusion row {t + 1} ({classes[t]}) has {len(row)} cells, "
              f"expected {n}")
        for p, (_, attrs, text) in enumerate(row):
            value = attrs["data-count"]
            check(value.isdigit(), f"table#confusion [{classes[t]}][{classes[p]}]: "
                  f"data-count={value!r} is not a count")
            check(text.strip().replace(",", "") == value,
                  f"table#confusion [{classes[t]}][{classes[p]}]: shows {text.strip()!r}, "
                  f"data-count is {value}")
            check(int(value) == expected[t][p],
                  f"table#confusion [{classes[t]}][{classes[p]}] = {value}, "
                  f"confusion_matrix.csv has {expected[t][p]}")
            total += int(value)
    check(total == support, f"table#confusion sums to {total}, the test set has {support} images "
          "(per_class.csv support)")


def check_samples(page, run):
    index = read_csv(os.path.join(run, "samples", "index.csv"))
    files = [r[0] for r in index[1:] if r]
    check(len(page.images) == len(files),
          f"{len(page.images)} <img class=\"sample\">, samples/index.csv has {len(files)} rows")
    on_disk = {}
    for name in files:
        with open(os.path.join(run, "samples", name), "rb") as f:
            on_disk[f.read()] = name
    seen = set()
    prefix = "data:image/png;base64,"
    for i, attrs in enumerate(page.images, 1):
        src = attrs.get("src") or ""
        what = f"sample image {i}"
        check(src.startswith(prefix), f"{what}: src is not a {prefix} URI: {src[:60]!r}")
        try:
            data = base64.b64decode(src[len(prefix):], validate=True)
        except ValueError as e:
            raise Failure(f"{what}: the base64 does not decode: {e}")
        check_png(data, what)
        check(data in on_disk, f"{what}: matches none of the files in samples/index.csv")
        check(on_disk[data] not in seen, f"{what}: {on_disk[data]} is shown twice")
        seen.add(on_disk[data])


def check_test_acc(page, summary):
    if summary.get("test_acc") is None:
        return
    check("test-acc" in page.texts, "no element with id=\"test-acc\"")
    shown = page.texts["test-acc"].strip()
    want = "%.1f%%" % (summary["test_acc"] * 100)
    check(shown == want, f"#test-acc shows {shown!r}, summary.json test_acc "
          f"{summary['test_acc']} is {want!r}")


def check_run(run, path):
    page = read_page(path, Report())
    history = read_jsonl(os.path.join(run, "metrics.jsonl"))
    finished = os.path.isfile(os.path.join(run, "summary.json"))

    check(not page.external, f"the page links outside itself: {', '.join(page.external[:3])}")
    check(page.scripts_with_src == 0, "the page loads a script file")
    if history:
        check_charts(page, history)
        check_epochs(page, history)
    else:
        check(not page.charts, "charts drawn before any epoch finished")
    if finished:
        with open(os.path.join(run, "summary.json"), encoding="utf-8") as f:
            summary = json.load(f)
        check(not page.refresh, "a finished run's report still refreshes itself "
              "(<meta http-equiv=\"refresh\">)")
        check_confusion(page, run)
        check_samples(page, run)
        check_test_acc(page, summary)
        state = "finished run"
    else:
        check(page.refresh, "a run in progress has no <meta http-equiv=\"refresh\">")
        check("confusion" not in page.tables, "a run in progress shows a confusion matrix")
        state = "run in progress"
    return (f"report.html of a {state}: {len(history)} epochs, {len(page.charts)} charts, "
            f"{len(page.images)} sample images: ok")


if __name__ == "__main__":
    sys.exit(main(sys.argv, "test_report.py RUN_DIR", "report.html", check_run))
