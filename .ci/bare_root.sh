#!/usr/bin/env bash
# .ci/bare_root.sh [SUITE ...]: the README's two commands, exactly as its Quick start writes
# them, on bare Debian roots (default: bookworm, then trixie). For each suite:
#   - mmdebstrap makes a minbase root (plus ca-certificates and git) from the Debian mirror
#     this machine's apt sources name (http://deb.debian.org/debian when none does);
#   - the repository's HEAD is cloned into the root's /root/proj, with the CIFAR-10
#     (RUNNER_DATA, else ../shared/cifar10 beside the repository) bound read-only at
#     /root/shared/cifar10;
#   - in a chroot with a clean environment, in /root/proj, the main job (the Quick start's first
#     command, with RUNNER_DATA=../shared/cifar10) must start training, and a SIGTERM two
#     minutes after training starts must end it with exit 143 and a checkpoint in its run
#     directory; then the test command (the second) must pass.
# Each part is timed; a summary at the end names what failed, in which root. Needs root
# (mmdebstrap, mount, chroot). The roots are made under TMPDIR (default /var/tmp) and removed
# afterwards.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" -ne 0 ]; then
  echo "bare_root: needs root (mmdebstrap, mount, chroot)" >&2
  exit 1
fi
suites=("$@")
((${#suites[@]})) || suites=(bookworm trixie)
train_seconds=120   # training time before the SIGTERM
stop_limit=900      # seconds the runner may take to stop after it
clean_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

commit=$(git -C "$repo" rev-parse HEAD)
data=$(realpath -e "${RUNNER_DATA:-$repo/../shared/cifar10}" 2>/dev/null) ||
  { echo "bare_root: no CIFAR-10 at ${RUNNER_DATA:-$repo/../shared/cifar10}" >&2; exit 1; }
[ -d "$data/cifar-10-batches-bin" ] ||
  { echo "bare_root: no $data/cifar-10-batches-bin" >&2; exit 1; }

# The first URI of a Debian archive (a suite named after a release, not -security or
# -updates) in the machine's apt sources, deb822 (*.sources) or one-line (*.list).
debian_mirror() {
  local rel='^(buster|bullseye|bookworm|trixie|forky|duke|sid|oldoldstable|oldstable|stable|testing|unstable)$'
  local uri
  uri=$(awk -v rel="$rel" '
    function flush() {
      if (!found && deb && on && uris != "") { n = split(suites, s, " ")
        for (i = 1; i <= n; i++) if (s[i] ~ rel) { split(uris, u, " "); print u[1]; found = 1; exit } }
      deb = 0; on = 1; uris = ""; suites = "" }
    BEGIN { on = 1 }
    FNR == 1 { flush() }
    /^[ \t]*$/ { flush(); next }
    /^[ \t]*#/ { next }
    tolower($1) == "types:" { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
    tolower($1) == "enabled:" { on = (tolower($2) != "no") }
    tolower($1) == "uris:" { $1 = ""; uris = $0 }
    tolower($1) == "suites:" { $1 = ""; suites = $0 }
    END { flush() }' /etc/apt/sources.list.d/*.sources 2>/dev/null)
  if [ -z "$uri" ]; then
    uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
      sed -e 's/#.*//' -e 's/\[[^]]*\]//' | awk -v rel="$rel" '$1 == "deb" && $3 ~ rel { print $2; exit }')
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

# The Quick start's first two ```sh blocks of the commit's README.md, one line each.
mapfile -t commands < <(git -C "$repo" show "$commit:README.md" | awk '
  /^## / { quick = ($0 == "## Quick start") }
  !quick { next }
  inside && /^```/ { inside = 0; print block; if (++n == 2) exit; next }
  inside { block = (lines++ ? block "\n" : "") $0; next }
  /^```sh[ \t]*$/ { inside = 1; block = ""; lines = 0 }')
if ((${#commands[@]} != 2)) || [[ ${commands[0]} != *build/runner* || ${commands[1]} != *ctest* ]]; then
  echo "bare_root: README.md's Quick start does not start with the main job's and the test" \
       "command's \`\`\`sh blocks, one line each; found:" >&2
  printf '  %s\n' "${commands[@]}" >&2
  exit 1
fi
main_job=${commands[0]}
test_command=${commands[1]}
mirror=$(debian_mirror)

work=$(realpath "$(mktemp -d "${TMPDIR:-/var/tmp}/bare_root.XXXXXX")")
chmod 755 "$work" # for apt's _apt user, inside the roots being made
mounts=()    # mounted by this script, in order
summary=()   # one line per part: suite, part, result, time

mmss() { printf '%d:%02d' $(($1 / 60)) $(($1 % 60)); }

# The processes whose root directory is $1 (what runs in the chroot).
in_root_pids() {
  local p
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/root" 2>/dev/null)" = "$1" ] && echo "${p#/proc/}"
  done
  return 0
}

unmount_all() {
  local i m
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
    m=${mounts[i]}
    if mountpoint -q "$m"; then
      umount "$m" 2>/dev/null || umount -l "$m" || echo "bare_root: cannot unmount $m" >&2
    fi
  done
  mounts=()
}

# Removes root $1 unless something is still mounted under it.
remove_root() {
  local root=$1 p
  for p in $(in_root_pids "$root"); do kill -KILL "$p" 2>/dev/null || true; done
  unmount_all
  if awk -v r="$root" '$5 == r || index($5, r "/") == 1 { found = 1 } END { exit !found }' \
       /proc/self/mountinfo; then
    echo "bare_root: $root still has mounts; left in place" >&2
    return 1
  fi
  rm -rf --one-file-system "$root"
}

cleanup() {
  local root
  for root in "$work"/*/; do
    [ -d "$root" ] && remove_root "${root%/}"
  done
  rm -f "$work"/*.tests.log
  rmdir "$work" 2>/dev/null
  return 0
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

bind() { # bind SRC DST [ro]
  mkdir -p "$2" && mount --bind "$1" "$2" || return
  mounts+=("$2")
  [ "${3:-}" != ro ] || mount -o remount,bind,ro "$2"
}

# Runs the shell command $2 in root $1's /root/proj, in a clean environment with the
# VAR=VALUE settings that follow.
in_root() {
  local root=$1 cmd=$2
  shift 2
  env -i PATH="$clean_path" HOME=/root TERM=dumb "$@" \
    /usr/sbin/chroot "$root" /bin/sh -c "cd /root/proj && $cmd" </dev/null
}

# Commands in a function that runs as a condition (part's) are not stopped by set -e: each
# step below says || return.
make_root() { # make_root SUITE ROOT
  local suite=$1 root=$2
  mmdebstrap --variant=minbase --include=ca-certificates,git "$suite" "$root" "$mirror" || return
  cp -L /etc/resolv.conf "$root/etc/resolv.conf.new" &&
    mv "$root/etc/resolv.conf.new" "$root/etc/resolv.conf" || return
  git clone -q --no-checkout "$repo" "$root/root/proj" &&
    git -C "$root/root/proj" checkout -q --detach "$commit" || return
  mkdir -p "$root/proc" && mount -t proc proc "$root/proc" || return
  mounts+=("$root/proc")
  bind /sys "$root/sys" ro && bind /dev "$root/dev" && bind /dev/pts "$root/dev/pts" || return
  mkdir -p "$root/dev/shm" && mount -t tmpfs -o mode=1777,nosuid,nodev shm "$root/dev/shm" || return
  mounts+=("$root/dev/shm")
  bind "$data" "$root/root/shared/cifar10" ro
}

# note SUITE PART RESULT SINCE: a line of the summary (and of the log), timed from SINCE.
note() {
  local took
  took=$(mmss $((SECONDS - $4)))
  summary+=("$1|$2|$3|$took")
  echo "=== bare_root: $1: $2: $3 ($took)"
}

# The main job: training must start; SIGTERM two minutes into it must end the run with exit
# 143, "stopped by SIGTERM" in its run.log and a checkpoint in its run directory.
run_main_job() { # run_main_job SUITE ROOT
  local suite=$1 root=$2 pid start log dir runner p rc=0
  local results=$root/root/proj/results
  echo "=== bare_root: $suite: main job"
  start=$SECONDS
  in_root "$root" "$main_job" RUNNER_DATA=../shared/cifar10 &
  pid=$!
  while ! compgen -G "$results/*/*/run.log" >/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid" || rc=$?
      note "$suite" "main job: setup until training starts" "FAILED (exit $rc before training)" "$start"
      return 1
    fi
    sleep 2
  done
  log=$(compgen -G "$results/*/*/run.log" | head -1)
  dir=${log%/run.log}
  note "$suite" "main job: setup until training starts" "ok (${dir#"$root"})" "$start"

  start=$SECONDS
  while ((SECONDS - start < train_seconds)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid" || rc=$?
      note "$suite" "main job: training" "FAILED (exit $rc before the SIGTERM)" "$start"
      return 1
    fi
    sleep 2
  done
  runner=
  for p in $(in_root_pids "$root"); do
    [ "$(readlink "/proc/$p/exe" 2>/dev/null)" = "$root/root/proj/build/runner" ] && runner=$p
  done
  if [ -z "$runner" ]; then
    note "$suite" "main job: training" "FAILED (no runner process to stop)" "$start"
    return 1
  fi
  note "$suite" "main job: training" ok "$start"

  start=$SECONDS
  kill -TERM "$runner"
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS - start > stop_limit)); then
      kill -KILL "$runner" 2>/dev/null || true
      wait "$pid" || true
      note "$suite" "main job: SIGTERM" "FAILED (still running after $stop_limit s)" "$start"
      return 1
    fi
    sleep 1
  done
  wait "$pid" || rc=$?
  local why=()
  ((rc == 143)) || why+=("exit $rc, not 143")
  grep -q "stopped by SIGTERM" "$log" || why+=("run.log does not say \"stopped by SIGTERM\"")
  compgen -G "$dir/checkpoints/*.safetensors" >/dev/null || why+=("no checkpoints/*.safetensors")
  if ((${#why[@]})); then
    note "$suite" "main job: SIGTERM" "FAILED ($(IFS=';'; echo "${why[*]}"))" "$start"
    return 1
  fi
  note "$suite" "main job: SIGTERM" "ok (exit 143, $(cd "$dir" && echo checkpoints/*.safetensors))" "$start"
}

# The test command must pass, and skip only tests labelled external (they need a large
# program from elsewhere, which scripts/setup.sh does not install) or gpu.
run_test_command() { # run_test_command SUITE ROOT
  local suite=$1 root=$2 log=$work/$1.tests.log skipped may t bad=()
  in_root "$root" "$test_command" 2>&1 | tee "$log" || return
  skipped=$(sed -n 's/^ *[0-9]*\/[0-9]* *Test *#[0-9]*: \([^ ]*\) .*\*\*\*Skipped.*/\1/p' "$log")
  may=$(in_root "$root" "ctest --test-dir build -N -L '^(external|gpu)\$' -FA '.*'" |
    sed -n 's/^ *Test *#[0-9]*: \([^ ]*\).*/\1/p') || return
  for t in $skipped; do
    grep -qx "$t" <<<"$may" || bad+=("$t")
  done
  echo "bare_root: $suite: tests skipped: ${skipped//$'\n'/ }"
  if ((${#bad[@]})); then
    echo "bare_root: $suite: skipped on a bare root after setup, but not labelled external: ${bad[*]}"
    return 1
  fi
}

# part SUITE NAME COMMAND...: runs and times one part.
part() {
  local suite=$1 name=$2 start=$SECONDS rc=0
  shift 2
  echo "=== bare_root: $suite: $name"
  "$@" || rc=$?
  if ((rc)); then note "$suite" "$name" "FAILED (exit $rc)" "$start"; else note "$suite" "$name" ok "$start"; fi
  return "$rc"
}

echo "bare_root: commit $commit, mirror $mirror, roots in $work"
echo "bare_root: main job:     $main_job"
echo "bare_root: test command: $test_command"
failed=()
for suite in "${suites[@]}"; do
  root=$work/$suite
  suite_start=$SECONDS
  if part "$suite" "root: mmdebstrap, clone, mounts" make_root "$suite" "$root" &&
     run_main_job "$suite" "$root" &&
     part "$suite" "test command" run_test_command "$suite" "$root"; then
    note "$suite" "all" ok "$suite_start"
  else
    failed+=("$suite")
    note "$suite" "all" FAILED "$suite_start"
  fi
  remove_root "$root" || true
done

echo "=== bare_root: summary (commit ${commit:0:12})"
printf '%s\n' "${summary[@]}" | column -t -s '|' -o ' | ' 2>/dev/null || printf '%s\n' "${summary[@]}"
if ((${#failed[@]})); then
  echo "bare_root: FAILED in ${failed[*]}"
  exit 1
fi
echo "bare_root: ok (${suites[*]})"
