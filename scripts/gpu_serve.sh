#!/usr/bin/env bash
# One call on the GPU machine: the HTTP server benchmark.
#   1. the load generator against a null server (its own ceiling here);
#   2. fanin serve (cuda, f16) under http_load: single sentences from
#      1, 32, 64, 256, 1024 connections, 32-sentence requests from 8, and the
#      TEI and KServe v2 routes at 64;
#   3. the in-process Engine on the same sentences (fanin bench --mode queue,
#      1, 64, 256 producers), same engine settings;
#   4. Infinity (infinity-emb 0.0.78, torch, fp16, batch 32) on the same GPU
#      under the same loads;
#   5. if time is left: fanin serve --backend cpu at 1 and 64 connections.
# Engine-setting variants (VARIANTS) run at 1, 64 and 256 connections, each
# with its own in-process figure.
# Then bench/merge_serve.py puts it all in $OUT/<date>-serve.json (+ .png).
# What comes back (8 files at most): log.txt, <date>-serve.json,
# <date>-serve.png, serve_raw.tgz (every http_load JSON and server log).
#
# Device call (from the repository root here, after
# `bash bench/http_load/pack_devcache.sh` and `bash bench/peers/infinity_wheels.sh`):
#   run command: bash scripts/gpu_serve.sh   carry: [".devcache/serve", ".whl"]
#
# Local dry run (CPU backend, short, Infinity only where its wheels and
# PYTHON's torch are there):
#   DRY=1 OUT=/tmp/serve_dry BUILD=build/load SECS=2 WARM=0.5 bash scripts/gpu_serve.sh
# The CPU backend against Infinity on the same cores (one call):
#   BACKEND=cpu PEER_DEVICE=cpu INFINITY_DTYPE_ARG=float32 WORKERS=16 BATCH=32 \
#   CONNS="1 16 64" PRODUCERS=1,16,64 IO_SWEEP= VARIANTS= SECS=6 \
#   RESULT_NAME=<date>-serve-cpu bash scripts/gpu_serve.sh
# Environment: SECS (10: measured seconds per load), SWEEP64 (see below), WARM (2: warm-up
# seconds), BUDGET_S (500: wall seconds after which optional parts are
# skipped), VARIANTS ("fixed d0", see below), VARIANT_CONNS ("1 64 256"),
# LG_THREADS (8: load-generator threads at 64 connections and up),
# SKIP_INFINITY=1, SKIP_CPU=1, AGAIN64=1 (64 connections again after the
# other loads), PYTHON (python3).
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=${DRY:-0}
if [ "$DRY" = 1 ]; then
  OUT=${OUT:-/tmp/serve_dry}
  mkdir -p "$OUT"
  exec > >(tee -a "$OUT/log.txt") 2>&1
  B=${BUILD:-build/load}
  BACKEND=cpu
  day=$(date -u +%Y-%m-%d)
  PEER_DEVICE=${PEER_DEVICE:-cpu}
elif [ -f "${DEVCACHE:-.devcache/serve}/gpu.tgz" ]; then
  # As scripts/gpu_common.sh does, from bench/http_load/pack_devcache.sh's
  # smaller pack (the build this needs, the F16 model), which leaves room
  # for Infinity's wheels in the call.
  DEVCACHE=${DEVCACHE:-.devcache/serve}
  OUT=${OUT:-/tmp/out}
  mkdir -p "$OUT"
  exec > >(tee -a "$OUT/log.txt") 2>&1
  export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
  if [ "$PWD" != /work/main ] && [ ! -e /work/main ]; then mkdir -p /work && ln -sfn "$PWD" /work/main; fi
  mkdir -p build models && tar xzf "$DEVCACHE/gpu.tgz" -C build &&
    tar xzf "$DEVCACHE/minilm.tgz" -C models && rm -rf models/all-MiniLM-L6-v2 &&
    mv models/minilm models/all-MiniLM-L6-v2 || { echo "cannot unpack $DEVCACHE"; exit 1; }
  day=$(date -u +%Y-%m-%d)
  B=build/gpu
  # BACKEND=cpu PEER_DEVICE=cpu runs this same path on a machine without a
  # GPU (a copy of the tree: the model folder is replaced).
  BACKEND=${BACKEND:-cuda}
  PEER_DEVICE=${PEER_DEVICE:-$BACKEND}
else
  source scripts/gpu_common.sh  # .devcache/gpu.tgz and minilm.tgz
  B=build/gpu
  BACKEND=cuda
  PEER_DEVICE=${PEER_DEVICE:-cuda}
