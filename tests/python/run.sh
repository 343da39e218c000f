#!/usr/bin/env bash
# The Python module's tests: make a venv from PyPI, `pip install .` the
# repository into it (CPU only), run pytest on tests/python.
#
# Usage: tests/python/run.sh SOURCE_DIR BUILD_DIR [PYTEST_ARGS...]
#   SOURCE_DIR  the repository root
#   BUILD_DIR   the CMake build folder: the venv (python-venv) and the
#               module's build folder (python-build, reused: reruns rebuild
#               only what changed) go there
# Env:
#   FANIN_PY_PYTHON     the Python that makes the venv (default /usr/bin/python3,
#                       Debian's, where it exists; else python3)
#   FANIN_PY_SETUP_ONLY=1  make the venv and install the module, then stop
#   FANIN_PY_TEST_ONLY=1   skip both (python.install did them), run the tests
# Exit codes: pytest's; 77 (ctest SKIP_RETURN_CODE) when the model folder is
# missing (scripts/fetch_models.sh).
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 SOURCE_DIR BUILD_DIR [PYTEST_ARGS...]" >&2
  exit 2
fi
source_dir="$(cd "$1" && pwd)"
build_dir="$(mkdir -p "$2" && cd "$2" && pwd)"
shift 2
here="$source_dir/tests/python"
venv="$build_dir/python-venv"
requirements="$here/requirements.txt"
if [ -n "${FANIN_PY_PYTHON:-}" ]; then
  python="$FANIN_PY_PYTHON"
elif [ -x /usr/bin/python3 ]; then
  python=/usr/bin/python3
else
  python=python3
fi

install() {
# ---- venv and module: one maker at a time ----
exec 9>"$venv.lock"
flock 9
stamp="$venv/.fanin-requirements"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import sys' 2>/dev/null; then
  echo "python: making the venv $venv with $python"
  rm -rf "$venv"
  if ! "$python" -m venv "$venv"; then
    echo "python: '$python -m venv' failed: install python3-venv (scripts/setup.sh)" >&2
    exit 1
  fi
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check --cache-dir "$venv/.pip-cache")
if ! cmp -s "$requirements" "$stamp"; then
  echo "python: installing $(grep -c '^[a-z]' "$requirements") pinned packages into $venv"
  "${pip[@]}" install --quiet -r "$requirements"
  cp "$requirements" "$stamp"
fi
# --config-settings: Debian 12's pip (23.0) has no -C yet.
config=(--config-settings="build-dir=$build_dir/python-build" --config-settings=cmake.define.FANIN_CUDA=OFF)
if command -v ccache >/dev/null; then
  config+=(--config-settings=cmake.define.CMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
echo "python: pip install $source_dir (CPU only, build folder $build_dir/python-build)"
start=$(date +%s)
"${pip[@]}" install --quiet --no-build-isolation --no-deps --force-reinstall "${config[@]}" "$source_dir"
echo "python: installed in $(($(date +%s) - start)) s"
flock -u 9
exec 9>&-
}
if [ "${FANIN_PY_TEST_ONLY:-0}" != "1" ]; then install; fi
if [ "${FANIN_PY_SETUP_ONLY:-0}" = "1" ]; then exit 0; fi
if [ ! -x "$venv/bin/python" ]; then
  echo "python: no venv at $venv (run without FANIN_PY_TEST_ONLY, or ctest -R python.install)" >&2
  exit 1
fi

model="$source_dir/models/all-MiniLM-L6-v2"
if [ ! -f "$model/model.safetensors" ] || [ ! -f "$model/vocab.txt" ]; then
  echo "python: SKIPPED: $model is missing (run scripts/fetch_models.sh)"
  exit 77
fi
export FANIN_SOURCE_DIR="$source_dir"
export PYTHONDONTWRITEBYTECODE=1
if [ $# -eq 0 ]; then set -- "$here"; fi
# From the build folder, so that `import fanin` finds the installed package.
cd "$build_dir"
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider --rootdir "$here" \
  -W error::pytest.PytestUnraisableExceptionWarning "$@"
