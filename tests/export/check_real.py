"""check_real.py RUN_DIR EXPORT_LOGITS CIFAR10_DIR MODEL.onnx...

Part of tests/test_export_real.sh. RUN_DIR is a finished run on the real CIFAR-10, each MODEL
an export of it (runner export RUN_DIR, with or without --normalize, --batch, --fold-bn);
CIFAR10_DIR holds cifar-10-batches-bin/. Reads test_batch.bin (each record a label byte and
3072 bytes of planar RGB, 32x32) and preprocesses as the run's evaluation does: bytes / 255 in
float32, then augment.eval's normalize, subtract then divide in float32 (the model gets the
[0, 1] images when it was exported with --normalize). Checks:

- RUN_DIR's config.yaml: augment.eval is one normalize transform, its mean and std those of a
  --normalize export; summary.json: no flip test-time augmentation, 10000 test images;
- the first 256 test images through onnxruntime and through export_logits (the runner's CPU
  plan) with RUN_DIR's weights: max |ort - runner| <= 1e-4 * max |runner| for every model;
- every model with a symbolic batch: all 10000 test images through onnxruntime, its
  predictions against export_logits' (the disagreements printed); with its batchnorms as nodes
  (not --fold-bn, whose weights are rounded apart from the runner's), the count of correct
  predictions must equal summary.json's test_acc * 10000 and the confusion matrix
  RUN_DIR/confusion_matrix.csv (rows true, columns predicted).

Prints the figures measured; exits 1 on a mismatch.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnx.numpy_helper
import onnxruntime as ort

RECORD = 1 + 3072
FIRST = 256
CHUNK = 1000


def fail(msg):
    print(f"check_real: {msg}")
    sys.exit(1)


def eval_normalize(config):
    """augment.eval's only transform, a normalize: its mean and std (float32, (1, 3, 1, 1))."""
    lines = open(config).read().splitlines()
    start = lines.index("augment:")
    block, inside = [], False
    for line in lines[start + 1:]:
        if not line.startswith("  "):
            break
        if line.startswith("  ") and not line.startswith("   "):
            inside = line.strip() == "eval:"
            continue
        if inside:
            block.append(line.strip())
    if len(block) != 1:
        fail(f"{config}: augment.eval should be one normalize transform, got {block}")
    m = re.fullmatch(r"- \{normalize: \{mean: \[([^]]*)\], std: \[([^]]*)\]\}\}", block[0])
    if not m:
        fail(f"{config}: augment.eval is not a plain normalize: {block[0]}")
    mean, std = ([float(v) for v in g.split(",")] for g in m.groups())
    shape = (1, 3, 1, 1)
    return (np.array(mean, np.float32).reshape(shape), np.array(std, np.float32).reshape(shape))


def read_test(data_dir):
    raw = np.fromfile(os.path.join(data_dir, "cifar-10-batches-bin", "test_batch.bin"), np.uint8)
    if raw.size != 10000 * RECORD:
        fail(f"test_batch.bin holds {raw.size} bytes, expected {10000 * RECORD}")
    raw = raw.reshape(10000, RECORD)
    labels = raw[:, 0].astype(np.int64)
    images = raw[:, 1:].reshape(10000, 3, 32, 32).astype(np.float32) / np.float32(255)
    return images, labels


def runner_logits(prog, exp, weights, x):
    with tempfile.TemporaryDirectory() as tmp:
        xin, yout = os.path.join(tmp, "x.f32"), os.path.join(tmp, "y.f32")
        np.ascontiguousarray(x, np.float32).tofile(xin)
        subprocess.run([prog, "run", exp, weights, xin, str(len(x)), yout], check=True)
        return np.fromfile(yout, np.float32).reshape(len(x), -1)


def main():
    run, prog, data_dir = sys.argv[1:4]
    models = sys.argv[4:]
    exp, weights = os.path.join(run, "config.yaml"), os.path.join(run, "model.safetensors")
    summary = json.load(open(os.path.join(run, "summary.json")))
    if summary.get("flip_tta") is not False:
        fail("the run tested with flip test-time augmentation; these checks need it off")
    mean, std = eval_normalize(exp)
    images, labels = read_test(data_dir)
    net_in = (images - mean) / std  # float32, as the runner's normalize

    with open(os.path.join(run, "confusion_matrix.csv")) as f:
        rows = [line.rstrip("\n").split(",") for line in f if line.strip()]
    classes = rows[0][1:]
    confusion = np.array([[int(v) for v in r[1:]] for r in rows[1:]], np.int64)
    if confusion.shape != (len(classes), len(classes)) or confusion.sum() != 10000:
        fail(f"confusion_matrix.csv: {confusion.shape}, {confusion.sum()} images")
    correct_run = round(summary["test_acc"] * 10000)

    ref = runner_logits(prog, exp, weights, net_in[:FIRST])
    scale = float(np.abs(ref).max())
    runner_pred = None
    for path in models:
        m = onnx.load(path)
        inits = {t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer}
        normalize = "normalize.mean" in inits
        if normalize and not (np.array_equal(inits["normalize.mean"], mean) and
                              np.array_equal(inits["normalize.std"], std)):
            fail(f"{path}: normalize.mean and .std are not config.yaml's")
        d0 = m.graph.input[0].type.tensor_type.shape.dim[0]
        batch = d0.dim_value if d0.HasField("dim_value") else 0
        folded = not any(n.op_type == "BatchNormalization" for n in m.graph.node)
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        x = images if normalize else net_in
        name = os.path.basename(path)

        got = np.concatenate([sess.run(["logits"], {"images": x[i:i + (batch or FIRST)]})[0]
                              for i in range(0, FIRST, batch or FIRST)])
        diff = float(np.abs(got - ref).max())
        print(f"{name}: first {FIRST} test images: max |ort - runner| = {diff:.3g} "
              f"(max |runner| = {scale:.3g}, relative {diff / scale:.3g})")
        if not diff <= 1e-4 * scale:
            fail(f"{name}: logits differ by {diff} > 1e-4 * {scale}")
        if batch:
            continue

        pred = np.concatenate([sess.run(["logits"], {"images": x[i:i + CHUNK]})[0].argmax(1)
                               for i in range(0, 10000, CHUNK)])
        if runner_pred is None:
            runner_pred = np.concatenate([
                runner_logits(prog, exp, weights, net_in[i:i + CHUNK]).argmax(1)
                for i in range(0, 10000, CHUNK)])
        correct = int((pred == labels).sum())
        ours = np.zeros_like(confusion)
        np.add.at(ours, (labels, pred), 1)
        disagree = int((pred != runner_pred).sum())
        same = "equal to" if np.array_equal(ours, confusion) else "different from"
        print(f"{name}: 10000 test images: onnxruntime {correct} correct "
              f"(accuracy {correct / 10000:.4f}), summary.json {correct_run} "
              f"(test_acc {summary['test_acc']}); {disagree} predictions differ from "
              f"export_logits'; confusion matrix {same} the run's")
        if folded:  # rounding apart from the runner's: a near tie may go the other way
            continue
        if correct != correct_run:
            fail(f"{name}: {correct} correct, the run's test_acc says {correct_run}")
        if not np.array_equal(ours, confusion):
            fail(f"{name}: confusion matrix differs from confusion_matrix.csv:\n{ours}\n"
                 f"{confusion}")
    print("check_real: ok")


main()
