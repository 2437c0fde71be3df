# real_data.sh: the start of the real-data tests (test_quick.sh, test_report.sh), which take
# RUNNER SOURCE_DIR as their first arguments and source it as
#     . "$2/tests/real_data.sh"
# Sets -u, $runner and $src from those arguments, $data to the CIFAR-10 to use (RUNNER_DATA,
# else ../shared/cifar10 beside the project) or exits 77 (skipped) where it is absent, 1 with
# CI=true, and $tmp to a temporary folder removed when the test exits.
set -u
runner=$1
src=$2
data=${RUNNER_DATA:-$src/../shared/cifar10}
if [ ! -d "$data/cifar-10-batches-bin" ]; then
    if [ "${CI:-}" = true ]; then
        echo "FAIL: no CIFAR-10 at $data/cifar-10-batches-bin"
        exit 1
    fi
    echo "skipped: no CIFAR-10 at $data/cifar-10-batches-bin (set RUNNER_DATA)"
    exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
