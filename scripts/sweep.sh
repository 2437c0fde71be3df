#!/bin/sh
# A sweep from the shell, for those who prefer it to `runner sweep`: runs experiment files one
# after another, each into OUT/runs/NAME (NAME: the file's name without .yaml), its output in
# OUT/logs/NAME.log. A run with a summary.json is skipped, one with a checkpoint resumes, any
# other starts afresh. key=value arguments apply to every run. With -g KEY=V1,V2,... the one
# FILE is a base: a file OUT/LAST=V.yaml extending it is written for each value (LAST: the
# key's last component) and run.
#   scripts/sweep.sh [-r RUNNER] [-o OUT] FILE... [key=value ...]
#   scripts/sweep.sh [-r RUNNER] [-o OUT] -g optimizer.lr=1e-3,3e-4,1e-4 BASE.yaml [key=value ...]
# RUNNER: runner on PATH, else build/runner; OUT: results/sweeps/shell. Exit status: 0 when
# every run finished, 1 when one did not, 2 for bad arguments, 130 after Ctrl-C.
set -u
runner='' out=results/sweeps/shell grid=''
while getopts r:o:g:h opt; do
    case $opt in
    r) runner=$OPTARG ;;
    o) out=$OPTARG ;;
    g) grid=$OPTARG ;;
    h) sed -n '2,12s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "sweep.sh: -h for help" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
if [ -z "$runner" ]; then
    runner=$(command -v runner || echo "$(dirname "$0")/../build/runner")
fi
[ $# -gt 0 ] || { echo "sweep.sh: no experiment file given (-h for help)" >&2; exit 2; }
mkdir -p "$out/runs" "$out/logs" || exit 1
trap 'echo "sweep.sh: stopped; run it again to go on" >&2; exit 130' INT TERM
failed=0

# run_point FILE NAME ARG...: runs FILE with the key=value ARGs (other ARGs are ignored).
run_point() {
    file=$1 name=$2
    shift 2
    dir=$out/runs/$name log=$out/logs/$name.log
    n=$#
    while [ "$n" -gt 0 ]; do # keep the key=value arguments that are not files
        a=$1
        shift
        n=$((n - 1))
        case $a in *=*) [ -f "$a" ] || set -- "$@" "$a" ;; esac
    done
    if [ -f "$dir/summary.json" ]; then
        echo "$name: done already"
        return
    fi
    if ls "$dir"/checkpoints/*.safetensors >/dev/null 2>&1; then
        set -- "$file" "$@" --resume "$dir"
        echo "$name: resuming (log: $log)"
    else
        rm -rf "$dir"
        set -- "$file" "$@" --out "$dir"
        echo "$name: training (log: $log)"
    fi
    "$runner" train "$@" >>"$log" 2>&1
    rc=$?
    [ "$rc" -eq 130 ] || [ "$rc" -eq 143 ] && exit "$rc"
    if [ "$rc" -eq 0 ]; then
        acc=$(sed -n 's/.*"test_acc": *\([^,]*\).*/\1/p' "$dir/summary.json")
        echo "$name: done, test acc $acc"
    else
        echo "$name: failed (exit $rc): $(grep -m 1 'error: ' "$log")"
        failed=1
    fi
}

if [ -n "$grid" ]; then
    key=${grid%%=*} values=${grid#*=}
    base=$1
    [ -f "$base" ] || { echo "sweep.sh: $base: no such file" >&2; exit 2; }
    base=$(cd "$(dirname "$base")" && pwd)/$(basename "$base")
    last=${key##*.}
    old_ifs=$IFS
    IFS=,
    for v in $values; do
        IFS=$old_ifs
        file=$out/$last=$v.yaml
        { # extends, then the key as nested mappings with the value on its last line
            echo "extends: $base"
            indent='' rest=$key
            while :; do
                part=${rest%%.*}
                if [ "$part" = "$rest" ]; then echo "$indent$part: $v"; break; fi
                echo "$indent$part:"
                indent="$indent  " rest=${rest#*.}
            done
        } >"$file"
        run_point "$file" "$last=$v" "$@"
    done
    IFS=$old_ifs
else
    for a in "$@"; do
        case $a in *=*) [ -f "$a" ] || continue ;; esac
        name=$(basename "$a")
        run_point "$a" "${name%.y*ml}" "$@"
    done
fi
exit "$failed"
