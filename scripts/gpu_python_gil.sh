#!/usr/bin/env bash
# One call on the GPU machine: the Python module's cost per call against the
# C++ queue, and the knobs of Note [Spinning for the GIL]
# (python/src/callback.cpp), with the wheel scripts/build_python_wheel.sh made.
#   1. unpack the carried wheel, CLI and model (as scripts/gpu_python.sh);
#   2. the C++ in-process queue: `fanin bench --model minilm --mode queue`,
#      1 and $THREADS producers (the figure the Python threads are held to);
#   3. bench/python/bench_overhead.py on all-MiniLM-L6-v2 (f16): $THREADS
#      Python threads calling encode(sentence) and submit(sentence).result(),
#      and 1 thread, with FANIN_GIL_SPIN_US 0 (the default), 20 and 50 (one
#      spinner), 50 with 2 and 100 with 4 spinners; calls/s and mean batch;
#   4. the same (spin 0 and 50) on the tiny 1-layer, hidden-32 BERT with the
#      same vocabulary, and its C++ queue figure: the Python side's cost when
#      the model's compute is almost nothing;
#   5. a table: each figure / the C++ queue's at the same thread count.
# What comes back in $OUT: log.txt, cpp_queue.json, cpp_queue_tiny.json,
# overhead-*.json.
#
# Device call (from the repository root here, after
# `bash scripts/build_python_wheel.sh`):
#   run command: bash scripts/gpu_python_gil.sh   carry: [".devcache/python"]
# Environment: SECS (5: measured seconds per figure), THREADS (32), PYTHON
# (python3), SPINS ("0 20 50 50x2 100x4": FANIN_GIL_SPIN_US values, NxS = S spinners).
# Local dry run (CPU, a Python 3.12 with numpy):
#   DRY=1 PYTHON=python3.12 SECS=1 THREADS=4 OUT=/tmp/gil_dry bash scripts/gpu_python_gil.sh
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1
step() { echo; echo "=== $* ($(date -u +%H:%M:%S)) ==="; }
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export PYTHONUNBUFFERED=1
D=${DEVCACHE:-.devcache/python}
SECS=${SECS:-5}
THREADS=${THREADS:-32}
SPINS=${SPINS:-0 20 50 50x2 100x4}
MAX_BATCH=256
DELAY_US=200
WORKERS=2
DRY=${DRY:-0}
BACKEND=cuda DTYPE=float16 CPP_DTYPE=f16
if [ "$DRY" = 1 ]; then BACKEND=cpu DTYPE=float32 CPP_DTYPE=f32; fi
engine=(--workers $WORKERS --max-batch $MAX_BATCH --max-delay-us $DELAY_US)

step unpack
source scripts/python_devcache.sh
(cd /tmp && $py -c "import fanin, numpy; print('fanin', fanin.__version__, fanin.available_devices(), 'numpy', numpy.__version__)") || exit 1
echo "commit $(cat "$D/commit.txt" 2>/dev/null || echo unknown)"
model=models/all-MiniLM-L6-v2
tiny=/tmp/fanin-tiny
sentences=bench/data/queue_sentences.txt

step "C++ in-process queue: 1 and $THREADS producers"
/tmp/fanin bench --model minilm --mode queue --backend $BACKEND --dtype $CPP_DTYPE \
  --model-dir $model --sentences $sentences --producers "1,$THREADS" "${engine[@]}" \
  --seconds "$SECS" --out "$OUT/cpp_queue.json" > /dev/null

overhead() {  # overhead NAME SPIN MODEL [ARGS...]
  local name=$1 spin=$2 dir=$3; shift 3
  local us=${spin%x*} spinners=1
  [ "$spin" != "$us" ] && spinners=${spin#*x}
  FANIN_GIL_SPIN_US=$us FANIN_GIL_SPINNERS=$spinners $py bench/python/bench_overhead.py \
    --model-dir "$dir" --sentences $sentences --device $BACKEND "${engine[@]}" \
    --threads "1,$THREADS" --seconds "$SECS" --repeat 1 --out "$OUT/overhead-$name-spin$spin.json" "$@"
}

for spin in $SPINS; do
  step "Python threads on all-MiniLM-L6-v2, FANIN_GIL_SPIN_US $spin"
  overhead minilm "$spin" $model --dtype $DTYPE --engine-warmup --mode encode,submit
done

step "the tiny model: C++ queue and Python threads"
$py bench/python/bench_overhead.py --model-dir $model --keep-tiny $tiny --mode run --threads 1 \
  --seconds 0.1 --warmup 0 > /dev/null || exit 1
/tmp/fanin bench --model minilm --mode queue --backend $BACKEND --dtype $CPP_DTYPE \
  --model-dir $tiny --sentences $sentences --producers "1,$THREADS" "${engine[@]}" \
  --seconds "$SECS" --out "$OUT/cpp_queue_tiny.json" > /dev/null
for spin in 0 50; do
  overhead tiny "$spin" $tiny --dtype $DTYPE --mode encode,submit
done

step "each figure / the C++ queue at the same thread count"
$py - "$OUT" <<'PY'
import glob, json, os, sys
out = sys.argv[1]
def cpp(path):
    found = {}
    def walk(x):
        if isinstance(x, dict):
            if "producers" in x and "sentences_per_s" in x:
                found.setdefault(x["producers"], (x["sentences_per_s"], x.get("mean_batch")))
            for v in x.values(): walk(v)
        elif isinstance(x, list):
            for v in x: walk(v)
    with open(path) as f:
        walk(json.load(f).get("results"))
    return found
ref = {"minilm": cpp(os.path.join(out, "cpp_queue.json")),
       "tiny": cpp(os.path.join(out, "cpp_queue_tiny.json"))}
for model, r in ref.items():
    for threads, (rate, batch) in sorted(r.items()):
        print(f"{model:6s} C++ queue {threads:3d} producers: {rate:9.0f} sentences/s, mean batch {batch}")
for path in sorted(glob.glob(os.path.join(out, "overhead-*.json"))):
    d = json.load(open(path))
    model = os.path.basename(path).split("-")[1]
    for r in d["results"]:
        c = ref[model].get(r["threads"])
        ratio = f"{r['calls_per_s'] / c[0]:.2f}" if c else "?"
        print(f"{model:6s} spin {d['gil_spin_us']:>3s} us x{d['gil_spinners']} {r['mode']:6s} "
              f"{r['threads']:3d} threads: {r['calls_per_s']:9.0f}/s = {ratio} of C++, "
              f"mean batch {r['mean_batch']:.1f}")
PY
echo "rc=$?"
