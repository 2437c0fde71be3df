#!/usr/bin/env bash
# Fuzzes the experiment loader with libFuzzer under ASan + UBSan for a bounded time.
#   scripts/fuzz.sh [SECONDS]      (default 600)
# Builds build-fuzz/ with clang, seeds the corpus with every experiment and bad-input file,
# and stops at the first crash, leak or sanitizer report (its input is left in
# tests/fuzz/artifacts/). Exit status 0: nothing found in the time given.
set -euo pipefail
secs=${1:-600}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
CC=clang cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DRUNNER_FUZZ=ON -DRUNNER_SANITIZE=ON -DRUNNER_CUDA=OFF -DBUILD_TESTING=OFF >/dev/null
cmake --build build-fuzz --target fuzz_spec >/dev/null
mkdir -p tests/fuzz/corpus tests/fuzz/artifacts build-fuzz/seeds
cp experiments/*.yaml experiments/models/*.yaml tests/bad_yaml/*.yaml build-fuzz/seeds/ 2>/dev/null || true
for m in resnet8 resnet18 resnet50_imagenet_stem; do  # experiments with their graph inline
  { echo "optimizer: {type: adam, lr: 1.0e-3}"; echo "model:"; echo "  graph:"
    sed 's/^/    /' "experiments/models/$m.yaml"; } >"build-fuzz/seeds/inline_$m.yaml"
done
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
exec build-fuzz/fuzz_spec -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
  -max_len=8192 -dict=tests/fuzz/spec.dict -artifact_prefix=tests/fuzz/artifacts/ \
  -print_final_stats=1 tests/fuzz/corpus build-fuzz/seeds
