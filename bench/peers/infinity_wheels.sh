#!/usr/bin/env bash
# Downloads into .whl/ (git-ignored: /.whl/ in .git/info/exclude) the wheels
# that Infinity's server (infinity-emb[server] 0.0.78) needs and that the GPU
# machine's image lacks or holds in a version Infinity cannot start with, for
# CPython 3.12 on x86-64 Linux. Run here (where PyPI is reached); the device
# call then names `.whl` in its carry list and bench/peers/infinity_serve.sh
# installs them with `pip install --no-index --no-deps --target /tmp/site`.
#
# One version of each package (two stop the whole install), pinned so that
# every Requires-Dist among them and the image's packages is met:
#   infinity-emb[server] 0.0.78: fastapi, orjson, prometheus-fastapi-
#     instrumentator, pydantic 2, typer <0.13 (with click <8.2: typer 0.12
#     breaks on click 8.2's make_metavar), uvicorn[standard] <0.33 (its
#     server runs uvicorn with http="httptools"); posthog is left out
#     (telemetry only, optional in infinity_emb/telemetry.py; DO_NOT_TRACK=1)
#     and rich, anyio, h11, uvloop, prometheus-client, typing-extensions,
#     shellingham, requests are the image's.
#   fastapi 0.115.14 -> starlette >=0.40,<0.47; pydantic 2.11.10 ->
#     pydantic-core ==2.33.2, annotated-types, typing-inspection.
#   infinity-emb[torch] -> sentence-transformers <4 (3.4.1) -> transformers
#     <5 (4.57.6), which at import checks huggingface-hub <1.0 (0.36.2; the
#     image has 1.x) and tokenizers <=0.23.0 (0.22.2; the image has 0.23.2).
#   infinity-emb asks numpy <2; the image's numpy 2 is kept (torch, scipy and
#     scikit-learn there are built against it), as in the run of 2026-12-01.
# Usage: bash bench/peers/infinity_wheels.sh   (from the repository root)
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
WHEELS=(
  infinity-emb==0.0.78
  fastapi==0.115.14
  starlette==0.46.2
  pydantic==2.11.10
  pydantic-core==2.33.2
  annotated-types==0.7.0
  typing-inspection==0.4.1
  orjson==3.10.18
  prometheus-fastapi-instrumentator==7.1.0
  uvicorn==0.32.1
  httptools==0.6.4
  typer==0.12.5
  click==8.1.8
  transformers==4.57.6
  sentence-transformers==3.4.1
  tokenizers==0.22.2
  huggingface-hub==0.36.2
)
mkdir -p .whl
# A wheel left from another pin would make two versions of one package.
for f in .whl/*.whl; do
  [ -e "$f" ] || continue
  name=$(basename "$f" | cut -d- -f1 | tr '_' '-' | tr 'A-Z' 'a-z')
  keep=0
  for w in "${WHEELS[@]}"; do
    n=${w%%==*}; v=${w##*==}
    [ "$(echo "$n" | tr '_' '-')" = "$name" ] && [[ $(basename "$f") == *-"$v"-* ]] && keep=1
  done
  [ $keep = 1 ] || { echo "removing stale $f"; rm -f "$f"; }
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --abi cp312 --abi abi3 --abi none \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 --platform any \
  -d .whl "${WHEELS[@]}"
ls -1 .whl
echo "wheels: $(ls .whl/*.whl | wc -l) files, $(du -sh .whl | cut -f1)"
