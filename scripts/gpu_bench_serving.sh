#!/usr/bin/env bash
# One call on the GPU machine: the encoder benchmark (fanin vs PyTorch) and
# the queue benchmark (fanin Engine vs PyTorch threads calling the model).
# Carry .devcache (gpu.tgz, minilm.tgz) as for scripts/gpu_run.sh.
set -uo pipefail
source "$(dirname "$0")/gpu_common.sh"
S=${SECS:-2}
B=build/gpu/fanin
tmp=$(mktemp -d)
echo "=== minilm ==="
$B bench --model minilm --backend cuda --dtype f16 --model-dir models/all-MiniLM-L6-v2 \
  --seconds "$S" --warmup-seconds 0.5 > "$tmp/minilm_fanin.json"
python3 bench/peers/torch_minilm.py --dtype f16 --seconds "$S" \
  --model-dir models/all-MiniLM-L6-v2 > "$tmp/minilm_torch.json"
python3 bench/merge_simple.py minilm "$tmp/minilm_fanin.json" "$tmp/minilm_torch.json" \
  "$OUT/$day-minilm-batch.json" "$OUT/$day-minilm-batch.png"
echo "=== queue ==="
python3 bench/peers/torch_mlp.py --threads 1,8,64 --variants eager --probe-capture 0 \
  --seconds "$S" > "$tmp/queue_torch.json"
for w in 1 16; do
  $B bench --mode queue --backend cuda --producers 1,8,64 --window $w --workers 2 \
    --max-batch 256 --max-delay-us 50 --graphs --seconds "$S" > "$tmp/queue_w$w.json"
  python3 bench/merge_simple.py queue "$tmp/queue_w$w.json" "$tmp/queue_torch.json" \
    "$OUT/$day-mlp-queue-window$w.json" "$OUT/$day-mlp-queue-window$w.png"
done
echo "=== queue alone (no-op model) ==="
if [ -x build/gpu/bench/fanin_queue_bench ]; then
  build/gpu/bench/fanin_queue_bench --benchmark_min_time=0.5 2>&1 | tail -20
fi
