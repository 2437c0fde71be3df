#!/bin/sh
# test_image_pil.sh IMAGE_DUMP SOURCE_DIR: the image decoders against PIL. image_pil.py writes
# JPEGs and PNGs of every kind a folder dataset meets, decodes each through image_dump and
# compares every pixel with PIL's Image.open(path).convert("RGB") (see that file).
#
# Exit 77 (skipped) when Debian's python3 has no PIL (python3-pil), unless CI=true: then it
# fails.
set -u
image_dump=$1
src=$2
need=PIL
packages=python3-pil
. "$src/tests/parity/need_torch.sh"
"$py" "$src/tests/image_pil.py" "$image_dump" "$dir" || exit 1
