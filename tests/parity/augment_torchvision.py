"""The decoded-image stage (runner/augment.c) against torchvision 0.14 on PIL images.

    augment_torchvision.py AUGMENT_DUMP DIR

Builds RGB images of odd sizes (37x23, 500x375, 64x64, 7x300, width x height) from random
bytes, and for each runs a transform list through AUGMENT_DUMP (tests/augment_dump.c) and the
same through torchvision on the PIL image followed by ToTensor:

  resize:N:square        transforms.Resize((N, N)), bilinear and nearest
  resize:N:shorter_side  transforms.Resize(N), bilinear and nearest
  center_crop:N          transforms.CenterCrop(N), sizes that crop and sizes that pad
  resize + center_crop   Resize(N) then CenterCrop(M), which augment.c resamples only inside
                         the crop's window
  random_resized_crop    F.resized_crop(img, top, left, h, w, [N, N]) on the box augment_dump
                         prints (augment_rrc_box), bilinear and nearest, with ranges that make
                         the ten tries succeed and ranges that make them fall back; also after
                         a shorter_side resize
  hflip:0 + resize       a resize after the decoded-image stage: on floats, as
                         torch.nn.functional.interpolate(align_corners=False) without
                         antialiasing (bilinear) or mode="nearest"

Every pixel must agree within 1/255 (the decoded-image stage aims for exact bytes; the float
resize within 1e-4, the rounding of its source positions, which reach 500 in float). Each list also runs as a list for images of varying size (--max: h = w =
0 at augment_init, scratch sized by augment_set_input_max for the largest image of the set),
whose output must be the same bits. Prints the largest difference per transform, in 1/255.
Exits 1 on any failure.
"""
import os
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as TF
import torchvision
import torchvision.transforms as T
import torchvision.transforms.functional as F
from PIL import Image

DUMP, DIR = sys.argv[1], sys.argv[2]
SIZES = [(37, 23), (500, 375), (64, 64), (7, 300)]  # width x height, as PIL
MAX_H, MAX_W = max(h for _, h in SIZES) + 3, max(w for w, _ in SIZES) + 5
MODES = {"bilinear": T.InterpolationMode.BILINEAR, "nearest": T.InterpolationMode.NEAREST}

worst = {}     # transform family -> largest difference, in 1/255
failures = []
box_kinds = [0, 0]  # random_resized_crop boxes from the fallback, from one of the tries


def dump(planar, key, args, varying):
    """augment_dump on the (3, h, w) bytes: (output (3, oh, ow) floats, rrc boxes)."""
    c, h, w = planar.shape
    src, out = os.path.join(DIR, "in.raw"), os.path.join(DIR, "out.raw")
    planar.tofile(src)
    cmd = [DUMP, src, str(c), str(h), str(w), out, str(key)]
    if varying:
        cmd += ["--max", str(MAX_H), str(MAX_W)]
    r = subprocess.run(cmd + args, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd + args)}: {r.stderr.strip()}")
    size, boxes = None, []
    for line in r.stdout.split("\n"):
        f = line.split()
        if f and f[0] == "size":
            size = (int(f[1]), int(f[2]))
        elif f and f[0] == "box":
            boxes.append(tuple(int(v) for v in f[2:]))
    x = np.fromfile(out, dtype=np.float32).reshape(c, *size)
    return x, boxes


def check(family, name, planar, key, args, reference):
    """Runs args on the image (fixed and varying size); reference(boxes) gives torchvision's
    (3, oh, ow) tensor for the boxes augment_dump drew."""
    try:
        ours, boxes = dump(planar, key, args, False)
        sized, sized_boxes = dump(planar, key, args, True)
    except RuntimeError as e:
        failures.append(f"{name}: {e}")
        return
    for b in boxes:
        box_kinds[b[4]] += 1
    want = reference(boxes).numpy()
    if ours.shape != want.shape:
        failures.append(f"{name}: shape {ours.shape}, torchvision {want.shape}")
        return
    if sized_boxes != boxes or not np.array_equal(ours.view(np.uint32), sized.view(np.uint32)):
        failures.append(f"{name}: the list for images of varying size gives other values")
    diff = float(np.abs(ours.astype(np.float64) - want.astype(np.float64)).max()) * 255
    worst[family] = max(worst.get(family, 0.0), diff)
    tol = 1e-4 * 255 if family.startswith("float") else 1.0 + 1e-4
    if diff > tol:
        n = int((np.abs(ours - want) * 255 > tol).sum())
        failures.append(f"{name}: {n} values differ, by up to {diff:.4g}/255")


