#!/usr/bin/env bash
# One call on a machine with several GPUs (issue 7): the MLP and encoder
# queue benches on the first GPU alone and then on all of them (fanin bench
# --devices), the PyTorch peers of the same run, merged into
# $OUT/<date>-multigpu.json. Refuses (exit 3) with fewer than two devices
# unless DEVICES names them (DEVICES=cpu,cpu:1 SKIP_PEER=1 dry-runs it on a
# CPU machine). Carry .devcache (gpu.tgz, minilm.tgz) as for gpu_run.sh.
set -uo pipefail
source "$(dirname "$0")/gpu_common.sh"
S=${SECS:-3}
B=build/gpu/fanin
DEVICES=${DEVICES:-all}
tmp=$(mktemp -d)
if [ "$DEVICES" = all ]; then
  n=$(nvidia-smi --list-gpus 2>/dev/null | wc -l)
  echo "GPUs: $n"
  if [ "$n" -lt 2 ]; then echo "fewer than two GPUs: nothing to scale"; exit 3; fi
  nvidia-smi topo -m || true
fi
DTYPE=${DTYPE:-f16}
echo "=== mlp queue: first device, then $DEVICES ==="
# Closed loop (window 1) does not scale with devices when a batch costs the
# same at any size (GPU MLP): throughput = producers / latency. Window 16
# keeps each GPU at full batches, which is what a second GPU can add to.
$B bench --mode queue --model mlp --devices "$DEVICES" --producers 64,256 --window 16 \
  --workers 2 --max-batch 256 --max-delay-us 50 --graphs --seconds "$S" > "$tmp/mlp.json"
echo "=== encoder queue: first device, then $DEVICES ==="
$B bench --mode queue --model minilm --devices "$DEVICES" --dtype "$DTYPE" \
  --model-dir models/all-MiniLM-L6-v2 --producers 256,1024 --workers 2 --max-batch 128 \
  --max-delay-us 200 --max-tokens 8192 --seconds "$S" > "$tmp/text.json"
peers=()
if [ "${SKIP_PEER:-0}" != 1 ]; then
  echo "=== PyTorch peers (threads calling the model on the first GPU) ==="
  python3 bench/peers/torch_mlp.py --threads 64 --variants eager --probe-capture 0 \
    --seconds "$S" > "$tmp/mlp_torch.json" && peers+=("$tmp/mlp_torch.json")
  python3 bench/peers/torch_minilm_threads.py --threads 256 --dtype "$DTYPE" --seconds "$S" \
    --model-dir models/all-MiniLM-L6-v2 > "$tmp/text_torch.json" && peers+=("$tmp/text_torch.json")
fi
python3 bench/merge_multigpu.py "$tmp/mlp.json" "$tmp/text.json" "$OUT/$day-multigpu.json" "${peers[@]}"
