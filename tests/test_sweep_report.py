#!/usr/bin/python3
"""test_sweep_report.py SWEEP_DIR: checks SWEEP_DIR/sweep.html, as hooks/sweep_report.lua writes
it, against the points' own run directories (runs/<point>/summary.json and metrics.jsonl; not
sweep.csv), with the python3 standard library only. tests/test_sweep_report.c runs it on the
sweeps it builds.

  - The page is self-contained: no src attribute, no style sheet or script file, no url(); the
    only links that are not #fragments are relative ones to runs/<point>/report.html, which
    must exist.
  - <table id="points"> has one <tr data-point data-status data-best> per point; every folder
    of runs/ is the data-run-dir of one of them. A row is "done" exactly when its run directory
    has summary.json; its cells data-key="best_val_acc", "final_val_acc", "test_acc" hold
    summary.json's figures in data-value and as "%.1f%%" text, "seconds" and "img_per_s" its
    seconds and train_img_per_s. The row has a link to its report.html exactly when that exists.
  - The best point (the done point with the highest best_val_acc, else test_acc; the first on a
    tie) is the one row with data-best="true" and the data-point of <p id="best">, whose
    data-metric, data-value and text agree.
  - <svg class="chart" id="chart-val-acc"> (id="chart-train-acc" when no run has validation)
    has one <polyline class="series" data-series="POINT" data-points="N"> per point that did
    not fail and has metrics.jsonl lines with the metric, N of them, as many x,y pairs.
  - Every swept key whose values are all numbers (two of them different) has <figure class="vs"
    data-key="KEY"> with <svg id="chart-vs-..." data-log-x="true|false"> (true when the values
    are all positive and the key is named lr or *_lr, or they span more than a factor 20), one
    <g class="point" data-point data-metric data-x data-y> per done point and figure
    (best_val_acc, test_acc) it has: data-x the point's value, data-y the figure in %.
  - <meta http-equiv="refresh"> exactly while a point is pending or running; <ul
    id="unfinished"> lists exactly the failed and interrupted points.

Exits 0 when every check passes, else 1 with a message naming the first failure.
"""

import json
import math
import os
import re
import sys
import urllib.parse

from page_check import Elements, Failure, check, main, read_jsonl, read_page

FIGURES = {"best_val_acc": "best_val_acc", "final_val_acc": "final_val_acc",
           "test_acc": "test_acc", "seconds": "seconds", "img_per_s": "train_img_per_s"}
PERCENT = ("best_val_acc", "final_val_acc", "test_acc")
STATUSES = {"done", "running", "pending", "failed", "interrupted"}


def close(a, b):
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


def number(text, what):
    try:
        return float(text)
    except (TypeError, ValueError):
        raise Failure(f"{what}: {text!r} is not a number")


# --------------------------------------------------------------------------------------------
# HTML


