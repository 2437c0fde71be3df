#!/usr/bin/env bash
# cpu_vs_torch.sh: `runner bench` against PyTorch on this machine, the same network (the
# CIFAR ResNet-50 of experiments/resnet50_adam.yaml), batch, optimizer (Adam) and thread count,
# fp32; PyTorch in channels_last. The two alternate for several rounds (so drift in the
# machine's speed hits both); each round reports its median step, and the ratio printed is of
# the medians over rounds.
#
#   tests/bench/cpu_vs_torch.sh [--rounds N] [--batches "32 128"] [--modes "train infer"]
#                               [--steps N] [--threads N] [--runner build/runner]
#                               [--set KEY=VALUE]...
# --set passes an override to the runner's side only (train.conv_algorithm=direct, say).
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=3 batches="32 128" modes="train infer" steps=3 threads=2 runner=build/runner sets=()
py=${RUNNER_PYTHON:-/usr/bin/python3}
while [ $# -gt 0 ]; do
    case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --batches) batches=$2; shift 2 ;;
    --modes) modes=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --runner) runner=$2; shift 2 ;;
    --set) sets+=("$2"); shift 2 ;;
    *) echo "cpu_vs_torch.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
[ -x "$runner" ] || { echo "cpu_vs_torch.sh: no $runner (build first: scripts/setup.sh)" >&2; exit 2; }
"$py" -c "import torch, torchvision" 2>/dev/null ||
    { echo "cpu_vs_torch.sh: $py has no torch (apt-get install python3-torch python3-torchvision)" >&2; exit 2; }

median() { sort -g | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
field() { grep "$1" | tail -n 1 | awk '{print $NF}'; }

log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); threads $threads"
echo "runner:  $("$runner" --version | head -n 1), $("$runner" --version | grep -m1 '^oneDNN')${sets[*]:+ (${sets[*]})}; PyTorch $("$py" -c 'import torch; print(torch.__version__)')"
printf "%-6s %6s %14s %14s %7s %12s %12s\n" mode batch "runner img/s" "torch img/s" ratio "runner MiB" "torch MiB"
for mode in $modes; do
    for b in $batches; do
        rs=() ts=() rm=0 tm=0
        for ((r = 1; r <= rounds; r++)); do
            "$runner" bench experiments/resnet50_adam.yaml train.batch_size=$b eval.batch_size=$b \
                train.threads=$threads "${sets[@]}" --mode "$mode" --steps "$steps" --warmup 1 >"$log"
            rs+=("$(field 'median images/s' <"$log")")
            m=$(grep 'peak memory' "$log" | awk '{print $3}'); [ "$m" -gt "$rm" ] && rm=$m
            "$py" tests/bench/torch_bench.py --batch "$b" --mode "$mode" --steps "$steps" \
                --warmup 1 --threads "$threads" >"$log"
            ts+=("$(field 'median images/s' <"$log")")
            m=$(grep 'peak memory' "$log" | awk '{print $3}'); [ "$m" -gt "$tm" ] && tm=$m
        done
        r=$(printf "%s\n" "${rs[@]}" | median) t=$(printf "%s\n" "${ts[@]}" | median)
        printf "%-6s %6s %14.2f %14.2f %6.2fx %12s %12s\n" "$mode" "$b" "$r" "$t" \
            "$(awk -v r="$r" -v t="$t" 'BEGIN {print r / t}')" "$rm" "$tm"
        echo "       rounds: runner ${rs[*]}; torch ${ts[*]}"
    done
done
