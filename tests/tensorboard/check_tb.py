"""check_tb.py RUN_DIR FILES DATA: a run's TensorBoard files as TensorBoard reads them.

Part of tests/test_tensorboard.sh. RUN_DIR/tensorboard must hold FILES event files, each
starting with file_version "brain.Event:2" (read with TensorBoard's own EventFileLoader,
which checks every record's masked CRC-32C). Through EventAccumulator (what TensorBoard's
scalar, image and text dashboards are built on): every epoch's scalars (train/loss,
train/acc, val/loss, val/acc, lr, img_per_s) equal metrics.jsonl's values as float32, at
metrics.jsonl's steps and no others (a resumed run's orphaned steps dropped);
train/loss_step at every train.log_every-th step; test/acc and test/loss equal summary.json's
at its last step; the confusion matrix a PNG of classes x cell pixels whose squares follow
confusion_matrix.csv; the sample grids PNGs of the size run_files.h gives (cells as large as
the folder dataset DATA's largest test image), their first cells
holding samples/'s first images pixel for pixel; the configuration as text, config.yaml
indented as a Markdown code block (once per file: a resumed run writes it again). Prints what it checked; exits 1 on a mismatch.
"""
import csv
import glob
import io
import json
import math
import os
import sys

import numpy as np
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

BORDER, MAX_CELL = 2, 96  # RUN_FILES_GRID_BORDER, RUN_FILES_GRID_CELL


def fail(msg):
    print(f"check_tb: {sys.argv[1]}: {msg}")
    sys.exit(1)


def f32(x):
    return float(np.float32(x))


def png(image_event, tag):
    im = Image.open(io.BytesIO(image_event.encoded_image_string))
    if im.format != "PNG" or im.mode != "RGB":
        fail(f"{tag}: {im.format} {im.mode}, not an RGB PNG")
    if (im.width, im.height) != (image_event.width, image_event.height):
        fail(f"{tag}: the PNG is {im.size}, the summary says {image_event.width}x{image_event.height}")
    return np.asarray(im)


def main():
    run, nfiles, data = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    largest = max(max(Image.open(p).size) for p in glob.glob(os.path.join(data, "test/*/*.png")))
    tb = os.path.join(run, "tensorboard")
    files = sorted(glob.glob(os.path.join(tb, "events.out.tfevents.*")))
    if len(files) != nfiles:
        fail(f"{len(files)} event files, expected {nfiles}: {files}")
    for f in files:
        first = next(iter(EventFileLoader(f).Load()))
        if first.file_version != "brain.Event:2":
            fail(f"{f}: first event {first}")
        sum(1 for _ in EventFileLoader(f).Load())  # every record read, CRCs checked

    ea = EventAccumulator(tb, size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    ea.Reload()
    rows = [json.loads(line) for line in open(os.path.join(run, "metrics.jsonl"))]
    summary = json.load(open(os.path.join(run, "summary.json")))
    config = open(os.path.join(run, "config.yaml")).read()

    def scalars(tag):
        return [(e.step, e.value) for e in ea.Scalars(tag)]

    pairs = {"train/loss": "train_loss", "train/acc": "train_acc", "val/loss": "val_loss",
             "val/acc": "val_acc", "lr": "lr", "img_per_s": "img_per_s"}
    for tag, key in pairs.items():
        want = [(r["step"], f32(r[key])) for r in rows]
        if scalars(tag) != want:
            fail(f"{tag}: {scalars(tag)}, metrics.jsonl has {want}")
    steps = summary["steps"]
    every = 2  # tiny.yaml's train.log_every
    got = [s for s, _ in scalars("train/loss_step")]
    if got != list(range(every, steps + 1, every)):
        fail(f"train/loss_step at steps {got}, expected every {every} up to {steps}")
    for tag, key in (("test/acc", "test_acc"), ("test/loss", "test_loss")):
        if scalars(tag) != [(steps, f32(summary[key]))]:
            fail(f"{tag}: {scalars(tag)}, summary.json has {summary[key]} at step {steps}")

    # The confusion matrix: its squares' colours by row share (run_files.c's white to blue).
    with open(os.path.join(run, "confusion_matrix.csv")) as f:
        table = [[int(x) for x in row[1:]] for row in list(csv.reader(f))[1:]]
    k = len(table)
    cell = min(24, max(2, 480 // k))
    cm = png(ea.Images("test/confusion_matrix")[0], "test/confusion_matrix")
    if cm.shape != (k * cell, k * cell, 3):
        fail(f"confusion matrix image {cm.shape}, expected {k * cell} x {k * cell}")
    for i in range(k):
        for j in range(k):
            share = table[i][j] / max(1, sum(table[i]))
            want = [int(255 - d * share + 0.5) for d in (247, 207, 148)]
            if list(cm[i * cell + cell // 2, j * cell + cell // 2]) != want:
                fail(f"confusion square ({i}, {j}): {cm[i * cell, j * cell]}, expected {want}")

    # The sample grids against samples/.
    with open(os.path.join(run, "samples", "index.csv")) as f:
        index = list(csv.DictReader(f))
    for kind in ("correct", "wrong"):
        names = [r["file"] for r in index if r["file"].startswith(kind)]
        tag = f"test/samples_{kind}"
        if not names:
            if tag in ea.Tags()["images"]:
                fail(f"{tag} without any such sample")
            continue
        first = np.asarray(Image.open(os.path.join(run, "samples", names[0])).convert("RGB"))
        side = min(MAX_CELL, largest)
        cols = math.ceil(math.sqrt(len(names)))
        rows_ = math.ceil(len(names) / cols)
        tile = side + 2 * BORDER
        grid = png(ea.Images(tag)[0], tag)
        if grid.shape != (rows_ * tile, cols * tile, 3):
            fail(f"{tag}: {grid.shape}, expected {rows_ * tile} x {cols * tile} for {len(names)}")
        h, w = first.shape[:2]
        if h <= side and w <= side:
            oy, ox = BORDER + (side - h) // 2, BORDER + (side - w) // 2
            if not np.array_equal(grid[oy:oy + h, ox:ox + w], first):
                fail(f"{tag}: the first cell is not {names[0]}")
        print(f"{tag}: {grid.shape[1]} x {grid.shape[0]}, {len(names)} images")

    text = ea.Tensors("config")
    want = "".join("    " + line + "\n" for line in config.splitlines())
    if len(text) != nfiles or any(t.tensor_proto.string_val[0].decode() != want for t in text):
        fail("config: not config.yaml as a code block, once per event file")
    print(f"check_tb: {run}: ok: {len(rows)} epochs of scalars equal metrics.jsonl, "
          f"{len(got)} loss steps, test/acc {summary['test_acc']}, confusion {k}x{k}, config")


main()
