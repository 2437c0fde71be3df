#!/bin/sh
# test_export.sh RUNNER EXPORT_LOGITS SOURCE_DIR: runner export against onnx's checker and
# onnxruntime. For ResNet-8, ResNet-18, ResNet-50 and tests/export/pools.yaml (ceil_mode
# pooling, dropout, identity) with fresh random weights: exports with a symbolic and a fixed
# batch, with and without --normalize, and runs tests/export/check_onnx.py on each; ResNet-8,
# ResNet-50 (no BatchNormalization left) and tests/export/fold.yaml with --fold-bn; CIFAR-100's
# class names in the metadata; then the command's errors (an opset out of range, no weights),
# the default --out, a run directory.
#
# Needs the test venv with onnx and onnxruntime (tests/venv.sh, RUNNER_TEST_VENV): exit 77
# (skipped) without it, unless CI=true: then the test creates it.
set -u
runner=$1
logits=$2
src=$3
. "$src/tests/venv.sh"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "test_export: $*"; exit 1; }

for net in pools resnet8 resnet18 resnet50; do
    exp=$src/tests/export/$net.yaml
    w=$dir/$net.safetensors
    "$logits" init "$exp" "$w" 7 || fail "$net: export_logits init failed"
    for mode in "0 0" "4 0" "0 1" "2 1"; do
        set -- $mode
        opts=""
        [ "$1" != 0 ] && opts="--batch $1"
        [ "$2" = 1 ] && opts="$opts --normalize"
        out=$dir/$net-$1-$2.onnx
        "$runner" export "$exp" "model.pretrained=$w" --out "$out" $opts >/dev/null ||
            fail "$net: runner export $opts failed"
        "$py" "$src/tests/export/check_onnx.py" "$out" "$logits" "$exp" "$w" "$1" "$2" ||
            fail "$net: check_onnx.py $opts failed"
    done
done

# --fold-bn: every batchnorm folded into the conv before it, the same logits; in
# tests/export/fold.yaml a conv with a bias and a grouped one fold, two batchnorms stay.
"$logits" init "$src/tests/export/fold.yaml" "$dir/fold.safetensors" 7 ||
    fail "fold: export_logits init failed"
for net in resnet8 resnet50 fold; do
    exp=$src/tests/export/$net.yaml
    left=0
    [ $net = fold ] && left=2
    for mode in "0 0" "2 1"; do
        set -- $mode
        opts="--fold-bn"
        [ "$1" != 0 ] && opts="$opts --batch $1"
        [ "$2" = 1 ] && opts="$opts --normalize"
        out=$dir/$net-fold-$1-$2.onnx
        "$runner" export "$exp" "model.pretrained=$dir/$net.safetensors" --out "$out" $opts \
            >/dev/null || fail "$net: runner export $opts failed"
        "$py" "$src/tests/export/check_onnx.py" "$out" "$logits" "$exp" "$dir/$net.safetensors" \
            "$1" "$2" --folded $left || fail "$net: check_onnx.py $opts failed"
    done
done

# CIFAR-100's class names in metadata_props, from the names files of a data root that holds
# nothing else (export reads no image); fine (100) and coarse (20) labels. Without the files
# the export still succeeds, with a warning and empty classes.
mkdir -p "$dir/c100/cifar-100-binary" || fail "cannot make a CIFAR-100 folder"
i=0; while [ $i -lt 100 ]; do echo "fine_$i"; i=$((i + 1)); done \
    >"$dir/c100/cifar-100-binary/fine_label_names.txt"
i=0; while [ $i -lt 20 ]; do echo "coarse_$i"; i=$((i + 1)); done \
    >"$dir/c100/cifar-100-binary/coarse_label_names.txt"
for labels in fine coarse; do
    printf 'extends: %s\nname: export_c100\ndata: {dataset: cifar100, labels: %s, root: c100}\n' \
        "$src/tests/export/resnet8.yaml" $labels >"$dir/c100-$labels.yaml"
    "$logits" init "$dir/c100-$labels.yaml" "$dir/c100-$labels.safetensors" 7 ||
        fail "cifar100 $labels: export_logits init failed"
    RUNNER_DATA= "$runner" export "$dir/c100-$labels.yaml" \
        "model.pretrained=$dir/c100-$labels.safetensors" --out "$dir/c100-$labels.onnx" \
        >/dev/null || fail "cifar100 $labels: runner export failed"
    "$py" -c "
