#!/bin/sh
# test_export_real.sh RUNNER SOURCE_DIR EXPORT_LOGITS: runner export of a run trained on the
# real CIFAR-10 (RUNNER_DATA, else ../shared/cifar10 beside the project). quick.yaml on 5000
# training images for 2 epochs, tested on the whole test set without flip test-time
# augmentation; then the run exported with a symbolic and a fixed batch (256), with and
# without --normalize, and with --fold-bn; tests/export/check_real.py compares onnxruntime's
# logits on the first 256 test images with the runner's, and its accuracy and confusion matrix
# over all 10000 with the run's summary.json and confusion_matrix.csv.
#
# Skipped (77) where the data is absent, or without the test venv with onnx and onnxruntime
# (tests/venv.sh, RUNNER_TEST_VENV), unless CI=true: then the missing data is a failure and
# the test creates the environment.
. "$2/tests/real_data.sh"
logits=$3
fail() { echo "FAIL: $*"; exit 1; }
. "$src/tests/venv.sh"

run=$tmp/run
RUNNER_DATA=$data "$runner" "$src/experiments/quick.yaml" data.subset=5000 data.val_split=500 \
    train.epochs=2 eval.samples=2 eval.flip_tta=false 'hooks=[]' --out "$run" \
    >"$tmp/out.txt" 2>&1 || { cat "$tmp/out.txt"; fail "the run exited $?"; }
grep "^test:" "$tmp/out.txt"

"$runner" export "$run" >/dev/null || fail "runner export RUN_DIR failed"
for opts in "--normalize" "--batch 256" "--batch 256 --normalize" "--fold-bn --normalize"; do
    name=$(echo "$opts" | tr -d ' -')
    "$runner" export "$run" $opts --out "$tmp/$name.onnx" >/dev/null ||
        fail "runner export RUN_DIR $opts failed"
done
"$py" "$src/tests/export/check_real.py" "$run" "$logits" "$data" "$run/model.onnx" \
    "$tmp/normalize.onnx" "$tmp/batch256.onnx" "$tmp/batch256normalize.onnx" \
    "$tmp/foldbnnormalize.onnx" || fail "check_real.py"
echo "export on real data: ok"
