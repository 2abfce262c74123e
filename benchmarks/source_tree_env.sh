# Sourced by run_on_gpu.sh and train_on_gpu.sh: run stylepass from this source tree on a machine
# where it is not installed (the lent GPU machine: Python + torch + CUDA, no package registry).
#
# In: PYTHON (default python3), WHEELS (optional: a folder of wheels for modules Python lacks,
# installed offline with --no-deps into a temporary folder, never into that Python).
# Out: $python, $repo, PYTHONPATH with stylepass.* mapped to core/, training/, blender_addon/, and
# the shell functions `stylepass ARGS...` and `describe_device` (torch, CUDA, the GPU's name);
# exits 2 naming the modules that are still missing.

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"

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
print(" ".join(m for m in ("torch", "numpy", "OpenEXR", "PIL", "safetensors", "rich")
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

stylepass() {
    "$python" -c 'import sys; from stylepass.core.cli import main; sys.exit(main())' "$@"
}

describe_device() {
    "$python" - <<'PY'
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    print(torch.cuda.get_device_name(0))
PY
}
