#!/usr/bin/env bash
# The Infinity peer of the server benchmark: installs the carried wheels
# (.whl/, from bench/peers/infinity_wheels.sh) into /tmp/site, starts
# `infinity_emb v2` on a local model folder in the background, and waits
# until it answers, so http_load can send it the same requests as fanin serve
# (OpenAI-shaped, at /embeddings and, with --url-prefix /v1, /v1/embeddings;
# this script serves the plain /embeddings).
#
#   bench/peers/infinity_serve.sh start PORT [MODEL_DIR] [LOG] [PIDFILE]
#   bench/peers/infinity_serve.sh stop [PIDFILE]
#
# Environment: INFINITY_DEVICE (cuda), INFINITY_DTYPE_ARG (float16),
# INFINITY_BATCH (32), INFINITY_READY_S (240: seconds to wait for /health),
# PYTHON (python3). No network there: Hugging Face stays offline and the
# model is read from MODEL_DIR; telemetry is off.
# Exit status of start: 0 ready (pid in PIDFILE), 1 not ready (log tail shown).
set -uo pipefail
cmd=${1:-}
site=/tmp/site
py=${PYTHON:-python3}

install_wheels() {
  [ -f "$site/.installed" ] && return 0
  ls .whl/*.whl > /dev/null 2>&1 || { echo "infinity_serve: no .whl/*.whl (run bench/peers/infinity_wheels.sh here and carry .whl)"; return 1; }
  # --no-deps: the image's own packages (torch, numpy 2, rich, anyio, ...)
  # fill the rest; --upgrade --target puts these first on PYTHONPATH.
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$site" .whl/*.whl || return 1
  touch "$site/.installed"
}

case "$cmd" in
start)
  port=${2:?port}
  model=${3:-models/all-MiniLM-L6-v2}
  log=${4:-/tmp/infinity.log}
  pidfile=${5:-/tmp/infinity.pid}
  install_wheels || exit 1
  export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH}
  export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
  export DO_NOT_TRACK=1 INFINITY_ANONYMOUS_USAGE_STATS=0
  # Infinity's queue (32000 by default) is far above the 1,024 connections.
  "$py" -c 'import infinity_emb, transformers, sentence_transformers, torch, numpy
print("infinity_serve: infinity-emb", infinity_emb.__version__, "transformers", transformers.__version__,
      "sentence-transformers", sentence_transformers.__version__, "torch", torch.__version__,
      "numpy", numpy.__version__)' || exit 1
  # log level warning: uvicorn's access log (one line per request at info)
  # would cost Infinity time that fanin serve's --log-level warn does not.
  "$py" -m infinity_emb.cli v2 \
    --model-id "$model" --served-model-name all-MiniLM-L6-v2 \
    --host 127.0.0.1 --port "$port" \
    --engine torch --device "${INFINITY_DEVICE:-cuda}" --dtype "${INFINITY_DTYPE_ARG:-float16}" \
    --batch-size "${INFINITY_BATCH:-32}" --model-warmup --no-bettertransformer \
    --log-level warning > "$log" 2>&1 &
  pid=$!
  echo "$pid" > "$pidfile"
  deadline=$(( $(date +%s) + ${INFINITY_READY_S:-240} ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "infinity_serve: exited before ready; log tail:"; tail -40 "$log"; exit 1
    fi
    if "$py" - "$port" <<'EOF' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/health", timeout=2).read()
EOF
    then
      echo "infinity_serve: ready on http://127.0.0.1:$port (pid $pid)"; exit 0
    fi
    sleep 1
  done
  echo "infinity_serve: not ready after ${INFINITY_READY_S:-240} s; log tail:"; tail -40 "$log"
  kill "$pid" 2>/dev/null
  exit 1
  ;;
stop)
  pidfile=${2:-/tmp/infinity.pid}
  [ -f "$pidfile" ] || exit 0
  pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -9 "$pid" 2>/dev/null
  rm -f "$pidfile"
  ;;
*)
  echo "usage: $0 start PORT [MODEL_DIR] [LOG] [PIDFILE] | stop [PIDFILE]"; exit 2
  ;;
esac
