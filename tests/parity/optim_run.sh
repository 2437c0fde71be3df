#!/bin/sh
# optim_run.sh TEST_OPTIM_PARITY SOURCE_DIR: the optimizer parity test. optim_steps.py runs
# twelve updates of a linear layer with torch.optim (SGD with momentum, dampening, Nesterov and
# weight decay on all tensors or on the weight only; Adam, amsgrad; AdamW, with and without
# decay on the bias; clip_grad_norm_; an AveragedModel EMA) under torch's schedulers (LinearLR
# warm-up, StepLR, MultiStepLR, ExponentialLR, SequentialLR of LinearLR and CosineAnnealingLR,
# OneCycleLR cos and linear); test_optim_parity repeats them through step_update and
# schedule_lr and compares every step (see both files).
#
# Where the runner's documented schedules and torch's differ, only the combinations where they
# agree are run: step, multistep and exponential without a warm-up (the runner counts their
# epochs from the start of the run, warm-up included; SequentialLR would restart them at the
# milestone); cosine and constant with one; onecycle has its own warm-up.
#
# Exit 77 (skipped) when Debian's python3 has no torch, unless CI=true: then it fails.
set -u
test_optim_parity=$1
src=$2
need=torch
. "$src/tests/parity/need_torch.sh"
"$py" "$src/tests/parity/optim_steps.py" "$dir" || exit 1
"$test_optim_parity" "$dir" || exit 1
