#!/usr/bin/python3
"""Writes tests/ref/state_dict_<model>.txt: the state-dict names, dtypes and shapes of
torchvision's ResNets (with the CIFAR stem where our model files have it), their parameter
count and their multiply-adds per 32x32 image, counted by hooks on every conv and linear.
tests/test_graph.c checks the graphs in experiments/models/ against these files.

Run with Debian's PyTorch:  /usr/bin/python3 tests/ref/gen_state_dicts.py
"""
import os

import torch
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))


def cifar_stem(m):
    m.conv1 = torch.nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    m.maxpool = torch.nn.Identity()
    return m


MODELS = {
    "resnet50": lambda: cifar_stem(torchvision.models.resnet50(num_classes=10)),
    "resnet50_imagenet_stem": lambda: torchvision.models.resnet50(num_classes=10),
    "resnet18": lambda: cifar_stem(torchvision.models.resnet18(num_classes=10)),
    "resnet101": lambda: cifar_stem(torchvision.models.resnet101(num_classes=10)),
}

DTYPES = {torch.float32: "f32", torch.int64: "i64"}


def macs(model, size):
    total = 0

    def hook(mod, inp, out):
        nonlocal total
        if isinstance(mod, torch.nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
            total += out.numel() * k
        elif isinstance(mod, torch.nn.Linear):
            total += mod.in_features * mod.out_features

    hs = [m.register_forward_hook(hook) for m in model.modules()
          if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    for h in hs:
        h.remove()
    return total


def main():
    for name, make in MODELS.items():
        m = make()
        params = sum(p.numel() for p in m.parameters())
        path = os.path.join(HERE, f"state_dict_{name}.txt")
        with open(path, "w") as f:
            f.write(f"# {name}: torchvision {torchvision.__version__}, written by "
                    "tests/ref/gen_state_dicts.py\n")
            f.write(f"# params {params} macs {macs(m, 32)} input 3x32x32\n")
            for k, v in m.state_dict().items():
                shape = ",".join(str(d) for d in v.shape)
                f.write(f"{k} {DTYPES[v.dtype]} {shape}\n")
        print(path, params)


if __name__ == "__main__":
    main()
