# real_data.sh: sourced by the real-data tests (test_quick.sh, test_report.sh) with $src set
# to the project's root: sets $data to the CIFAR-10 to use (RUNNER_DATA, else
# ../shared/cifar10 beside the project), or exits 77 (skipped) where it is absent, 1 with
# CI=true.
data=${RUNNER_DATA:-$src/../shared/cifar10}
if [ ! -d "$data/cifar-10-batches-bin" ]; then
    if [ "${CI:-}" = true ]; then
        echo "FAIL: no CIFAR-10 at $data/cifar-10-batches-bin"
        exit 1
    fi
    echo "skipped: no CIFAR-10 at $data/cifar-10-batches-bin (set RUNNER_DATA)"
    exit 77
fi
