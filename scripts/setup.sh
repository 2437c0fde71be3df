#!/usr/bin/env bash
# Installs what runner needs (Debian/Ubuntu packages, via apt-get, only what is missing) and
# builds it into build/. The README's two commands start with this script.
#   scripts/setup.sh
# Environment: BUILD_DIR (default build), RUNNER_CUDA (AUTO|ON|OFF, default AUTO),
# RUNNER_WERROR (ON makes warnings errors, as CI does), CMAKE_ARGS (more -D options).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

packages=(build-essential cmake pkg-config libyaml-dev liblua5.4-dev libcmocka-dev
          libdnnl-dev libpng-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
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
