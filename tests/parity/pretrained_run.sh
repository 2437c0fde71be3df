#!/bin/sh
# pretrained_run.sh TEST_PRETRAINED_PARITY SOURCE_DIR: torchvision's ResNet-50 weights into
# the runner and back (see pretrained_export.py, test_pretrained_parity.c).
# Exit 77 (skipped) when Debian's python3 has no torch, unless CI=true: then it fails.
set -u
test_bin=$1
src=$2
need="torch, torchvision"
. "$src/tests/parity/need_torch.sh"
"$py" "$src/tests/parity/pretrained_export.py" "$dir" || exit 1
"$test_bin" "$dir" "$src" || exit 1
"$py" "$src/tests/parity/pretrained_export.py" "$dir" --check "$dir/runner.safetensors" || exit 1
