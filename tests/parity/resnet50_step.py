#!/usr/bin/env python3
"""PyTorch side of the parity test (tests/parity/run.sh): one training step of torchvision's
ResNet-50 with the CIFAR stem (3x3/1 conv1, no max-pool, 10 classes), written as safetensors.

    /usr/bin/python3 tests/parity/resnet50_step.py DIR [--batch N]   # writes DIR/*.safetensors
    /usr/bin/python3 tests/parity/resnet50_step.py DIR --check FILE  # loads the runner's FILE

DIR/init.safetensors    the weights (random) and batchnorm buffers (random running statistics,
                        num_batches_tracked as I64), torchvision's names
DIR/batch.safetensors   x (N, 3, 32, 32) and labels y (N, I64); the settings as metadata
DIR/expect.safetensors  eval_logits (running statistics), logits and loss (training mode),
                        grad.NAME of every parameter, NAME of every buffer after the step,
                        sgd.NAME and adam.NAME: every parameter after one SGD-momentum step and
                        after one Adam step from these gradients; floor.X for each of those:
                        the relative error of PyTorch's float32 X against the same step run
                        in float64 (the error float32 itself makes)

--check loads FILE (the runner's weights after its SGD step) into the same model with
load_state_dict(strict=True) and compares it with PyTorch's weights after the SGD step.
"""
import argparse
import json
import struct
import sys

import torch
import torch.nn as nn
import torchvision

SETTINGS = {
    "label_smoothing": 0.1,
    "sgd_lr": 0.1, "sgd_momentum": 0.9, "sgd_weight_decay": 5e-4, "sgd_nesterov": 1,
    "adam_lr": 1e-3, "adam_beta1": 0.9, "adam_beta2": 0.999, "adam_eps": 1e-8,
    "adam_weight_decay": 1e-4,
}

DTYPES = {torch.float32: "F32", torch.int64: "I64"}
TORCH_DTYPES = {"F32": torch.float32, "I64": torch.int64, "F16": torch.float16,
                "BF16": torch.bfloat16}


