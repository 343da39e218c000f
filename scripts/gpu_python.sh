#!/usr/bin/env bash
# One call on the GPU machine: the Python module's benchmark.
#   1. install the carried cp312 wheel into a venv over the system Python
#      (--system-site-packages: torch, sentence-transformers, numpy, pytest
#      and matplotlib are there; --no-index: nothing is fetched);
#   2. the Python tests with that wheel (tests/python; the CPU ones, as CI,
#      plus whatever the GPU build changes), bounded by TEST_BUDGET_S;
#   3. the C++ in-process queue figure: `fanin bench --model minilm --mode
#      queue`, 32 producers, the same engine settings as step 4;
#   4. bench/python/bench_python.py: 32 Python threads of encode(sentence)
#      vs that figure, vs sentence-transformers from 32 threads and batched
#      on the whole list; one encode of 10,000 sentences vs
#      sentence-transformers on the GPU and on the CPU.
# What comes back in $OUT: log.txt, cpp_queue.json, <date>-python.json and
# <date>-python.png (copy both into bench/results/), pytest.txt.
#
# Device call (from the repository root here, after
# `bash scripts/build_python_wheel.sh`):
#   run command: bash scripts/gpu_python.sh   carry: [".devcache/python"]
# Environment: SECS (5: measured seconds per figure), THREADS (32),
# SKIP_TESTS=1, SKIP_CPU=1, TEST_BUDGET_S (150), PYTHON (python3: the one
# the venv is made from).
# Local dry run of this script (CPU, no peers, a Python 3.12 with numpy):
#   DRY=1 PYTHON=python3.12 SECS=1 THREADS=4 OUT=/tmp/py_dry bash scripts/gpu_python.sh
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1
step() { echo; echo "=== $* ($(date -u +%H:%M:%S)) ==="; }
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export PYTHONUNBUFFERED=1
D=${DEVCACHE:-.devcache/python}
day=$(date -u +%Y-%m-%d)
SECS=${SECS:-5}
THREADS=${THREADS:-32}
MAX_BATCH=256
DELAY_US=200
WORKERS=2
DRY=${DRY:-0}
BACKEND=cuda DTYPE=float16 CPP_DTYPE=f16 PEERS=()
if [ "$DRY" = 1 ]; then BACKEND=cpu DTYPE=float32 CPP_DTYPE=f32 PEERS=(--skip-peers --bulk 200); fi

step unpack
source scripts/python_devcache.sh
(cd /tmp && $py -c "import fanin; print('fanin', fanin.__version__, fanin.available_devices())") || exit 1
ldd /tmp/fanin-site/fanin/_fanin*.so | grep -E "not found|cublas|blas|utf8" || true

if [ "${SKIP_TESTS:-0}" != 1 ]; then
  step "python tests (${TEST_BUDGET_S:-150} s at most)"
  (cd /tmp && FANIN_SOURCE_DIR="$OLDPWD" timeout "${TEST_BUDGET_S:-150}" $py -m pytest -q -x \
     -p no:cacheprovider "$OLDPWD/tests/python" 2>&1 | tee "$OUT/pytest.txt" | tail -15)
fi

step "C++ in-process queue: $THREADS producers"
/tmp/fanin bench --model minilm --mode queue --backend $BACKEND --dtype $CPP_DTYPE \
  --model-dir models/all-MiniLM-L6-v2 --sentences bench/data/queue_sentences.txt \
  --producers "1,$THREADS" --workers $WORKERS --max-batch $MAX_BATCH --max-delay-us $DELAY_US \
  --seconds "$SECS" --out "$OUT/cpp_queue.json" > /dev/null

step "Python module vs C++ queue vs sentence-transformers"
cpu=(--cpu)
[ "${SKIP_CPU:-0}" = 1 ] && cpu=()
FANIN_COMMIT=$(cat "$D/commit.txt" 2>/dev/null || echo unknown) \
  $py bench/python/bench_python.py --model-dir models/all-MiniLM-L6-v2 \
  --sentences bench/data/queue_sentences.txt --device $BACKEND --dtype $DTYPE "${PEERS[@]}" \
  --threads "$THREADS" --seconds "$SECS" --peer-seconds "$SECS" \
  --workers $WORKERS --max-batch $MAX_BATCH --max-delay-us $DELAY_US \
  --cpp-json "$OUT/cpp_queue.json" "${cpu[@]}" \
  --out "$OUT/$day-python.json" --plot "$OUT/$day-python.png"
echo "rc=$?"
