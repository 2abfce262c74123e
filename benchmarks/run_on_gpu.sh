#!/usr/bin/env bash
# Run `stylepass bench` from the source tree on a machine without an installed stylepass (the
# lent GPU machine: Python + torch + CUDA, no package registry) and write the report under $OUT.
#
#   bash benchmarks/run_on_gpu.sh [extra bench options, e.g. --compile]
#
# Environment: OUT (default: ./bench-out), PYTHON (default: python3), DEVICE (default: cuda; cpu
# to try the script anywhere, with --quick), STYLEPASS_GIT_COMMIT (the commit to record when the
# tree has no .git), WHEELS (a folder of wheels for the modules that Python lacks, installed
# offline into a temporary folder; the device machine lacks only OpenEXR: see benchmarks/README.md).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${OUT:-$repo/bench-out}"
python="${PYTHON:-python3}"
device="${DEVICE:-cuda}"
mkdir -p "$out"

# The distribution maps core/, training/ and blender_addon/ to stylepass.*: recreate that mapping
# with symlinks (stylepass is a namespace package there) instead of installing.
shim="$(mktemp -d)"
trap 'rm -rf "$shim"' EXIT
mkdir -p "$shim/stylepass"
for part in core training blender_addon; do ln -s "$repo/$part" "$shim/stylepass/$part"; done
export PYTHONPATH="$shim${PYTHONPATH:+:$PYTHONPATH}"

missing_modules() {
    "$python" - <<'PY'
import importlib.util
print(" ".join(m for m in ("torch", "numpy", "OpenEXR", "PIL", "safetensors", "rich", "tqdm")
               if importlib.util.find_spec(m) is None))
PY
}

missing="$(missing_modules)"
if [ -n "$missing" ] && [ -n "${WHEELS:-}" ]; then
    # --no-deps: the wheels' own needs (numpy for OpenEXR) are the machine's; nothing is fetched
    "$python" -m pip install -q --no-index --no-deps --no-compile --target "$shim/deps" "$WHEELS"/*.whl
    export PYTHONPATH="$PYTHONPATH:$shim/deps"
    missing="$(missing_modules)"
fi
if [ -n "$missing" ]; then
    echo "error: $python lacks: $missing (carry wheels for them and set WHEELS, see benchmarks/README.md)" >&2
    exit 2
fi

"$python" - <<'PY' | tee "$out/device.txt"
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    print(torch.cuda.get_device_name(0))
PY
"$python" -c 'import sys; from stylepass.core.cli import main; sys.exit(main())' \
    bench --device "$device" --out "$out/bench_$device.json" "$@" 2>&1 | tee "$out/bench_$device.log"
exit "${PIPESTATUS[0]}"
