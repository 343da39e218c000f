#!/usr/bin/env bash
# The nginx failover test (ctest server.nginx_failover, label long): two
# `fanin serve` replicas behind nginx, configured from
# deploy/nginx/fanin.conf.template; 16 clients post single sentences to
# /embed for 10 s; at 3 s one replica gets SIGKILL. Checks (load.py): every
# request got a response from nginx, every response is 200 (nginx retries the
# dead replica's in-flight POSTs on the other one: non_idempotent, see
# docs/deploy.md), both replicas served before the kill, the survivor serves
# the last second alone; then SIGTERM to the survivor: it drains and exits 0.
#
# Usage: tests/server/nginx/run.sh FANIN_BIN SOURCE_DIR
# Env:
#   FANIN_NGINX_RETRY_POST=0  render the template without `non_idempotent`
#                     (nginx's default for POST): then the non-200s must be
#                     502/504, at most the requests in flight at the kill
#   FANIN_NGINX_CLIENTS, FANIN_NGINX_DURATION, FANIN_NGINX_KILL_AT
#                     16, 10, 3 (seconds)
#   FANIN_NGINX_KEEP=1  keep the temp folder (configs, logs) after a pass
#   NGINX             the nginx binary (default: nginx on PATH, else /usr/sbin/nginx)
# Installs nothing. Exit 77 (ctest SKIP_RETURN_CODE) when nginx, python3, the
# model folder or the `serve` subcommand is missing; .ci/run's long mode
# (FANIN_CI_LONG=1) installs nginx-light first.
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 FANIN_BIN SOURCE_DIR" >&2
  exit 2
fi
fanin_bin="$1"
source_dir="$(cd "$2" && pwd)"
here="$source_dir/tests/server/nginx"
template="$source_dir/deploy/nginx/fanin.conf.template"
model="$source_dir/models/all-MiniLM-L6-v2"
clients="${FANIN_NGINX_CLIENTS:-16}"
duration="${FANIN_NGINX_DURATION:-10}"
kill_at="${FANIN_NGINX_KILL_AT:-3}"
retry_post="${FANIN_NGINX_RETRY_POST:-1}"

log() { echo "nginx_failover: $*" >&2; }
skip() { log "SKIP: $*"; exit 77; }

nginx="${NGINX:-$(command -v nginx || true)}"
if [ -z "$nginx" ] && [ -x /usr/sbin/nginx ]; then nginx=/usr/sbin/nginx; fi
[ -n "$nginx" ] && [ -x "$nginx" ] ||
  skip "nginx not found (Debian: apt-get install nginx-light; .ci/run installs it when FANIN_CI_LONG=1)"
command -v python3 >/dev/null || skip "python3 not found"
[ -f "$model/model.safetensors" ] || skip "no model at $model (bash scripts/fetch_models.sh)"
[ -x "$fanin_bin" ] || { log "no fanin binary at $fanin_bin"; exit 1; }
"$fanin_bin" serve --help >/dev/null 2>&1 || skip "$fanin_bin has no serve subcommand"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/fanin-nginx.XXXXXX")"
chmod 755 "$tmp"  # nginx's workers (user nobody when started as root) reach their temp paths
pid_a="" pid_b="" pid_nginx="" passed=0

# Ends only the processes this script started, by pid.
cleanup() {
  local p
  for p in $pid_nginx $pid_a $pid_b; do
    if alive "$p"; then kill -KILL "$p" 2>/dev/null || true; fi
  done
  wait 2>/dev/null || true
  if [ "$passed" = 1 ] && [ "${FANIN_NGINX_KEEP:-0}" != 1 ]; then
    rm -rf "$tmp"
  else
    log "logs and configs kept in $tmp"
  fi
}
trap cleanup EXIT

fail() {
  log "FAIL: $*"
  local f
  for f in "$tmp"/fanin_a.err "$tmp"/fanin_b.err "$tmp"/error.log; do
    [ -s "$f" ] && { echo "---- $f (last 20 lines)" >&2; tail -n 20 "$f" >&2; }
  done
  exit 1
}

# alive PID: PID runs (a child that exited stays a zombie until waited for,
# and kill -0 still succeeds on a zombie).
alive() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [ "${stat:0:1}" != Z ]
}

# wait_exit PID SECONDS: sets exit_rc to PID's exit status, waited for at most
# SECONDS (124 when it still runs then). Not in $(...): PID is this shell's child.
wait_exit() {
  local pid="$1" deadline=$((SECONDS + $2))
  exit_rc=0
  while alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
  if alive "$pid"; then exit_rc=124; return; fi
  wait "$pid" || exit_rc=$?
}

