#!/bin/sh
# test_cli.sh RUNNER SOURCE_DIR: the command line's exit codes, help and messages.
set -u
runner=$1
cd "$2" || exit 1
fails=0
out=$(mktemp) err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT

# expect CODE DESCRIPTION -- ARGS...: run runner ARGS, check the exit code.
expect() {
    code=$1 what=$2
    shift 3
    "$runner" "$@" >"$out" 2>"$err"
    rc=$?
    if [ "$rc" -ne "$code" ]; then
        echo "FAIL: $what: runner $*: exit $rc, expected $code"
        sed 's/^/  stdout: /' "$out"
        sed 's/^/  stderr: /' "$err"
        fails=$((fails + 1))
    fi
}
# has FILE TEXT: FILE contains TEXT.
has() {
    if ! grep -qF -- "$2" "$1"; then
        echo "FAIL: expected '$2' in:"
        sed 's/^/  /' "$1"
        fails=$((fails + 1))
    fi
}

expect 0 "help" -- --help
has "$out" "usage: runner FILE [key=value ...]"
expect 0 "command help" -- check --help
has "$out" "usage: runner check FILE [key=value ...]"
expect 0 "train help" -- train --help
expect 2 "no arguments" --
has "$err" "usage:"
expect 2 "unknown option" -- --bogus
has "$err" "unknown option '--bogus'"
expect 2 "check without a file" -- check
has "$err" "no experiment file given"
expect 0 "version" -- --version
has "$out" "libyaml 0."
has "$out" "oneDNN"

expect 0 "check the main job" -- check experiments/resnet50_adam.yaml
has "$out" "experiments/resnet50_adam.yaml: ok (resnet50_adam)"
expect 0 "check with overrides" -- check experiments/resnet50_adam.yaml optimizer.lr=3e-4 train.epochs=5
expect 0 "config with overrides" -- config experiments/resnet50_adam.yaml optimizer.lr=3e-4 train.epochs=5
has "$out" "lr: 0.0003"
has "$out" "epochs: 5"
expect 0 "schema" -- schema
has "$out" '| `lr` | number |'

expect 2 "a bad file" -- check tests/bad_yaml/18_unknown_key_typo.yaml
has "$err" "tests/bad_yaml/18_unknown_key_typo.yaml:7:3: error: unknown key 'weight_decai' in 'optimizer'"
has "$err" "hint: did you mean 'weight_decay'?"
expect 2 "a bad file, train" -- tests/bad_yaml/23_non_numeric.yaml
expect 2 "a missing file" -- check experiments/nope.yaml
has "$err" "runner: error: cannot read 'experiments/nope.yaml': No such file or directory"
expect 2 "a bad override" -- check experiments/resnet50_adam.yaml train.epochs=ten
has "$err" "<command line>:1:14: error: 'train.epochs' must be an integer in [1, 1000000], got \"ten\""

