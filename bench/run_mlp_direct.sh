#!/usr/bin/env bash
# Runs on the GPU machine, in one call: fanin bench (eager and graphs) and the
# PyTorch peer on the same device, then merges them into one results file
# with a plot. Usage: bench/run_mlp_direct.sh BUILD_DIR OUT_DIR [SECONDS]
set -euo pipefail
build=${1:-build/gpu}
out=${2:-bench/results}
secs=${3:-3}
threads=${THREADS:-1,2,4,8,16}
mkdir -p "$out"
day=$(date -u +%Y-%m-%d)
tmp=$(mktemp -d)
"$build/fanin" bench --model mlp --backend cuda --mode direct --threads "$threads" \
  --seconds "$secs" > "$tmp/fanin_eager.json"
"$build/fanin" bench --model mlp --backend cuda --mode direct --threads "$threads" \
  --seconds "$secs" --graphs > "$tmp/fanin_graphs.json"
PYTHONUNBUFFERED=1 python3 bench/peers/torch_mlp.py --threads "$threads" --seconds "$secs" \
  > "$tmp/torch.json"
python3 bench/merge_mlp.py --fanin-eager "$tmp/fanin_eager.json" \
  --fanin-graphs "$tmp/fanin_graphs.json" --peer "$tmp/torch.json" \
  --out "$out/$day-mlp-direct.json" --plot "$out/$day-mlp-direct.png"
