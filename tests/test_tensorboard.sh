#!/bin/sh
# test_tensorboard.sh RUNNER SOURCE_DIR: the runner's TensorBoard files read by TensorBoard.
# On a small folder dataset (tests/tensorboard/make_folder.py): a run of
# tests/tensorboard/tiny.yaml with tensorboard=true, checked through EventAccumulator by
# check_tb.py; the same run resumed from its epoch-2 checkpoint (its later checkpoints
# removed, as after a crash), whose new event file must make TensorBoard drop the old file's
# epochs 3 and 4, checked again, and through TensorBoard's server with both its loaders
# (check_server.py); tensorboard: false writes nothing; an event file that cannot be made is
# a warning; a run whose config.yaml lacks a key added since it started resumes; then a sweep with --tensorboard of
# three points, one of which fails (its loss overflows), compared by TensorBoard's server in
# its HParams tab with both loaders (check_hparams.py).
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
for lf in false true; do
    "$py" "$src/tests/tensorboard/check_server.py" "$dir/run" $lf || fail "check_server.py $lf"
done

# tensorboard: false (the default): no tensorboard/.
"$runner" "$exp" "data.root=$dir/data" train.epochs=1 --out "$dir/off" >/dev/null 2>&1 ||
    fail "the run without tensorboard exited $?"
[ -e "$dir/off/tensorboard" ] && fail "tensorboard/ written with tensorboard: false"

# TensorBoard's file cannot be made (a file named tensorboard is in the way): a warning, and
# the run goes on to its end.
mkdir "$dir/blocked" && : >"$dir/blocked/tensorboard"
"$runner" "$exp" "data.root=$dir/data" train.epochs=1 tensorboard=true --out "$dir/blocked" \
    >"$dir/out" 2>&1 || { cat "$dir/out"; fail "a run whose event file cannot be made exited $?"; }
grep -q "warning: .*cannot create TensorBoard's event file; the run goes on" "$dir/out" ||
    { cat "$dir/out"; fail "no warning for the event file"; }
[ -s "$dir/blocked/summary.json" ] && [ -s "$dir/blocked/model.safetensors" ] ||
    fail "the run without its event file did not finish"

# A run that an older runner started (its config.yaml without a key added since, tensorboard,
# at its default) resumes; a real difference is still refused.
"$runner" "$exp" "data.root=$dir/data" --stop-after-epoch 1 --out "$dir/old" >/dev/null 2>&1 ||
    fail "the run to resume exited $?"
grep -v '^tensorboard: false$' "$dir/old/config.yaml" >"$dir/config" &&
    mv "$dir/config" "$dir/old/config.yaml"
grep -q '^tensorboard:' "$dir/old/config.yaml" && fail "config.yaml still has tensorboard:"
"$runner" train "$exp" "data.root=$dir/data" optimizer.lr=0.01 --resume "$dir/old" >"$dir/out" 2>&1
[ $? = 2 ] && grep -q "differs from the run's" "$dir/out" ||
    { cat "$dir/out"; fail "a resume with another learning rate was not refused"; }
"$runner" train "$exp" "data.root=$dir/data" --resume "$dir/old" >"$dir/out" 2>&1 ||
    { cat "$dir/out"; fail "the older run's resume exited $?"; }

# A sweep with --tensorboard, compared in the HParams tab of TensorBoard's server; lr=1e38
# fails (its logits overflow: the loss is not finite), so the sweep exits 1.
"$runner" sweep "$exp" --grid optimizer.lr=0.001,0.003,1e38 "data.root=$dir/data" train.epochs=2 \
    --tensorboard --out "$dir/sweep" >"$dir/out" 2>&1
rc=$?
[ $rc = 1 ] || { cat "$dir/out"; fail "the sweep exited $rc, not 1 (a point failed)"; }
grep -q "lr=1e38: failed" "$dir/out" || { cat "$dir/out"; fail "lr=1e38 did not fail"; }
for p in lr=0.001 lr=0.003 lr=1e38; do
    ls "$dir/sweep/runs/$p/"events.out.tfevents.*.hparams >/dev/null 2>&1 ||
        fail "$p: no hparams records"
done
for lf in false true; do
    "$py" "$src/tests/tensorboard/check_hparams.py" "$dir/sweep" optimizer.lr $lf ||
        fail "check_hparams.py $lf"
done
echo "test_tensorboard: ok"
