"""`cfdbench evaluate` against a bare loop of the same forward calls: what the evaluation costs beyond the model.

Usage (the dataset must exist: `cfdbench data generate cavity-mini`):

    python benchmarks/bench_evaluate.py                      # cavity-mini, FNO, 5 repeats
    python benchmarks/bench_evaluate.py --cfdbench-root /tmp/before   # also time another checkout's evaluate

Both sides run as fresh processes, so the interpreter's start and every import count, as a user pays
them; they alternate (A B A B ...) and the medians of ``--repeats`` are reported:

- **evaluate**: ``python -m cfdbench evaluate --checkpoint C --dataset D --device cpu --no-plots``
  (a checkout whose evaluate has no ``--no-plots`` runs without it: it always drew its figures);
- **bare loop**: a script that imports torch and cfdbench's checkpoint loader, loads C, reads the test
  cases' frames from their files and makes the same forward calls: the one-step pairs of the split in
  batches of 32, then one call per rollout step for all test cases together. Nothing else.

The checkpoint is an untrained FNO at its card's size for the dataset, with the training split's
normalisation: the time of a forward call does not depend on the weights. ``--quick`` uses the first
five cases of cavity-mini, generated into a scratch folder.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import environment_lines, publish  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"

# The bare loop, run as its own process: argv = checkpoint, dataset folder, rollout steps, start frame.
BARE_LOOP = r"""
import sys
import numpy as np
import torch
from cfdbench.data.resolve import open_dataset
from cfdbench.models.registry import load_checkpoint

checkpoint, folder, steps, start = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
model, extra = load_checkpoint(checkpoint)
model.eval()
norm = extra["normalization"]
mean = torch.tensor(norm["field_mean"], dtype=torch.float32)[:, None, None]
std = torch.tensor(norm["field_std"], dtype=torch.float32)[:, None, None]
dataset = open_dataset(folder)
frames, masks, params = [], [], []
for case_id in dataset.split("test"):
    with dataset.open_case(case_id) as case:
        frames.append((torch.from_numpy(case.read(("u", "v"), slice(None))) - mean) / std)
        masks.append(torch.from_numpy(np.asarray(case.mask, dtype=np.float32))[None])
        params.append(torch.zeros(len(case.params)))
pairs = [(c, f) for c, case in enumerate(frames) for f in range(len(case) - 1)]
with torch.no_grad():
    for first in range(0, len(pairs), 32):
        batch = pairs[first : first + 32]
        inputs = torch.stack([frames[c][f] for c, f in batch])
        model(inputs, torch.stack([masks[c] for c, _ in batch]), torch.stack([params[c] for c, _ in batch]))
    window = torch.stack([case[start] for case in frames])
    mask, scaled = torch.stack(masks), torch.stack(params)
    for _ in range(steps):
        window = model(window, mask, scaled)
