"""check_onnx.py MODEL.onnx EXPORT_LOGITS EXP.yaml W.safetensors BATCH NORMALIZE [--folded K]

Part of tests/test_export.sh. Checks MODEL.onnx (written by runner export from EXP and W) with
onnx.checker (full_check), its input `images` and output `logits` (batch BATCH, or the
symbolic N when BATCH is 0), its initializers (every f32 tensor of W under its name, equal
bit for bit) and metadata_props (name, classes), then runs synthetic images through
onnxruntime and through export_logits (the runner's CPU plan) and compares the logits:
max |ort - runner| <= 1e-4 * max |runner|. With NORMALIZE 1 the model takes images in [0, 1]
and the runner gets them normalized with the experiment's mean and std (quick.yaml's).
With --folded K (an export with --fold-bn) K BatchNormalization nodes must remain: the tensors
of those batchnorms are initializers bit for bit, those of the others (batchnorms are found
by their running_mean) gone. The convs' weights (4-D) are initializers under their names with
their shapes, bit for bit where the Conv has no bias (nothing folded into it); a Conv with a
bias has it as <conv>.bias; every other f32 tensor of W is an initializer bit for bit. Prints
the measured difference; exits 1 on a mismatch.
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnx.numpy_helper
import onnxruntime as ort

MEAN = np.array([0.4914, 0.4822, 0.4465], np.float32).reshape(1, 3, 1, 1)
STD = np.array([0.2470, 0.2435, 0.2616], np.float32).reshape(1, 3, 1, 1)


def fail(msg):
    print(f"check_onnx: {sys.argv[1]}: {msg}")
    sys.exit(1)


def safetensors_f32(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        body = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__" or t["dtype"] != "F32":
            continue
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(body[a:b], np.float32).reshape(t["shape"])
    return out


def main():
    model_path, logits_prog, exp, weights = sys.argv[1:5]
    batch, normalize = int(sys.argv[5]), sys.argv[6] == "1"
    folded = len(sys.argv) == 9 and sys.argv[7] == "--folded"
    if sys.argv[7:] and not folded:
        fail(f"unknown arguments {sys.argv[7:]}")
    bn_left = int(sys.argv[8]) if folded else 0
    m = onnx.load(model_path)
    onnx.checker.check_model(m, full_check=True)
    g = m.graph
    if [i.name for i in g.input] != ["images"] or [o.name for o in g.output] != ["logits"]:
        fail("input and output must be images and logits")
    d0 = g.input[0].type.tensor_type.shape.dim[0]
    if (batch and d0.dim_value != batch) or (not batch and d0.dim_param != "N"):
        fail(f"batch dimension {d0} for --batch {batch}")
    meta = {p.key: p.value for p in m.metadata_props}
    if "name" not in meta or "classes" not in meta:
        fail(f"metadata_props {meta}")
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in g.initializer}
    tensors = safetensors_f32(weights)
    bns = {n[: -len(".running_mean")] for n in tensors if n.endswith(".running_mean")}
    nodes = {n.name: n for n in g.node}
    if folded:
        left = [n.name for n in g.node if n.op_type == "BatchNormalization"]
        if len(left) != bn_left:
            fail(f"{len(left)} BatchNormalization nodes left ({left}), expected {bn_left}")
        bns -= set(left)
        for n in g.node:
            if n.op_type == "Conv" and len(n.input) == 3:
                bias = n.input[1][: -len("weight")] + "bias"
                if n.input[2] != bias or bias not in inits:
                    fail(f"conv {n.name}: bias {n.input[2]}, expected {bias}")
    for name, w in tensors.items():
        prefix = name.rsplit(".", 1)[0]
        conv = nodes.get(prefix)
        if folded and prefix in bns:
            if name in inits:
                fail(f"batchnorm tensor {name} left in a folded export")
        elif folded and conv is not None and conv.op_type == "Conv" and len(conv.input) == 3:
            if name not in inits or inits[name].shape != w.shape:
                fail(f"conv tensor {name} missing or of another shape")
        elif name not in inits or not np.array_equal(inits[name], w):
            fail(f"initializer {name} missing or different")
    if normalize != ("normalize.mean" in inits):
        fail("normalize nodes present without --normalize, or missing with it")
    if any(n.op_type in ("Dropout", "Identity") for n in g.node):
        fail("dropout or identity left in the graph")

    sess = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    shape = [d.dim_value for d in g.input[0].type.tensor_type.shape.dim[1:]]
    worst = 0.0
    for n in [batch] if batch else [3, 5]:
        rng = np.random.default_rng(n)
        x = rng.random((n, *shape), dtype=np.float32)  # RGB in [0, 1]
        net_in = (x - MEAN) / STD
        with tempfile.TemporaryDirectory() as tmp:
            xin, yout = os.path.join(tmp, "x.f32"), os.path.join(tmp, "y.f32")
            net_in.astype(np.float32).tofile(xin)
            subprocess.run([logits_prog, "run", exp, weights, xin, str(n), yout], check=True)
            ref = np.fromfile(yout, np.float32).reshape(n, -1)
        got = sess.run(["logits"], {"images": x if normalize else net_in})[0]
        if got.shape != ref.shape:
            fail(f"logits {got.shape}, runner {ref.shape}")
        diff = float(np.abs(got - ref).max())
        scale = float(np.abs(ref).max())
        print(f"{os.path.basename(model_path)}: batch {n}: max |ort - runner| = {diff:.3g} "
              f"(max |runner| = {scale:.3g}, relative {diff / scale:.3g})")
        if not diff <= 1e-4 * scale:
            fail(f"logits differ by {diff} > 1e-4 * {scale}")
        worst = max(worst, diff / scale)
    print(f"{os.path.basename(model_path)}: ok, relative difference {worst:.3g}")


main()
