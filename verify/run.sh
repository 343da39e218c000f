#!/usr/bin/env bash
# Checks the Spin models in verify/ exhaustively (safety: assertions and
# invalid end states). Exits non-zero on any error or on a search that did
# not complete (depth or memory bound hit). Needs spin and a C compiler.
#   verify/run.sh            all models
#   verify/run.sh NAME...    only these (batch_queue, batch_queue_cancel, batch_queue_lanes, stream_pool,
#                            future_wait, future_wait_two)
# SPIN and CC override the tools; FANIN_SPIN_MEMLIM the memory bound (MB).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
spin="${SPIN:-spin}"
cc="${CC:-gcc}"
memlim="${FANIN_SPIN_MEMLIM:-3072}"

if ! command -v "$spin" >/dev/null 2>&1; then
  echo "verify/run.sh: spin not found (Debian package 'spin')" >&2
  exit 77
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# name  model  spin-defines
checks=(
  "batch_queue batch_queue.pml"
  "batch_queue_cancel batch_queue.pml -DCONCURRENT_CANCEL"
  "batch_queue_lanes batch_queue.pml -DLANES"
  "stream_pool stream_pool.pml"
  "future_wait future_wait.pml"
  "future_wait_two future_wait.pml -DTWO_WAITERS"
)

wanted=("$@")
failed=0
for entry in "${checks[@]}"; do
  read -r name model defines <<<"$entry"
  if [ ${#wanted[@]} -gt 0 ] && [[ ! " ${wanted[*]} " =~ " ${name} " ]]; then continue; fi
  dir="$work/$name"
  mkdir -p "$dir"
  cp "$here/$model" "$dir/"
  start=$(date +%s)
  (
    cd "$dir"
    # shellcheck disable=SC2086
    "$spin" $defines -a "$model" >spin.log 2>&1 || { cat spin.log; exit 1; }
    "$cc" -O2 -w -DSAFETY -DMEMLIM="$memlim" -o pan pan.c
    ./pan -m1000000 -w26 >pan.log 2>&1 || true
  ) || { echo "FAIL $name: spin or the compiler failed"; failed=1; continue; }
  log="$dir/pan.log"
  states=$(grep -Eo '[0-9.e+]+ states, stored' "$log" | head -1 || true)
  errors=$(grep -Eo 'errors: [0-9]+' "$log" | head -1 || true)
  secs=$(( $(date +%s) - start ))
  if [ "$errors" != "errors: 0" ] || grep -q 'Search not completed' "$log" ||
     grep -q 'max search depth too small' "$log" || grep -q 'reached -DMEMLIM' "$log"; then
    echo "FAIL $name ($model $defines): ${errors:-no result}, ${states:-?} in ${secs}s"
    grep -E 'pan:|assertion|invalid end|Search not|depth too small|MEMLIM' "$log" | head -20 || true
    if [ -f "$dir/$model.trail" ]; then
      echo "--- counterexample (spin -t -p) ---"
      (cd "$dir" && "$spin" $defines -t -p -g "$model" | tail -60) || true
    fi
    failed=1
  else
    echo "ok   $name ($model $defines): $errors, $states in ${secs}s"
  fi
done
exit $failed
