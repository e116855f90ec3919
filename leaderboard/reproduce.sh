#!/usr/bin/env bash
# Re-run the committed tiny-preset track from scratch: every zoo model and baseline on every
# dataset the suite generates at its small size, with the same training budget for all (the
# budget is recorded in each entry), then the 3D channel track, then submit and render. About an hour on
# 2 CPU cores.
#
#   leaderboard/reproduce.sh [device] [--fresh]   # device: auto (default), cpu, cuda
#
# A (dataset, model) pair that already has an entry is skipped, so an interrupted rebuild
# continues; --fresh deletes the track's entries first.
#
# Datasets are generated first when missing; `cfdbench leaderboard submit` refuses an entry
# whose dataset hash differs from the one its card publishes.
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE="${1:-auto}"
FRESH="${2:-}"
DATASETS="cavity-mini tube-tiny dam-tiny cylinder-tiny"
MODELS="identity mean-field fno fno-cfdbench unet resnet ffn deeponet auto-ffn auto-deeponet auto-edeeponet auto-deeponet-cnn"
for dataset in $DATASETS; do
  if [ "$FRESH" = "--fresh" ]; then rm -rf "leaderboard/entries/$dataset"; fi
  for model in $MODELS; do
    if ls "leaderboard/entries/$dataset/$model--$dataset--"*.json > /dev/null 2>&1; then continue; fi
    cfdbench run --model "$model" --dataset "$dataset" --epochs 6 --batch-size 16 --device "$DEVICE" \
      --runs-root runs/leaderboard --publish
  done
done
# SFNO (10-frame windows) on the cavity, with its spectral refinement reported in the entry. Two epochs:
# one takes about 10 minutes on a CPU core (a window of 10 frames per sample).
if ! ls leaderboard/entries/cavity-mini/sfno--cavity-mini--*.json > /dev/null 2>&1; then
  cfdbench run --model sfno --dataset cavity-mini --epochs 2 --batch-size 16 --device "$DEVICE" \
    --runs-root runs/leaderboard --refine --publish
fi
# The 3D channel track: the channel models and both baselines at their cards' CPU-sized settings for
# channel180-tiny, rolled out over its 30 frame intervals and scored by the channel statistics too.
CHANNEL_MODELS="identity mean-field ifactformer_m ifactformer_o fno3d"
if [ "$FRESH" = "--fresh" ]; then rm -rf "leaderboard/entries/channel180-tiny"; fi
for model in $CHANNEL_MODELS; do
  if ls "leaderboard/entries/channel180-tiny/$model--channel180-tiny--"*.json > /dev/null 2>&1; then continue; fi
  cfdbench run --model "$model" --dataset channel180-tiny --steps 30 --device "$DEVICE" \
    --runs-root runs/leaderboard --publish
done
# DCDM's hybrid on the dam: the network trained on a held-out-geometry training case's pressure system,
# then the dam's own solver projecting with it (about an hour on one CPU core: a network call per iteration).
if ! ls leaderboard/entries/dam-tiny/dcdm--dam-tiny--*.json > /dev/null 2>&1; then
  cfdbench run --model dcdm --dataset dam-tiny --device "$DEVICE" --runs-root runs/leaderboard --publish
fi
# The learned-linear-solver track (its own page, leaderboard/linear-solvers/); each run adds an entry.
if [ "$FRESH" = "--fresh" ]; then
  rm -rf leaderboard/linear-solvers
  for memory in 2 32; do
    cfdbench evaluate --track linear-solvers --system dam --size 16 --size 32 --size 64 --train-size 32 --memory "$memory" --publish
  done
  cfdbench evaluate --track linear-solvers --system cavity --size 32 --size 64 --size 128 --train-size 32 --publish
  cfdbench evaluate --track linear-solvers --system box --size 16 --size 32 --size 64 --size 128 --train-size 32 --publish
  cfdbench evaluate --track linear-solvers --system cube --size 8 --size 16 --size 32 --train-size 16 --train-steps 300 --publish
fi
cfdbench leaderboard build
