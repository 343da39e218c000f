# Sourced by the scripts that pack a model for the GPU machine
# (bench/http_load/pack_devcache.sh, scripts/cpu_devcache.sh,
# scripts/build_python_wheel.sh). travel_python [PY] prints a Python that
# has numpy and tokenizers (scripts/prune_model.py and
# bench/http_load/travel_model.py need them): PY (default python3) when it
# has both, else .cache/travel-venv, made from PyPI on first use.
travel_python() {
  local py=${1:-python3}
  if ! "$py" -c 'import numpy, tokenizers' 2> /dev/null; then
    if [ ! -x .cache/travel-venv/bin/python ]; then
      python3 -m venv .cache/travel-venv >&2 &&
        .cache/travel-venv/bin/pip install -q numpy tokenizers >&2 || return 1
    fi
    py=.cache/travel-venv/bin/python
  fi
  echo "$py"
}
