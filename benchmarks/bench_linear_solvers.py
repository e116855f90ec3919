"""Iterations and time to one relative tolerance: DCDM against CG, Jacobi-PCG and AMG-PCG.

Usage: ``python benchmarks/bench_linear_solvers.py [--sizes 16 32 64] [--train-size 32] [--steps 400]``

The same comparison as ``cfdbench evaluate --track linear-solvers``. The systems are the suite's
own: the masked pressure Poisson problem of a walled box with a grid-aligned block
(all-Neumann, singular), right-hand side the divergence of a random velocity field. DCDM's
network is trained once, at ``--train-size``, on Ritz right-hand sides of that grid's system,
then applied at every size (the paper's claim: iteration counts largely independent of size).
Every solver stops on the same true relative residual (1e-4 and 1e-6). CG is the reference
measured in the same run; the table gives each method's iterations and its time relative to CG.

Writes the Markdown table with the environment to ``benchmarks/results/linear-solvers.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import environment_lines, publish  # noqa: E402

from cfdbench.tracks.linear_solvers import compare_linear_solvers, markdown_table  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "linear-solvers.md"


def report(rows, train_size: int, steps: int, training_seconds: float) -> str:
    header = [
        "# Linear solvers: iterations and time to a relative residual, the suite's pressure systems (CPU)",
        "",
        *environment_lines("cpu", False),
        f"- DCDM: trained at {train_size}² for {steps} Adam steps ({training_seconds:.1f} s), applied at every size",
        "",
    ]
    notes = [
        "",
        "System: walled box with a block (all-Neumann, singular; right-hand side projected to zero mean).",
        "Stop: true relative residual ‖b − Ax‖/‖b‖ for every solver; CG is the reference of the time ratio.",
        "DCDM's time includes its network calls on the CPU (no GPU), which dominate at these sizes.",
    ]
    return "\n".join(header) + markdown_table(rows) + "\n".join(notes) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--train-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--quick", action="store_true", help="smoke run: sizes 8 and 16, 20 training steps")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.train_size, args.steps = [8, 16], 8, 20
    rows, training_seconds = compare_linear_solvers(args.sizes, args.train_size, args.steps)
    publish(report(rows, args.train_size, args.steps, training_seconds), RESULTS, args.quick)


if __name__ == "__main__":
    main()