print(len(range(0, len(pairs), 32)) + steps, "forward calls")
"""


def make_checkpoint(dataset: Path, out: Path) -> Path:
    """An untrained FNO at its card's cavity-mini size, with the training split's normalisation."""
    from cfdbench.cards import load_model_card
    from cfdbench.data.loader import AutoregressiveDataset
    from cfdbench.data.resolve import open_dataset
    from cfdbench.models.registry import build_model, save_checkpoint
    from cfdbench.pipeline import operator_meta

    samples = AutoregressiveDataset(open_dataset(dataset), "train")
    hparams, training = load_model_card("fno").resolve("cavity-mini")
    model = build_model("fno", operator_meta(samples), **hparams)
    return save_checkpoint(model, out, normalization=samples.normalization.to_dict(), train_config=training)


def quick_dataset(folder: Path) -> Path:
    """The first five cases of cavity-mini, generated into ``folder``."""
    from cfdbench.cards import load_dataset_card
    from cfdbench.data.generate import generate_dataset

    card = load_dataset_card("cavity-mini")
    generate_dataset(card, folder / card.name, max_cases=5)
    return folder / card.name


def evaluate_command(checkpoint: Path, dataset: Path, steps: int, root: Path | None, run_dir: Path) -> tuple[list[str], dict]:
    """The evaluate command line and environment for the checkout at ``root`` (default: this one)."""
    paths = [str(root) if root else "", os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in paths if path)}
    probe = subprocess.run(
        [sys.executable, "-m", "cfdbench", "evaluate", "--help"], env=env, capture_output=True, text=True, cwd=run_dir.parent
    )
    plots = ["--no-plots"] if "--no-plots" in probe.stdout else []
    command = [sys.executable, "-m", "cfdbench", "evaluate", "--checkpoint", str(checkpoint), "--dataset", str(dataset)]
    return command + ["--steps", str(steps), "--device", "cpu", "--run-dir", str(run_dir), *plots], env


def timed(command: list[str], env: dict | None, cwd: Path) -> tuple[float, str]:
    """(wall seconds, standard output) of a command run to its end in ``cwd`` (not a checkout: the
    current folder comes first on ``python -m``'s path)."""
    started = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=cwd)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])}... failed:\n{result.stderr[-3000:]}")
    return time.perf_counter() - started, result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=None, help="dataset folder (default: cavity-mini in the data folder)")
    parser.add_argument("--steps", type=int, default=20, help="rollout steps")
    parser.add_argument("--start-frame", type=int, default=None, help="rollout start (default: the dataset card's)")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each side")
    parser.add_argument("--cfdbench-root", type=Path, action="append", default=[], help="another checkout to time (repeatable)")
    parser.add_argument("--quick", action="store_true", help="smoke run: five cavity-mini cases, two repeats")
    args = parser.parse_args()

    from cfdbench.cards import data_root
    from cfdbench.data.resolve import open_dataset
    from cfdbench.evaluation.rollout import rollout_task

    with tempfile.TemporaryDirectory(prefix="cfdbench-bench-evaluate-") as scratch:
        scratch = Path(scratch)
        dataset = (quick_dataset(scratch) if args.quick else (args.dataset or data_root() / "cavity-mini")).resolve()
        repeats = 2 if args.quick else args.repeats
        checkpoint = make_checkpoint(dataset, scratch / "fno.pt")
        start = rollout_task(open_dataset(dataset), steps=args.steps, start_frame=args.start_frame).start_frame
        bare = [sys.executable, "-c", BARE_LOOP, str(checkpoint), str(dataset), str(args.steps), str(start)]
        sides = {"bare loop": (bare, None)}
        for label, root in [("evaluate", None)] + [(f"evaluate ({r})", r) for r in args.cfdbench_root]:
            sides[label] = evaluate_command(checkpoint, dataset, args.steps, root, scratch / "run")
        times: dict[str, list[float]] = {label: [] for label in sides}
        calls = ""
        for repeat in range(repeats):
            for label, (command, env) in sides.items():
                seconds, output = timed(command, env, scratch)
                times[label].append(seconds)
                if label == "bare loop":
                    calls = output.strip()
                print(f"  {repeat + 1}/{repeats} {label}: {seconds:.2f} s", flush=True)
    medians = {label: statistics.median(values) for label, values in times.items()}
    lines = [
        f"# `cfdbench evaluate` against a bare loop of the same forward calls ({dataset.name})",
        "",
        *environment_lines("cpu", args.quick),
        f"- checkpoint: untrained FNO (card size for cavity-mini); rollout {args.steps} steps from frame {start}; "
        f"{repeats} alternated runs per side, fresh processes (interpreter start and imports included); "
        f"the bare loop makes {calls}",
        "",
        "| side | median s | min s | max s | / bare loop | overhead s (median over runs of side - bare loop) |",
        "|---|---:|---:|---:|---:|---:|",
        *(
            f"| {label} | {medians[label]:.2f} | {min(times[label]):.2f} | {max(times[label]):.2f} | "
            f"{medians[label] / medians['bare loop']:.2f}x | "
            f"{statistics.median(a - b for a, b in zip(times[label], times['bare loop'])):.2f} |"
            for label in sides
        ),
    ]
    publish("\n".join(lines) + "\n", RESULTS / f"evaluate-{dataset.name}-cpu.md", args.quick)


if __name__ == "__main__":
    main()
