#!/bin/sh
# augment_run.sh AUGMENT_DUMP SOURCE_DIR: the decoded-image stage against torchvision.
# augment_torchvision.py builds images of odd sizes, runs them through torchvision's Resize,
# CenterCrop and resized_crop on PIL images (then ToTensor) and through augment_dump, and
# compares every pixel (see that file).
#
# Exit 77 (skipped) when Debian's python3 has no torchvision, unless CI=true: then it fails.
set -u
augment_dump=$1
src=$2
need="torch, torchvision, PIL, numpy"
. "$src/tests/parity/need_torch.sh"
"$py" "$src/tests/parity/augment_torchvision.py" "$augment_dump" "$dir" || exit 1
