#!/usr/bin/env bash
# One call on the GPU machine for the multi-device Engine (issue 7): the
# unit suite (EngineDevices* included: logical cpu devices next to cuda:0),
# the real sticky-fault test, the engine stress test, and the queue benches
# over cuda:0 and cpu:1 (routing between unequal devices: adding the slow
# one must not cost throughput). Everything lands under $OUT.
#   carry: .devcache (gpu.tgz: the `gpu` preset build; minilm.tgz optional)
set -uo pipefail
step() { echo; echo "=== $* ==="; }
source "$(dirname "$0")/gpu_common.sh"
step device
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
ldd build/gpu/fanin | grep -E "not found|fanin|cublas|cudart" || true
if [ "${SKIP_TESTS:-0}" != 1 ]; then
  step unit
  build/gpu/tests/fanin_unit_tests --gtest_brief=1 2>&1 | grep -vE "^\[       OK|^\[ RUN" | tail -40
  step sticky fault
  build/gpu/gpu_fault/engine_sticky_fault; echo "rc=$?"
  step conformance
  build/gpu/tests/fanin_conformance_tests 2>&1 | grep -E "PASSED|FAILED|tests ran" | tail -5
  step engine stress
  build/gpu/tests/fanin_stress_tests --gtest_filter='EngineStress.*' 2>&1 | tail -4
fi
if [ "${QUEUE_BENCH:-0}" = 1 ] && [ -x build/gpu/bench/fanin_queue_bench ]; then
  step queue alone: workers x devices
  build/gpu/bench/fanin_queue_bench --benchmark_min_time=0.5 2>&1 | grep -E "^BM_" | \
    sed -E 's@/process_time/real_time@@' | awk '{print $1, $NF, $(NF-2)}'
fi
step bench mlp queue cuda:0,cpu:1
build/gpu/fanin bench --mode queue --model mlp --devices cuda:0,cpu:1 --graphs --producers 1,64 \
  --max-batch 64 --max-delay-us 100 --seconds "${SECS:-2}" --out "$OUT/$day-queue-cuda0-cpu1.json" >/dev/null
echo "rc=$?"
if [ -d models/all-MiniLM-L6-v2 ]; then
  step bench encoder queue cuda:0,cpu:1
  build/gpu/fanin bench --mode queue --model minilm --devices cuda:0,cpu:1 --dtype f16 \
    --model-dir models/all-MiniLM-L6-v2 --producers 1,32 --max-batch 128 --max-delay-us 200 \
    --max-tokens 8192 --seconds "${SECS:-2}" --out "$OUT/$day-textqueue-cuda0-cpu1.json" >/dev/null
  echo "rc=$?"
fi