# runner plan: the counts of the four shipped models.
expect 0 "plan help" -- plan --help
has "$out" "usage: runner plan FILE [key=value ...]"
expect 0 "plan resnet50" -- plan experiments/resnet50_adam.yaml
has "$out" "parameters      23,520,842 in 161 tensors"
has "$out" "MACs per image  1,297,829,888 (1.298 G)"
has "$out" "layer1.0.downsample.1  batchnorm"
has "$out" "memory of one training step, as planned (batch 256, fp32, adam, cpu backend):"
has "$out" "(buffers shared by lifetime; every layer's outputs would take 11.1 GiB)"
expect 0 "plan resnet50, ImageNet stem" -- plan experiments/resnet50_adam.yaml model=models/resnet50_imagenet_stem.yaml
has "$out" "parameters      23,528,522 in 161 tensors"
has "$out" "maxpool                maxpool          3x3/2 pad 1       64x8x8"
expect 0 "plan ResNet-50, ImageNet stem, at 224x224" -- plan experiments/resnet50_adam.yaml model=models/resnet50_imagenet_stem.yaml 'augment.train=[{resize: {size: 224}}]' 'augment.eval=[{resize: {size: 224}}]'
has "$out" "MACs per image  4,087,156,736 (4.087 G)"
has "$out" "maxpool                maxpool          3x3/2 pad 1       64x56x56"
expect 0 "plan resnet18" -- plan experiments/resnet50_adam.yaml model=models/resnet18.yaml
has "$out" "parameters      11,173,962 in 62 tensors"
expect 0 "plan resnet101" -- plan experiments/resnet50_adam.yaml model=models/resnet101.yaml train.batch_size=32
has "$out" "parameters      42,512,970 in 314 tensors"
has "$out" "(batch 32, fp32, adam, cpu backend)"
expect 0 "check quick" -- check experiments/quick.yaml
has "$out" "experiments/quick.yaml: ok (quick)"
# model.pretrained: hf://...: check, config and plan never download it (a closed port as
# HF_ENDPOINT, an empty cache that stays empty); config shows the URL as written.
cache=$(mktemp -d)
export HF_ENDPOINT=http://127.0.0.1:9 RUNNER_CACHE_DIR="$cache"
expect 0 "check the pretrained experiment offline" -- check experiments/resnet50_pretrained_adam.yaml
has "$out" "experiments/resnet50_pretrained_adam.yaml: ok (resnet50_pretrained_adam)"
expect 0 "config of the pretrained experiment offline" -- config experiments/resnet50_pretrained_adam.yaml
has "$out" '  pretrained: "hf://timm/resnet50.tv_in1k"'
expect 0 "plan of the pretrained experiment offline" -- plan experiments/resnet50_pretrained_adam.yaml
if [ -n "$(ls -A "$cache")" ]; then
    echo "FAIL: check, config or plan wrote into the cache: $(ls -A "$cache")"
    fails=$((fails + 1))
fi
unset HF_ENDPOINT RUNNER_CACHE_DIR
rm -rf "$cache"
expect 2 "plan of a broken graph" -- plan tests/bad_yaml/78_graph_kernel_too_large.yaml
has "$err" "_g_kernel.yaml:7:9: error: layer 'layer1.3.conv': kernel 3x3 is larger than its padded input 2x2"
expect 2 "plan of a layer the CPU cannot run" -- plan experiments/resnet50_adam.yaml 'model={graph: {graph: [{name: p, op: avgpool, kernel: 3, stride: 2, ceil_mode: true}, global_avg_pool, {name: fc, op: linear, out: 10}]}}'
has "$err" "<command line>:1:"
has "$err" "error: layer 'p': the cpu backend cannot run it: ceil_mode with count_include_pad"
# runner plan for a GPU on any machine: --gpu names the compute capability, and the plan
# takes the precision auto gives there (fp16 below 8.0, bf16 from 8.0).
expect 0 "plan for a T4" -- plan experiments/resnet50_adam.yaml device=cuda --gpu sm_75
has "$out" "planned for compute capability 7.5 (fp16), as --gpu sm_75 asks"
has "$out" "memory of one training step, as planned (batch 256, fp16, adam, cuda backend):"
expect 0 "plan for an RTX 30xx" -- plan experiments/resnet50_adam.yaml device=cuda --gpu 8.6
has "$out" "planned for compute capability 8.6 (bf16), as --gpu 8.6 asks"
has "$out" "(batch 256, bf16, adam, cuda backend)"
expect 0 "plan for sm_120, device auto" -- plan experiments/resnet50_adam.yaml --gpu=sm_120
has "$out" "planned for compute capability 12.0 (bf16), as --gpu sm_120 asks"
expect 0 "plan fp32 for a T4" -- plan experiments/resnet50_adam.yaml precision=fp32 --gpu 7.5
has "$out" "planned for compute capability 7.5 (fp32)"
expect 2 "plan --gpu bogus" -- plan experiments/resnet50_adam.yaml device=cuda --gpu bogus
has "$err" "runner plan: error: --gpu takes a compute capability of 7.5 or newer, as sm_75 or 7.5, got 'bogus'"
expect 2 "plan --gpu below 7.5" -- plan experiments/resnet50_adam.yaml device=cuda --gpu sm_70
has "$err" "got 'sm_70'"
expect 2 "plan --gpu without a value" -- plan experiments/resnet50_adam.yaml --gpu
has "$err" "runner plan: error: --gpu needs a value"
expect 2 "plan bf16 for a T4" -- plan experiments/resnet50_adam.yaml device=cuda precision=bf16 --gpu sm_75
has "$err" "<command line>:2:11: error: precision bf16 needs a GPU of compute capability 8.0 or newer; the GPU planned for (--gpu sm_75) has compute capability 7.5, without bf16 tensor cores"
has "$err" "hint: precision: fp16 (with loss scaling) or auto (fp16 there)"
expect 2 "plan --gpu of a CPU experiment" -- plan experiments/resnet50_adam.yaml device=cpu --gpu sm_90
has "$err" "<command line>:1:8: error: --gpu sm_90 plans for a GPU, but the experiment asks for the CPU"
expect 2 "check of a broken graph" -- check tests/bad_yaml/71_graph_unknown_op.yaml
has "$err" "hint: did you mean 'conv'?"
expect 0 "schema lists ops" -- schema
has "$out" "### Ops"
has "$out" '`conv` — 2-D convolution'