fi
# Connection counts of the single-sentence loads (64 pairs with the
# in-process figure; 256 and 1 carry the targets).
if [ "$DRY" = 1 ]; then CONNS=${CONNS:-1 16 64}; else CONNS=${CONNS:-1 32 64 256 1024}; fi
SECS=${SECS:-10}
WARM=${WARM:-2}
BUDGET_S=${BUDGET_S:-500}
PY=${PYTHON:-python3}
MODEL=models/all-MiniLM-L6-v2
FANIN=$B/fanin
LOAD=$B/bench/http_load/http_load
SINK=$B/bench/http_load/http_sink
RAW=$(mktemp -d /tmp/serve_raw.XXXXXX)
# Engine settings, the same for the server and the in-process bench.
BATCH=${BATCH:-256}
DELAY_US=200
WORKERS=${WORKERS:-2}
TOKENS=16384
# HTTP I/O threads of the main fanin serve runs (empty: the server's
# default, half the cores up to 8); IO_SWEEP: other counts tried at 256
# connections.
IO_THREADS=${IO_THREADS:-}
IO_SWEEP=${IO_SWEEP-4 12}
step() { echo; echo "=== $* (t=${SECONDS}s) ==="; }
over_budget() { [ "$SECONDS" -gt "$BUDGET_S" ]; }
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; }
trap cleanup EXIT

# 1,024 client sockets and as many on the server side, in each process.
ulimit -n "$(ulimit -Hn)" 2> /dev/null || ulimit -n 65536 2> /dev/null || true
step device
if [ "$BACKEND" = cuda ]; then
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv
fi
nproc
for f in "$FANIN" "$LOAD" "$SINK"; do
  [ -x "$f" ] || { echo "missing $f (build it: bench/http_load/pack_devcache.sh)"; exit 1; }
done
[ -d "$MODEL" ] || { echo "missing $MODEL"; exit 1; }
"$FANIN" --version | tee "$RAW/fanin_version.txt"
cat > "$RAW/settings.json" <<JSON
{"backend": "$BACKEND", "secs": $SECS, "warmup_s": $WARM, "max_batch_size": $BATCH,
 "max_queue_delay_us": $DELAY_US, "workers": $WORKERS, "max_batch_tokens": $TOKENS,
 "io_threads": "${IO_THREADS:-default}", "io_sweep": "$IO_SWEEP", "sweep64": "${SWEEP64:-}", "max_concurrent_requests": 100000, "log_level": "warn",
 "infinity": {"engine": "torch", "dtype": "${INFINITY_DTYPE_ARG:-float16}", "batch_size": ${INFINITY_BATCH:-32},
              "device": "$PEER_DEVICE", "route": "/embeddings"},
 "cores": $(nproc), "dry_run": $DRY}
JSON

metrics() {
  curl -sf "$1/metrics" 2> /dev/null ||
    "$PY" -c "import urllib.request,sys; sys.stdout.write(urllib.request.urlopen('$1/metrics').read().decode())" 2> /dev/null
}
# After a load, the requests its connections left in flight at the end are
# still queued (the server learns of a gone client only when it writes), so
# the next load would start behind them: wait for fanin's queue to empty.
settle() {
  local q=
  for _ in $(seq 300); do
    q=$(metrics "$1" | awk '$1 == "te_queue_size" {print $2}')
    [ -z "$q" ] || [ "$q" = 0 ] && return 0
    sleep 0.1
  done
  echo "settle: fanin's queue still holds $q after 30 s"
}
# CPU seconds (user + system) process $1 has used so far.
cpu_s() {
  awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat" 2> /dev/null || echo 0
}
# One load: NAME URL ARGS... -> $RAW/NAME.json, and $RAW/NAME.cpu: the
# server's CPU cores over the whole load (warm-up included) when
# SERVER_PID is set.
SERVER_PID=
load() {
  local name=$1 url=$2; shift 2
  local c0=0 t0=$(date +%s.%N)
  # fanin's own split of a request's time (te_request_*_duration sums and
  # counts before and after: merge_serve.py takes the means over the load).
  case $name in fanin_*) metrics "$url" > "$RAW/$name.m0" ;; esac
  if [ -n "$SERVER_PID" ]; then
    c0=$(cpu_s "$SERVER_PID")
    "$PY" bench/thread_cpu.py snap "$SERVER_PID" > "$RAW/$name.threads0" 2> /dev/null
  fi
  "$LOAD" --url "$url" --warmup "$WARM" --duration "$SECS" --label "$name" "$@" \
    > "$RAW/$name.json" 2> "$RAW/$name.err"
  if [ -n "$SERVER_PID" ]; then
    awk -v c0="$c0" -v c1="$(cpu_s "$SERVER_PID")" -v t0="$t0" -v t1="$(date +%s.%N)" \
      'BEGIN {printf "%.3f\n", (c1 - c0) / (t1 - t0)}' > "$RAW/$name.cpu"
    echo "server cores: $(cat "$RAW/$name.cpu")"
    # The same CPU split by thread group (I/O, engine workers, compute,
    # other) per request: $RAW/NAME.threads.json, merged by merge_serve.py.
    "$PY" bench/thread_cpu.py snap "$SERVER_PID" > "$RAW/$name.threads1" 2> /dev/null &&
      "$PY" bench/thread_cpu.py split "$RAW/$name.threads0" "$RAW/$name.threads1" \
        "$RAW/$name.json" --json > "$RAW/$name.threads.json" 2> /dev/null &&
      "$PY" bench/thread_cpu.py split "$RAW/$name.threads0" "$RAW/$name.threads1" "$RAW/$name.json"
  fi
  case $name in fanin_*) metrics "$url" > "$RAW/$name.m1" ;; esac
  tail -1 "$RAW/$name.err"
  case $name in fanin_*) settle "$url" ;; infinity_*) sleep 1 ;; esac
}
# Load-generator threads by connections (8 at 64 and up: with 4, a batch's
# replies queued on them; bench/results/2026-12-02-serve-io64.json).
threads_for() { if [ "$1" -ge 64 ]; then echo "${LG_THREADS:-8}"; elif [ "$1" -ge 8 ]; then echo 2; else echo 1; fi; }