class Page(Elements):
    """Collects what the checks need from the page in one pass."""

    def __init__(self):
        super().__init__()
        self.html_attrs = {}
        self.refresh = False
        self.external = []
        self.links = []        # hrefs that are not #fragments
        self.rows = []         # (attrs, cells), cells a list of (attrs, text, [hrefs])
        self.row = None
        self.cell = None
        self.in_points = False
        self.charts = {}       # chart id -> {"attrs":, "series": {key: attrs}, "points": [attrs]}
        self.chart = None
        self.figures = []      # attrs of figure.vs, with "chart": the svg id inside
        self.figure = None
        self.unfinished = []   # attrs of ul#unfinished li
        self.in_unfinished = False
        self.best_text = None
        self.in_best = False

    def start(self, tag, attrs, classes):
        if tag == "html":
            self.html_attrs = attrs
        if "src" in attrs:
            self.external.append(f"<{tag} src=\"{attrs['src'][:80]}\">")
        if tag == "link":
            self.external.append("<link>")
        if "style" in attrs and "url(" in attrs["style"]:
            self.external.append(f"<{tag} style=\"{attrs['style'][:80]}\">")
        href = attrs.get("href")
        if href is not None and not href.startswith("#"):
            self.links.append(href)
        if tag == "meta" and (attrs.get("http-equiv") or "").lower() == "refresh":
            self.refresh = True
        if tag == "p" and attrs.get("id") == "best":
            self.in_best = True
            self.best_text = ""
        if tag == "table" and attrs.get("id") == "points":
            self.in_points = True
        if tag == "tr" and self.in_points and "data-point" in attrs:
            self.row = (attrs, [])
        if tag in ("td", "th") and self.row is not None:
            self.cell = (attrs, [""], [])
        if tag == "a" and self.cell is not None and href is not None:
            self.cell[2].append(href)
        if tag == "figure" and "vs" in classes:
            self.figure = dict(attrs)
            self.figures.append(self.figure)
        if tag == "svg" and "chart" in classes:
            self.chart = attrs.get("id")
            check(self.chart, "an <svg class=\"chart\"> has no id")
            self.charts[self.chart] = {"attrs": attrs, "series": {}, "points": []}
            if self.figure is not None:
                self.figure["chart"] = self.chart
        if tag == "polyline" and "series" in classes:
            check(self.chart is not None, "a polyline.series outside any svg.chart")
            key = attrs.get("data-series")
            check(key, f"chart '{self.chart}': a polyline.series without data-series")
            check(key not in self.charts[self.chart]["series"],
                  f"chart '{self.chart}': two series named '{key}'")
            self.charts[self.chart]["series"][key] = attrs
        if tag == "g" and "point" in classes and self.chart is not None:
            self.charts[self.chart]["points"].append(attrs)
        if tag == "ul" and attrs.get("id") == "unfinished":
            self.in_unfinished = True
        if tag == "li" and self.in_unfinished:
            self.unfinished.append(attrs)

    def end(self, tag):
        if tag == "p":
            self.in_best = False
        if tag in ("td", "th") and self.cell is not None and self.row is not None:
            self.row[1].append((self.cell[0], self.cell[1][0].strip(), self.cell[2]))
            self.cell = None
        if tag == "tr" and self.row is not None:
            self.rows.append(self.row)
            self.row = None
        if tag == "table":
            self.in_points = False
        if tag == "svg":
            self.chart = None
        if tag == "figure":
            self.figure = None
        if tag == "ul":
            self.in_unfinished = False

    def text(self, data):
        if self.cell is not None:
            self.cell[1][0] += data
        if self.in_best:
            self.best_text += data


# --------------------------------------------------------------------------------------------
# The run directories


def read_summary(path):
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


class Point:
    def __init__(self, sweep, attrs, cells):
        self.name = attrs["data-point"]
        self.status = attrs.get("data-status")
        self.best = attrs.get("data-best")
        self.run_dir = attrs.get("data-run-dir")
        check(self.status in STATUSES, f"row '{self.name}': data-status={self.status!r}")
        check(self.best in ("true", "false"), f"row '{self.name}': data-best={self.best!r}")
        self.cells = {}
        self.links = []
        for cattrs, text, hrefs in cells:
            key = cattrs.get("data-key")
            if key is not None:
                check(key not in self.cells, f"row '{self.name}': two cells data-key='{key}'")
                self.cells[key] = (cattrs, text)
            self.links += hrefs
        path = os.path.join(sweep, self.run_dir) if self.run_dir else None
        self.summary = read_summary(os.path.join(path, "summary.json")) if path else None
        self.history = read_jsonl(os.path.join(path, "metrics.jsonl"), missing_ok=True) if path else []
        self.report = path is not None and os.path.isfile(os.path.join(path, "report.html"))

    def value(self, key):
        """The swept key's value: a number when the cell's data-value is one, else text."""
        cattrs, _ = self.cells.get(key, ({}, ""))
        v = cattrs.get("data-value")
        if v is None:
            return None
        try:
            x = float(v)
        except ValueError:
            return v
        return x if math.isfinite(x) else v


# --------------------------------------------------------------------------------------------
# Checks


def check_links(page, sweep):
    check(not page.external, f"the page loads something: {', '.join(page.external[:3])}")
    for href in page.links:
        parsed = urllib.parse.urlsplit(href)
        check(not parsed.scheme and not parsed.netloc and not href.startswith("/"),
              f"the page links outside the sweep directory: {href!r}")
        path = urllib.parse.unquote(parsed.path)
        parts = path.split("/")
        check(len(parts) == 3 and parts[0] == "runs" and parts[2] == "report.html"
              and ".." not in parts, f"the page links to {href!r}, not runs/<point>/report.html")
        check(os.path.isfile(os.path.join(sweep, path)), f"the link {href!r} leads nowhere")