# runner bench: training steps and inference on synthetic input; the median comes last.
expect 0 "bench help" -- bench --help
has "$out" "usage: runner bench FILE [key=value ...] [--mode train|infer] [--steps N] [--warmup N] [--profile]"
expect 0 "bench train" -- bench experiments/quick.yaml train.batch_size=4 --steps 2 --warmup=1 --profile
has "$out" "bench quick: training steps, batch 4, input 3x32x32, cpu"
has "$out" "step 2/2: "
has "$out" "profile: ms per step, by op kind"
has "$out" "layer1.0.conv1                       conv"
tail -n 1 "$out" | grep -q "^median images/s: [0-9.]*$" || { echo "FAIL: bench: no median last"; fails=$((fails + 1)); }
expect 0 "bench infer" -- bench experiments/quick.yaml eval.batch_size=3 --mode infer --steps 1 --warmup 0
has "$out" "bench quick: inference, batch 3"
has "$out" "gradients 0.0 MiB, optimizer 0.0 MiB"
tail -n 1 "$out" | grep -q "^median images/s: [0-9.]*$" || { echo "FAIL: bench infer: no median last"; fails=$((fails + 1)); }
expect 2 "bench bad mode" -- bench experiments/quick.yaml --mode fast
has "$err" "--mode must be train or infer, got 'fast'"
expect 2 "bench bad steps" -- bench experiments/quick.yaml --steps 0
has "$err" "--steps must be a whole number from 1 to 100000, got '0'"
expect 2 "bench option without value" -- bench experiments/quick.yaml --warmup
has "$err" "--warmup needs a value"
expect 2 "bench flag with a value" -- bench experiments/quick.yaml --profile=yes
has "$err" "--profile takes no value"
expect 2 "option of another command" -- check experiments/quick.yaml --steps 3
has "$err" "unknown option '--steps'"