import onnx, sys
meta = {p.key: p.value for p in onnx.load(sys.argv[1]).metadata_props}
n = 100 if sys.argv[2] == 'fine' else 20
want = ','.join(f'{sys.argv[2]}_{i}' for i in range(n))
assert meta['classes'] == want, meta['classes']
" "$dir/c100-$labels.onnx" $labels || fail "cifar100 $labels: metadata classes"
done
RUNNER_DATA= "$runner" export "$dir/c100-fine.yaml" "model.pretrained=$dir/c100-fine.safetensors" \
    data.root=nowhere --out "$dir/c100-none.onnx" >/dev/null 2>"$dir/err" ||
    fail "cifar100 without its data: export failed: $(cat "$dir/err")"
grep -q "warning: no CIFAR-100 class names in .*nowhere/cifar-100-binary/fine_label_names.txt" \
    "$dir/err" || fail "cifar100 without its data: no warning: $(cat "$dir/err")"
"$py" -c "
import onnx, sys
meta = {p.key: p.value for p in onnx.load(sys.argv[1]).metadata_props}
assert meta['classes'] == '', meta['classes']
" "$dir/c100-none.onnx" || fail "cifar100 without its data: classes not empty"

# Other opsets (13 is the lowest accepted, 19 and 21 need IR versions 9 and 10).
for o in 13 19 21; do
    "$runner" export "$src/tests/export/pools.yaml" "model.pretrained=$dir/pools.safetensors" \
        --out "$dir/o$o.onnx" --opset $o --normalize >/dev/null || fail "--opset $o failed"
    "$py" -c "import onnx, sys; assert onnx.load(sys.argv[1]).opset_import[0].version == $o" \
        "$dir/o$o.onnx" || fail "--opset $o: not in the model"
    "$py" "$src/tests/export/check_onnx.py" "$dir/o$o.onnx" "$logits" \
        "$src/tests/export/pools.yaml" "$dir/pools.safetensors" 0 1 || fail "--opset $o"
done

# Errors: an opset out of range, no weights, weights of another network, --normalize without
# a normalize transform; then the default --out.
exp=$src/tests/export/resnet8.yaml
w=$dir/resnet8.safetensors
"$runner" export "$exp" "model.pretrained=$w" --opset 12 2>"$dir/err" && fail "--opset 12 accepted"
grep -q "opset must be an integer from 13 to 21" "$dir/err" || fail "--opset 12: $(cat "$dir/err")"
"$runner" export "$exp" 2>"$dir/err"; [ $? = 2 ] || fail "no weights: not exit 2"
grep -q "runner export needs weights" "$dir/err" || fail "no weights: $(cat "$dir/err")"
"$runner" export "$exp" "model.pretrained=$dir/pools.safetensors" --out "$dir/x.onnx" 2>"$dir/err"
[ $? = 2 ] || fail "weights of another network: not exit 2"
grep -q "conv1.weight" "$dir/err" || fail "weights of another network: $(cat "$dir/err")"
"$runner" export "$exp" "model.pretrained=$w" "augment.eval=[]" --normalize --out "$dir/x.onnx" \
    2>"$dir/err" && fail "--normalize without normalize accepted"
grep -q "needs a normalize transform in augment.eval" "$dir/err" || fail "--normalize: $(cat "$dir/err")"
(cd "$dir" && "$runner" export "$exp" "model.pretrained=$w" >/dev/null) &&
    [ -s "$dir/export_resnet8.onnx" ] || fail "default --out NAME.onnx"
# A run directory: its config.yaml and model.safetensors, model.onnx beside them.
mkdir "$dir/run" && "$runner" config "$exp" >"$dir/run/config.yaml" && cp "$w" "$dir/run/model.safetensors" ||
    fail "cannot make a run directory"
"$runner" export "$dir/run" --normalize >/dev/null || fail "runner export RUN_DIR failed"
"$py" "$src/tests/export/check_onnx.py" "$dir/run/model.onnx" "$logits" "$exp" "$w" 0 1 ||
    fail "RUN_DIR: check_onnx.py failed"
echo "test_export: ok"
