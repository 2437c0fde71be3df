# need_torch.sh, sourced by the parity scripts with $need set to the Python modules they use
# (e.g. need="torch, torchvision") and optionally $packages to the Debian packages that bring
# them (python3-torch python3-torchvision by default): sets $py (Debian's python3, or
# RUNNER_PYTHON) and $dir (a temporary folder, removed on exit). Without the modules the
# script exits 77 (skipped), or 1 with CI=true.
py=${RUNNER_PYTHON:-/usr/bin/python3}
if ! "$py" -c "import $need" 2>/dev/null; then
    echo "parity: $py cannot import $need (apt-get install ${packages:-python3-torch python3-torchvision})"
    if [ "${CI:-}" = "true" ]; then exit 1; fi
    exit 77
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