# Starts fanin serve (BACKEND, extra flags...) and sets FPID and FURL.
start_fanin() {
  local backend=$1; shift
  local log=$RAW/fanin_serve_$backend.log
  "$FANIN" serve --model "$MODEL" --backend "$backend" --port 0 \
    --max-batch-size "$BATCH" --max-queue-delay-us "$DELAY_US" --workers "$WORKERS" \
    --max-batch-tokens "$TOKENS" ${IO_THREADS:+--io-threads "$IO_THREADS"} \
    --max-concurrent-requests 100000 --log-level warn "$@" > "$log" 2>&1 &
  FPID=$!
  SERVER_PID=$FPID
  pids+=("$FPID")
  for _ in $(seq 1200); do
    grep -q "fanin: ready" "$log" && break
    kill -0 "$FPID" 2>/dev/null || { echo "fanin serve exited:"; tail -20 "$log"; return 1; }
    sleep 0.1
  done
  grep -q "fanin: ready" "$log" || { echo "fanin serve not ready in 120 s"; tail -20 "$log"; return 1; }
  local port
  port=$(grep -o 'listening on http://127.0.0.1:[0-9]*' "$log" | head -1 | sed 's/.*://')
  FURL=http://127.0.0.1:$port
  grep "fanin:" "$log"
}
stop_fanin() {
  kill "$FPID" 2>/dev/null
  for _ in $(seq 100); do kill -0 "$FPID" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$FPID" 2>/dev/null
  wait "$FPID" 2>/dev/null
  SERVER_PID=
}

step "load generator ceiling (null server)"
"$SINK" --port 0 --threads 4 > "$RAW/sink.log" 2>&1 &
SPID=$!
pids+=("$SPID")
sleep 0.5
SURL=$(grep -o 'http://127.0.0.1:[0-9]*' "$RAW/sink.log" | head -1)
load sink_c256_k1 "$SURL" --connections 256 --inputs 1 --threads "$(threads_for 256)" --warmup 1 --duration 4
load sink_c1_k1 "$SURL" --connections 1 --inputs 1 --threads 1 --warmup 1 --duration 3
kill "$SPID" 2>/dev/null

