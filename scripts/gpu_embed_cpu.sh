#!/usr/bin/env bash
# `fanin embed --backend cpu` on the GPU machine's CPU cores: the 2,000
# sentences of bench/data/queue_sentences.txt (40 copies of its 50 lines,
# model load included), --threads 1, 2, 4, 8 and every core, then the
# default under `taskset -c 0,1` (the affinity mask must give 2 workers).
# Wall and CPU time from /usr/bin/time, fanin's own summary line after it.
#   carry: [".devcache"] (gpu.tgz: the `gpu` preset build; minilm.tgz: the model)
set -uo pipefail
source scripts/gpu_common.sh
B=build/gpu/fanin
M=models/all-MiniLM-L6-v2
in=$OUT/sentences2000.txt
for i in $(seq 40); do cat bench/data/queue_sentences.txt; done > "$in"
cores=$(nproc)
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2) | nproc $cores | commit $($B --version)"
run() {  # label, then the command's arguments after `fanin embed`
  local label=$1; shift
  /usr/bin/time -f "$label: wall %e s, user %U s, sys %S s, CPU %P" \
    "$@" --model $M --backend cpu < "$in" > "$OUT/$label.jsonl" 2> "$OUT/$label.err"
  tail -2 "$OUT/$label.err"
}
for rep in 1 2; do
  for t in 1 2 4 8 $cores; do run "threads$t-rep$rep" $B embed --threads $t; done
  run "taskset01-default-rep$rep" taskset -c 0,1 $B embed
  run "default-rep$rep" $B embed
done
# Same vectors whatever the worker count.
cmp "$OUT/threads1-rep1.jsonl" "$OUT/threads${cores}-rep1.jsonl" && echo "threads 1 and $cores: byte-identical rows"
