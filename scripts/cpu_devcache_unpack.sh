# Sourced by scripts/gpu_cpu_bench.sh and scripts/gpu_cpu_sweep.sh on the
# GPU machine: unpacks .devcache/cpu (made here by scripts/cpu_devcache.sh)
# into build/cpu and models/all-MiniLM-L6-v2. Test binaries find tests/data
# through the source path they were built at, so that path is linked to
# this tree. Exits on failure.
for d in /work/main /work/wt/cpukern; do
  [ -e "$d" ] || { mkdir -p "$(dirname "$d")" && ln -sfn "$PWD" "$d"; }
done
mkdir -p build models && tar xzf .devcache/cpu/fanin.tgz -C build &&
  tar xzf .devcache/cpu/minilm.tgz -C models && rm -rf models/all-MiniLM-L6-v2 &&
  mv models/minilm models/all-MiniLM-L6-v2 || { echo "cannot unpack .devcache/cpu"; exit 1; }