def check_rows(points, sweep):
    check(points, "no <tr data-point> in <table id=\"points\">")
    names = [p.name for p in points]
    check(len(set(names)) == len(names), "two rows for one point")
    runs = os.path.join(sweep, "runs")
    dirs = {p.run_dir for p in points}
    if os.path.isdir(runs):
        for d in sorted(os.listdir(runs)):
            check(f"runs/{d}" in dirs, f"runs/{d} is the run directory of no row")
    for p in points:
        what = f"row '{p.name}'"
        check((p.status == "done") == (p.summary is not None),
              f"{what}: status {p.status}, but summary.json is "
              f"{'there' if p.summary is not None else 'absent'}")
        if p.summary is not None:
            for key, field in FIGURES.items():
                check(key in p.cells, f"{what}: no cell data-key=\"{key}\"")
                cattrs, text = p.cells[key]
                want = p.summary.get(field)
                got = cattrs.get("data-value")
                if want is None:
                    check(got is None, f"{what}: {key} data-value={got!r}, summary.json has none")
                    continue
                check(got is not None and close(number(got, f"{what}: {key}"), want),
                      f"{what}: {key} data-value={got!r}, summary.json {field} is {want}")
                if key in PERCENT:
                    check(text == "%.1f%%" % (want * 100),
                          f"{what}: {key} shows {text!r}, summary.json {want} is "
                          f"{'%.1f%%' % (want * 100)!r}")
        reports = [h for h in p.links if h.endswith("report.html")]
        if p.report:
            want = urllib.parse.quote(f"{p.run_dir}/report.html", safe="/=,+-._~")
            check(reports == [want], f"{what}: links {reports}, expected [{want!r}]")
        else:
            check(not reports, f"{what}: links to {reports}, but it has no report.html")


def best_of(points):
    for field in ("best_val_acc", "test_acc"):
        best = None
        for p in points:
            if p.status != "done" or p.summary is None or p.summary.get(field) is None:
                continue
            if best is None or p.summary[field] > best.summary[field]:
                best = p
        if best:
            return best, field
    return None, None


def check_best(page, points):
    best, field = best_of(points)
    check("best" in page.ids, "no <p id=\"best\">")
    attrs = page.ids["best"]
    flagged = [p.name for p in points if p.best == "true"]
    if best is None:
        check("data-point" not in attrs, "#best names a point, but no point is done")
        check(not flagged, f"rows {flagged} are marked best, but no point is done")
        return
    check(attrs.get("data-point") == best.name,
          f"#best names {attrs.get('data-point')!r}, the best point is {best.name!r} "
          f"({field} {best.summary[field]})")
    check(attrs.get("data-metric") == field,
          f"#best data-metric={attrs.get('data-metric')!r}, expected {field!r}")
    check(close(number(attrs.get("data-value"), "#best data-value"), best.summary[field]),
          f"#best data-value={attrs.get('data-value')!r}, expected {best.summary[field]}")
    shown = "%.1f%%" % (best.summary[field] * 100)
    check(shown in (page.best_text or ""), f"#best reads {page.best_text!r}, without {shown}")
    check(flagged == [best.name], f"rows marked best: {flagged}, expected [{best.name!r}]")


def check_curves(page, points):
    has_val = any(r.get("val_acc") is not None for p in points for r in p.history) or any(
        p.summary is not None and p.summary.get("best_val_acc") is not None for p in points)
    metric = "val_acc" if has_val else "train_acc"
    chart = "chart-val-acc" if has_val else "chart-train-acc"
    check(chart in page.charts, f"no <svg class=\"chart\" id=\"{chart}\">")
    series = page.charts[chart]["series"]
    names = {p.name for p in points}
    for key in series:
        check(key in names, f"{chart}: a line for '{key}', which is no point")
    for p in points:
        n = sum(1 for r in p.history if r.get(metric) is not None)
        line = series.get(p.name)
        if p.status == "failed" or n == 0:
            check(line is None, f"{chart}: a line for '{p.name}' ({p.status}, {n} epochs "
                  f"with {metric})")
            continue
        check(line is not None, f"{chart}: no line for '{p.name}' ({n} epochs with {metric})")
        check(line.get("data-points") == str(n),
              f"{chart}: '{p.name}' has data-points={line.get('data-points')!r}, its "
              f"metrics.jsonl has {n} lines with {metric}")
        pairs = len(re.findall(r"-?[\d.]+(?:e[-+]?\d+)?\s*,\s*-?[\d.]+(?:e[-+]?\d+)?",
                               line.get("points") or ""))
        check(pairs == n, f"{chart}: '{p.name}' draws {pairs} points, expected {n}")


