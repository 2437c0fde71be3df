#!/bin/sh
# test_folder_real.sh RUNNER SOURCE_DIR: the folder path on known data. 5,000 training images
# of the real CIFAR-10 (the ones data.subset=5000 picks) and its whole test set are written out
# by `runner folder` as a PNG and as a JPEG folder dataset; quick.yaml's recipe trains 4 epochs
# on the binary dataset (data.subset=5000) and on each folder. Each folder run must reach the
# binary run's test accuracy within 0.06 (the runs differ in batch order and, for JPEG, in its
# loss), and the PNG run's compute must wait for the loader less than 5% of the step time. Skipped (77) where the data is absent, unless CI=true.
. "$2/tests/real_data.sh"
export RUNNER_DATA=$data
norm='{normalize: {mean: [0.4914, 0.4822, 0.4465], std: [0.2470, 0.2435, 0.2616]}}'
"$runner" folder "$tmp/png" --subset 5000 || { echo "FAIL: runner folder (PNG)"; exit 1; }
"$runner" folder "$tmp/jpg" --subset 5000 --jpeg 90 || { echo "FAIL: runner folder (JPEG)"; exit 1; }
common="data.val_split=0 train.epochs=4 eval.samples=2"
"$runner" "$src/experiments/quick.yaml" $common data.subset=5000 --out "$tmp/bin" >"$tmp/bin.log" 2>&1 ||
    { cat "$tmp/bin.log"; echo "FAIL: the binary run"; exit 1; }
for kind in png jpg; do
    extra=""
    [ $kind = png ] && extra=--profile
    "$runner" "$src/experiments/quick.yaml" $common data.dataset=folder data.root="$tmp/$kind" \
        "augment.train=[{center_crop: 32}, {random_crop: {size: 32, padding: 4, fill: reflect}}, {hflip: 0.5}, $norm]" \
        "augment.eval=[{center_crop: 32}, $norm]" --out "$tmp/$kind-run" $extra >"$tmp/$kind.log" 2>&1 ||
        { cat "$tmp/$kind.log"; echo "FAIL: the $kind folder run"; exit 1; }
done
acc() { sed -n 's/^ *"test_acc": \([0-9.e+-]*\),*$/\1/p' "$1/summary.json"; }
a=$(acc "$tmp/bin"); p=$(acc "$tmp/png-run"); j=$(acc "$tmp/jpg-run")
echo "test accuracy after 4 epochs on 5000 images: binary $a, PNG folder $p, JPEG folder $j"
fails=0
for v in $p $j; do
    awk -v a="$a" -v v="$v" 'BEGIN { d = v - a; if (d < 0) d = -d; exit !(d <= 0.06) }' ||
        { echo "FAIL: folder accuracy $v is not within 0.06 of $a"; fails=$((fails + 1)); }
done
grep -q '"tested_on": "test/"' "$tmp/png-run/summary.json" || { echo "FAIL: tested_on"; fails=$((fails + 1)); }
wait=$(sed -n 's/.*waiting for training batches.*(\([0-9.]*\)% of the steps.*/\1/p' "$tmp/png-run/run.log")
echo "PNG folder: the compute waited ${wait:-?}% of the step time for batches"
awk -v w="${wait:-100}" 'BEGIN { exit !(w < 5) }' || { echo "FAIL: waiting ${wait:-?}% >= 5%"; fails=$((fails + 1)); }
[ "$fails" -eq 0 ] || exit 1
echo "folder datasets on real data: ok"
