#!/bin/bash
# Wheels that let a GPU machine with torch but no Jupyter run real `nbgrader autograde`
# (docs/gpu-check.md). Run here, where pip reaches the package index; carry the folder.
#   gpu/fetch_wheels.sh [DEST]      (default .whl, which .gitignore keeps out of git)
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${1:-.whl}
PY=${PY:-.venv/bin/python}
PYVER=${PYVER:-3.12}   # the GPU image's Python
# Already in the GPU image (its package list), or never imported by autograde:
SKIP="anyio attrs certifi charset-normalizer h11 httpcore httpx idna jinja2 markupsafe packaging pillow
prometheus-client psutil pygments python-dateutil pyyaml requests setuptools six typing-extensions urllib3
jupyterlab jupyterlab-server jupyter-lsp jupyter-builder notebook babel json5 async-lru widgetsnbextension
terminado jupyter-server-terminals send2trash websocket-client tzdata"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# the same versions as requirements.txt, minus torch and its CUDA libraries (the image has its own)
grep -viE '^(torch|torchvision|triton|nvidia-|cuda-|playwright)' requirements.txt > "$tmp/constraints.txt"
platforms=""
for p in manylinux_2_{35,34,31,28,27,26,24,17,12,5}_x86_64 manylinux2014_x86_64 manylinux2010_x86_64 manylinux1_x86_64; do
  platforms="$platforms --platform $p"
done
"$PY" -m pip download -q --only-binary=:all: --python-version "$PYVER" --implementation cp $platforms \
  --platform any -c "$tmp/constraints.txt" -d "$tmp/all" nbgrader ipywidgets nh3
mkdir -p "$DEST"
kept=0
for wheel in "$tmp"/all/*.whl; do
  name=$(basename "$wheel" | cut -d- -f1 | tr 'A-Z_.' 'a-z--')
  case " $(echo $SKIP) " in *" $name "*) continue ;; esac
  cp "$wheel" "$DEST/"; kept=$((kept + 1))
done
# The grading sandbox's bubblewrap, with the libraries it links that a non-Debian image may lack, for a
# GPU machine without it (gpu/device_run.sh puts $DEST/sandbox/bin first on PATH only when bwrap is missing).
if command -v bwrap >/dev/null; then
  mkdir -p "$DEST/sandbox/bin" "$DEST/sandbox/lib"
  cp "$(command -v bwrap)" "$DEST/sandbox/lib/bwrap"
  for lib in libselinux.so.1 libcap.so.2 libpcre2-8.so.0; do
    path=$(ldd "$(command -v bwrap)" | awk -v l="$lib" '$1 == l {print $3}')
    [ -n "$path" ] && cp -L "$path" "$DEST/sandbox/lib/"
  done
  printf '#!/bin/sh\nhere=$(dirname "$(readlink -f "$0")")/../lib\nLD_LIBRARY_PATH="$here" exec "$here/bwrap" "$@"\n' \
    > "$DEST/sandbox/bin/bwrap"
  chmod +x "$DEST/sandbox/bin/bwrap"
fi
echo "$kept wheels in $DEST ($(du -sh "$DEST" | cut -f1)); the device tool carries at most 64 MiB with the tree"
