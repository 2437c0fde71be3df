#!/bin/sh
# test_report.sh RUNNER SOURCE_DIR [RUN_DIR]: the run report end to end on part of the real
# CIFAR-10 (RUNNER_DATA, else ../shared/cifar10 beside the project). quick.yaml for a few epochs
# with hooks/report.lua and hooks/early_stop.lua set to give up after one epoch without a large
# improvement: training must stop after epoch 2, cleanly (exit 0, checkpoint saved, the test
# set evaluated, summary.json saying why), with a report.html whose structure matches the
# run's files (test_report.py); and `runner report` must write it again from the files alone.
# With RUN_DIR the run is written there (whatever was there removed first) and kept, for
# test_report_render.sh to draw (CTest's report_render); else in a temporary folder. Skipped
# (77) where the data is absent, unless CI=true.
keep=${3:-}
[ -z "$keep" ] || rm -rf "$keep" # first: a skipped run leaves no old one behind
. "$2/tests/real_data.sh"
run=${keep:-$tmp/run}
fail() { echo "FAIL: $*"; exit 1; }

RUNNER_DATA=$data "$runner" "$src/experiments/quick.yaml" data.subset=2000 data.val_split=500 \
    train.epochs=4 eval.samples=8 \
    'hooks=[report.lua, {file: early_stop.lua, args: {patience: 1, min_delta: 10}}]' \
    --out "$run" >"$tmp/out.txt" 2>&1 || { cat "$tmp/out.txt"; fail "the run exited $?"; }
grep -q "training stops after epoch 2: val_loss did not improve by more than 10" "$tmp/out.txt" ||
    { cat "$tmp/out.txt"; fail "early_stop.lua did not stop training after epoch 2"; }
[ "$(wc -l <"$run/metrics.jsonl")" -eq 2 ] || fail "metrics.jsonl should hold 2 epochs"
grep -q '"stopped": "val_loss did not improve' "$run/summary.json" ||
    fail "summary.json does not say why training stopped"
ls "$run"/checkpoints/*.safetensors >/dev/null 2>&1 || fail "no checkpoint after the early stop"
/usr/bin/python3 "$src/tests/test_report.py" "$run" || fail "report.html written by the run"

rm "$run/report.html"
"$runner" report "$run" >"$tmp/report.txt" 2>&1 || { cat "$tmp/report.txt"; fail "runner report exited $?"; }
/usr/bin/python3 "$src/tests/test_report.py" "$run" || fail "report.html written by runner report"
echo "report: ok"
