#!/usr/bin/env bash
# One call on the GPU machine: the CPU encoder against its CPU peers, on that
# machine's 16 Xeon cores, with no environment variable set for fanin:
#   1. the CPU kernel tests (kernel selection by cpuid features, vector
#      kernels, packed sequences, parity with sentence-transformers);
#   2. fanin bench --mode cpu-profile on one core (per-op time of a batch of
#      32, GEMM rate against a plain sgemm loop, WordPiece tokens/s);
#   3. fanin bench --mode cpu-encoder (text Engine, W workers) pinned to 2
#      cores (W = 1, 2) and to all cores (W = 1, 2, 4, 8, all), by default
#      (bf16 linear layers where the CPU has bf16 instructions: Note [CPU
#      bf16 matmul]) and with FANIN_CPU_MATMUL=f32;
#   4. fanin embed of the 2,000 sentences (model load included), pinned to
#      2 cores and to all;
#   5. the peers, same sentences, same pinning (bench/peers/cpu_minilm.py):
#      sentence-transformers (float32, batch 32) and ONNX Runtime's CPU
#      provider (the model exported there with torch.onnx), 1, 2 and all
#      cores; sentence-transformers again under torch.autocast(bfloat16)
#      (--bf16), the peer of fanin's bf16 linear layers;
# then bench/merge_cpu.py writes $OUT/<date>-cpu.json (+ .png).
# What comes back: log.txt, <date>-cpu.json, <date>-cpu.png, cpu_raw.tgz.
#
# Device call (repository root here, after `bash scripts/cpu_devcache.sh`):
#   run command: bash scripts/gpu_cpu_bench.sh   carry: [".devcache/cpu"]
# Local dry run (this machine's cores, a venv with the peers' packages):
#   DRY=1 OUT=/tmp/cpu_dry PYTHON=/tmp/stvenv/bin/python bash scripts/gpu_cpu_bench.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT/raw"
exec > >(tee -a "$OUT/log.txt") 2>&1
PY=${PYTHON:-python3}
day=$(date -u +%Y-%m-%d)
[ "${DRY:-0}" = 1 ] || source scripts/cpu_devcache_unpack.sh
F=${FANIN:-build/cpu/fanin}
T=${TESTS:-build/cpu/tests/fanin_unit_tests}
M=models/all-MiniLM-L6-v2
N=$(nproc)
ALL="0-$((N - 1))"
SENT=$(mktemp)
for _ in $(seq 40); do cat bench/data/queue_sentences.txt; done > "$SENT"  # 2,000 sentences
echo "== machine: $N cores; OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset} FANIN_OPENBLAS_CORETYPE=${FANIN_OPENBLAS_CORETYPE:-unset}"
lscpu | grep -E 'Model name|Flags|^CPU\(s\)|Vendor' | cut -c1-400
"$F" --version

echo "== 1. tests"
"$T" --gtest_filter='CpuKernelSelection.*:CpuBf16Matmul.*:CpuVecKernels.*:CpuPackedSequences.*:CpuProfile.*:SentenceEncoderParity.Cpu*:SentenceEncoderParity.EmbeddingsDoNotDepend*' \
  2>&1 | grep -E '^\[ *(OK|FAILED|SKIPPED|PASSED) |parity|Failure|Expected|Which is|core' | tee "$OUT/raw/tests.txt"

echo "== 2. cpu-profile, one core"
taskset -c 0 "$F" bench --model minilm --mode cpu-profile --model-dir "$M" --seconds 3 \
  --out "$OUT/raw/profile_1core.json" > /dev/null
FANIN_CPU_MATMUL=f32 taskset -c 0 "$F" bench --model minilm --mode cpu-profile --model-dir "$M" \
  --seconds 2 --out "$OUT/raw/profile_1core_f32.json" > /dev/null
# What OpenBLAS alone would have run (its own choice at load, forced back).
det=$("$PY" -c "import json;print(json.load(open('$OUT/raw/profile_1core.json'))['machine']['openblas_detected_core'])" 2>/dev/null || echo "")
if [ -n "$det" ]; then
  FANIN_OPENBLAS_CORETYPE=$det taskset -c 0 "$F" bench --model minilm --mode cpu-profile \
    --model-dir "$M" --seconds 2 --out "$OUT/raw/profile_1core_detected.json" > /dev/null
fi

echo "== 3. cpu-encoder"
taskset -c 0-1 "$F" bench --model minilm --mode cpu-encoder --model-dir "$M" --threads 1,2 \
  --cpu-sentences 2000 --max-batch 32 --out "$OUT/raw/encoder_2cores.json" > /dev/null
