#!/usr/bin/env bash
# SFNO at the paper's configurations on one GPU: the FNO-data network (width 20, modes 12 x 12 x 5,
# the card's default) and the McWilliams network (width 10, modes 32 x 32 x 5, 16.5M parameters in the
# reference's one-field form), 10 frames -> 10 frames, each trained for a few epochs on a 2D dataset
# of the suite, then evaluated with spectral refinement; prints time per epoch, peak GPU memory,
# validation NMSE and the refinement's NMSE and residual before and after.
#
#   scripts/gpu/train_sfno.sh [epochs] [dataset]      # defaults: 10, cavity
set -euo pipefail
cd "$(dirname "$0")/../.."
EPOCHS="${1:-10}"
DATASET="${2:-cavity}"
ROOT="runs/gpu/sfno"
mkdir -p "$ROOT"
train() {  # name, then --set options
  local name="$1"; shift
  cfdbench train --model sfno --dataset "$DATASET" --device cuda --epochs "$EPOCHS" --run-dir "$ROOT/$name" "$@"
  cfdbench evaluate --checkpoint "$ROOT/$name/checkpoint.pt" --dataset "$DATASET" --device cuda --refine \
    --run-dir "$ROOT/$name/evaluation"
}
train "fno-data-$DATASET"
train "mcwilliams-$DATASET" --set model.width=10 --set model.modes_x=32 --set model.modes_y=32
python - "$ROOT" "$DATASET" <<'PY'
import json, sys
from pathlib import Path
root, dataset = Path(sys.argv[1]), sys.argv[2]
print("| network | parameters | seconds per epoch | peak GPU memory (MiB) | best valid NMSE | refinement NMSE | H^-1 residual (truth) |")
print("|---|---:|---:|---:|---:|---:|---:|")
for name in (f"fno-data-{dataset}", f"mcwilliams-{dataset}"):
    history = json.loads((root / name / "history.json").read_text())
    entry = json.loads((root / name / "evaluation" / "entry.json").read_text())
    seconds = [r["epoch_seconds"] for r in history if "epoch_seconds" in r]
    memory = max((r.get("peak_memory_mib", 0) for r in history), default=0)
    refined = entry["refinement"]
    nmse, residual = refined["nmse"], refined["residual_h_minus_1"]
    print(
        f"| {name} | {entry['model']['parameter_count']:,} | {sum(seconds) / max(len(seconds), 1):.1f} | {memory:.0f} | "
        f"{min(r['valid_nmse'] for r in history):.4g} | {nmse['before']:.3g} -> {nmse['after']:.3g} | "
        f"{residual['before']:.3g} -> {residual['after']:.3g} ({residual['truth']:.3g}) |"
    )
PY
