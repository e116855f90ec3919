"""Forward and training-step time and peak memory of every built-in model, at 64 x 64.

Usage: ``python benchmarks/bench_models.py [--batch 128] [--device cpu|cuda] [--repeats 3] [--precision fp32|bf16|fp16]``
(the same script is the GPU measurement: ``--device cuda``; ``scripts/gpu/throughput.sh`` runs it).

Each model runs in a fresh process (so one model's memory does not hide another's): built from
its card with the cavity's metadata (u, v; 5 parameters; 64 x 64), fed a random batch, timed
for ``--repeats`` forward passes (no gradient) and training steps (forward, masked NMSE,
backward, Adam step, under the trainer's precision handling) after one warm-up of each; the
median is reported, with training throughput in samples per second. Peak memory is the
growth of the process's peak resident set during the model's work on the CPU, and
``torch.cuda.max_memory_allocated`` on a GPU. The reference, measured in the same run, is the
FNO: ratios are model / FNO. Writes the table with the environment to
``benchmarks/results/models-<device>.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import describe_device, publish  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
REFERENCE = "fno"


def measure_one(name: str, batch: int, device: str, repeats: int, precision_name: str = "fp32") -> dict:
    """Runs inside the child process: time and memory of one model."""
    from cfdbench.cards import load_dataset_card, load_model_card
    from cfdbench.models.base import OperatorMeta, predict_batch
    from cfdbench.models.registry import build_model
    from cfdbench.training import precision
    from cfdbench.training.trainer import masked_loss

    card = load_dataset_card("cavity")
    meta = OperatorMeta(("u", "v"), 1, len(card.parameters), card.frame_shape, tuple(card.parameters))
    torch.manual_seed(0)
    dev = torch.device(device)
    model = build_model(name, meta, **load_model_card(name).resolve("cavity")[0]).to(dev)
    h, w = meta.grid_shape
    batch_data = {
        "input": torch.randn(batch, 2, h, w, device=dev),
        "target": torch.randn(batch, 2, h, w, device=dev),
        "mask": torch.ones(batch, 1, h, w, device=dev),
        "fluid_fraction": torch.ones(batch, 1, h, w, device=dev),
        "params": torch.randn(batch, meta.n_params, device=dev),
        "time": torch.rand(batch, device=dev),
    }
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    trainable = any(p.requires_grad for p in model.parameters())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4) if trainable else None
    mode = precision.resolve_precision(precision_name, dev)
    if mode != "fp32":
        precision.keep_spectral_float32(model)
    scaler = precision.grad_scaler(mode, dev)

    def forward() -> None:
        with torch.no_grad(), precision.autocast(mode, dev):
            predict_batch(model, batch_data, dev)
        sync()

    def train_step() -> None:
        with precision.autocast(mode, dev):
            pred = predict_batch(model, batch_data, dev)
        loss = masked_loss(pred.float(), batch_data["target"], batch_data["mask"], "nmse")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        sync()

    def median_seconds(step) -> float:
        step()  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = {"name": name, "parameters": model.parameter_count(), "forward": median_seconds(forward)}
    result["train_step"] = median_seconds(train_step) if trainable else None
    if dev.type == "cuda":
        result["peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        result["peak_mib"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024  # KiB on Linux
    return result


def run_child(name: str, args) -> dict:
    command = [sys.executable, __file__, "--child", name, "--batch", str(args.batch), "--device", args.device]
    command += ["--repeats", str(args.repeats), "--precision", args.precision]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        return {"name": name, "error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def fmt(value: float | None, digits: str = ".3f") -> str:
    return "-" if value is None else format(value, digits)


def report(rows: list[dict], args) -> str:
    ref = next(r for r in rows if r["name"] == REFERENCE)
    lines = [
        f"# Model speed and memory at 64 x 64, batch {args.batch}, {args.device}, {args.precision}",
        "",
        f"- device: {describe_device(args.device)}",
        f"- torch {torch.__version__}, Python {platform.python_version()}; {time.strftime('%Y-%m-%d %H:%M')}",
        f"- median of {args.repeats} after one warm-up; each model in a fresh process; reference: {REFERENCE}",
        "",
        "| model | parameters | forward (s) | / FNO | train step (s) | / FNO | samples/s | peak memory (MiB) | / FNO |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['name']} | failed: {r['error']} | | | | | | | |")
            continue
        train_ratio = None if r["train_step"] is None else r["train_step"] / ref["train_step"]
        throughput = None if r["train_step"] is None else args.batch / r["train_step"]
        lines.append(
            f"| {r['name']} | {r['parameters']:,} | {fmt(r['forward'])} | {r['forward'] / ref['forward']:.2f} "
            f"| {fmt(r['train_step'])} | {fmt(train_ratio, '.2f')} | {fmt(throughput, '.0f')} | {r['peak_mib']:.0f} "
            f"| {r['peak_mib'] / max(ref['peak_mib'], 1e-9):.2f} |"
        )
    lines += [
        "",
        "Peak memory on the CPU is the growth of the process's peak resident set while the model runs",
        "(activations, gradients, optimizer state); on a GPU it is torch's peak allocation.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="*", default=None, help="default: every built-in model")
    parser.add_argument("--precision", default="fp32", help="fp32, bf16 or fp16 (fp16 needs CUDA), as the trainer runs it")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="smoke run: two models, batch 4, one repeat")
    args = parser.parse_args()
    if args.quick:
        args.batch, args.repeats, args.models = 4, 1, args.models or ["unet"]
    if args.child:
        print(json.dumps(measure_one(args.child, args.batch, args.device, args.repeats, args.precision)))
        return
    from cfdbench.models.registry import builtin_model_names, get_model_class

    # DCDM is benchmarked by bench_linear_solvers.py
    names = args.models or [n for n in builtin_model_names() if not get_model_class(n).hybrid_solver]
    names = [REFERENCE] + [n for n in names if n != REFERENCE]
    rows = []
    for name in names:
        rows.append(run_child(name, args))
        print(f"  {rows[-1]}", flush=True)
    if args.quick and any("error" in row for row in rows):
        sys.exit(f"a model failed: {[row for row in rows if 'error' in row]}")
    text = report(rows, args)
    suffix = "" if args.precision == "fp32" else f"-{args.precision}"
    publish(text, RESULTS / f"models-{args.device.split(':')[0]}{suffix}.md", args.quick)


if __name__ == "__main__":
    main()
