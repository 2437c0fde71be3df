#!/usr/bin/env bash
# Installs what runner and its tests need (Debian/Ubuntu packages, via apt-get, only what is
# missing) and builds it into build/. The README's two commands start with this script.
#   scripts/setup.sh
# Environment: BUILD_DIR (default build), RUNNER_CUDA (AUTO|ON|OFF, default AUTO),
# RUNNER_WERROR (ON makes warnings errors, as CI does), CMAKE_ARGS (more -D options).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

# The build: compilers, CMake, the libraries. Debian 12's oneDNN (2.6, built with its OpenCL GPU
# runtime) requires OpenCL in its CMake package, which fails without ocl-icd-opencl-dev and
# opencl-c-headers (Debian 13's, 3.7, does not). libcurl4-openssl-dev only suggests
# libssl-dev. libprotobuf-dev holds google/protobuf/struct.proto, which the TensorBoard messages
# import (libonnx-dev does not depend on it). The tests: python3 runs the report pages' checkers, lua5.4 the hook libraries'
# unit tests.
packages=(build-essential cmake pkg-config libyaml-dev liblua5.4-dev libcmocka-dev
          libdnnl-dev ocl-icd-opencl-dev opencl-c-headers libpng-dev libturbojpeg0-dev
          libcurl4-openssl-dev libprotobuf-c-dev protobuf-c-compiler libprotobuf-dev libonnx-dev
          libssl-dev python3 lua5.4)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null ||
      { echo "setup: run as root, or install sudo, to install ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

build=${BUILD_DIR:-build}
mkdir -p "$build"
log="$build/configure.log" # inside the build folder, which git ignores
# shellcheck disable=SC2086
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DRUNNER_CUDA="${RUNNER_CUDA:-AUTO}" \
  -DRUNNER_WERROR="${RUNNER_WERROR:-OFF}" ${CMAKE_ARGS:-} >"$log" 2>&1 ||
  { cat "$log"; exit 1; }
grep "runner:" "$log" || true
cmake --build "$build" -j "$(nproc)"
