#!/usr/bin/env bash
# Re-run the committed tiny-preset track from scratch: every zoo model and baseline on every
# dataset the suite generates at its small size, with the same training budget for all (the
# budget is recorded in each entry), then submit and render. About 45 minutes on 2 CPU cores.
#
#   leaderboard/reproduce.sh [device]        # device: auto (default), cpu, cuda
#
# Datasets are generated first when missing; `cfdbench leaderboard submit` refuses an entry
# whose dataset hash differs from the one its card publishes.
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE="${1:-auto}"
DATASETS="cavity-mini tube-tiny dam-tiny cylinder-tiny"
MODELS="identity mean-field fno fno-cfdbench unet resnet ffn deeponet auto-ffn auto-deeponet auto-edeeponet auto-deeponet-cnn"
for dataset in $DATASETS; do
  rm -rf "leaderboard/entries/$dataset"
  for model in $MODELS; do
    cfdbench run --model "$model" --dataset "$dataset" --epochs 6 --batch-size 16 --device "$DEVICE" \
      --runs-root runs/leaderboard --publish
  done
done
cfdbench leaderboard build
