"""check_hparams.py SWEEP_DIR KEY LOAD_FAST: a sweep's points in TensorBoard's HParams tab.

Part of tests/test_tensorboard.sh. Starts TensorBoard's server (the venv's `tensorboard`) on
127.0.0.1 with --logdir SWEEP_DIR and --load_fast LOAD_FAST (false: its Python loader; true:
its Rust data server, what a plain `tensorboard --logdir` uses where it is installed), and
asks its hparams plugin what the HParams tab shows: /data/plugin/hparams/experiment must list
the swept KEY, its domain spanning the points' values, and the metrics tensorboard/val/acc
and tensorboard/test/acc (the run's tensorboard/ folder is their group); session_groups must
hold one group per point (sweep.csv's rows), each with the point's value of KEY; a done point
with status STATUS_SUCCESS and its val/acc and test/acc equal to the run's last metrics.jsonl
row and summary.json (as float32), a failed one with STATUS_FAILURE. Prints what it checked;
exits 1 on a mismatch.
"""
import csv
import json
import os
import sys

import numpy as np

from tb_server import Server


def fail(msg):
    print(f"check_hparams: {sys.argv[1]}: {msg}")
    sys.exit(1)


def main():
    sweep, key, load_fast = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(os.path.join(sweep, "sweep.csv")) as f:
        points = list(csv.DictReader(f))
    with Server(sweep, load_fast) as tb:
        exp = tb.wait_for(lambda: tb.post("/data/plugin/hparams/experiment", {"experimentName": ""}),
                          lambda e: len(e.get("hparamInfos", [])) and len(e.get("metricInfos", [])) >= 2)
        if not exp:
            fail("TensorBoard's hparams plugin never answered")
        infos = {h["name"]: h for h in exp["hparamInfos"]}
        if key not in infos:
            fail(f"hparams {list(infos)}, no {key}")
        # TensorBoard infers a number's domain as the interval its sessions span.
        want = sorted(float(p[key]) for p in points)
        iv = infos[key].get("domainInterval", {})
        domain = sorted(infos[key].get("domainDiscrete", [])) or [iv.get("minValue"), iv.get("maxValue")]
        if domain != want and domain != [want[0], want[-1]]:
            fail(f"{key}'s domain {infos[key]}, the sweep's values {want}")
        metrics = {(m["name"]["group"], m["name"]["tag"]) for m in exp["metricInfos"]}
        if not {("tensorboard", "val/acc"), ("tensorboard", "test/acc")} <= metrics:
            fail(f"metrics {sorted(metrics)}")

        cols = [{"hparam": key, "order": "ORDER_ASC"},
                {"metric": {"group": "tensorboard", "tag": "val/acc"}},
                {"metric": {"group": "tensorboard", "tag": "test/acc"}}]
        request = {"experimentName": "", "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS",
                   "STATUS_FAILURE", "STATUS_RUNNING"],
                   "colParams": cols, "startIndex": 0, "sliceSize": 100}
        done = sum(p["status"] == "done" for p in points)
        answer = tb.wait_for(lambda: tb.post("/data/plugin/hparams/session_groups", request),
                             lambda a: len(a.get("sessionGroups", [])) == len(points) and
                             sum(len(g["metricValues"]) == 2 for g in a["sessionGroups"]) == done)
        groups = (answer or {}).get("sessionGroups", [])
        if len(groups) != len(points):
            fail(f"{len(groups)} session groups for {len(points)} points")
        for g in groups:
            value = g["hparams"][key]
            p = [p for p in points if float(p[key]) == value]
            if len(p) != 1:
                fail(f"a session group with {key} = {value}, no such point")
            status = [s["status"] for s in g["sessions"]]
            if p[0]["status"] != "done":
                if status != ["STATUS_FAILURE"]:
                    fail(f"{key} = {value} ({p[0]['status']}): sessions {status}")
                print(f"{key} = {value}: {status[0]}")
                continue
            if status != ["STATUS_SUCCESS"]:
                fail(f"{key} = {value}: sessions {status}")
            run = p[0]["run_dir"]
            if not os.path.isabs(run):
                run = os.path.join(os.getcwd(), run)
            last = [json.loads(line) for line in open(os.path.join(run, "metrics.jsonl"))][-1]
            summary = json.load(open(os.path.join(run, "summary.json")))
            got = {m["name"]["tag"]: m["value"] for m in g["metricValues"]}
            for tag, v in (("val/acc", last["val_acc"]), ("test/acc", summary["test_acc"])):
                if got.get(tag) != float(np.float32(v)):
                    fail(f"{key} = {value}: {tag} {got.get(tag)}, the run's {v}")
            print(f"{key} = {value}: {status[0]}, val/acc {got['val/acc']:.4f}, "
                  f"test/acc {got['test/acc']:.4f}")
        print(f"check_hparams: {sweep}: ok: {len(groups)} points compared by TensorBoard "
              f"(--load_fast={load_fast})")


main()
