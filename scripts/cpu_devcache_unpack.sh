# Sourced by scripts/gpu_cpu_bench.sh and scripts/gpu_cpu_sweep.sh on the
# GPU machine: unpacks .devcache/cpu (made here by scripts/cpu_devcache.sh)
# into build/cpu (oneDNN's libraries in build/cpu/lib, put on
# LD_LIBRARY_PATH) and models/all-MiniLM-L6-v2. Test binaries find tests/data
# through the source path they were built at, so that path is linked to
# this tree. Exits on failure.
for d in /work/main /work/wt/cpukern; do
  [ -e "$d" ] || { mkdir -p "$(dirname "$d")" && ln -sfn "$PWD" "$d"; }
done
source scripts/travel_libs.sh
mkdir -p build models && untar_xz .devcache/cpu/fanin.txz build &&
  tar xzf .devcache/cpu/minilm.tgz -C models && rm -rf models/all-MiniLM-L6-v2 &&
  mv models/minilm models/all-MiniLM-L6-v2 || { echo "cannot unpack .devcache/cpu"; exit 1; }
export LD_LIBRARY_PATH=$PWD/build/cpu/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
