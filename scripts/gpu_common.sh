# Sourced by the scripts/gpu_*.sh runs on the GPU machine: log to
# $OUT/log.txt, find the CUDA libraries, make the source tree reachable at
# the path the test binaries were built at, and unpack the carried build
# (.devcache/gpu.tgz: the `gpu` preset) and, when present, the model folder
# (.devcache/minilm.tgz, made by scripts/prune_model.py).
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
if [ "$PWD" != /work/main ]; then mkdir -p /work && ln -sfn "$PWD" /work/main; fi
mkdir -p build && tar xzf .devcache/gpu.tgz -C build
if [ -f .devcache/minilm.tgz ]; then
  mkdir -p models && tar xzf .devcache/minilm.tgz -C models && rm -rf models/all-MiniLM-L6-v2 &&
    mv models/minilm models/all-MiniLM-L6-v2
fi
day=$(date -u +%Y-%m-%d)
