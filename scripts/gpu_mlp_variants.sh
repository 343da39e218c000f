#!/usr/bin/env bash
# One call on the GPU machine: what bounds the MLP direct mode. fanin bench
# with graphs under each wait mode (block, yield, spin) and with cuBLASLt
# planning for fewer SMs (FANIN_CUDA_SM_TARGET), plus the PyTorch graphs peer,
# all in one run; merged into $OUT/<day>-mlp-direct-variants.json.
set -uo pipefail
source "$(dirname "$0")/gpu_common.sh"
B=build/gpu/fanin
T=${THREADS:-1,8,16}
S=${SECS:-2}
tmp=$(mktemp -d)
for sync in block yield spin; do
  $B bench --model mlp --backend cuda --graphs --sync $sync --threads $T --seconds $S \
    --warmup-seconds 0.5 > "$tmp/sync_$sync.json"
done
for sm in 16 33 66; do
  FANIN_CUDA_SM_TARGET=$sm $B bench --model mlp --backend cuda --graphs --threads $T \
    --seconds $S --warmup-seconds 0.5 > "$tmp/sm_$sm.json"
done
python3 bench/peers/torch_mlp.py --threads $T --seconds $S --variants graphs --probe-capture 0 \
  > "$tmp/torch.json"
python3 - "$tmp" "$OUT/$day-mlp-direct-variants.json" <<'PY'
import json, os, sys
tmp, out = sys.argv[1:3]
runs = {}
for f in sorted(os.listdir(tmp)):
    if f.endswith(".json") and f != "torch.json":
        runs[f[:-5]] = json.load(open(os.path.join(tmp, f)))
peer = json.load(open(os.path.join(tmp, "torch.json")))
first = next(iter(runs.values()))
table = []
for name, r in runs.items():
    for row in r["results"]:
        table.append({"variant": name, "threads": row["threads"], "rps": row["rps"],
                      "p50_us": row["p50_us"], "p99_us": row["p99_us"]})
for row in peer["results"]["graphs"]:
    table.append({"variant": "torch_graphs", "threads": row["threads"], "rps": row["rps"],
                  "p50_us": row["p50_us"], "p99_us": row["p99_us"]})
json.dump({"what": "MLP direct mode with graphs: wait modes and cuBLASLt SM targets, one run",
           "device": first["device"], "commit": first["commit"], "date": first["date"],
           "table": table, "fanin": runs, "peer": peer}, open(out, "w"), indent=2)
for t in table:
    print(f"{t['variant']:>14} {t['threads']:>3} {t['rps']:>10.0f} req/s  p50 {t['p50_us']:7.1f} us  p99 {t['p99_us']:7.1f} us")
PY
