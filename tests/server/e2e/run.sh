#!/usr/bin/env bash
# End-to-end tests of `fanin serve`: start the real server binary, send real
# HTTP on loopback (raw sockets, requests, and the unchanged `openai` and
# `tritonclient` packages).
#
# Usage: tests/server/e2e/run.sh FANIN_BIN SOURCE_DIR BUILD_DIR [PYTEST_ARGS...]
#   FANIN_BIN   the fanin CLI (build/<preset>/fanin)
#   SOURCE_DIR  the repository root (models/, tests/data/)
#   BUILD_DIR   the CMake build folder (venv and server logs go there)
#   PYTEST_ARGS test files, -k, -x, ... (default: every test_*.py here)
# Env:
#   FANIN_E2E_VENV    the venv (default BUILD_DIR/e2e-venv); made once, reused
#                     while requirements.txt is unchanged; pip's download cache
#                     lives inside it (.pip-cache), so a rebuilt venv is offline-fast
#   FANIN_E2E_PYTHON  the Python that makes the venv (default /usr/bin/python3,
#                     Debian's, where it exists; else python3)
#   FANIN_SANITIZE    thread / address / empty (set by tests/server/e2e.cmake):
#                     the load tests use fewer clients under a sanitizer
#   FANIN_E2E_SETUP_ONLY=1  make the venv and stop
# Exit codes: pytest's; 77 (ctest SKIP_RETURN_CODE) when the model folder is
# missing or the binary has no `serve` subcommand.
set -euo pipefail

if [ $# -lt 3 ]; then
  echo "usage: $0 FANIN_BIN SOURCE_DIR BUILD_DIR [PYTEST_ARGS...]" >&2
  exit 2
fi
fanin_bin="$(realpath -m "$1")"
source_dir="$(cd "$2" && pwd)"
build_dir="$(mkdir -p "$3" && cd "$3" && pwd)"
shift 3
here="$source_dir/tests/server/e2e"
venv="${FANIN_E2E_VENV:-$build_dir/e2e-venv}"
requirements="$here/requirements.txt"

if [ -n "${FANIN_E2E_PYTHON:-}" ]; then
  python="$FANIN_E2E_PYTHON"
elif [ -x /usr/bin/python3 ]; then
  python=/usr/bin/python3
else
  python=python3
fi

# ---- the venv: one maker at a time (ctest -j runs several entries) ----
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
stamp="$venv/.fanin-e2e-requirements"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import sys' 2>/dev/null; then
  echo "e2e: making the venv $venv with $python"
  rm -rf "$venv/bin" "$venv/lib" "$venv/lib64" "$venv/include" "$venv/pyvenv.cfg" "$stamp"
  if ! "$python" -m venv "$venv"; then
    echo "e2e: '$python -m venv' failed: install python3-venv (scripts/setup.sh)" >&2
    exit 1
  fi
fi
if ! cmp -s "$requirements" "$stamp"; then
  echo "e2e: installing $(grep -c '^[a-z]' "$requirements") pinned packages into $venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    --cache-dir "$venv/.pip-cache" -r "$requirements"
  cp "$requirements" "$stamp"
fi
flock -u 9
exec 9>&-
if [ "${FANIN_E2E_SETUP_ONLY:-0}" = "1" ]; then
  echo "e2e: venv ready at $venv"
  exit 0
fi

# ---- what the tests need ----
if [ ! -x "$fanin_bin" ]; then
  echo "e2e: no fanin binary at '$fanin_bin'" >&2
  exit 1
fi
model="$source_dir/models/all-MiniLM-L6-v2"
if [ ! -f "$model/model.safetensors" ] || [ ! -f "$model/vocab.txt" ]; then
  echo "e2e: SKIPPED: $model is missing (run scripts/fetch_models.sh)"
  exit 77
fi
if ! "$fanin_bin" serve --help >/dev/null 2>&1; then
  echo "e2e: SKIPPED: '$fanin_bin serve --help' fails: this build has no fanin serve"
  exit 77
fi

export FANIN_BIN="$fanin_bin"
export FANIN_SOURCE_DIR="$source_dir"
export FANIN_BUILD_DIR="$build_dir"
export FANIN_E2E_LOGDIR="${FANIN_E2E_LOGDIR:-$build_dir/e2e-logs}"
export FANIN_SANITIZE="${FANIN_SANITIZE:-}"
export PYTHONDONTWRITEBYTECODE=1
# The clients must reach 127.0.0.1 directly, whatever proxy the machine names.
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}"
export no_proxy="$NO_PROXY"
mkdir -p "$FANIN_E2E_LOGDIR"

if [ $# -eq 0 ]; then set -- "$here"; fi
echo "e2e: $("$fanin_bin" --version 2>&1 | head -1), sanitizer '${FANIN_SANITIZE}', logs in $FANIN_E2E_LOGDIR"
# A sanitizer slows the server 3-10x: a longer per-test limit (pytest.ini: 300 s).
timeout_opt=()
case "$FANIN_SANITIZE" in
  thread) timeout_opt=(-o timeout=1000) ;;
  address) timeout_opt=(-o timeout=600) ;;
esac
exec "$venv/bin/python" -m pytest -c "$here/pytest.ini" --rootdir "$here" "${timeout_opt[@]}" "$@"
