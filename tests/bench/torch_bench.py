#!/usr/bin/env python3
"""PyTorch side of tests/bench/cpu_vs_torch.sh: times the same CIFAR ResNet (torchvision's,
with the 3x3/1 stem and no max-pool) as `runner bench`, fp32, channels_last, on synthetic
input: a training step is zero_grad, forward, cross-entropy, backward and the optimizer's step
(Adam, as experiments/resnet50_adam.yaml); inference is a forward under no_grad in eval mode.
Prints one line per measured step, the peak resident memory and, last, "median images/s: X".

    /usr/bin/python3 tests/bench/torch_bench.py --model resnet50 --batch 128 --mode train
"""
import argparse
import resource
import statistics
import time

import torch
import torch.nn as nn
import torchvision


def cifar_resnet(name, classes):
    m = getattr(torchvision.models, name)(num_classes=classes)
    m.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    m.maxpool = nn.Identity()
    return m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="resnet50")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--mode", choices=["train", "infer"], default="train")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--optimizer", choices=["sgd", "adam"], default="adam")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    m = cifar_resnet(a.model, 10).to(memory_format=torch.channels_last)
    x = torch.randn(a.batch, 3, a.size, a.size).to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (a.batch,))
    if a.optimizer == "adam":
        opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    else:
        opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    if a.mode == "train":
        m.train()

        def step():
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(m(x), y)
            loss.backward()
            opt.step()
    else:
        m.eval()

        def step():
            with torch.no_grad():
                m(x)
    times = []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        step()
        dt = time.perf_counter() - t0
        if i >= a.warmup:
            times.append(dt)
            print(f"step {i - a.warmup + 1}: {dt * 1000:.1f} ms, {a.batch / dt:.2f} images/s",
                  flush=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory: {rss:.0f} MiB")
    print(f"median images/s: {a.batch / statistics.median(times):.2f}")


if __name__ == "__main__":
    main()