# wait_ready NAME PID: the port from "fanin: listening on http://HOST:PORT",
# after "fanin: ready (...)" (both on stderr), within 180 s.
wait_ready() {
  local name="$1" pid="$2" err="$tmp/fanin_$1.err" deadline=$((SECONDS + 180))
  while ! grep -q '^fanin: ready' "$err" 2>/dev/null; do
    alive "$pid" || fail "fanin $name (pid $pid) exited before it was ready"
    [ "$SECONDS" -lt "$deadline" ] || fail "fanin $name not ready within 180 s"
    sleep 0.2
  done
  sed -n 's/^fanin: listening on http:\/\/[^ ]*:\([0-9][0-9]*\).*/\1/p' "$err" | head -n 1
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ---- two replicas ----
serve=(serve --port 0 --model "$model" --backend cpu --log-level warn)
"$fanin_bin" "${serve[@]}" >"$tmp/fanin_a.out" 2>"$tmp/fanin_a.err" &
pid_a=$!
"$fanin_bin" "${serve[@]}" >"$tmp/fanin_b.out" 2>"$tmp/fanin_b.err" &
pid_b=$!
port_a="$(wait_ready a "$pid_a")"
port_b="$(wait_ready b "$pid_b")"
[ -n "$port_a" ] && [ -n "$port_b" ] || fail "no port in the replicas' 'listening on' lines"
log "replicas ready: a=127.0.0.1:$port_a (pid $pid_a, to be killed), b=127.0.0.1:$port_b (pid $pid_b)"

# ---- nginx, from the deploy template, as an unprivileged foreground process ----
start_nginx() {
  local port="$1" user_line="" sed_retry=()
  if [ "$(id -u)" -eq 0 ]; then user_line="user nobody nogroup;"; fi
  if [ "$retry_post" = 0 ]; then sed_retry=(-e 's/ non_idempotent;/;/'); fi
  sed -e "s/\${FANIN_LISTEN}/127.0.0.1:$port/" \
      -e "s/\${FANIN_UPSTREAM_1}/127.0.0.1:$port_a/" \
      -e "s/\${FANIN_UPSTREAM_2}/127.0.0.1:$port_b/" "${sed_retry[@]}" \
      "$template" >"$tmp/fanin.conf"
  if grep -v '^[[:space:]]*#' "$tmp/fanin.conf" | grep -q '\${'; then fail "unfilled placeholders in $tmp/fanin.conf"; fi
  cat >"$tmp/nginx.conf" <<EOF
daemon off;
$user_line
worker_processes 1;
pid $tmp/nginx.pid;
error_log $tmp/error.log notice;
events { worker_connections 1024; }
http {
    log_format fanin_failover '\$msec \$status \$request_time "\$upstream_addr" "\$upstream_status" \$request_method \$uri';
    access_log $tmp/access.log fanin_failover;
    client_body_temp_path $tmp/client_body;
    proxy_temp_path $tmp/proxy;
    fastcgi_temp_path $tmp/fastcgi;
    uwsgi_temp_path $tmp/uwsgi;
    scgi_temp_path $tmp/scgi;
    include $tmp/fanin.conf;
}
EOF
  "$nginx" -t -q -c "$tmp/nginx.conf" -p "$tmp/" -e "$tmp/error.log" ||
    fail "nginx -t rejected $tmp/nginx.conf"
  "$nginx" -c "$tmp/nginx.conf" -p "$tmp/" -e "$tmp/error.log" &
  pid_nginx=$!
  local deadline=$((SECONDS + 10))
  until python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$port" 2>/dev/null; do
    alive "$pid_nginx" || return 1
    [ "$SECONDS" -lt "$deadline" ] || fail "nginx not listening on 127.0.0.1:$port within 10 s"
    sleep 0.1
  done
}
started=0
for attempt in 1 2 3; do  # the free port may be taken between the probe and nginx's bind
  nport="$(free_port)"
  if start_nginx "$nport"; then started=1; break; fi
  wait "$pid_nginx" 2>/dev/null || true
  log "nginx did not start on port $nport (attempt $attempt)"
done
[ "$started" = 1 ] || fail "nginx did not start"
log "nginx $("$nginx" -v 2>&1 | sed 's/.*\///') on 127.0.0.1:$nport (pid $pid_nginx), POST retry $retry_post"

# ---- the load, the kill, the checks ----
rc=0
python3 "$here/load.py" --nginx "127.0.0.1:$nport" --victim-pid "$pid_a" \
  --victim-addr "127.0.0.1:$port_a" --survivor-addr "127.0.0.1:$port_b" \
  --access-log "$tmp/access.log" --clients "$clients" --duration "$duration" --kill-at "$kill_at" \
  --retry-post "$retry_post" --summary "$tmp/summary.json" || rc=$?
[ "$rc" = 0 ] || fail "load.py's checks failed (exit $rc); access log $tmp/access.log"

wait_exit "$pid_a" 10
[ "$exit_rc" = 137 ] || fail "the killed replica's exit status is $exit_rc, expected 137 (SIGKILL)"

# ---- the survivor: SIGTERM drains, exit 0 ----
kill -TERM "$pid_b"
t_term=$SECONDS
wait_exit "$pid_b" 40
[ "$exit_rc" = 0 ] || fail "the survivor exited $exit_rc after SIGTERM, expected 0"
log "the survivor exited 0 within $((SECONDS - t_term)) s of SIGTERM"
grep -q '^fanin: stopped (every accepted request answered)' "$tmp/fanin_b.err" ||
  fail "the survivor's log has no 'fanin: stopped (every accepted request answered)'"

kill -QUIT "$pid_nginx"
wait_exit "$pid_nginx" 10
[ "$exit_rc" = 0 ] || fail "nginx exited $exit_rc after SIGQUIT"
if grep -q '\[emerg\]\|\[alert\]\|\[crit\]' "$tmp/error.log"; then
  fail "nginx's error log has emerg/alert/crit lines"
fi
log "nginx's error log: $(grep -c '\[error\]' "$tmp/error.log" || true) [error] lines (the dead replica's connections)"
passed=1
log "PASS"