def main():
    rng = np.random.RandomState(7)
    to_tensor = T.ToTensor()
    for w, h in SIZES:
        hwc = rng.randint(0, 256, size=(h, w, 3), dtype=np.uint8)
        img = Image.fromarray(hwc, "RGB")
        planar = np.ascontiguousarray(hwc.transpose(2, 0, 1))
        tag = f"{w}x{h}"
        for mode, interp in MODES.items():
            for n in (32, 224, 17, 5):
                check(f"resize square {mode}", f"{tag} resize({n}, {n}) {mode}", planar, 0,
                      [f"resize:{n}:square:{mode}"],
                      lambda b: to_tensor(T.Resize((n, n), interp)(img)))
                check(f"resize shorter_side {mode}", f"{tag} resize({n}) {mode}", planar, 0,
                      [f"resize:{n}:shorter_side:{mode}"],
                      lambda b: to_tensor(T.Resize(n, interp)(img)))
            # After the decoded-image stage: floats, as PyTorch's interpolate.
            kw = {"align_corners": False} if mode == "bilinear" else {}
            for n in (32, 7):
                def floats(b, size):
                    return TF.interpolate(to_tensor(img)[None], size=size, mode=mode, **kw)[0]
                check(f"float resize {mode}", f"{tag} hflip(0), resize({n}, {n}) {mode}",
                      planar, 0, ["hflip:0", f"resize:{n}:square:{mode}"],
                      lambda b: floats(b, (n, n)))
                oh, ow = F._compute_resized_output_size((h, w), [n])
                check(f"float resize {mode}", f"{tag} hflip(0), resize({n}) {mode}",
                      planar, 0, ["hflip:0", f"resize:{n}:shorter_side:{mode}"],
                      lambda b: floats(b, (oh, ow)))
        for n in (1, 16, 30, 64, 65, 224):
            check("center_crop", f"{tag} center_crop({n})", planar, 0, [f"center_crop:{n}"],
                  lambda b: to_tensor(T.CenterCrop(n)(img)))
        for n, m in ((256, 224), (40, 64), (24, 23), (9, 9)):
            check("resize shorter_side + center_crop", f"{tag} resize({n}), center_crop({m})",
                  planar, 0, [f"resize:{n}:shorter_side", f"center_crop:{m}"],
                  lambda b: to_tensor(T.CenterCrop(m)(T.Resize(n)(img))))
            check("resize square + center_crop", f"{tag} resize({n}, {n}), center_crop({m})",
                  planar, 0, [f"resize:{n}:square", f"center_crop:{m}"],
                  lambda b: to_tensor(T.CenterCrop(m)(T.Resize((n, n))(img))))
        ranges = (("0.08:1.0:0.75:1.3333333333333333", "default"),
                  ("0.9:1.0:3.0:4.0", "falls back"), ("0.01:0.05:0.2:5.0", "small"))
        for mode, interp in MODES.items():
            for rr, what in ranges:
                for n in (224, 32):
                    for key in range(6):
                        check(f"random_resized_crop {mode}",
                              f"{tag} random_resized_crop({n}, {what}) {mode} key {key}",
                              planar, 1000003 * key + 17,
                              [f"random_resized_crop:{n}:{rr}:{mode}"],
                              lambda b: to_tensor(F.resized_crop(img, *b[0][:4], [n, n], interp)))
            for key in range(4):
                check(f"random_resized_crop {mode}",
                      f"{tag} resize(48), random_resized_crop(32) {mode} key {key}", planar,
                      key, ["resize:48:shorter_side", f"random_resized_crop:32:{ranges[0][0]}:{mode}"],
                      lambda b: to_tensor(F.resized_crop(T.Resize(48)(img), *b[0][:4], [32, 32],
                                                         interp)))

    print(f"torchvision {torchvision.__version__}, PIL {Image.__version__}; largest "
          f"difference per transform, in 1/255:")
    for family in sorted(worst):
        print(f"  {family:40s} {worst[family]:.6g}")
    print(f"random_resized_crop boxes: {box_kinds[1]} from a try, {box_kinds[0]} from the "
          f"fallback")
    if min(box_kinds) == 0:
        failures.append("random_resized_crop: the boxes did not take both paths")
    for f in failures[:40]:
        print("FAIL", f)
    if failures:
        print(f"{len(failures)} failures")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
