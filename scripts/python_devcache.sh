# Sourced by scripts/gpu_python.sh and scripts/gpu_python_gil.sh: unpacks
# the carried .devcache/python ($D; made here by scripts/build_python_wheel.sh)
# on the GPU machine: the model folder, the CLI build into /tmp, and the
# wheel into /tmp/fanin-site, which goes first on PYTHONPATH of $py (the
# Python that has torch: on the GPU machine python3 is itself a venv, so a
# venv made from it with --system-site-packages would see the base
# interpreter's packages, not its numpy and torch). Exits on failure.
[ "${DRY:-0}" = 1 ] || nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
mkdir -p models && tar xzf "$D/minilm.tgz" -C models && rm -rf models/all-MiniLM-L6-v2 &&
  mv models/minilm models/all-MiniLM-L6-v2 || { echo "cannot unpack $D/minilm.tgz"; exit 1; }
tar xzf "$D/fanin-cli.tgz" -C /tmp || { echo "cannot unpack $D/fanin-cli.tgz"; exit 1; }
rm -rf /tmp/fanin-site
py=${PYTHON:-python3}
$py -m pip install -q --no-index --no-deps --target /tmp/fanin-site "$D"/fanin-*.whl || exit 1
export PYTHONPATH=/tmp/fanin-site${PYTHONPATH:+:$PYTHONPATH}
