#!/usr/bin/env bash
# Makes what scripts/gpu_python.sh carries to the GPU machine, in
# .devcache/python/ (git-ignored; the device call's carry):
#   fanin-*-cp312-*.whl  the Python module for the GPU machine's Python 3.12:
#                        CUDA on, OpenBLAS and utf8proc linked statically
#                        (the GPU machine has neither; oneDNN is left out,
#                        FANIN_ONEDNN=OFF, as in the `gpu` preset: only the
#                        CPU pack carries its libraries); cudart is static,
#                        cuBLASLt comes from the machine's CUDA
#   fanin-cli.tgz        the fanin CLI from the same build folder, for the
#                        C++ queue figure the Python figure is compared with
#   commit.txt           the commit the wheel was built from (for the results)
#   minilm.tgz           all-MiniLM-L6-v2 as F16 with unused vocabulary rows
#                        zeroed (bench/http_load/travel_model.py), as minilm/
# and checks that the wheel imports with python3.12 here.
#
# Usage (repository root): bash scripts/build_python_wheel.sh
# Environment: PY312 (a Python 3.12; default pyenv's 3.12.1 or python3.12),
# BUILD (the build folder, default build/python-gpu, kept for rebuilds).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
exclude="$(git rev-parse --git-common-dir)/info/exclude"
grep -qx /.devcache/ "$exclude" 2>/dev/null || echo /.devcache/ >> "$exclude"
py=${PY312:-/root/.pyenv/versions/3.12.1/bin/python3.12}
[ -x "$py" ] || py=$(command -v python3.12)
build=${BUILD:-build/python-gpu}
dst=.devcache/python
venv=.cache/py312-build
mkdir -p "$dst"
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}

# The build tools in a 3.12 venv (no build isolation: the build folder
# stays valid between runs).
if [ ! -x "$venv/bin/python" ]; then "$py" -m venv "$venv"; fi
"$venv/bin/pip" install -q --disable-pip-version-check -r tests/python/requirements.txt

launcher=()
if command -v ccache > /dev/null; then
  launcher=(-C cmake.define.CMAKE_CXX_COMPILER_LAUNCHER=ccache
            -C cmake.define.CMAKE_CUDA_COMPILER_LAUNCHER=ccache)
fi
rm -f "$dst"/fanin-*.whl
echo "== wheel (CUDA on, static OpenBLAS and utf8proc) in $build =="
"$venv/bin/pip" wheel --no-build-isolation --no-deps -w "$dst" \
  -C "build-dir=$build" -C cmake.define.FANIN_CUDA=ON -C cmake.define.FANIN_STATIC_BLAS=ON \
  -C cmake.define.FANIN_STATIC_UTF8PROC=ON -C cmake.define.FANIN_TOOLS=ON \
  -C cmake.define.FANIN_ONEDNN=OFF "${launcher[@]}" .
ls -l "$dst"/fanin-*.whl

git rev-parse --short=12 HEAD > "$dst/commit.txt"
git diff --quiet HEAD || sed -i 's/$/-dirty/' "$dst/commit.txt"

echo "== fanin CLI from the same build =="
cmake --build "$build" --target fanin_cli
tar czf "$dst/fanin-cli.tgz" -C "$build" fanin

echo "== model (F16, pruned to the benchmark's sentences) =="
if [ ! -f "$dst/minilm.tgz" ]; then
  [ -f models/all-MiniLM-L6-v2/model.safetensors ] || bash scripts/fetch_models.sh
  source scripts/travel_python.sh
  tpy=$(travel_python python3)
  tmp=$(mktemp -d)
  "$tpy" bench/http_load/travel_model.py models/all-MiniLM-L6-v2 "$tmp/minilm" \
    bench/data/queue_sentences.txt tests/data/embedding_sentences.txt
  tar czf "$dst/minilm.tgz" -C "$tmp" minilm
  rm -rf "$tmp"
fi

echo "== check: the wheel imports with $py =="
check=$(mktemp -d)
"$py" -m venv --system-site-packages "$check/v"
"$check/v/bin/pip" install -q --no-index --no-deps "$dst"/fanin-*.whl
"$check/v/bin/python" -c "import numpy" 2> /dev/null || "$check/v/bin/pip" install -q numpy
root=$PWD
(cd "$check" && v/bin/python -c "
import fanin
print('fanin', fanin.__version__, fanin.available_devices())
enc = fanin.SentenceEncoder('$root/models/all-MiniLM-L6-v2', workers=1)
print('encode:', enc.encode(['hello world']).shape)")
rm -rf "$check"
ls -l "$dst"
du -ch "$dst"/* | tail -1
echo "device call: run command 'bash scripts/gpu_python.sh', carry [\"$dst\"]"
