#!/usr/bin/env bash
# One call on the GPU machine (after scripts/cpu_devcache.sh; carry
# .devcache/cpu): what bounds the CPU encoder on 2 cores there.
#   - the CPU topology (are cpus 0 and 1 one core's two hyperthreads?);
#   - fanin bench --mode cpu-profile on one core at batches of 32-256
#     sentences (GEMM rate against the rows of the GEMM);
#   - fanin bench --mode cpu-encoder, 2 workers, max batch 32/64/128, on
#     cpus 0-1 and on two cpus of different cores;
#   - sentence-transformers (batch 32 and 128) pinned alike, same run.
# What comes back: sweep.log and raw/*.json.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT/raw"
exec > >(tee -a "$OUT/sweep.log") 2>&1
PY=${PYTHON:-python3}
source scripts/cpu_devcache_unpack.sh
F=build/cpu/fanin
M=models/all-MiniLM-L6-v2
echo "== topology"
lscpu | grep -E 'Model name|Thread|Core|Socket|NUMA|L1d|L2|L3|^CPU\(s\)'
lscpu -e=CPU,CORE,SOCKET,NODE | head -20
echo "ISA flags: $(grep -m1 -o -E '\b(avx2|fma|avx512[a-z_0-9]*|amx[a-z_0-9]*|avx_vnni)\b' /proc/cpuinfo | sort -u | tr '\n' ' ')"
grep -m1 -E 'model name|^flags' /proc/cpuinfo | cut -c1-120
"$PY" -c "import torch;print('torch', torch.__version__, 'mkldnn', torch.backends.mkldnn.is_available(), 'mkl', torch.backends.mkl.is_available(), torch.backends.cpu.get_cpu_capability())" 2>&1 | tail -1
for c in 0 1 2 3; do echo "cpu$c siblings: $(cat /sys/devices/system/cpu/cpu$c/topology/thread_siblings_list 2>/dev/null)"; done
# Two cpus of two different cores: cpu 0 and the first cpu whose core differs.
other=$(lscpu -p=CPU,CORE | grep -v '^#' | awk -F, 'NR==1{c=$2} $2!=c{print $1; exit}')
PAIR="0,${other:-1}"
echo "pair of distinct cores: $PAIR"
echo "== cpu-profile, one core"
for b in 32 64 128 256; do
  taskset -c 0 "$F" bench --model minilm --mode cpu-profile --model-dir "$M" --seconds 2 \
    --cpu-batch $b --out "$OUT/raw/profile_b$b.json" > /dev/null
  "$PY" -c "import json;d=json.load(open('$OUT/raw/profile_b$b.json'));L=d['layouts'][0];print('batch $b', 'sent/cpu-s', round(L['sentences_per_kernel_cpu_s'],1), 'gemm GF/s', round(L['ops']['gemm']['gflop_per_cpu_s'],1), 'rows', L['gemm_rows'], 'peak', round(d['sgemm_peak']['gflop_per_s'],1))"
done
echo "== cpu-encoder, 2 workers"
for cores in 0-1 "$PAIR"; do
  for mb in 32 64 128; do
    taskset -c "$cores" "$F" bench --model minilm --mode cpu-encoder --model-dir "$M" --threads 2 \
      --cpu-sentences 2000 --max-batch $mb --out "$OUT/raw/enc_${cores/,/_}_mb$mb.json" > /dev/null
    "$PY" -c "import json;d=json.load(open('$OUT/raw/enc_${cores/,/_}_mb$mb.json'));r=d['results'][0];print('cores $cores max-batch $mb', round(r['sentences_per_s'],1), 'gemm GF/cpu-s', round(r['ops']['gemm']['gflop_per_cpu_s'],1))"
  done
done
echo "== sentence-transformers"
export PYTHONUNBUFFERED=1
for cores in 0-1 "$PAIR"; do
  for b in 32 128; do
    taskset -c "$cores" "$PY" bench/peers/cpu_minilm.py --model-dir "$M" --sentences bench/data/queue_sentences.txt \
      --count 2000 --threads 2 --batch $b > "$OUT/raw/st_${cores/,/_}_b$b.json"
    "$PY" -c "import json;d=json.load(open('$OUT/raw/st_${cores/,/_}_b$b.json'));print('ST cores $cores batch $b', round(d['sentence_transformers']['sentences_per_s'],1))"
  done
done