def save(path, tensors, metadata=None):
    """Writes tensors (name -> tensor) in the safetensors format."""
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    for name, t in tensors.items():
        data = t.detach().contiguous().cpu().numpy().tobytes()
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def load(path):
    """Reads a safetensors file into name -> tensor."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    out = {}
    for name, h in header.items():
        b, e = h["data_offsets"]
        buf = bytearray(raw[8 + n + b:8 + n + e])
        t = torch.frombuffer(buf, dtype=TORCH_DTYPES[h["dtype"]]) if buf else \
            torch.zeros(0, dtype=TORCH_DTYPES[h["dtype"]])
        out[name] = t.reshape(h["shape"]).clone()
    return out


def cifar_resnet50():
    m = torchvision.models.resnet50(num_classes=10)
    m.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    m.maxpool = nn.Identity()
    return m


def randomize(m, g):
    """Random weights (torchvision's init) and random batchnorm parameters and statistics."""
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            c = mod.num_features
            mod.weight.data = torch.rand(c, generator=g) * 0.5 + 0.75
            mod.bias.data = torch.randn(c, generator=g) * 0.1
            mod.running_mean = torch.randn(c, generator=g) * 0.1
            mod.running_var = torch.rand(c, generator=g) * 0.5 + 0.75
            mod.num_batches_tracked = torch.tensor(int(torch.randint(0, 1000, (1,), generator=g)))


def rel_error(a, b):
    a, b = a.double(), b.double()
    return float((a - b).norm() / max(float(b.norm()), 1e-30))


def check(d, path):
    m = cifar_resnet50()
    m.load_state_dict(load(path), strict=True)  # raises on a missing or unexpected name
    want = load(f"{d}/expect.safetensors")
    worst = 0.0
    for name, p in m.named_parameters():
        e = rel_error(p.data, want["sgd." + name])
        worst = max(worst, e)
        if e > 1e-4:
            print(f"FAIL {name}: relative error {e:.3g} after the runner's SGD step")
            return 1
    print(f"load_state_dict(strict=True) accepted {path}; its weights after SGD match "
          f"PyTorch's (worst relative error {worst:.2e})")
    return 0


def step(init, x, y, dtype):
    """PyTorch's results (see the top of this file) in dtype, as float32 tensors."""
    m = cifar_resnet50()
    m.load_state_dict(init)
    m = m.to(dtype)
    x = x.to(dtype)
    out = {}
    m.eval()
    with torch.no_grad():
        out["eval_logits"] = m(x)
    m.train()
    logits = m(x)
    loss = nn.functional.cross_entropy(logits, y, label_smoothing=SETTINGS["label_smoothing"])
    loss.backward()
    out["logits"] = logits.detach()
    out["loss"] = loss.detach()
    params = dict(m.named_parameters())
    grads = {name: p.grad.clone() for name, p in params.items()}
    for name, g in grads.items():
        out["grad." + name] = g
    for name, b in m.named_buffers():
        out[name] = b.clone()

    s = SETTINGS
    sgd = torch.optim.SGD(m.parameters(), lr=s["sgd_lr"], momentum=s["sgd_momentum"],
                          weight_decay=s["sgd_weight_decay"], nesterov=bool(s["sgd_nesterov"]))
    sgd.step()
    for name, p in params.items():
        out["sgd." + name] = p.data.clone()
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(init[name])
            p.grad = grads[name].clone()
    adam = torch.optim.Adam(m.parameters(), lr=s["adam_lr"], betas=(s["adam_beta1"],
                            s["adam_beta2"]), eps=s["adam_eps"],
                            weight_decay=s["adam_weight_decay"])
    adam.step()
    for name, p in params.items():
        out["adam." + name] = p.data.clone()
    return {k: v.float() if v.is_floating_point() else v for k, v in out.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--floor-samples", type=int, default=3)
    ap.add_argument("--check")
    a = ap.parse_args()
    torch.set_num_threads(2)
    if a.check:
        return check(a.dir, a.check)
    g = torch.Generator().manual_seed(a.seed)
    torch.manual_seed(a.seed)
    m = cifar_resnet50()
    randomize(m, g)
    init = {k: v.clone() for k, v in m.state_dict().items()}
    save(f"{a.dir}/init.safetensors", init, {"format": "pt"})
    x = torch.randn(a.batch, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (a.batch,), generator=g)
    save(f"{a.dir}/batch.safetensors", {"x": x, "y": y}, SETTINGS)

    # The same step in float64: how far PyTorch's own float32 results are from the exact ones
    # ("floor.NAME"). Gradients of a deep ReLU network are ill-conditioned: a pre-activation
    # within rounding of zero flips its ReLU, and the gradient sums move by one term.
    expect = step(init, x, y, torch.float32)
    exact = step(init, x, y, torch.float64)
    floor = {k: rel_error(v, exact[k]) for k, v in expect.items() if v.is_floating_point()}
    # The ReLU flips are chance events: sample a few more float32 steps, each from weights
    # moved by about one ulp (relative 2^-23, random signs), and keep each tensor's worst.
    for k in range(a.floor_samples):
        gk = torch.Generator().manual_seed(1000 + k)
        moved = {n: v * (1 + (torch.rand(v.shape, generator=gk) * 2 - 1) * 2.0 ** -23)
                 if v.is_floating_point() and "running" not in n else v for n, v in init.items()}
        other = step(moved, x, y, torch.float32)
        for n in floor:
            floor[n] = max(floor[n], rel_error(other[n], exact[n]))
    for n, e in floor.items():
        expect["floor." + n] = torch.tensor(e, dtype=torch.float32)
    save(f"{a.dir}/expect.safetensors", expect)
    print(f"wrote {a.dir}/init.safetensors ({len(init)} tensors), batch.safetensors "
          f"(batch {a.batch}), expect.safetensors ({len(expect)} tensors); "
          f"loss {expect['loss'].item():.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
