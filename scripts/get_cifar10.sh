#!/usr/bin/env bash
# Downloads CIFAR-10 (the official binary release), checks its MD5 and unpacks it, so that
# DIR/cifar-10-batches-bin/ holds the files runner reads. The runner does the same by itself
# when data.download is true; this script is for machines that fetch data separately.
#   scripts/get_cifar10.sh [DIR]      (default: data/cifar10)
# Then run with RUNNER_DATA=DIR (or data.root: DIR) unless DIR is the default.
set -euo pipefail
dir=${1:-data/cifar10}
url=${RUNNER_CIFAR10_URL:-https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz}
md5=${RUNNER_CIFAR10_MD5:-c32a1d4ab5d03f1284b67883e8d87530}
if [[ -d $dir/cifar-10-batches-bin ]]; then
  echo "get_cifar10: $dir/cifar-10-batches-bin already exists"
  exit 0
fi
mkdir -p "$dir"
archive=$dir/cifar-10-binary.tar.gz
echo "get_cifar10: downloading $url"
curl -fL --retry 2 --connect-timeout 20 -o "$archive.part" "$url"
got=$(md5sum "$archive.part" | cut -d' ' -f1)
if [[ $got != "$md5" ]]; then
  rm -f "$archive.part"
  echo "get_cifar10: checksum mismatch: got $got, expected $md5" >&2
  exit 1
fi
mv "$archive.part" "$archive"
tar -xzf "$archive" -C "$dir"
rm -f "$archive"
echo "get_cifar10: ready: $dir/cifar-10-batches-bin"