FANIN_CPU_MATMUL=f32 taskset -c 0-1 "$F" bench --model minilm --mode cpu-encoder --model-dir "$M" \
  --threads 1,2 --cpu-sentences 2000 --max-batch 32 --out "$OUT/raw/encoder_2cores_f32.json" > /dev/null
ws=1; for w in 2 4 8; do [ "$w" -lt "$N" ] && ws="$ws,$w"; done
taskset -c "$ALL" "$F" bench --model minilm --mode cpu-encoder --model-dir "$M" \
  --threads "$ws,0" --cpu-sentences 4000 --max-batch 32 --out "$OUT/raw/encoder_all.json" > /dev/null
FANIN_CPU_MATMUL=f32 taskset -c "$ALL" "$F" bench --model minilm --mode cpu-encoder --model-dir "$M" \
  --threads 0 --cpu-sentences 4000 --max-batch 32 --out "$OUT/raw/encoder_all_f32.json" > /dev/null

echo "== 3b. 2 cores, interleaved rounds (this VM's neighbours move single figures by 20%)"
for r in $(seq "${ROUNDS:-3}"); do
  taskset -c 0-1 "$F" bench --model minilm --mode cpu-encoder --model-dir "$M" --threads 2 \
    --cpu-sentences 2000 --max-batch 32 --out "$OUT/raw/round${r}_fanin.json" > /dev/null
  FANIN_CPU_MATMUL=f32 taskset -c 0-1 "$F" bench --model minilm --mode cpu-encoder --model-dir "$M" \
    --threads 2 --cpu-sentences 2000 --max-batch 32 --out "$OUT/raw/round${r}_fanin_f32.json" > /dev/null
  taskset -c 0-1 "$PY" bench/peers/cpu_minilm.py --model-dir "$M" --sentences bench/data/queue_sentences.txt \
    --count 2000 --threads 2 --bf16 > "$OUT/raw/round${r}_st.json"
  "$PY" -c "
import json
f = lambda p: json.load(open('$OUT/raw/round${r}_' + p + '.json'))
a, b, st = f('fanin')['results'][0]['sentences_per_s'], f('fanin_f32')['results'][0]['sentences_per_s'], f('st')
c = st['sentence_transformers']['sentences_per_s']; d = st.get('sentence_transformers_bf16', {}).get('sentences_per_s', float('nan'))
print('round $r: fanin %.0f (f32 linear layers %.0f), sentence-transformers %.0f (bf16 autocast %.0f): %.2fx, %.2fx' % (a, b, c, d, a / c, a / d))"
done

echo "== 4. fanin embed, 2,000 sentences, model load included"
cores_list=(0-1)
[ "$N" -gt 2 ] && cores_list+=("$ALL")
for cores in "${cores_list[@]}"; do
  t0=$(date +%s.%N)
  taskset -c "$cores" "$F" embed --model "$M" --format npy --out "$OUT/raw/embed.npy" < "$SENT"
  rc=$?
  t1=$(date +%s.%N)
  echo "{\"cores\": \"$cores\", \"rc\": $rc, \"seconds\": $(awk "BEGIN {print $t1 - $t0}")}" \
    > "$OUT/raw/embed_${cores/-/_}.json"
  cat "$OUT/raw/embed_${cores/-/_}.json"
done
rm -f "$OUT/raw/embed.npy"

echo "== 5. peers"
export PYTHONUNBUFFERED=1
ONNX=$(mktemp -d)/minilm.onnx
specs=("0 1" "0-1 2")
[ "$N" -gt 2 ] && specs+=("$ALL $N")
for spec in "${specs[@]}"; do
  set -- $spec
  t0=$(date +%s.%N)
  taskset -c "$1" "$PY" bench/peers/cpu_minilm.py --model-dir "$M" --sentences bench/data/queue_sentences.txt \
    --count 2000 --threads "$2" --onnx "$ONNX" --bf16 > "$OUT/raw/peer_$2.json"
  echo "peer $2 threads: rc $? in $(awk "BEGIN {print $(date +%s.%N) - $t0}") s (import, load, export, passes)"
done

echo "== merge"
tar czf "$OUT/cpu_raw.tgz" -C "$OUT" raw
"$PY" bench/merge_cpu.py "$OUT/raw" "$OUT/$day-cpu.json" "$OUT/$day-cpu.png"
rm -rf "$OUT/raw" "$SENT"
