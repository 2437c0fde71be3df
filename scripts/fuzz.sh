#!/usr/bin/env bash
# Fuzzes each libFuzzer target of tests/fuzz/ (fuzz_spec: the experiment loader, its overrides,
# the graph's expansion and `runner plan`'s planning and summary; fuzz_image: the JPEG and PNG
# decoders' probe and decode) under ASan + UBSan for a bounded time, one after the other, on
# one core.
#   scripts/fuzz.sh [SECONDS [TARGET...]]   (each target, all by default; default 600 s)
# Builds build-fuzz/ with clang (FUZZ_BUILD=DIR builds elsewhere), seeds each target's corpus
# (fuzz_spec: every experiment and bad-input file; fuzz_image: tests/fuzz/seeds/image/, tiny
# images written by tests/fuzz/image_seeds.py), and stops at the first crash, leak, timeout or
# sanitizer report (its input is left in tests/fuzz/artifacts/, FUZZ_ARTIFACTS=DIR; the corpus
# grows in tests/fuzz/corpus/TARGET/, FUZZ_CORPUS=DIR). Reproduce one with
#   build-fuzz/TARGET tests/fuzz/artifacts/crash-...
# Exit status 0: nothing found in the time given; 1: something found, or a target that did not
# run (no input executed); other: the build failed.
set -euo pipefail
secs=${1:-600}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=${FUZZ_BUILD:-build-fuzz}
corpus=${FUZZ_CORPUS:-tests/fuzz/corpus}
artifacts=${FUZZ_ARTIFACTS:-tests/fuzz/artifacts}
targets=(fuzz_spec fuzz_image)
if (($# > 1)); then targets=("${@:2}"); fi
for t in "${targets[@]}"; do
  [[ -f tests/fuzz/$t.c ]] || { echo "fuzz: no target $t (tests/fuzz/$t.c)" >&2; exit 2; }
done

gen=()
[[ -f $build/CMakeCache.txt ]] || ! command -v ninja >/dev/null || gen=(-G Ninja)
mkdir -p "$build"
CC=clang cmake -S . -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRUNNER_FUZZ=ON \
  -DRUNNER_SANITIZE=ON -DRUNNER_CUDA=OFF -DBUILD_TESTING=OFF >"$build/fuzz-configure.log" 2>&1 ||
  { tail -n 40 "$build/fuzz-configure.log" >&2; exit 2; }
cmake --build "$build" -j "$(nproc)" --target "${targets[@]}" >"$build/fuzz-build.log" 2>&1 ||
  { tail -n 60 "$build/fuzz-build.log" >&2; exit 2; }

# Seeds, one folder a target. fuzz_spec: the experiments and bad inputs as they are,
# experiments with their graph inline (the loader reads no model file from fuzz/), for a GPU at
# 16 bits, and with overrides (and plan's --gpu) after a NUL. fuzz_image: the committed images.
rm -rf "$build/seeds"
mkdir -p "$build/seeds/fuzz_spec" "$build/seeds/fuzz_image" "$artifacts"
seeds=$build/seeds/fuzz_spec
cp experiments/*.yaml experiments/models/*.yaml tests/bad_yaml/*.yaml "$seeds/"
for m in resnet8 resnet18 resnet50_imagenet_stem; do
  { echo "optimizer: {type: adam, lr: 1.0e-3}"; echo "model:"; echo "  graph:"
    sed 's/^/    /' "experiments/models/$m.yaml"; } >"$seeds/inline_$m.yaml"
done
{ echo "device: cuda"; echo "precision: fp16"; cat "$seeds/inline_resnet8.yaml"; } >"$seeds/inline_resnet8_cuda.yaml"
{ cat "$seeds/inline_resnet18.yaml"; printf '\0train.batch_size=3\noptimizer.lr=0.5\ndevice=cuda\n--gpu sm_75'; } \
  >"$seeds/inline_resnet18_overrides.yaml"
cp tests/fuzz/seeds/image/* "$build/seeds/fuzz_image/"

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
for t in "${targets[@]}"; do
  mkdir -p "$corpus/$t"
  log=$build/$t.log
  echo "fuzz: $t for ${secs}s (log: $log)"
  rc=0
  "$build/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
    -dict="tests/fuzz/${t#fuzz_}.dict" -artifact_prefix="$artifacts/" -print_final_stats=1 \
    "$corpus/$t" "$build/seeds/$t" </dev/null >"$log" 2>&1 || rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|^stat::|^Done ' "$log" || true
  if ((rc != 0)); then
    tail -n 80 "$log"
    echo "fuzz: $t: FAILED (exit $rc); the input is in $artifacts/" >&2
    exit 1
  fi
  if ((${runs:-0} == 0)); then
    tail -n 40 "$log"
    echo "fuzz: $t: executed no input" >&2
    exit 1
  fi
  echo "fuzz: $t: nothing found in $runs runs"
done
