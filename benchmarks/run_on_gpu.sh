#!/usr/bin/env bash
# Run `stylepass bench` from the source tree on a machine without an installed stylepass (the
# lent GPU machine: Python + torch + CUDA, no package registry) and write the report under $OUT.
#
#   bash benchmarks/run_on_gpu.sh [extra bench options, e.g. --compile]
#
# Environment: OUT (default: ./bench-out), PYTHON (default: python3), STYLEPASS_GIT_COMMIT (the
# commit to record when the tree has no .git), WHEELS (a folder of wheels to install offline when
# numpy / OpenEXR / pillow are missing; see benchmarks/README.md).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${OUT:-$repo/bench-out}"
python="${PYTHON:-python3}"
mkdir -p "$out"

# The distribution maps core/, training/ and blender_addon/ to stylepass.*: recreate that mapping
# with symlinks (stylepass is a namespace package there) instead of installing.
shim="$(mktemp -d)"
trap 'rm -rf "$shim"' EXIT
mkdir -p "$shim/stylepass"
for part in core training blender_addon; do ln -s "$repo/$part" "$shim/stylepass/$part"; done
export PYTHONPATH="$shim${PYTHONPATH:+:$PYTHONPATH}"

missing="$("$python" - <<'PY'
import importlib.util
print(" ".join(m for m in ("torch", "numpy", "OpenEXR", "PIL", "safetensors", "rich") if importlib.util.find_spec(m) is None))
PY
)"
if [ -n "$missing" ] && [ -n "${WHEELS:-}" ]; then
    "$python" -m pip install --no-index --find-links "$WHEELS" --target "$shim/deps" \
        $(echo "$missing" | sed 's/PIL/pillow/') >/dev/null
    export PYTHONPATH="$PYTHONPATH:$shim/deps"
    missing=""
fi
if [ -n "$missing" ]; then
    echo "error: $python lacks: $missing (carry wheels and set WHEELS, see benchmarks/README.md)" >&2
    exit 2
fi

"$python" - <<'PY' | tee "$out/device.txt"
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    print(torch.cuda.get_device_name(0))
PY
"$python" -c 'import sys; from stylepass.core.cli import main; sys.exit(main())' \
    bench --device cuda --out "$out/bench_cuda.json" "$@" 2>&1 | tee "$out/bench_cuda.log"
exit "${PIPESTATUS[0]}"
