#!/usr/bin/env bash
# Regenerates the YAML reference in README.md from the schema table (`runner schema`).
#   scripts/update_readme.sh [RUNNER]      (default build/runner)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
runner=${1:-$root/build/runner}
ref=$(mktemp)
"$runner" schema >"$ref"
awk -v ref="$ref" '
  /<!-- yaml-reference:begin -->/ { print; while ((getline line < ref) > 0) print line; skip = 1; next }
  /<!-- yaml-reference:end -->/ { skip = 0 }
  !skip' "$root/README.md" >"$root/README.md.new"
mv "$root/README.md.new" "$root/README.md"
rm -f "$ref"
