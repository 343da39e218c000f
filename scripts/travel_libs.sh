# Sourced by the scripts that pack builds for the GPU machine.
# travel_libs DEST FILE...: copies into DEST the shared libraries that FILE...
# need and the GPU machine lacks (oneDNN and what it loads: libgomp,
# libOpenCL; ldd lists those too, it follows dependencies), stripped. The unpacking side puts DEST on LD_LIBRARY_PATH.
travel_libs() {
  local dest=$1; shift
  mkdir -p "$dest"
  local lib
  while read -r lib; do
    cp -L "$lib" "$dest/" && strip --strip-unneeded "$dest/$(basename "$lib")"
  done < <(for f in "$@"; do ldd "$f"; done |
    awk '$1 ~ /^lib(dnnl|gomp|OpenCL)\.so/ && $3 ~ /^\// {print $3}' | sort -u)
  ls "$dest"
}

# untar_xz ARCHIVE DIR: tar xJf, or Python's lzma where xz is missing.
untar_xz() {
  if command -v xz > /dev/null; then
    tar xJf "$1" -C "$2"
  else
    "${PYTHON:-python3}" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$1" "$2"
  fi
}