# runner sweep: help, refused arguments (exit 2), the shipped sweep files, dry runs.
expect 0 "sweep help" -- sweep --help
has "$out" "usage: runner sweep FILE... | BASE --grid KEY=V1,V2,... | BASE --random N --range KEY=LO:HI"
expect 2 "sweep without a file" -- sweep
has "$err" "runner sweep: error: no experiment file given"
expect 2 "sweep: --range without --random" -- sweep experiments/quick.yaml --range optimizer.lr=1e-5:1e-2
has "$err" "--range needs --random N"
expect 2 "sweep: unknown option" -- sweep experiments/quick.yaml --grd optimizer.lr=1
has "$err" "unknown option '--grd'"
expect 2 "sweep: a bad value" -- sweep experiments/quick.yaml --grid train.epochs=2,two --dry-run --out /nonexistent/sweep
has "$err" "/nonexistent/sweep/epochs=two.yaml:4:11: error: 'train.epochs' must be an integer"
for f in experiments/sweeps/*.yaml; do
    expect 0 "check $f" -- check "$f"
done
tmp=$(mktemp -d)
expect 0 "sweep: dry run of the shipped files" -- sweep experiments/sweeps/lr_1e-3.yaml experiments/sweeps/lr_3e-4.yaml experiments/sweeps/lr_1e-4.yaml --dry-run --out "$tmp/lr"
has "$out" "sweep $tmp/lr: 3 points (dry run: nothing was started)"
has "$tmp/lr/sweep.csv" "lr_3e-4,pending,experiments/sweeps/lr_3e-4.yaml,"
expect 0 "sweep: dry run of a grid" -- sweep experiments/resnet50_adam.yaml --grid optimizer.lr=1e-3,3e-4,1e-4 --dry-run --out "$tmp/grid"
has "$tmp/grid/lr=3e-4.yaml" "optimizer:"
has "$tmp/grid/sweep.csv" "lr=1e-4,pending,1e-4,"
rm -rf "$tmp"

# runner FILE (train): data that is not there is a runtime failure (exit 1) that says where
# the runner looked and how to fix it; nothing is left behind.
tmp=$(mktemp -d)
expect 0 "train help" -- train --help
has "$out" "usage: runner train FILE [key=value ...] [--out DIR] [--resume DIR] [--stop-after-epoch N] [--profile]"
export RUNNER_DATA="$tmp/none"
expect 1 "train without data" -- experiments/quick.yaml data.download=false --out "$tmp/run"
unset RUNNER_DATA
has "$err" "CIFAR-10 not found: $tmp/none/cifar-10-batches-bin/ does not exist"
has "$err" "RUNNER_DATA"
[ ! -e "$tmp/run" ] || { echo "FAIL: a run that found no data left $tmp/run"; fails=$((fails + 1)); }
expect 2 "train: --out needs a value" -- experiments/quick.yaml --out
has "$err" "--out needs a value"
expect 2 "train: --out with --resume" -- experiments/quick.yaml --out "$tmp/a" --resume "$tmp/b"
has "$err" "--out and --resume exclude each other"
expect 2 "train: bad --stop-after-epoch" -- experiments/quick.yaml --stop-after-epoch 0
has "$err" "--stop-after-epoch must be a whole number from 1 to 1000000, got '0'"
expect 2 "resume: not a run" -- experiments/quick.yaml --resume "$tmp"
has "$err" "no run to resume"
expect 2 "train: unknown option" -- train experiments/quick.yaml --stesp 3
has "$err" "unknown option '--stesp'"
# runner eval: weights are required; a folder without config.yaml is not a run.
expect 2 "eval without weights" -- eval experiments/quick.yaml
has "$err" "runner eval needs weights: a run directory, or model.pretrained"
has "$err" "hint: runner eval experiments/quick.yaml model.pretrained=W.safetensors"
expect 2 "eval: not a run directory" -- eval "$tmp"
has "$err" "not a run directory"
expect 0 "eval help" -- eval --help
has "$out" "usage: runner eval RUN_DIR | FILE [key=value ...] [--out DIR]"
# runner report: only a finished run (config.yaml and summary.json); a failing hook exits 1.
expect 0 "report help" -- report --help
has "$out" "usage: runner report RUN_DIR"
expect 2 "report without a directory" -- report
has "$err" "runner report: error: no run directory given"
expect 2 "report: missing directory" -- report "$tmp/none"
has "$err" "runner: error: $tmp/none: not a run directory: No such file or directory"
expect 2 "report: no config.yaml" -- report "$tmp"
has "$err" "$tmp is not a finished run: it has no config.yaml"
mkdir "$tmp/unfinished"
printf 'name: t\nhooks: []\n' >"$tmp/unfinished/config.yaml"
expect 2 "report: unfinished run" -- report "$tmp/unfinished"
has "$err" "$tmp/unfinished is not a finished run: it has no summary.json"
expect 2 "report: two directories" -- report "$tmp/unfinished" "$tmp"
has "$err" "runner report: error: unexpected argument '$tmp'"
echo '{"name": "t", "epochs": 1}' >"$tmp/unfinished/summary.json"
expect 0 "report: no hooks" -- report "$tmp/unfinished"
has "$out" "$tmp/unfinished: its config.yaml lists no hooks"
printf 'function on_end(run, result) error("broken " .. run.name) end\n' >"$tmp/broken.lua"
printf 'name: t\nhooks: [{file: %s, args: null}]\n' "$tmp/broken.lua" >"$tmp/unfinished/config.yaml"
expect 1 "report: a failing hook" -- report "$tmp/unfinished"
has "$err" "hook $tmp/broken.lua: on_end: $tmp/broken.lua:1: broken t"
has "$err" "stack traceback:"
printf 'name: t\nhooks: [nope_missing.lua]\n' >"$tmp/unfinished/config.yaml"
expect 2 "report: a hook that is not there" -- report "$tmp/unfinished"
has "$err" "config.yaml:2:9: error: cannot find hook 'nope_missing.lua'"
rm -rf "$tmp"

# runner download [DIR], and scripts/get_cifar10.sh, which runs it: a mirror named by
# RUNNER_CIFAR10_URL (a file:// archive whose batch files are links to one sparse file of the
# right size) downloaded, unpacked and checked; data already there only checked; a run whose
# download (from a FIFO fed a few bytes at a time) gets SIGINT or SIGTERM exits 130 or 143 at
# once, keeps the .part and makes no run directory, and runner download resumes the .part; a
# mirror that is not there is exit 1 and leaves nothing.
tmp=$(mktemp -d)
expect 0 "download help" -- download --help
has "$out" "usage: runner download [DIR]"
expect 2 "download: two folders" -- download "$tmp/a" "$tmp/b"
has "$err" "runner download: error: unexpected argument '$tmp/b'"
expect 2 "download: unknown option" -- download --fast
has "$err" "runner download: error: unknown option '--fast'"
mkdir -p "$tmp/src/cifar-10-batches-bin"
truncate -s 30730000 "$tmp/zeros.bin"
for b in data_batch_1 data_batch_2 data_batch_3 data_batch_4 data_batch_5 test_batch; do
    ln -s "$tmp/zeros.bin" "$tmp/src/cifar-10-batches-bin/$b.bin"
done
tar -czf "$tmp/mirror.tar.gz" -C "$tmp/src" cifar-10-batches-bin
RUNNER_CIFAR10_URL="file://$tmp/mirror.tar.gz"
RUNNER_CIFAR10_MD5=$(md5sum "$tmp/mirror.tar.gz" | cut -d' ' -f1)
export RUNNER_CIFAR10_URL RUNNER_CIFAR10_MD5
expect 0 "download from a mirror" -- download "$tmp/data"
has "$err" "runner: downloading file://$tmp/mirror.tar.gz into $tmp/data"
has "$out" "$tmp/data/cifar-10-batches-bin/: 50000 training and 10000 test images, checked"
[ "$(ls -A "$tmp/data")" = cifar-10-batches-bin ] ||
    { echo "FAIL: download left more than cifar-10-batches-bin/ in $tmp/data"; fails=$((fails + 1)); }
expect 0 "download: already there" -- download "$tmp/data"
has "$err" "runner: $tmp/data/cifar-10-batches-bin/ is already there"
has "$out" "50000 training and 10000 test images, checked"
if RUNNER_BIN=$runner bash scripts/get_cifar10.sh "$tmp/script" >"$out" 2>"$err"; then
    has "$out" "$tmp/script/cifar-10-batches-bin/: 50000 training and 10000 test images, checked"
else
    echo "FAIL: scripts/get_cifar10.sh $tmp/script:"; sed 's/^/  /' "$err"; fails=$((fails + 1))
fi
RUNNER_BIN=$tmp/none bash scripts/get_cifar10.sh "$tmp/script2" >"$out" 2>"$err" &&
    { echo "FAIL: get_cifar10.sh without a runner succeeded"; fails=$((fails + 1)); }
has "$err" "get_cifar10: $tmp/none not found: build the runner first"
# interrupted SIGNAL CODE NAME: `runner experiments/quick.yaml` downloading into $tmp/NAME from
# $tmp/NAME.tar.gz, a FIFO that gets the mirror 8 bytes every 0.2 s, is sent SIGNAL once the
# download has started; it must exit CODE within 10 s, leaving only the .part and saying so.
interrupted() {
    sig=$1 code=$2 name=$3 size=$(wc -c <"$tmp/mirror.tar.gz")
    mkfifo "$tmp/$name.tar.gz"
    (i=0; while [ $((i * 8)) -lt "$size" ]; do
        dd if="$tmp/mirror.tar.gz" bs=8 skip=$i count=1 2>/dev/null || exit
        i=$((i + 1)); sleep 0.2
    done) >"$tmp/$name.tar.gz" &
    writer=$!
    RUNNER_CIFAR10_URL="file://$tmp/$name.tar.gz" RUNNER_DATA="$tmp/$name" \
        "$runner" experiments/quick.yaml --out "$tmp/$name-run" >"$out" 2>"$err" &
    pid=$! i=0
    while ! grep -q "runner: downloading" "$err" && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    sleep 0.5
    kill -"$sig" $pid
    i=0
    while kill -0 $pid 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    if kill -0 $pid 2>/dev/null; then
        echo "FAIL: SIG$sig during the download: still running 10 s later"
        kill -9 $pid
        fails=$((fails + 1))
    fi
    wait $pid
    rc=$?
    kill $writer 2>/dev/null
    wait $writer 2>/dev/null
    if [ "$rc" -ne "$code" ]; then
        echo "FAIL: SIG$sig during the download: exit $rc, expected $code"
        sed 's/^/  stderr: /' "$err"
        fails=$((fails + 1))
    fi
    has "$err" "runner: error: file://$tmp/$name.tar.gz: download interrupted; "
    has "$err" " kept in $tmp/$name/cifar-10-binary.tar.gz.part, the next run resumes it"
    if [ ! -s "$tmp/$name/cifar-10-binary.tar.gz.part" ] ||
        [ "$(ls -A "$tmp/$name")" != cifar-10-binary.tar.gz.part ]; then
        echo "FAIL: SIG$sig during the download: expected a .part alone in $tmp/$name:"
        ls -lA "$tmp/$name" | sed 's/^/  /'
        fails=$((fails + 1))
    fi
    [ ! -e "$tmp/$name-run" ] ||
        { echo "FAIL: SIG$sig during the download left $tmp/$name-run"; fails=$((fails + 1)); }
    rm -f "$tmp/$name.tar.gz"
}
interrupted INT 130 sigint
interrupted TERM 143 sigterm
cp "$tmp/mirror.tar.gz" "$tmp/sigint.tar.gz"
RUNNER_CIFAR10_URL="file://$tmp/sigint.tar.gz"
expect 0 "download: resumed after SIGINT" -- download "$tmp/sigint"
has "$err" "of an earlier try)"
has "$out" "$tmp/sigint/cifar-10-batches-bin/: 50000 training and 10000 test images, checked"
RUNNER_CIFAR10_URL="file://$tmp/absent.tar.gz"
expect 1 "download: a mirror that is not there" -- download "$tmp/none"
has "$err" "runner: error: cannot download file://$tmp/absent.tar.gz: "
[ ! -e "$tmp/none" ] || { echo "FAIL: a failed download left $tmp/none"; fails=$((fails + 1)); }
unset RUNNER_CIFAR10_URL RUNNER_CIFAR10_MD5
rm -rf "$tmp"

# device: cuda where there is no GPU is a configuration error (exit 2).
"$runner" --version >"$out" 2>&1
if grep -qE "GPUs: none|CUDA: not built in" "$out"; then
    expect 2 "cuda without a GPU" -- experiments/resnet50_adam.yaml device=cuda
    has "$err" "error: device cuda:0 was asked for, but"
    # Without a GPU a GPU plan is for compute capability 9.0, bf16 under precision auto.
    expect 0 "plan cuda without a GPU" -- plan experiments/resnet50_adam.yaml device=cuda
    has "$out" "planned for compute capability 9.0 (bf16), the default without a GPU (--gpu sm_XY plans for another)"
    expect 0 "plan fp16 without a GPU" -- plan experiments/resnet50_adam.yaml device=cuda precision=fp16
    has "$out" "planned for compute capability 9.0 (fp16)"
fi

# A 16-bit precision asked of the CPU: exit 2 at the key, before any data is read.
expect 2 "bf16 on the CPU" -- experiments/quick.yaml device=cpu precision=bf16 data.root=/nonexistent
has "$err" "precision=bf16"
has "$err" "error: precision bf16 needs a GPU; the CPU computes in fp32"
expect 2 "fp16 on the CPU, bench" -- bench experiments/quick.yaml device=cpu precision=fp16
has "$err" "precision=fp16"
has "$err" "error: precision fp16 needs a GPU; the CPU computes in fp32"
has "$err" "hint: precision: auto (fp32 on the CPU) or fp32"

if [ "$fails" -ne 0 ]; then
    echo "$fails check(s) failed"
    exit 1
fi
echo "all CLI checks passed"
