#!/bin/sh
# run.sh TEST_PARITY SOURCE_DIR: the PyTorch parity test (see resnet50_step.py, test_parity.c).
# Exit 77 (skipped) when Debian's python3 has no torch, unless CI=true: then it fails.
set -u
test_parity=$1
src=$2
need="torch, torchvision"
. "$src/tests/parity/need_torch.sh"
"$py" "$src/tests/parity/resnet50_step.py" "$dir" || exit 1
"$test_parity" "$dir" "$src" direct || exit 1
"$test_parity" "$dir" "$src" auto || exit 1
"$py" "$src/tests/parity/resnet50_step.py" "$dir" --check "$dir/runner_sgd.safetensors" || exit 1
