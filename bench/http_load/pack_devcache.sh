#!/usr/bin/env bash
# Makes what scripts/gpu_serve.sh needs on the GPU machine, in
# .devcache/serve/ (git-ignored; named in the device call's carry):
#   gpu.tgz     the `gpu` preset's fanin CLI, its shared libraries and the
#               load generator (http_load, http_sink), as build/gpu/...
#   minilm.tgz  all-MiniLM-L6-v2 in F16, unused vocabulary rows zeroed
#               (bench/http_load/travel_model.py), as minilm/...
# It leaves .devcache/gpu.tgz and .devcache/minilm.tgz (the other GPU
# scripts' full build and F32 model) alone. Then it adds up what the call
# carries: the working tree, .devcache/serve and .whl must stay under 64 MiB.
#
# Usage (repository root): bash bench/http_load/pack_devcache.sh
# Environment: CMAKE_ARGS (extra configure arguments, e.g. -DFANIN_TESTS=OFF
# while the test tree does not configure), PYTHON (one with numpy and
# tokenizers; else a venv is made in .cache/travel-venv).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
for p in /.devcache/ /.whl/; do
  grep -qx "$p" .git/info/exclude 2>/dev/null || echo "$p" >> .git/info/exclude
done
dst=.devcache/serve
mkdir -p "$dst"

# The `gpu` preset, in its own folder (GPU_BUILD) if asked, e.g. to build
# with CMAKE_ARGS=-DFANIN_TESTS=OFF without changing build/gpu's cache. The
# binaries find their libraries through $ORIGIN rpaths, so the folder is
# renamed gpu/ in the archive.
build=${GPU_BUILD:-build/gpu}
echo "== build (preset gpu in $build) =="
# shellcheck disable=SC2086
cmake --preset gpu -B "$build" ${CMAKE_ARGS:-} > /tmp/pack_devcache_cfg.log ||
  { tail -30 /tmp/pack_devcache_cfg.log; exit 1; }
cmake --build "$build" --target fanin_cli fanin_http_load fanin_http_sink
files=(fanin bench/http_load/http_load bench/http_load/http_sink)
while IFS= read -r so; do files+=("${so#"$build"/}"); done < <(
  find "$build" -name 'lib*.so*' -not -path '*/CMakeFiles/*' | sort)
tar czf "$dst/gpu.tgz" -C "$build" --transform 's,^,gpu/,' "${files[@]}"
echo "gpu.tgz: ${files[*]}"

echo "== model (F16, pruned) =="
source scripts/travel_python.sh
py=$(travel_python "${PYTHON:-python3}")
[ -f models/all-MiniLM-L6-v2/model.safetensors ] || bash scripts/fetch_models.sh
tmp=$(mktemp -d)
"$py" bench/http_load/travel_model.py models/all-MiniLM-L6-v2 "$tmp/minilm" \
  bench/data/queue_sentences.txt tests/data/embedding_sentences.txt
tar czf "$dst/minilm.tgz" -C "$tmp" minilm
rm -rf "$tmp"

echo "== what the device call carries =="
tree_bytes=$( { git ls-files -z; git ls-files -z --others --exclude-standard; } |
  xargs -0 stat -c %s 2> /dev/null | awk '{s += $1} END {print s + 0}')
serve_bytes=$(du -sb "$dst" | cut -f1)
whl_bytes=$( (du -sb .whl 2> /dev/null || echo 0) | cut -f1)
total=$((tree_bytes + serve_bytes + whl_bytes))
ls -la "$dst"
printf 'working tree %.1f MiB + .devcache/serve %.1f MiB + .whl %.1f MiB = %.1f MiB (limit 64)\n' \
  "$(echo "$tree_bytes/1048576" | bc -l)" "$(echo "$serve_bytes/1048576" | bc -l)" \
  "$(echo "$whl_bytes/1048576" | bc -l)" "$(echo "$total/1048576" | bc -l)"
[ "$total" -lt $((62 * 1048576)) ] || { echo "too large for one call"; exit 1; }
