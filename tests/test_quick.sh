#!/bin/sh
# test_quick.sh RUNNER SOURCE_DIR: experiments/quick.yaml for a few minutes on part of the real
# CIFAR-10 (RUNNER_DATA, else ../shared/cifar10 beside the project): the run must finish, write
# every file of its directory, and reach 35% test accuracy on the full test set. Skipped (77)
# where the data is absent, unless CI=true.
. "$2/tests/real_data.sh"
run=$tmp/run
RUNNER_DATA=$data "$runner" "$src/experiments/quick.yaml" data.subset=20000 data.val_split=2000 \
    train.epochs=3 eval.samples=4 --out "$run" || { echo "FAIL: the run exited $?"; exit 1; }

fails=0
for f in config.yaml metrics.jsonl metrics.csv summary.json confusion_matrix.csv per_class.csv \
         samples/index.csv model.safetensors run.log; do
    [ -s "$run/$f" ] || { echo "FAIL: $f missing or empty"; fails=$((fails + 1)); }
done
[ "$(wc -l <"$run/metrics.jsonl")" -eq 3 ] || { echo "FAIL: metrics.jsonl should hold 3 epochs"; fails=$((fails + 1)); }
[ "$(ls "$run"/samples/*.png | wc -l)" -eq 8 ] || { echo "FAIL: expected 4 + 4 sample images"; fails=$((fails + 1)); }
acc=$(sed -n 's/^ *"test_acc": \([0-9.e+-]*\),*$/\1/p' "$run/summary.json")
echo "test accuracy: $acc"
awk -v a="$acc" 'BEGIN { exit !(a >= 0.35) }' || { echo "FAIL: test accuracy $acc < 0.35"; fails=$((fails + 1)); }
[ "$fails" -eq 0 ] || exit 1
echo "quick.yaml on real data: ok"
