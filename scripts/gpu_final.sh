#!/usr/bin/env bash
# One call on the GPU machine: every GPU test of the tree (unit, conformance,
# graphs, race) and the sentence-encoder queue benchmark with its PyTorch
# peer. Carry .devcache (gpu.tgz, minilm.tgz) as for scripts/gpu_run.sh.
set -uo pipefail
source "$(dirname "$0")/gpu_common.sh"
B=build/gpu/fanin
echo "=== race ==="
$B race --backend cuda --threads 16 | tail -1
echo "=== conformance ==="
build/gpu/tests/fanin_conformance_tests 2>&1 | grep -E "PASSED|FAILED|tests ran"
echo "=== unit (all; cuda instances run here) ==="
build/gpu/tests/fanin_unit_tests 2>&1 | grep -E "^\[  (PASSED|FAILED|SKIPPED) |tests ran|\[parity\]|Graph.*cuda.*(OK|FAILED)"
echo "=== stress ==="
FANIN_STRESS_ITERS=300 build/gpu/tests/fanin_stress_tests 2>&1 | grep -E "PASSED|FAILED|tests ran"
echo "=== text queue ==="
tmp=$(mktemp -d)
$B bench --model minilm --mode queue --backend cuda --dtype f16 --producers 1,32,256 \
  --workers 2 --max-batch 256 --max-delay-us 200 --seconds 3 \
  --model-dir models/all-MiniLM-L6-v2 > "$tmp/fanin.json"
python3 bench/peers/torch_minilm_threads.py --model-dir models/all-MiniLM-L6-v2 \
  --threads 1,32,256 --seconds 3 --warmup-seconds 1 > "$tmp/torch.json"
python3 bench/merge_simple.py textqueue "$tmp/fanin.json" "$tmp/torch.json" \
  "$OUT/$day-minilm-queue.json" "$OUT/$day-minilm-queue.png"
