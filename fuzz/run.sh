#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (AddressSanitizer + UBSan) and runs
# each for SECONDS (default 20), starting from the committed seeds in
# fuzz/corpus/<target>/. Exits non-zero on any crash, leak, sanitizer report
# or escaped exception; the failing input is left in $FUZZ_BUILD_DIR/artifacts.
#
# Usage: fuzz/run.sh [SECONDS] [TARGET...]     (targets: wordpiece safetensors api)
# Env:   CXX_FUZZ        clang++ to use (default: clang++ or clang++-14 on PATH)
#        FUZZ_BUILD_DIR  where binaries and the growing corpora go (default build/fuzz)
#        FANIN_FUZZ_VOCAB  vocabulary for fuzz_wordpiece (default: the fetched
#                        all-MiniLM-L6-v2 vocab.txt when present, else a built-in one)
# Only the fanin sources each target needs are compiled (no OpenBLAS, no CUDA).
set -euo pipefail

seconds="${1:-20}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(wordpiece safetensors api)
case "$seconds" in '' | *[!0-9]*) echo "fuzz/run.sh: SECONDS must be a whole number, got '$seconds'" >&2; exit 2 ;; esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${FUZZ_BUILD_DIR:-$root/build/fuzz}"
cxx="${CXX_FUZZ:-$(command -v clang++ || command -v clang++-14 || true)}"
[ -n "$cxx" ] || { echo "fuzz/run.sh: clang++ not found (Debian package clang)" >&2; exit 2; }
mkdir -p "$out/obj" "$out/artifacts"

common=(-std=c++20 -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined
        -fno-sanitize-recover=all -I"$root/include" -I"$root/src")

# The fanin sources of each target. tensor.cpp is there for the dtype and
# shape helpers only: built without coverage and with one section per
# function, so the linker drops its device code (and its undefined symbols).
sources_wordpiece=(src/text/wordpiece.cpp src/text/bert_chars.cpp src/core/error.cpp)
libs_wordpiece=(-lutf8proc)
sources_safetensors=(src/models/safetensors.cpp src/core/error.cpp)
helpers_safetensors=(src/core/tensor.cpp)
libs_safetensors=()
# fuzz_api: the request-body parsers of fanin serve (nlohmann json, header-only).
sources_api=(src/server/api/json.cpp src/server/api/errors.cpp src/server/api/embeddings.cpp src/server/api/float_text.cpp
             src/server/api/openai.cpp src/server/api/tei.cpp src/server/api/kserve.cpp
             src/core/error.cpp)
libs_api=()

# Compiles $2 into $1 unless $1 is newer than the source and every header it
# included last time (the compiler's -MMD list).
up_to_date() {
  local obj="$1" dep
  [ -f "$obj" ] && [ -f "$obj.d" ] || return 1
  for dep in $(sed -e 's/\\$//' -e 's/^[^:]*://' "$obj.d"); do
    [ "$dep" -nt "$obj" ] && return 1
  done
  return 0
}
compile() {
  local obj="$1" src="$2"
  shift 2
  up_to_date "$obj" && return 0
  "$cxx" "${common[@]}" "$@" -MMD -MF "$obj.d" -c "$root/$src" -o "$obj"
}

build() {
  local t="$1" objs=() src obj pids=()
  local -n srcs="sources_$t" libs="libs_$t"
  for src in "fuzz/fuzz_$t.cpp" "${srcs[@]}"; do
    obj="$out/obj/${t}__$(echo "$src" | tr '/' '_').o"
    if [ "$src" = "fuzz/fuzz_$t.cpp" ]; then
      compile "$obj" "$src" -fsanitize=fuzzer & pids+=($!)
    else
      compile "$obj" "$src" -fsanitize=fuzzer-no-link & pids+=($!)
    fi
    objs+=("$obj")
  done
  if declare -p "helpers_$t" >/dev/null 2>&1; then
    local -n helpers="helpers_$t"
    for src in "${helpers[@]}"; do
      obj="$out/obj/${t}__$(echo "$src" | tr '/' '_').o"
      compile "$obj" "$src" -ffunction-sections -fdata-sections & pids+=($!)
      objs+=("$obj")
    done
  fi
  local failed=0 pid
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  [ "$failed" -eq 0 ] || { echo "fuzz/run.sh: compiling fuzz_$t failed" >&2; exit 1; }
  "$cxx" "${common[@]}" -fsanitize=fuzzer "${objs[@]}" ${libs[@]+"${libs[@]}"} \
    -Wl,--gc-sections -o "$out/fuzz_$t"
}

if [ -z "${FANIN_FUZZ_VOCAB:-}" ] && [ -f "$root/models/all-MiniLM-L6-v2/vocab.txt" ]; then
  export FANIN_FUZZ_VOCAB="$root/models/all-MiniLM-L6-v2/vocab.txt"
fi

status=0
for t in "${targets[@]}"; do
  [ -f "$root/fuzz/fuzz_$t.cpp" ] || { echo "fuzz/run.sh: unknown target '$t'" >&2; exit 2; }
  echo "== fuzz_$t: building with $cxx"
  build "$t"
  mkdir -p "$out/corpus/$t"
  opts=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=8192
        -print_final_stats=1 -artifact_prefix="$out/artifacts/$t-")
  [ -f "$root/fuzz/$t.dict" ] && opts+=(-dict="$root/fuzz/$t.dict")
  note=""
  [ "$t" = wordpiece ] && note="${FANIN_FUZZ_VOCAB:+ (vocab $FANIN_FUZZ_VOCAB)}"
  echo "== fuzz_$t: ${seconds}s$note"
  # The first corpus folder receives new inputs: keep it out of the source tree.
  if "$out/fuzz_$t" "${opts[@]}" "$out/corpus/$t" "$root/fuzz/corpus/$t" >"$out/$t.log" 2>&1; then
    grep -E "^stat::number_of_executed_units|^stat::new_units_added|^Done" "$out/$t.log" || true
    echo "== fuzz_$t: no crash"
  else
    tail -n 60 "$out/$t.log"
    echo "== fuzz_$t: FAILED (log $out/$t.log, input in $out/artifacts/)" >&2
    status=1
  fi
done
exit "$status"
