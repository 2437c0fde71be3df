"""check_server.py RUN_DIR LOAD_FAST: a run's scalars as TensorBoard's server shows them.

Part of tests/test_tensorboard.sh. Starts TensorBoard's server on 127.0.0.1 with --logdir
RUN_DIR and --load_fast LOAD_FAST (false: its Python loader; true: its Rust data server), and
reads every epoch scalar of the run `tensorboard` from /data/plugin/scalars/scalars: each
must be metrics.jsonl's values as float32 at its steps, no others (for a resumed run, the
first file's epochs after the checkpoint dropped). Exits 1 on a mismatch.
"""
import json
import os
import sys
import urllib.parse

import numpy as np

from tb_server import Server

TAGS = {"train/loss": "train_loss", "train/acc": "train_acc", "val/loss": "val_loss",
        "val/acc": "val_acc", "lr": "lr", "img_per_s": "img_per_s"}


def main():
    run, load_fast = sys.argv[1], sys.argv[2]
    rows = [json.loads(line) for line in open(os.path.join(run, "metrics.jsonl"))]
    with Server(run, load_fast) as tb:
        for tag, key in TAGS.items():
            want = [(r["step"], float(np.float32(r[key]))) for r in rows]
            route = "/data/plugin/scalars/scalars?" + urllib.parse.urlencode(
                {"run": "tensorboard", "tag": tag})
            got = tb.wait_for(lambda: tb.get(route), lambda a: len(a) >= len(want)) or []
            got = [(step, value) for _, step, value in got]
            if got != want:
                print(f"check_server: {run}: {tag} (--load_fast={load_fast}): {got}, "
                      f"metrics.jsonl has {want}")
                sys.exit(1)
    print(f"check_server: {run}: ok: {len(TAGS)} scalars of {len(rows)} epochs "
          f"(--load_fast={load_fast})")


main()
