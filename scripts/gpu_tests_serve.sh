#!/usr/bin/env bash
# GPU tests of the Engine API for front ends (issue 11 item 1), as a second
# call after scripts/gpu_serve.sh on the same machine: the unit, conformance
# and stress suites and the sticky-fault test of the `gpu` preset build.
#   carry: [".devcache/serve"] (gpu.tgz and minilm.tgz from
#   bench/http_load/pack_devcache.sh; tests.tgz: build/gpu/tests/fanin_*_tests
#   and build/gpu/gpu_fault/engine_sticky_fault, tarred from build/)
set -uo pipefail
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/tests_log.txt") 2>&1
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
if [ "$PWD" != /work/main ]; then mkdir -p /work && ln -sfn "$PWD" /work/main; fi
d=.devcache/serve
mkdir -p build models
tar xzf $d/gpu.tgz -C build && tar xzf $d/tests.tgz -C build
if [ ! -d models/all-MiniLM-L6-v2 ]; then
  tar xzf $d/minilm.tgz -C models && mv models/minilm models/all-MiniLM-L6-v2
fi
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
echo "== unit =="; build/gpu/tests/fanin_unit_tests --gtest_brief=1 2>&1 | tail -25
echo "== conformance =="; build/gpu/tests/fanin_conformance_tests --gtest_brief=1 2>&1 | tail -6
echo "== stress =="; build/gpu/tests/fanin_stress_tests --gtest_brief=1 2>&1 | tail -6
echo "== sticky fault =="; build/gpu/gpu_fault/engine_sticky_fault 2>&1 | tail -6
