#!/usr/bin/env bash
# One call on the GPU machine for the multi-device Engine (issue 7): the
# unit suite (EngineDevices* included: logical cpu devices next to cuda:0),
# the real sticky-fault test, the engine stress test, and the MLP queue
# bench over cuda:0 and cpu:1 (routing between unequal devices; the
# scaling section). Everything lands under $OUT.
#   carry: .devcache (gpu.tgz: the `gpu` preset build; minilm.tgz optional)
set -uo pipefail
step() { echo; echo "=== $* ==="; }
source "$(dirname "$0")/gpu_common.sh"
step device
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
ldd build/gpu/fanin | grep -E "not found|fanin|cublas|cudart" || true
step unit
build/gpu/tests/fanin_unit_tests --gtest_brief=1 2>&1 | grep -vE "^\[       OK|^\[ RUN" | tail -40
step sticky fault
build/gpu/gpu_fault/engine_sticky_fault; echo "rc=$?"
step engine stress
build/gpu/tests/fanin_stress_tests --gtest_filter='EngineStress.*' 2>&1 | tail -25
step bench queue cuda:0,cpu:1
build/gpu/fanin bench --mode queue --model mlp --devices cuda:0,cpu:1 --graphs --producers 1,64 \
  --max-batch 64 --max-delay-us 100 --seconds "${SECS:-2}" --out "$OUT/$day-queue-cuda0-cpu1.json" >/dev/null
echo "rc=$?"
