#!/usr/bin/env python3
"""PyTorch side of the pretrained-weights parity test (tests/parity/pretrained_run.sh):
torchvision's ResNet-50 as ImageNet-pretrained weights come, exported to safetensors, and the
runner's weights read back into it.

    /usr/bin/python3 tests/parity/pretrained_export.py DIR [--batch 2 --size 64]
    /usr/bin/python3 tests/parity/pretrained_export.py DIR --check FILE

DIR/resnet50.safetensors  torchvision.models.resnet50(num_classes=1000): random weights
                          (torchvision's init) and random batchnorm parameters and running
                          statistics (num_batches_tracked as I64), torchvision's names; the
                          layout of resnet50(weights="IMAGENET1K_V2") exported the same way
DIR/input.safetensors     x (N, 3, SIZE, SIZE), random, and logits (N, 1000): the model's
                          output in evaluation mode (running statistics)

--check loads FILE (the runner's weights_save of the plan it loaded resnet50.safetensors into)
with load_state_dict(strict=True), then compares every tensor of the state dict with
resnet50.safetensors: they must be equal, bit for bit.
"""
import argparse
import os
import sys

import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resnet50_step import load, randomize, save  # noqa: E402  the safetensors format by hand


def check(d, path):
    m = torchvision.models.resnet50(num_classes=1000)
    m.load_state_dict(load(path), strict=True)  # raises on a missing or unexpected name
    want = load(f"{d}/resnet50.safetensors")
    got = m.state_dict()
    assert set(got) == set(want), "the state dict's names differ from the export's"
    for name, t in got.items():
        if t.dtype != want[name].dtype or not torch.equal(t, want[name]):
            print(f"FAIL {name}: the runner's copy differs from the export "
                  f"(largest difference {float((t.double() - want[name].double()).abs().max()):.3g})")
            return 1
    print(f"load_state_dict(strict=True) accepted {path}; all {len(got)} tensors equal the "
          f"export's")
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--check")
    a = ap.parse_args()
    torch.set_num_threads(2)
    if a.check:
        return check(a.dir, a.check)
    g = torch.Generator().manual_seed(a.seed)
    torch.manual_seed(a.seed)
    m = torchvision.models.resnet50(num_classes=1000)
    randomize(m, g)
    m.eval()
    state = {k: v.clone() for k, v in m.state_dict().items()}
    save(f"{a.dir}/resnet50.safetensors", state, {"format": "pt"})
    x = torch.randn(a.batch, 3, a.size, a.size, generator=g)
    with torch.no_grad():
        logits = m(x)
        exact = m.double()(x.double())
    err = float((logits.double() - exact).norm() / exact.norm())
    save(f"{a.dir}/input.safetensors", {"x": x, "logits": logits},
         {"float64_error": f"{err:.3e}"})
    print(f"wrote {a.dir}/resnet50.safetensors ({len(state)} tensors) and input.safetensors "
          f"(x {list(x.shape)}, logits {list(logits.shape)}); PyTorch's own float32 logits are "
          f"{err:.2e} from float64")
    return 0


if __name__ == "__main__":
    sys.exit(main())
