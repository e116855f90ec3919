#!/usr/bin/env bash
# Training throughput (samples/s), step time and peak GPU memory of every zoo model at 64 x 64,
# in float32 and in bf16 (the trainer's default on CUDA), each model in a fresh process.
# About 2 minutes on one modern GPU; writes benchmarks/results/models-cuda{,-bf16}.md, whose
# tables go into docs/benchmarks.md.
#
#   scripts/gpu/throughput.sh [batch size]          # default 128 (CFDBench's)
set -euo pipefail
cd "$(dirname "$0")/../.."
BATCH="${1:-128}"
for precision in fp32 bf16; do
  python benchmarks/bench_models.py --device cuda --batch "$BATCH" --repeats 20 --precision "$precision"
done
