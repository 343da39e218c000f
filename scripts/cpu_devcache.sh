#!/usr/bin/env bash
# Makes what scripts/gpu_cpu_bench.sh needs on the GPU machine, in
# .devcache/cpu/ (git-ignored; named in the device call's carry):
#   fanin.txz   a CPU-only fanin CLI and the unit tests, linked statically
#               against OpenBLAS and utf8proc (the GPU machine has neither),
#               as cpu/fanin and cpu/tests/fanin_unit_tests, and oneDNN's
#               shared libraries in cpu/lib
#   minilm.tgz  all-MiniLM-L6-v2 in F32 with the word-embedding rows that
#               bench/data/queue_sentences.txt and the parity test's
#               sentences do not use zeroed
#               (scripts/prune_model.py: those sentences' embeddings are
#               unchanged, for fanin and sentence-transformers alike), as
#               minilm/...
# Then it adds up what the call carries (working tree + .devcache/cpu, under
# 64 MiB).
#
# Usage (repository root): bash scripts/cpu_devcache.sh
# Environment: BUILD (build/cpu-static), PYTHON (one with numpy and
# tokenizers; else a venv is made in .cache/travel-venv).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
grep -qx /.devcache/ "$(git rev-parse --git-common-dir)/info/exclude" 2>/dev/null ||
  grep -qx /.devcache/ .gitignore ||
  echo /.devcache/ >> "$(git rev-parse --git-common-dir)/info/exclude"
dst=.devcache/cpu
mkdir -p "$dst"
build=${BUILD:-build/cpu-static}
echo "== build (CPU only, static OpenBLAS and utf8proc, in $build) =="
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFANIN_CUDA=OFF \
  -DFANIN_STATIC_BLAS=ON -DFANIN_STATIC_UTF8PROC=ON -DFANIN_TESTS=ON -DFANIN_BENCH=OFF \
  ${CMAKE_ARGS:-} > /tmp/cpu_devcache_cfg.log || { tail -30 /tmp/cpu_devcache_cfg.log; exit 1; }
cmake --build "$build" --target fanin_cli fanin_unit_tests
for f in fanin tests/fanin_unit_tests; do
  if ldd "$build/$f" | grep -E 'openblas|utf8proc|gfortran|gtest'; then
    echo "$f still needs a library the GPU machine lacks"; exit 1
  fi
done
# Stripped, with oneDNN's libraries (scripts/travel_libs.sh), as xz: the F32
# model takes 42 of the call's 64 MiB.
source scripts/travel_libs.sh
stage=$(mktemp -d)
mkdir -p "$stage/cpu/tests"
cp "$build/fanin" "$stage/cpu/" && cp "$build/tests/fanin_unit_tests" "$stage/cpu/tests/"
strip "$stage/cpu/fanin" "$stage/cpu/tests/fanin_unit_tests"
travel_libs "$stage/cpu/lib" "$build/fanin"
rm -f "$dst/fanin.tgz"
tar cJf "$dst/fanin.txz" -C "$stage" cpu
rm -rf "$stage"

echo "== model (F32, unused vocabulary rows zeroed) =="
source scripts/travel_python.sh
py=$(travel_python "${PYTHON:-python3}")
[ -f models/all-MiniLM-L6-v2/model.safetensors ] || bash scripts/fetch_models.sh
tmp=$(mktemp -d)
# The benchmark's sentences and the parity test's (tests/data/minilm_refs.json).
cat bench/data/queue_sentences.txt tests/data/embedding_sentences.txt > "$tmp/sentences.txt"
"$py" scripts/prune_model.py models/all-MiniLM-L6-v2 "$tmp/sentences.txt" "$tmp/minilm"
rm -f "$tmp/minilm/README.md" "$tmp/minilm/data_config.json"
tar czf "$dst/minilm.tgz" -C "$tmp" minilm
rm -rf "$tmp"

echo "== what the device call carries =="
tree_bytes=$( { git ls-files -z; git ls-files -z --others --exclude-standard; } |
  xargs -0 stat -c %s 2> /dev/null | awk '{s += $1} END {print s + 0}')
cpu_bytes=$(du -sb "$dst" | cut -f1)
ls -la "$dst"
total=$((tree_bytes + cpu_bytes))
echo "working tree $((tree_bytes / 1048576)) MiB + $dst $((cpu_bytes / 1048576)) MiB = $((total / 1048576)) MiB (limit 64)"
[ "$total" -lt $((62 * 1048576)) ] || { echo "too large for one call"; exit 1; }
