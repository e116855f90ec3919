#!/usr/bin/env bash
# Training throughput (samples/s), step time and peak GPU memory of every zoo model at 64 x 64,
# in float32 and in bf16 (the trainer's default on CUDA), each model in a fresh process; then the
# samples/s the training loader delivers to the GPU (in-memory cache, lazy, lazy with 2 and 4
# workers, pinned memory, non-blocking copies) against the FNO's step time there.
# About 4 minutes on one modern GPU; writes benchmarks/results/models-cuda{,-bf16}.md and
# gpu-feed-cuda.md, whose tables go into docs/benchmarks.md.
#
#   scripts/gpu/throughput.sh [batch size]          # default 128 (CFDBench's)
set -euo pipefail
cd "$(dirname "$0")/../.."
BATCH="${1:-128}"
for precision in fp32 bf16; do
  python benchmarks/bench_models.py --device cuda --batch "$BATCH" --repeats 20 --precision "$precision"
done
python benchmarks/bench_gpu_feed.py --device cuda --workers 2 4
