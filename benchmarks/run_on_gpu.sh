#!/usr/bin/env bash
# Run `stylepass bench` from the source tree on a machine without an installed stylepass (the
# lent GPU machine) and write the report under $OUT.
#
#   bash benchmarks/run_on_gpu.sh [extra bench options, e.g. --compile]
#
# Environment: OUT (default: ./bench-out), DEVICE (default: cuda; cpu to try the script anywhere,
# with --quick), STYLEPASS_GIT_COMMIT (the commit to record when the tree has no .git), and
# PYTHON, WHEELS as in source_tree_env.sh (the device machine lacks only OpenEXR: see README.md).
set -euo pipefail
out="${OUT:-$(pwd)/bench-out}"
device="${DEVICE:-cuda}"
mkdir -p "$out"
source "$(dirname "${BASH_SOURCE[0]}")/source_tree_env.sh"
describe_device | tee "$out/device.txt"
stylepass bench --device "$device" --out "$out/bench_$device.json" "$@" 2>&1 | tee "$out/bench_$device.log"
exit "${PIPESTATUS[0]}"
