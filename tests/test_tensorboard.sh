#!/bin/sh
# test_tensorboard.sh RUNNER SOURCE_DIR: the runner's TensorBoard files read by TensorBoard.
# On a small folder dataset (tests/tensorboard/make_folder.py): a run of
# tests/tensorboard/tiny.yaml with tensorboard=true, checked through EventAccumulator by
# check_tb.py; the same run resumed from its epoch-2 checkpoint (its later checkpoints
# removed, as after a crash), whose new event file must make TensorBoard drop the old file's
# epochs 3 and 4, checked again; tensorboard: false writes nothing; then a two-point sweep
# with --tensorboard, compared by TensorBoard's own server on 127.0.0.1 (check_hparams.py).
# Needs the test venv (tests/venv.sh): exit 77 without it unless CI=true.
set -u
runner=$1
src=$2
. "$src/tests/venv.sh"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "test_tensorboard: $*"; exit 1; }
exp=$src/tests/tensorboard/tiny.yaml

"$py" "$src/tests/tensorboard/make_folder.py" "$dir/data" || fail "make_folder.py failed"
"$runner" "$exp" "data.root=$dir/data" tensorboard=true --out "$dir/run" >"$dir/out" 2>&1 ||
    { cat "$dir/out"; fail "the run exited $?"; }
"$py" "$src/tests/tensorboard/check_tb.py" "$dir/run" 1 "$dir/data" || fail "check_tb.py: the run"

# Resumed from epoch 2 after "losing" the later checkpoints: epochs 3 and 4 again, a second
# event file, the first file's epochs 3 and 4 orphans that TensorBoard must drop.
cp "$dir/run/metrics.jsonl" "$dir/first.jsonl"
ls "$dir/run/checkpoints/step_00000010.safetensors" >/dev/null || fail "no checkpoint at step 10"
find "$dir/run/checkpoints" -name 'step_*.safetensors' ! -name step_00000010.safetensors -delete
sleep 1 # a new second: a new file name (a clash would get .2)
"$runner" train "$exp" "data.root=$dir/data" tensorboard=true --resume "$dir/run" >"$dir/out" 2>&1 ||
    { cat "$dir/out"; fail "the resumed run exited $?"; }
grep -q "resumed from .*step_00000010" "$dir/out" || { cat "$dir/out"; fail "not resumed at step 10"; }
cmp -s "$dir/first.jsonl" "$dir/run/metrics.jsonl" &&
    fail "metrics.jsonl is unchanged: the resumed epochs should differ in seconds and img/s"
"$py" "$src/tests/tensorboard/check_tb.py" "$dir/run" 2 "$dir/data" 2>/dev/null ||
    fail "check_tb.py: the resumed run"

# tensorboard: false (the default): no tensorboard/.
"$runner" "$exp" "data.root=$dir/data" train.epochs=1 --out "$dir/off" >/dev/null 2>&1 ||
    fail "the run without tensorboard exited $?"
[ -e "$dir/off/tensorboard" ] && fail "tensorboard/ written with tensorboard: false"

# A sweep with --tensorboard, compared in the HParams tab of TensorBoard's server.
"$runner" sweep "$exp" --grid optimizer.lr=0.001,0.003 "data.root=$dir/data" train.epochs=2 \
    --tensorboard --out "$dir/sweep" >"$dir/out" 2>&1 || { cat "$dir/out"; fail "the sweep exited $?"; }
for p in lr=0.001 lr=0.003; do
    ls "$dir/sweep/runs/$p/tensorboard/"events.out.tfevents.*.hparams >/dev/null 2>&1 ||
        fail "$p: no hparams records"
done
"$py" "$src/tests/tensorboard/check_hparams.py" "$dir/sweep" optimizer.lr || fail "check_hparams.py"
echo "test_tensorboard: ok"
