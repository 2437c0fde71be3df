#!/usr/bin/env bash
# Downloads CIFAR-10 (the official binary release) into DIR, so that DIR/cifar-10-batches-bin/
# holds the files runner reads: `runner download DIR`, the download a run makes by itself when
# data.download is true (resumed, retried, its MD5 checked, unpacked, every file checked), for
# machines that fetch data separately. Needs only the built runner (scripts/setup.sh builds it).
#   scripts/get_cifar10.sh [DIR]      (default: RUNNER_DATA, else data/cifar10)
# Then run with RUNNER_DATA=DIR (or data.root: DIR) unless DIR is the default. RUNNER_BIN names
# another runner program than the repository's build/runner; RUNNER_CIFAR10_URL (with
# RUNNER_CIFAR10_MD5) a mirror.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runner=${RUNNER_BIN:-$root/build/runner}
if [[ ! -x $runner ]]; then
  echo "get_cifar10: $runner not found: build the runner first (scripts/setup.sh builds it" \
       "into build/), or set RUNNER_BIN to a runner program" >&2
  exit 1
fi
exec "$runner" download "$@"
