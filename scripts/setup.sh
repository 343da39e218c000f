#!/usr/bin/env bash
# Installs every Debian package fanin's build and tests need. Idempotent:
# packages already present are skipped; apt-get update runs first when
# something is missing. Run as root or with sudo available.
set -euo pipefail

packages=(
  build-essential cmake ninja-build git pkg-config
  libopenblas-dev          # CPU GEMM (attention), BLAS fallback
  libdnnl-dev              # CPU GEMM of the linear layers (oneDNN: feature-based ISA dispatch)
  opencl-c-headers ocl-icd-opencl-dev  # Debian's dnnl-config.cmake requires OpenCL (its GPU runtime)
  libutf8proc-dev          # Unicode NFD and categories for the WordPiece tokenizer
  nlohmann-json3-dev       # JSON (safetensors headers, bench output)
  libcli11-dev             # the fanin CLI
  libboost1.81-dev         # Boost.Beast + Asio: the HTTP server (fanin serve)
  libgtest-dev libgmock-dev  # tests
  python3-venv python3-pip  # the fanin serve end-to-end tests' venv (tests/server/e2e/run.sh)
  python3-dev              # Python.h: pip install . builds the Python module (python/)
  libbenchmark-dev         # micro-benchmarks
  spin                     # model checking of the pool and queue protocols
  clang libclang-rt-14-dev  # libFuzzer smoke runs (fuzz/run.sh)
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "setup: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
