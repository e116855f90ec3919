#!/usr/bin/env bash
# Train every zoo model on a paper-preset dataset on one GPU, each within a fixed time budget,
# and collect the entries' scores in one small results file.
#
#   scripts/gpu/train_zoo.sh [dataset] [minutes per model] [models...]
#   scripts/gpu/train_zoo.sh tube-bc 8                       # default: every zoo model
#
# The dataset (default tube-bc: the tube's 50 boundary-condition cases at the paper's 320 x 32
# solver grid) is generated on the GPU by the first run if missing. Each model trains with bf16 autocast
# (spectral layers in float32) for its card's epochs or until `max_minutes` runs out, so each
# command finishes within about 10 minutes on one modern GPU. Results: runs/gpu/train_zoo-<dataset>.json.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATASET="${1:-tube-bc}"
MINUTES="${2:-8}"
shift $(( $# > 2 ? 2 : $# ))
MODELS="${*:-fno fno-cfdbench unet resnet ffn deeponet auto-ffn auto-deeponet auto-edeeponet auto-deeponet-cnn}"
OUT="runs/gpu"
mkdir -p "$OUT"
for model in $MODELS; do
  cfdbench run --model "$model" --dataset "$DATASET" --device cuda --runs-root "$OUT/train_zoo" \
    --set "training.max_minutes=$MINUTES"
done
python - "$OUT/train_zoo" "$OUT/train_zoo-$DATASET.json" <<'PY'
import json, sys
from pathlib import Path
rows = []
for entry_path in sorted(Path(sys.argv[1]).glob("*/entry.json")):
    e = json.loads(entry_path.read_text())
    rows.append({"model": e["model"]["name"], "dataset": e["dataset"]["name"], "gpu": e["hardware"]["gpu"],
                 "train_seconds": e["training"]["seconds"] if e["training"] else 0,
                 "epochs": e["training"]["epochs"] if e["training"] else 0,
                 "rollout_nmse": e["metrics"]["rollout"]["model"]["nmse"],
                 "identity_rollout_nmse": e["metrics"]["rollout"]["identity"]["nmse"],
                 "seconds_per_step": e["cost"]["seconds_per_step"],
                 "speedup_vs_solver": e["cost"].get("speedup_vs_solver")})
Path(sys.argv[2]).write_text(json.dumps(rows, indent=2) + "\n")
print(f"{len(rows)} entries summarised in {sys.argv[2]}")
PY