step "fanin serve --backend $BACKEND"
if start_fanin "$BACKEND"; then
  for c in $CONNS; do
    load "fanin_${BACKEND}_openai_c${c}_k1" "$FURL" --api openai --connections "$c" --inputs 1 \
      --threads "$(threads_for "$c")"
  done
  load "fanin_${BACKEND}_openai_c8_k32" "$FURL" --api openai --connections 8 --inputs 32 --threads 2
  # The other routes over the same Engine, shorter.
  load "fanin_${BACKEND}_tei_c64_k1" "$FURL" --api tei --connections 64 --inputs 1 --threads "$(threads_for 64)" \
    --duration $(( SECS > 5 ? 5 : SECS ))
  load "fanin_${BACKEND}_v2_c64_k1" "$FURL" --api v2 --connections 64 --inputs 1 --threads "$(threads_for 64)" \
    --duration $(( SECS > 5 ? 5 : SECS ))
  load "fanin_${BACKEND}_openai-base64_c64_k1" "$FURL" --api openai --encoding base64 \
    --connections 64 --inputs 1 --threads "$(threads_for 64)" --duration $(( SECS > 5 ? 5 : SECS ))
  # AGAIN64=1: single sentences from 64 connections once more, after the
  # loads above (does the 64-connection figure depend on what ran before?).
  if [ "${AGAIN64:-0}" = 1 ]; then
    load "fanin_${BACKEND}_openai-again_c64_k1" "$FURL" --api openai --connections 64 --inputs 1 \
      --threads "$(threads_for 64)"
  fi
  metrics "$FURL" > "$RAW/fanin_${BACKEND}_metrics.txt"
  stop_fanin
fi
for t in $IO_SWEEP; do
  step "fanin serve --backend $BACKEND --io-threads $t"
  if IO_THREADS=$t start_fanin "$BACKEND"; then
    load "fanin_${BACKEND}_openai-io${t}_c256_k1" "$FURL" --api openai --connections 256 \
      --inputs 1 --threads "$(threads_for 64)" --duration $(( SECS > 6 ? 6 : SECS ))
    stop_fanin
  fi
done
# SWEEP64: "IO:LG[:POLL]" tried at 64 connections (server I/O threads :
# load-generator threads [: --io-poll-us]), e.g. SWEEP64="8:8 16:8 8:8:50":
# how much of the HTTP cost at 64 is each side's burst (a batch's replies
# and the requests that follow are handled one after another per thread)
# and the I/O threads' wake-ups (Note [I/O polling]).
for triple in ${SWEEP64:-}; do
  IFS=: read -r io lg poll <<< "$triple"
  tag="io${io}-lg${lg}${poll:+-p$poll}"
  step "fanin serve --io-threads $io ${poll:+--io-poll-us $poll}, 64 connections, load generator $lg threads"
  # shellcheck disable=SC2046
  if IO_THREADS=$io start_fanin "$BACKEND" ${poll:+--io-poll-us "$poll"}; then
    load "fanin_${BACKEND}_openai-${tag}_c64_k1" "$FURL" --api openai --connections 64 \
      --inputs 1 --threads "$lg" --duration $(( SECS > 6 ? 6 : SECS ))
    stop_fanin
  fi
done
# VARIANTS: engine settings changed one at a time, each at 1, 64 and 256
# connections and in-process with the same setting (merge_serve.py pairs
# openai-NAME loads with inprocess_BACKEND-NAME.json):
#   fixed  --fixed-queue-delay: always wait the queue delay for a batch
#          that is not full (Note [Adaptive queue delay] off);
#   dN     --max-queue-delay-us N (d0: no wait at all);
#   wN     --workers N (engine workers per device).
VARIANTS=${VARIANTS-fixed d0}
[ "${SKIP_D0:-0}" = 1 ] && VARIANTS=${VARIANTS//d0/}
VARIANT_CONNS=${VARIANT_CONNS:-1 64 256}
variant_delay() { case $1 in d[0-9]*) echo "${1#d}" ;; *) echo "$DELAY_US" ;; esac; }
variant_workers() { case $1 in w[0-9]*) echo "${1#w}" ;; *) echo "$WORKERS" ;; esac; }
variant_serve_flag() { if [ "$1" = fixed ]; then echo --fixed-queue-delay; fi; }
variant_bench_flag() { if [ "$1" = fixed ]; then echo --fixed-delay; fi; }
for v in $VARIANTS; do
  step "fanin serve --backend $BACKEND, variant $v"
  # shellcheck disable=SC2046
  if DELAY_US=$(variant_delay "$v") WORKERS=$(variant_workers "$v") \
      start_fanin "$BACKEND" $(variant_serve_flag "$v"); then
    for c in $VARIANT_CONNS; do
      load "fanin_${BACKEND}_openai-${v}_c${c}_k1" "$FURL" --api openai --connections "$c" \
        --inputs 1 --threads "$(threads_for "$c")" --duration $(( SECS > 6 ? 6 : SECS ))
    done
    stop_fanin
  fi
done

