#!/usr/bin/env bash
# The channel models at the paper configuration on one GPU: IFactFormer-m, IFactFormer-o and the
# 3D FNO trained on channel180 (generate it first with scripts/gpu/channel180.sh), each for a few
# epochs, then their time per epoch and peak GPU memory, read from each run's history.json
# (the trainer records epoch_seconds and peak_memory_mib on CUDA).
#
#   scripts/gpu/train_channel.sh [epochs] [dataset]      # defaults: 2, channel180
set -euo pipefail
cd "$(dirname "$0")/../.."
EPOCHS="${1:-2}"
DATASET="${2:-channel180}"
ROOT="runs/gpu/channel"
mkdir -p "$ROOT"
for model in ifactformer_m ifactformer_o fno3d; do
  cfdbench train --model "$model" --dataset "$DATASET" --device cuda --epochs "$EPOCHS" --run-dir "$ROOT/$model-$DATASET"
done
python - "$ROOT" "$DATASET" <<'PY'
import json, sys
from pathlib import Path
root, dataset = Path(sys.argv[1]), sys.argv[2]
print(f"| model | epochs | seconds per epoch | peak GPU memory (MiB) | best valid NMSE |")
print("|---|---:|---:|---:|---:|")
for model in ("ifactformer_m", "ifactformer_o", "fno3d"):
    history = json.loads((root / f"{model}-{dataset}" / "history.json").read_text())
    seconds = [r["epoch_seconds"] for r in history if "epoch_seconds" in r]
    memory = max((r.get("peak_memory_mib", 0) for r in history), default=0)
    best = min(r["valid_nmse"] for r in history)
    print(f"| {model} | {len(history)} | {sum(seconds) / max(len(seconds), 1):.1f} | {memory:.0f} | {best:.4g} |")
PY
