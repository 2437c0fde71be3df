"""check_hparams.py SWEEP_DIR KEY: a sweep's points in TensorBoard's HParams tab.

Part of tests/test_tensorboard.sh. Starts TensorBoard's server (the venv's `tensorboard`) on
127.0.0.1 with --logdir SWEEP_DIR, and asks its hparams plugin what the HParams tab shows:
/data/plugin/hparams/experiment must list the swept KEY, its domain spanning the points' values, and the
metrics val/acc and test/acc; /data/plugin/hparams/session_groups must hold one group per
point (sweep.csv's rows), each with the point's value of KEY, status STATUS_SUCCESS, and its
val/acc and test/acc equal to the run's last metrics.jsonl row and summary.json (as float32).
Prints what it checked; exits 1 on a mismatch.
"""
import csv
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np


def fail(msg):
    print(f"check_hparams: {sys.argv[1]}: {msg}")
    sys.exit(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(port, route, body):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/data/plugin/hparams/{route}",
                                 data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json",
                                          "X-TensorBoard-Feature-Flags": "{}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def main():
    sweep, key = sys.argv[1], sys.argv[2]
    with open(os.path.join(sweep, "sweep.csv")) as f:
        points = list(csv.DictReader(f))
    tb = os.path.join(os.path.dirname(sys.executable), "tensorboard")
    port = free_port()
    server = subprocess.Popen([tb, "--logdir", sweep, "--host", "127.0.0.1", "--port", str(port),
                               "--load_fast=false", "--reload_interval", "1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        exp = None
        for _ in range(120):  # the server starts, then loads the logdir
            time.sleep(0.5)
            if server.poll() is not None:
                fail(f"tensorboard exited {server.returncode}: {server.stderr.read().decode()}")
            try:
                exp = post(port, "experiment", {"experimentName": ""})
            except (urllib.error.URLError, ConnectionError):
                continue
            if len(exp.get("hparamInfos", [])) and len(exp.get("metricInfos", [])) >= 2:
                break
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
        metrics = {m["name"]["tag"] for m in exp["metricInfos"]}
        if not {"val/acc", "test/acc"} <= metrics:
            fail(f"metrics {sorted(metrics)}")

        cols = [{"hparam": key, "order": "ORDER_ASC"},
                {"metric": {"group": "", "tag": "val/acc"}},
                {"metric": {"group": "", "tag": "test/acc"}}]
        groups = post(port, "session_groups",
                      {"experimentName": "", "allowedStatuses": ["STATUS_UNKNOWN",
                       "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
                       "colParams": cols, "startIndex": 0, "sliceSize": 100})["sessionGroups"]
        if len(groups) != len(points):
            fail(f"{len(groups)} session groups for {len(points)} points")
        for g in groups:
            value = g["hparams"][key]
            p = [p for p in points if float(p[key]) == value]
            if len(p) != 1:
                fail(f"a session group with {key} = {value}, no such point")
            run = p[0]["run_dir"]
            if not os.path.isabs(run):
                run = os.path.join(os.getcwd(), run)
            last = [json.loads(line) for line in open(os.path.join(run, "metrics.jsonl"))][-1]
            summary = json.load(open(os.path.join(run, "summary.json")))
            got = {m["name"]["tag"]: m["value"] for m in g["metricValues"]}
            for tag, v in (("val/acc", last["val_acc"]), ("test/acc", summary["test_acc"])):
                if got.get(tag) != float(np.float32(v)):
                    fail(f"{key} = {value}: {tag} {got.get(tag)}, the run's {v}")
            status = [s["status"] for s in g["sessions"]]
            if status != ["STATUS_SUCCESS"]:
                fail(f"{key} = {value}: sessions {status}")
            print(f"{key} = {value}: val/acc {got['val/acc']:.4f}, test/acc {got['test/acc']:.4f}")
        print(f"check_hparams: {sweep}: ok: {len(groups)} points compared by TensorBoard")
    finally:
        server.terminate()
        server.wait(timeout=30)


main()
