#!/bin/sh
# pretrained_run.sh TEST_PRETRAINED_PARITY SOURCE_DIR: torchvision's ResNet-50 weights into
# the runner and back (see pretrained_export.py, test_pretrained_parity.c).
# Exit 77 (skipped) when Debian's python3 has no torch, unless CI=true: then it fails.
set -u
test_bin=$1
src=$2
py=${RUNNER_PYTHON:-/usr/bin/python3}
if ! "$py" -c "import torch, torchvision" 2>/dev/null; then
    echo "parity: $py cannot import torch and torchvision (apt-get install python3-torch python3-torchvision)"
    if [ "${CI:-}" = "true" ]; then exit 1; fi
    exit 77
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$py" "$src/tests/parity/pretrained_export.py" "$dir" || exit 1
"$test_bin" "$dir" "$src" || exit 1
"$py" "$src/tests/parity/pretrained_export.py" "$dir" --check "$dir/runner.safetensors" || exit 1
