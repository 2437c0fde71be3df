#!/usr/bin/env python3
"""`runner bench` on a GPU against PyTorch on the same GPU: the same network, batch, optimizer
and precision, in images/s.

    /usr/bin/python3 tests/bench/gpu_vs_torch.py [--runner build/runner]
        [--config experiments/resnet50_adam.yaml] [--batch 256] [--steps 20] [--warmup 5]
        [--mode train|infer] [--precision bf16|fp16|fp32] [--rounds 1] [--device 0]
        [--compile-mode default] [--no-compile]

The runner side is `runner bench CONFIG device=cuda:N precision=P train.batch_size=B
eval.batch_size=B --mode M --steps N --warmup W`; its line "window images/s: X" is the
figure. The PyTorch side builds the network the config names (experiments/models/resnet50.yaml:
torchvision's resnet50 with the CIFAR stem -- a 3x3/1 conv1, no max-pool -- as
tests/parity/resnet50_step.py builds it; resnet18 and resnet101 likewise; resnet50_imagenet_stem:
torchvision's own), checks that it has the runner's parameter count (`runner plan`), and times
it on synthetic input in channels_last: eager (with autocast for bf16 and fp16), then
torch.compile. A training step is zero_grad, forward, cross-entropy with the config's label
smoothing, backward, the config's clipping and the optimizer's step (the config's SGD, Adam or
AdamW with its settings and parameter groups, fused kernels where PyTorch has them; fp16 with a
GradScaler); inference is a forward in eval mode under inference_mode. Both sides time one
window the same way (runner/bench.c says how the runner does): it opens when the warm-up steps
are done and closes when the last timed step is done, so it holds exactly the timed steps'
work; the figure is steps x batch / the window. Training steps are queued without waiting
between them on both sides (PyTorch: no synchronize inside the window, one before each reading
of the clock; the runner queues step i + 1 before it reads step i's result), as a training
loop runs; inference waits for each batch on both sides (the runner's evaluation forward
returns when its batch is done). cuDNN's benchmark mode is on (the runner searches its
convolution algorithms too); TF32 follows train.tf32.

Prints a table of images/s and ms per step and the ratios runner/eager and runner/compile.
Exits 2, with the reason, where there is no GPU, no torch with CUDA, or no runner; 1 when a
side fails.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import time


def die(msg, code=2):
    print(f"gpu_vs_torch.py: {msg}", file=sys.stderr)
    sys.exit(code)


# ---------------------------------------------------------------------------------------------
# The runner's side


def run_runner(runner, args):
    p = subprocess.run([runner] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True)
    if p.returncode != 0:
        die(f"`{' '.join([runner] + args)}` failed (exit {p.returncode}):\n{p.stderr.strip()}",
            1)
    return p.stdout


def config_sections(text):
    """The resolved configuration (`runner config`): {section: {key: value}} for the top-level
    mappings and {key: value} for the top-level scalars. Only what this script reads needs to
    parse: numbers, booleans, null, strings and flow lists of numbers."""
    def value(v):
        v = v.strip()
        if v in ("true", "false"):
            return v == "true"
        if v in ("null", "~", ""):
            return None
        if v.startswith("[") and v.endswith("]"):
            return [value(x) for x in v[1:-1].split(",") if x.strip()]
        try:
            return int(v)
        except ValueError:
            pass
        try:
            return float(v)
        except ValueError:
            return v.strip("'\"")

    out, section = {}, None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = re.match(r"^(\w+):\s*(.*)$", line)
        if m:
            key, rest = m.groups()
            if rest:
                out[key], section = value(rest), None
            else:
                out[key], section = {}, key
            continue
        m = re.match(r"^  (\w+):\s*(.*)$", line)
        if m and section is not None:
            out[section][m.group(1)] = value(m.group(2))
    return out


def plan_facts(text):
    """Input shape, parameter count and classes from `runner plan`."""
    m = re.search(r"input (\d+)x(\d+)x(\d+)", text)
    p = re.search(r"^parameters\s+([\d,]+)", text, re.M)
    c = re.search(r"^output\s+(\d+) class scores", text, re.M)
    if not (m and p and c):
        die("cannot read the input, parameters and classes from `runner plan`", 1)
    return (tuple(int(x) for x in m.groups()), int(p.group(1).replace(",", "")),
            int(c.group(1)))


def runner_bench(a, overrides):
    out = run_runner(a.runner, ["bench", a.config] + overrides +
                     ["--mode", a.mode, "--steps", str(a.steps), "--warmup", str(a.warmup)])
    m = re.search(r"^window images/s: ([\d.]+)", out, re.M)
    if not m:
        die(f"no 'window images/s' line in the runner's output:\n{out}", 1)
    head = out.splitlines()[0] if out else ""
    return float(m.group(1)), head


# ---------------------------------------------------------------------------------------------
# PyTorch's side


def torch_model(graph, classes, torch, torchvision):
    name = os.path.basename(str(graph))
    nn = torch.nn
    cifar = {"resnet18.yaml": "resnet18", "resnet50.yaml": "resnet50",
             "resnet101.yaml": "resnet101"}
    if name in cifar:
        m = getattr(torchvision.models, cifar[name])(num_classes=classes)
        m.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        m.maxpool = nn.Identity()
        return m
    if name == "resnet50_imagenet_stem.yaml":
        return torchvision.models.resnet50(num_classes=classes)
    die(f"no PyTorch counterpart for the graph {graph}: this script knows resnet18.yaml, "
        "resnet50.yaml, resnet101.yaml and resnet50_imagenet_stem.yaml")


def torch_optimizer(o, model, torch):
    """The config's optimizer: decay_bn_bias false puts tensors of rank <= 1 in a group
    without weight decay, as the runner does."""
    params = list(model.parameters())
    wd = float(o.get("weight_decay") or 0)
    if o.get("decay_bn_bias", True) or wd == 0:
        groups = [{"params": params, "weight_decay": wd}]
    else:
        groups = [{"params": [p for p in params if p.dim() > 1], "weight_decay": wd},
                  {"params": [p for p in params if p.dim() <= 1], "weight_decay": 0.0}]
    lr = float(o["lr"])
    kind = o["type"]
    if kind == "sgd":
        make = lambda **k: torch.optim.SGD(groups, lr=lr, momentum=float(o.get("momentum") or 0),
                                           dampening=float(o.get("dampening") or 0),
                                           nesterov=bool(o.get("nesterov")), **k)
    else:
        cls = torch.optim.AdamW if kind == "adamw" else torch.optim.Adam
        betas = tuple(float(b) for b in (o.get("betas") or [0.9, 0.999]))
        make = lambda **k: cls(groups, lr=lr, betas=betas, eps=float(o.get("eps") or 1e-8),
                               amsgrad=bool(o.get("amsgrad")), **k)
    for kw in ({"fused": True}, {"foreach": True}, {}):
        try:
            return make(**kw), next(iter(kw), "for-loop")
        except (TypeError, RuntimeError, ValueError):
            continue
    die("cannot make the optimizer", 1)


def time_steps(step, n, warmup, torch, wait_each):
    """The window of n steps after warmup ones, timed as `runner bench` times its own
    (runner/bench.c): torch.cuda.synchronize() before the clock opens the window, so the warm-up
    is finished and outside it, and again before the clock closes it, so all n steps are
    finished inside it. Inside, training steps (wait_each false) are only queued, as a training
    loop runs and as the runner queues step i + 1 before reading step i's result (fp16's
    GradScaler still reads found_inf on the host each step unless the optimizer is fused: a
    wait PyTorch makes itself); inference (wait_each) waits for each batch, as the runner's
    evaluation forward does. An event recorded after each step gives the steps' intervals on
    the GPU, the counterpart of the runner's intervals between results. Returns the window in
    seconds and the n intervals."""
    for _ in range(warmup):
        step()
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(n + 1)]
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    ends[0].record()
    for i in range(n):
        step()
        ends[i + 1].record()
        if wait_each:
            torch.cuda.synchronize()
    torch.cuda.synchronize()
    window = time.perf_counter() - t0
    return window, [ends[i].elapsed_time(ends[i + 1]) / 1000 for i in range(n)]


def torch_side(a, cfg, facts, torch, torchvision, compiled):
    (c, h, w), nparams, classes = facts
    torch.manual_seed(0)
    model = torch_model(cfg["model"]["graph"], classes, torch, torchvision)
    got = sum(p.numel() for p in model.parameters())
    if got != nparams:
        die(f"PyTorch's network has {got:,} parameters, the runner's {nparams:,}: they are "
            "not the same network", 1)
    dev = torch.device("cuda", a.device)
    model = model.to(dev).to(memory_format=torch.channels_last)
    x = torch.randn(a.batch, c, h, w, device=dev).to(memory_format=torch.channels_last)
    y = torch.randint(0, classes, (a.batch,), device=dev)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}[a.precision]
    smoothing = float(cfg["train"].get("label_smoothing") or 0)
    clip = float(cfg["optimizer"].get("clip_grad_norm") or 0)
    net = torch.compile(model, mode=None if a.compile_mode == "default" else a.compile_mode) \
        if compiled else model

    def autocast():
        return torch.autocast("cuda", dtype=dtype, enabled=dtype is not None)

    if a.mode == "train":
        model.train()
        opt, how = torch_optimizer(cfg["optimizer"], model, torch)
        fp16 = dtype == torch.float16
        scaler = torch.amp.GradScaler("cuda", enabled=fp16) if hasattr(torch.amp, "GradScaler") \
            else torch.cuda.amp.GradScaler(enabled=fp16)
        loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=smoothing)

        def step():
            opt.zero_grad(set_to_none=True)
            with autocast():
                out = net(x)
            loss = loss_fn(out.float(), y)
            scaler.scale(loss).backward()
            if clip > 0:
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            scaler.step(opt)
            scaler.update()
    else:
        model.eval()
        how = "no optimizer"

        def step():
            with torch.inference_mode(), autocast():
                net(x)

    t0 = time.perf_counter()
    step()  # the first call compiles
    torch.cuda.synchronize()
    first = time.perf_counter() - t0
    torch.cuda.reset_peak_memory_stats(dev)
    window, times = time_steps(step, a.steps, max(a.warmup, 3 if compiled else 1), torch,
                               a.mode == "infer")
    peak = torch.cuda.max_memory_allocated(dev) / 2**20
    return a.batch * a.steps / window, first, peak, how, statistics.median(times)


# ---------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runner", default="build/runner")
    ap.add_argument("--config", default="experiments/resnet50_adam.yaml")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--mode", choices=["train", "infer"], default="train")
    ap.add_argument("--precision", choices=["bf16", "fp16", "fp32"], default="bf16")
    ap.add_argument("--rounds", type=int, default=1,
                    help="repeat both sides this many times; the medians over rounds count")
    ap.add_argument("--device", type=int, default=0, help="cuda:N for both sides")
    ap.add_argument("--compile-mode", default="default",
                    help="torch.compile's mode: default, reduce-overhead, max-autotune, ...")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    a = ap.parse_args()
    if a.steps < 1 or a.batch < 1 or a.rounds < 1:
        die("--steps, --batch and --rounds must be at least 1")

    try:
        import torch
        import torchvision
    except ImportError as e:
        die(f"{sys.executable} has no torch/torchvision ({e}); use a Python with PyTorch for "
            "CUDA (Debian: apt-get install python3-torch python3-torchvision, or a CUDA wheel)")
    if not torch.cuda.is_available():
        die(f"PyTorch {torch.__version__} sees no GPU (built with CUDA "
            f"{torch.version.cuda or 'none'}; is a driver present?)")
    if not a.no_compile and not hasattr(torch, "compile"):
        die(f"PyTorch {torch.__version__} has no torch.compile (2.0 or later has); "
            "--no-compile compares with eager only")
    if a.device >= torch.cuda.device_count():
        die(f"cuda:{a.device} was asked for; PyTorch sees {torch.cuda.device_count()} GPU(s)")
    if not (os.path.isfile(a.runner) and os.access(a.runner, os.X_OK)):
        die(f"no runner at {a.runner} (build it with the CUDA backend first)")
    if not os.path.isfile(a.config):
        die(f"no config {a.config}")

    overrides = [f"device=cuda:{a.device}", f"precision={a.precision}",
                 f"train.batch_size={a.batch}", f"eval.batch_size={a.batch}"]
    cfg = config_sections(run_runner(a.runner, ["config", a.config] + overrides))
    facts = plan_facts(run_runner(a.runner, ["plan", a.config] + overrides))
    if not isinstance(cfg.get("model"), dict) or "graph" not in cfg["model"] or \
            not isinstance(cfg["model"]["graph"], str):
        die("the config's model.graph is not a file (an inline graph has no PyTorch "
            "counterpart here)")
    tf32 = bool(cfg.get("train", {}).get("tf32"))
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.cuda.set_device(a.device)

    sides = ["runner", "torch eager"] + ([] if a.no_compile else ["torch compile"])
    rates = {s: [] for s in sides}
    info = {}
    for r in range(a.rounds):
        rate, head = runner_bench(a, overrides)
        rates["runner"].append(rate)
        info["runner"] = head
        for s in sides[1:]:
            rate, first, peak, how, med_step = torch_side(a, cfg, facts, torch, torchvision,
                                                          s == "torch compile")
            rates[s].append(rate)
            info[s] = (first, peak, how, med_step)
        if a.rounds > 1:
            print(f"round {r + 1}: " + ", ".join(f"{s} {rates[s][-1]:.1f}" for s in sides),
                  flush=True)

    (c, h, w), nparams, classes = facts
    props = torch.cuda.get_device_properties(a.device)
    print(f"GPU: cuda:{a.device} {props.name}, {props.total_memory / 2**30:.0f} GiB; PyTorch "
          f"{torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
    print(f"network: {cfg['model']['graph']} ({nparams:,} parameters, input {c}x{h}x{w}, "
          f"{classes} classes); {a.mode}, batch {a.batch}, {a.precision}, optimizer "
          f"{cfg['optimizer']['type']} (lr {cfg['optimizer']['lr']}); {a.steps} steps after "
          f"{a.warmup} of warm-up, {a.rounds} round(s)")
    print(f"runner: {info['runner']}")
    print(f"\n{'':22} {'images/s':>12} {'ms/step':>10}   notes")
    med = {s: statistics.median(rates[s]) for s in sides}
    for s in sides:
        note = ""
        if s in info and s != "runner":
            first, peak, how, med_step = info[s]
            note = (f"first step {first:.1f} s, median step {1000 * med_step:.2f} ms, "
                    f"peak {peak:.0f} MiB"
                    + (f", optimizer {how}" if a.mode == "train" else ""))
        print(f"{s:22} {med[s]:12.1f} {1000 * a.batch / med[s]:10.2f}   {note}")
    print()
    for s in sides[1:]:
        print(f"runner / {s[6:]:9} {med['runner'] / med[s]:8.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
