#!/usr/bin/env bash
# CPU time of fanin serve per request, split by thread group (HTTP I/O
# threads, engine workers, the CPU backend's compute threads, other), under
# bench/http_load with single sentences of bench/data/queue_sentences.txt.
# Reproduces the figures of docs/performance.md ("Where the server's CPU
# goes"). Prints one line per load and leaves every JSON under $OUT.
#
#   bash scripts/serve_cpu_profile.sh                 # build/dev, cpu, 1 16 64 connections
#   CONNS="64" ENCODING=base64 SECS=10 bash scripts/serve_cpu_profile.sh
#   BACKEND=cuda SERVE_ARGS="--dtype f16 --workers 2" bash scripts/serve_cpu_profile.sh
#
# Environment: B (build dir, build/dev), MODEL (models/all-MiniLM-L6-v2),
# BACKEND (cpu), CONNS ("1 16 64"), SECS (5), WARM (1), API (openai),
# ENCODING (float), INPUTS (1), LOAD_THREADS (1), FANIN ($B/fanin), SERVE_ARGS (extra flags of
# fanin serve), OUT (/tmp/serve_cpu_profile), PYTHON (python3).
# Timings are noisy where other work shares the cores; the split (which
# group pays for a request) is what this is for.
set -uo pipefail
cd "$(dirname "$0")/.."
B=${B:-build/dev}
MODEL=${MODEL:-models/all-MiniLM-L6-v2}
BACKEND=${BACKEND:-cpu}
CONNS=${CONNS:-1 16 64}
SECS=${SECS:-5}
WARM=${WARM:-1}
API=${API:-openai}
ENCODING=${ENCODING:-float}
INPUTS=${INPUTS:-1}
LOAD_THREADS=${LOAD_THREADS:-1}
OUT=${OUT:-/tmp/serve_cpu_profile}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
FANIN=${FANIN:-$B/fanin}
for f in "$FANIN" "$B/bench/http_load/http_load"; do
  [ -x "$f" ] || { echo "missing $f (ninja -C $B fanin_cli fanin_http_load)"; exit 1; }
done
log=$OUT/serve.log
# shellcheck disable=SC2086
"$FANIN" serve --model "$MODEL" --backend "$BACKEND" --port 0 --log-level warn \
  --max-concurrent-requests 100000 ${SERVE_ARGS:-} > "$log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
for _ in $(seq 1200); do
  grep -q "fanin: ready" "$log" && break
  kill -0 "$pid" 2>/dev/null || { echo "fanin serve exited:"; tail -20 "$log"; exit 1; }
  sleep 0.1
done
grep -q "fanin: ready" "$log" || { echo "fanin serve not ready in 120 s"; exit 1; }
grep "fanin: ready" "$log"
port=$(grep -o 'listening on http://127.0.0.1:[0-9]*' "$log" | head -1 | sed 's/.*://')
url=http://127.0.0.1:$port
enc=()
[ "$API" = openai ] && enc=(--encoding "$ENCODING")
for c in $CONNS; do
  name=${API}-${ENCODING}_c${c}_k${INPUTS}
  "$PY" bench/thread_cpu.py snap "$pid" > "$OUT/$name.before"
  "$B/bench/http_load/http_load" --url "$url" --api "$API" "${enc[@]}" --connections "$c" \
    --inputs "$INPUTS" --threads "$LOAD_THREADS" --warmup "$WARM" --duration "$SECS" \
    --label "$name" > "$OUT/$name.json" 2> "$OUT/$name.err"
  "$PY" bench/thread_cpu.py snap "$pid" > "$OUT/$name.after"
  "$PY" bench/thread_cpu.py split "$OUT/$name.before" "$OUT/$name.after" "$OUT/$name.json" --json \
    > "$OUT/$name.threads.json"
  echo "$name: $(tail -1 "$OUT/$name.err" | sed 's/^http_load: //')"
  echo "  $("$PY" bench/thread_cpu.py split "$OUT/$name.before" "$OUT/$name.after" "$OUT/$name.json")"
done