def check_versus(page, points):
    keys = []
    for p in points:
        for key in p.cells:
            if key not in FIGURES and key not in keys:
                keys.append(key)
    figures = {f.get("data-key"): f for f in page.figures}
    for key in keys:
        values = [p.value(key) for p in points if p.value(key) is not None]
        numeric = values and all(isinstance(v, float) for v in values)
        if not numeric or len(set(values)) < 2:
            check(key not in figures, f"a chart against '{key}', whose values are not numbers")
            continue
        check(key in figures, f"no <figure class=\"vs\" data-key=\"{key}\">")
        chart_id = figures[key].get("chart")
        check(chart_id == "chart-vs-" + re.sub(r"[^A-Za-z0-9_-]", "-", key),
              f"the chart against '{key}' has id {chart_id!r}")
        chart = page.charts[chart_id]
        last = key.split(".")[-1]
        log = min(values) > 0 and (last == "lr" or last.endswith("_lr")
                                   or max(values) / min(values) > 20)
        got = chart["attrs"].get("data-log-x")
        check(got == ("true" if log else "false"),
              f"{chart_id}: data-log-x={got!r}, expected {'true' if log else 'false'}")
        want = {}
        for p in points:
            if p.status != "done" or p.summary is None or p.value(key) is None:
                continue
            for field in ("best_val_acc", "test_acc"):
                if p.summary.get(field) is not None:
                    want[(p.name, field)] = (p.value(key), p.summary[field] * 100)
        got_points = {}
        for g in chart["points"]:
            k = (g.get("data-point"), g.get("data-metric"))
            check(k not in got_points, f"{chart_id}: {k} drawn twice")
            got_points[k] = g
        check(set(got_points) == set(want),
              f"{chart_id}: points {sorted(got_points)}, expected {sorted(want)}")
        for k, (x, y) in want.items():
            g = got_points[k]
            check(close(number(g.get("data-x"), f"{chart_id} {k} data-x"), x),
                  f"{chart_id}: {k} at data-x={g.get('data-x')!r}, the point's {key} is {x}")
            check(abs(number(g.get("data-y"), f"{chart_id} {k} data-y") - y) < 1e-6,
                  f"{chart_id}: {k} at data-y={g.get('data-y')!r}, summary.json gives {y}")
    for key in figures:
        check(key in keys, f"a chart against '{key}', which is not a swept key")


def check_state(page, points):
    running = any(p.status in ("pending", "running") for p in points)
    check(page.refresh == running, "the page refreshes itself although every point has run"
          if page.refresh else "no <meta http-equiv=\"refresh\"> while points are to run")
    state = page.html_attrs.get("data-state")
    check(state == ("running" if running else "finished"), f"<html data-state={state!r}>")
    listed = [(li.get("data-point"), li.get("data-status")) for li in page.unfinished]
    want = [(p.name, p.status) for p in points if p.status in ("failed", "interrupted")]
    check(listed == want, f"#unfinished lists {listed}, expected {want}")


def check_sweep(sweep, path):
    page = read_page(path, Page())
    check_links(page, sweep)
    check("points" in page.ids, "no <table id=\"points\">")
    points = [Point(sweep, attrs, cells) for attrs, cells in page.rows]
    check_rows(points, sweep)
    check_best(page, points)
    check_curves(page, points)
    check_versus(page, points)
    check_state(page, points)
    done = sum(1 for p in points if p.status == "done")
    charts = len(page.charts)
    return (f"sweep.html: {len(points)} points ({done} done), {charts} chart"
            f"{'' if charts == 1 else 's'}: ok")


if __name__ == "__main__":
    sys.exit(main(sys.argv, "test_sweep_report.py SWEEP_DIR", "sweep.html", check_sweep))
