#!/usr/bin/env python3
"""PyTorch side of the optimizer parity test (tests/parity/optim_run.sh): twelve updates of a
linear layer 7 -> 5 by torch.optim under torch's learning-rate schedulers, written as
safetensors for tests/test_optim_parity.c.

    /usr/bin/python3 tests/parity/optim_steps.py DIR     # writes DIR/*.safetensors, DIR/index.txt

Every case is an optimizer (the runner's `optimizer:` section) under a schedule (the runner's
`schedule:` section), over 3 epochs of 4 steps. DIR/CASE__SCHEDULE.safetensors holds
    init.fc.weight (5, 7), init.fc.bias (5)       the weights before the first step
    grad.T.fc.weight, grad.T.fc.bias              the gradients of step T (0..11), from a seeded
                                                  generator, some steps' small (below the
                                                  clipping limit, shrinking Adam's moments)
    step.T.fc.weight, step.T.fc.bias              the weights after step T
    ema.T.fc.weight, ema.T.fc.bias                the EMA after step T (ema_decay cases)
and as metadata: optimizer and schedule (YAML, as an experiment writes them), epochs,
steps_per_epoch, lr (the learning rate of each step, %.17g, space-separated), grad_norm (the
norm clip_grad_norm_ returned at each step, clipping cases). DIR/index.txt names the files.

How the runner's settings map to torch:
    decay_bn_bias: false       a second parameter group, the bias, with weight_decay 0
    clip_grad_norm: X          torch.nn.utils.clip_grad_norm_(params, X) before every step
    ema_decay: D               torch.optim.swa_utils.AveragedModel(model, avg_fn=D * avg +
                               (1 - D) * w), update_parameters after every step (it copies
                               the weights on the first)
    constant + warm-up         LinearLR(start_factor, total_iters=warm-up steps)
    step, multistep            StepLR(step_size=step_epochs x 4), MultiStepLR(milestones x 4)
    exponential                ExponentialLR(gamma ** (1 / 4))
    cosine + warm-up           SequentialLR([LinearLR, CosineAnnealingLR(T_max=12 - warm-up,
                               eta_min=min_lr)], milestones=[warm-up])
    onecycle                   OneCycleLR(total_steps=12, cycle_momentum=False), cos and linear
The schedulers step once per batch, after optimizer.step().

Where the runner's documented schedules and torch's differ, only the combinations where they
agree are tested: step, multistep and exponential run without a warm-up (the runner counts
their epochs from the start of the run, warm-up included, while SequentialLR would start the
second scheduler afresh at the milestone); onecycle has its own warm-up.
"""
import os
import sys
import warnings

import torch
import torch.nn as nn
from torch.optim import lr_scheduler as sched
from torch.optim.swa_utils import AveragedModel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resnet50_step import save  # noqa: E402  the safetensors format by hand

EPOCHS, STEPS_PER_EPOCH = 3, 4
TOTAL = EPOCHS * STEPS_PER_EPOCH
GRAD_SCALE = (1.0, 0.1, 0.5)  # step T's gradients are scaled by GRAD_SCALE[T % 3]

