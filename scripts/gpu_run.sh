#!/usr/bin/env bash
# One call on the GPU machine (through the device tool): unpack the carried
# build and model, check that the binaries load, run the GPU tests, the race
# reproductions and the MLP benchmark with its PyTorch peer. Everything it
# reports goes under $OUT (log.txt, results files).
#   carry: .devcache (gpu.tgz: the `gpu` preset build; minilm.tgz: a model
#   folder pruned by scripts/prune_model.py for tests/data/embedding_sentences.txt)
set -uo pipefail
step() { echo; echo "=== $* ==="; }
source "$(dirname "$0")/gpu_common.sh"
step device
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
ldd build/gpu/fanin | grep -E "not found|fanin|cublas|cudart" || true
step race
build/gpu/fanin race --backend cuda --threads 16
for p in race_separate race_shared race_sequential; do build/gpu/race/$p; echo "rc=$?"; done
if [ -d models/all-MiniLM-L6-v2 ] && [ "${SKIP_REFS:-0}" != 1 ]; then
  step references
  python3 scripts/make_embedding_refs.py models/all-MiniLM-L6-v2 \
    tests/data/embedding_sentences.txt "$OUT/minilm_refs.json" &&
    cp "$OUT/minilm_refs.json" tests/data/minilm_refs.json
fi
step conformance
build/gpu/tests/fanin_conformance_tests 2>&1 | grep -E "FAILED|PASSED|SKIPPED|tests ran|\[  FAILED" | tail -30
step unit
build/gpu/tests/fanin_unit_tests --gtest_brief=1 2>&1 | grep -vE "^\[       OK|^\[ RUN" | tail -40
step bench
THREADS=${THREADS:-1,2,4,8,16} bench/run_mlp_direct.sh build/gpu "$OUT" "${SECS:-3}"