step "in-process Engine (fanin bench --mode queue)"
dtype_flag=()
[ "$BACKEND" = cuda ] && dtype_flag=(--dtype f16)
"$FANIN" bench --model minilm --mode queue --backend "$BACKEND" "${dtype_flag[@]}" \
  --model-dir "$MODEL" --sentences bench/data/queue_sentences.txt \
  --producers "${PRODUCERS:-1,64,256}" --workers "$WORKERS" --max-batch "$BATCH" --max-delay-us "$DELAY_US" \
  --max-tokens "$TOKENS" --seconds "$SECS" --warmup-seconds "$WARM" \
  > "$RAW/inprocess_$BACKEND.json" 2> "$RAW/inprocess_$BACKEND.err"
grep "producers" "$RAW/inprocess_$BACKEND.err"
for v in $VARIANTS; do
  # shellcheck disable=SC2046
  "$FANIN" bench --model minilm --mode queue --backend "$BACKEND" "${dtype_flag[@]}" \
    --model-dir "$MODEL" --sentences bench/data/queue_sentences.txt \
    --producers "$(echo "$VARIANT_CONNS" | tr ' ' ,)" --workers "$(variant_workers "$v")" --max-batch "$BATCH" \
    --max-delay-us "$(variant_delay "$v")" $(variant_bench_flag "$v") \
    --max-tokens "$TOKENS" --seconds $(( SECS > 6 ? 6 : SECS )) --warmup-seconds "$WARM" \
    > "$RAW/inprocess_$BACKEND-$v.json" 2> "$RAW/inprocess_$BACKEND-$v.err"
  grep "producers" "$RAW/inprocess_$BACKEND-$v.err"
done

step "Infinity"
if [ "${SKIP_INFINITY:-0}" = 1 ]; then
  echo "skipped (SKIP_INFINITY=1)"
elif ! ls .whl/*.whl > /dev/null 2>&1; then
  echo "skipped: no .whl/ (bench/peers/infinity_wheels.sh, then carry .whl)"
elif ! "$PY" -c "import torch" 2> /dev/null; then
  echo "skipped: $PY has no torch"
elif [ "$PEER_DEVICE" = cuda ] && ! "$PY" -c "import torch; assert torch.cuda.is_available()" 2> /dev/null; then
  echo "skipped: no CUDA device for torch"
else
  iport=18097
  if PYTHON="$PY" INFINITY_DEVICE="$PEER_DEVICE" \
      bash bench/peers/infinity_serve.sh start "$iport" "$MODEL" "$RAW/infinity.log" "$RAW/infinity.pid"; then
    pids+=("$(cat "$RAW/infinity.pid")")
    SERVER_PID=$(cat "$RAW/infinity.pid")
    PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} "$PY" -c 'import json, infinity_emb, torch, transformers, sentence_transformers, numpy
print(json.dumps({"infinity_emb": infinity_emb.__version__, "torch": torch.__version__,
  "transformers": transformers.__version__, "sentence_transformers": sentence_transformers.__version__,
  "numpy": numpy.__version__}))' > "$RAW/infinity_versions.json"
    cat "$RAW/infinity_versions.json"
    IURL=http://127.0.0.1:$iport
    for c in $CONNS; do
      if [ "$c" = 1024 ] && over_budget; then echo "skipped 1024: over budget"; continue; fi
      load "infinity_${PEER_DEVICE}_openai_c${c}_k1" "$IURL" --api openai --path /embeddings \
        --connections "$c" --inputs 1 --threads "$(threads_for "$c")"
    done
    load "infinity_${PEER_DEVICE}_openai_c8_k32" "$IURL" --api openai --path /embeddings \
      --connections 8 --inputs 32 --threads 2
    bash bench/peers/infinity_serve.sh stop "$RAW/infinity.pid"
    SERVER_PID=
  else
    echo "Infinity did not start (log in serve_raw.tgz)"
  fi
fi

if [ "$BACKEND" = cuda ] && [ "${SKIP_CPU:-0}" != 1 ]; then
  step "fanin serve --backend cpu (if time)"
  if over_budget; then
    echo "skipped: over budget (${SECONDS}s > ${BUDGET_S}s)"
  elif start_fanin cpu; then
    load fanin_cpu_openai_c1_k1 "$FURL" --api openai --connections 1 --inputs 1 --threads 1 \
      --duration $(( SECS > 6 ? 6 : SECS ))
    load fanin_cpu_openai_c64_k1 "$FURL" --api openai --connections 64 --inputs 1 --threads 2 \
      --duration $(( SECS > 6 ? 6 : SECS ))
    stop_fanin
  fi
fi

step merge
name=${RESULT_NAME:-$day-serve}
"$PY" bench/merge_serve.py "$RAW" "$OUT/$name.json" "$OUT/$name.png"
tar czf "$OUT/serve_raw.tgz" -C "$RAW" .
ls -la "$OUT"
echo "done in ${SECONDS}s"