# name: the runner's optimizer section (written out as YAML by flow)
OPTIMIZERS = {
    "sgd_momentum": dict(type="sgd", lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01),
    "sgd_nesterov": dict(type="sgd", lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
    "sgd_decay_all": dict(type="sgd", lr=0.1, momentum=0.5, weight_decay=0.05),
    "sgd_decay_weight": dict(type="sgd", lr=0.1, momentum=0.5, weight_decay=0.05,
                             decay_bn_bias=False),
    "sgd_clip": dict(type="sgd", lr=0.1, momentum=0.9, clip_grad_norm=1.0),
    "adam": dict(type="adam", lr=0.01, weight_decay=0.01),
    "adam_amsgrad": dict(type="adam", lr=0.01, betas=[0.9, 0.99], eps=1e-6, weight_decay=0.01,
                         amsgrad=True),
    "adamw": dict(type="adamw", lr=0.01, weight_decay=0.1),
    "adamw_decay_weight": dict(type="adamw", lr=0.01, weight_decay=0.1, decay_bn_bias=False),
    "adamw_clip_ema": dict(type="adamw", lr=0.01, weight_decay=0.1, amsgrad=True,
                           clip_grad_norm=2.0, ema_decay=0.9),
    "sgd_ema": dict(type="sgd", lr=0.1, momentum=0.9, weight_decay=0.01, decay_bn_bias=False,
                    ema_decay=0.75),
}

# name: (the runner's schedule section, torch's scheduler for an optimizer at lr)
SCHEDULES = {
    "constant_warmup": (
        "{type: constant, warmup_epochs: 1, warmup_start_factor: 0.1}",
        lambda o, lr: sched.LinearLR(o, start_factor=0.1, total_iters=4)),
    "step": (
        "{type: step, step_epochs: 1, gamma: 0.5}",
        lambda o, lr: sched.StepLR(o, step_size=4, gamma=0.5)),
    "multistep": (
        "{type: multistep, milestones: [1, 2], gamma: 0.3}",
        lambda o, lr: sched.MultiStepLR(o, milestones=[4, 8], gamma=0.3)),
    "exponential": (
        "{type: exponential, gamma: 0.5}",
        lambda o, lr: sched.ExponentialLR(o, gamma=0.5 ** (1 / STEPS_PER_EPOCH))),
    "cosine_warmup": (
        "{type: cosine, warmup_epochs: 1.5, warmup_start_factor: 0.2, min_lr: 1.0e-3}",
        lambda o, lr: sched.SequentialLR(o, [
            sched.LinearLR(o, start_factor=0.2, total_iters=6),
            sched.CosineAnnealingLR(o, T_max=TOTAL - 6, eta_min=1e-3)], milestones=[6])),
    "onecycle_cos": (
        "{type: onecycle, pct_start: 0.3, div_factor: 10, final_div_factor: 100, anneal: cos}",
        lambda o, lr: sched.OneCycleLR(o, max_lr=lr, total_steps=TOTAL, pct_start=0.3,
                                       div_factor=10, final_div_factor=100,
                                       anneal_strategy="cos", cycle_momentum=False)),
    "onecycle_linear": (
        "{type: onecycle, pct_start: 0.25, div_factor: 5, final_div_factor: 50, anneal: linear}",
        lambda o, lr: sched.OneCycleLR(o, max_lr=lr, total_steps=TOTAL, pct_start=0.25,
                                       div_factor=5, final_div_factor=50,
                                       anneal_strategy="linear", cycle_momentum=False)),
}


def flow(d):
    """d as a YAML flow mapping: {type: sgd, lr: 0.1, nesterov: true, betas: [0.9, 0.99]}."""
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return repr(v) if isinstance(v, float) else str(v)
    return "{" + ", ".join(f"{k}: {value(v)}" for k, v in d.items()) + "}"


def make_optimizer(o, model):
    w, b = model.weight, model.bias
    wd = o.get("weight_decay", 0.0 if o["type"] != "adamw" else 0.01)
    if o.get("decay_bn_bias", True):
        groups = [{"params": [w, b]}]
    else:
        groups = [{"params": [w]}, {"params": [b], "weight_decay": 0.0}]
    if o["type"] == "sgd":
        return torch.optim.SGD(groups, lr=o["lr"], momentum=o.get("momentum", 0.0),
                               dampening=o.get("dampening", 0.0), weight_decay=wd,
                               nesterov=o.get("nesterov", False))
    kind = torch.optim.Adam if o["type"] == "adam" else torch.optim.AdamW
    return kind(groups, lr=o["lr"], betas=tuple(o.get("betas", (0.9, 0.999))),
                eps=o.get("eps", 1e-8), weight_decay=wd, amsgrad=o.get("amsgrad", False))


def run_case(o, sched_text, make_sched, seed):
    g = torch.Generator().manual_seed(seed)
    model = nn.Linear(7, 5)
    with torch.no_grad():
        model.weight.copy_(torch.randn(5, 7, generator=g) * 0.5)
        model.bias.copy_(torch.randn(5, generator=g) * 0.5)
    tensors = {"init.fc.weight": model.weight.detach().clone(),
               "init.fc.bias": model.bias.detach().clone()}
    opt = make_optimizer(o, model)
    scheduler = make_sched(opt, o["lr"])
    decay = o.get("ema_decay", 0.0)
    ema = AveragedModel(model, avg_fn=lambda avg, p, n: decay * avg + (1 - decay) * p) \
        if decay > 0 else None
    lrs, norms = [], []
    for t in range(TOTAL):
        gw = torch.randn(5, 7, generator=g) * GRAD_SCALE[t % 3]
        gb = torch.randn(5, generator=g) * GRAD_SCALE[t % 3]
        tensors[f"grad.{t}.fc.weight"], tensors[f"grad.{t}.fc.bias"] = gw, gb
        model.weight.grad, model.bias.grad = gw.clone(), gb.clone()
        if o.get("clip_grad_norm", 0) > 0:
            norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(),
                                                              o["clip_grad_norm"])))
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
        if ema is not None:
            ema.update_parameters(model)
            tensors[f"ema.{t}.fc.weight"] = ema.module.weight.detach().clone()
            tensors[f"ema.{t}.fc.bias"] = ema.module.bias.detach().clone()
        tensors[f"step.{t}.fc.weight"] = model.weight.detach().clone()
        tensors[f"step.{t}.fc.bias"] = model.bias.detach().clone()
    meta = {"optimizer": flow(o), "schedule": sched_text, "epochs": str(EPOCHS),
            "steps_per_epoch": str(STEPS_PER_EPOCH),
            "lr": " ".join("%.17g" % x for x in lrs)}
    if norms:
        meta["grad_norm"] = " ".join("%.17g" % x for x in norms)
    return tensors, meta


def main():
    if len(sys.argv) != 2:
        print(__doc__.splitlines()[3].strip(), file=sys.stderr)
        return 2
    out = sys.argv[1]
    torch.set_num_threads(1)
    # SequentialLR steps the scheduler after a milestone with step(0), which torch warns about.
    warnings.filterwarnings("ignore", message="The epoch parameter")
    names = []
    for i, (oname, o) in enumerate(OPTIMIZERS.items()):
        for sname, (sched_text, make_sched) in SCHEDULES.items():
            tensors, meta = run_case(o, sched_text, make_sched, 1000 + i)
            name = f"{oname}__{sname}.safetensors"
            save(f"{out}/{name}", {k: v.to(torch.float32) for k, v in tensors.items()}, meta)
            names.append(name)
    with open(f"{out}/index.txt", "w") as f:
        f.write("".join(n + "\n" for n in names))
    print(f"optim_steps.py: {len(names)} cases ({len(OPTIMIZERS)} optimizers x "
          f"{len(SCHEDULES)} schedules, {TOTAL} steps each) in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
