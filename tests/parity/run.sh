#!/bin/sh
# run.sh TEST_PARITY SOURCE_DIR: the PyTorch parity test (see resnet50_step.py, test_parity.c).
# Exit 77 (skipped) when Debian's python3 has no torch, unless CI=true: then it fails.
set -u
test_parity=$1
src=$2
py=${RUNNER_PYTHON:-/usr/bin/python3}
if ! "$py" -c "import torch, torchvision" 2>/dev/null; then
    echo "parity: $py cannot import torch and torchvision (apt-get install python3-torch python3-torchvision)"
    if [ "${CI:-}" = "true" ]; then exit 1; fi
    exit 77
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$py" "$src/tests/parity/resnet50_step.py" "$dir" || exit 1
"$test_parity" "$dir" "$src" direct || exit 1
"$test_parity" "$dir" "$src" auto || exit 1
"$py" "$src/tests/parity/resnet50_step.py" "$dir" --check "$dir/runner_sgd.safetensors" || exit 1
