#!/usr/bin/env bash
# A short real training of each model family from the source tree (the lent GPU machine has no
# installed stylepass): `stylepass train` of the toon preset's config (pix2pix U-Net) and of the
# enhance preset's config (RAD generator) on their datasets, then one JSON of the figures.
#
#   bash benchmarks/train_on_gpu.sh UNET_DATASET RAD_DATASET [STEPS (default 1000)]
#
# The datasets are `build.py train-preset` outputs (.build/presets/{toon,enhance}/dataset), carried
# to the machine. Writes $OUT/training_<device>.json (steps/s, peak memory, validation PSNR/SSIM
# at the first and last step, per family), each run's metrics.jsonl and the logs.
# Environment: OUT (default: ./train-out), DEVICE (default: cuda), PYTHON, WHEELS as in
# source_tree_env.sh.
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: bash benchmarks/train_on_gpu.sh UNET_DATASET RAD_DATASET [STEPS]" >&2
    exit 2
fi
unet_data="$1" rad_data="$2" steps="${3:-1000}"
out="${OUT:-$(pwd)/train-out}"
device="${DEVICE:-cuda}"
mkdir -p "$out"
source "$(dirname "${BASH_SOURCE[0]}")/source_tree_env.sh"
describe_device | tee "$out/device.txt"

runs="$(mktemp -d)"
for family in unet rad; do
    if [ "$family" = unet ]; then preset=toon data="$unet_data"; else preset=enhance data="$rad_data"; fi
    stylepass train "$repo/presets/$preset/train.toml" --data "$data" --out "$runs/$family" \
        --device "$device" --steps "$steps" 2>&1 | tee "$out/train_$family.log"
    cp "$runs/$family/metrics.jsonl" "$out/metrics_$family.jsonl"
done

"$python" - "$runs" "$out/training_$device.json" "$steps" <<'PY'
import json, sys
from pathlib import Path
import torch
from stylepass.training.loop.run_log import read_metrics, throughput_summary
from stylepass.training.bench.environment import environment

runs, report_path, steps = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
report = {"environment": environment(torch.device("cuda" if torch.cuda.is_available() else "cpu")),
          "steps": steps, "families": {}}
for family, preset in (("unet", "toon"), ("rad", "enhance")):
    records = read_metrics(runs / family)
    validation = [r for r in records if "val/psnr" in r]
    report["families"][family] = {
        "config": f"presets/{preset}/train.toml", **throughput_summary(records),
        "first_validation": validation[0] if validation else None,
        "last_validation": validation[-1] if validation else None,
    }
report_path.write_text(json.dumps(report, indent=2) + "\n")
print(json.dumps(report["families"], indent=2))
PY
