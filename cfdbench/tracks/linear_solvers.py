"""The learned-linear-solver track: DCDM against CG, Jacobi-PCG and AMG-PCG on the suite's
pressure systems, every solver stopped on the same true relative residual.

DCDM's network is trained once, at one grid size and on one geometry, and applied at every size
to a held-out geometry of the same family: the method's claim is an iteration count largely
independent of problem size and geometry. Families: a walled box with a block (random
divergence); the cavity's and the dam's own pressure systems at their first projection from rest;
and a walled cube with a block, DCDM's own 3D problem class, run by the 3D network (its GPU sizes,
32³ to 128³, need a GPU). Results: one row per (size, tolerance, solver) with iterations,
convergence and wall time, a Markdown table, a plot of iterations against the number of unknowns,
and a published entry of the track's own kind (``evaluate --track linear-solvers --publish``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from cfdbench.errors import CfdbenchError, UnknownNameError  # noqa: E402
from cfdbench.solvers.krylov import (  # noqa: E402
    algebraic_multigrid,
    conjugate_directions,
    conjugate_gradient,
    consistent_rhs,
    jacobi,
)
from cfdbench.solvers.pressure import PressureSystem  # noqa: E402
from cfdbench.solvers.pressure_systems import (  # noqa: E402
    box_with_block_system,
    cube_with_block_system,
    flow_pressure_system,
)
from cfdbench.training.dcdm import proposal, train_dcdm  # noqa: E402

SOLVERS = ("CG", "Jacobi-PCG", "AMG-PCG", "DCDM")
TOLERANCES = (1e-4, 1e-6)
ENTRY_KIND = "linear-solvers"
CUBE_HELD_OUT_BLOCK = ((0.1, 0.3), (0.5, 1.0), (0.0, 0.5))
CAVITY = {"vel_top": 1.0, "density": 1.0, "viscosity": 0.01, "height": 1.0, "width": 1.0}
DAM = {"velocity": 1.0, "density": 100.0, "viscosity": 0.1, "height": 0.4, "width": 1.5}
DAM |= {"barrier_height": 0.1, "barrier_width": 0.05}


@dataclass(frozen=True)
class SystemFamily:
    """Systems of one kind at any size ``n``: ``build(n, held_out)`` gives the training geometry or the held-out one."""

    description: str
    build: Callable[[int, bool], PressureSystem]
    size_rule: Callable[[int], bool]  # sizes the family can be built at
    size_text: str


SYSTEMS = {
    "box": SystemFamily(
        "Walled unit box with a block (all-Neumann); trained with the block at x 0.4-0.6 from the floor to mid-height, "
        "tested with it at x 0.2-0.45 hanging from the lid to y 0.35; divergence of a random field",
        lambda n, held_out: box_with_block_system(n, block=(0.2, 0.45, 0.35, 1.0) if held_out else (0.4, 0.6, 0.0, 0.5)),
        lambda n: n >= 8 and n % 2 == 0,
        "even and at least 8",
    ),
    "cube": SystemFamily(
        "Walled unit cube with a block (7-point Laplacian, all-Neumann; DCDM's own problem class, 3D); trained with "
        "the block at x 0.4-0.6, y 0-0.5, z 0.3-0.7, tested with it at x 0.1-0.3, y 0.5-1, z 0-0.5; random right-hand side",
        lambda n, held_out: cube_with_block_system(n, CUBE_HELD_OUT_BLOCK) if held_out else cube_with_block_system(n),
        lambda n: n >= 8 and n % 2 == 0,
        "even and at least 8",
    ),
    "cavity": SystemFamily(
        "The cavity's pressure system (all-Neumann box, n x n cells) at its first projection from rest; trained on "
        "the square cavity, tested on a 2:1 wide one",
        lambda n, held_out: flow_pressure_system("cavity", {**CAVITY, "height": 0.5 if held_out else 1.0}, (n, n)),
        lambda n: n >= 8 and n % 2 == 0,
        "even and at least 8",
    ),
    "dam": SystemFamily(
        "The dam's pressure system (inlet, outlet p = 0, the barrier's cells removed; 3.75n x n cells) at its first "
        "projection from rest; trained with a 0.1 m x 0.05 m barrier, tested with a 0.15 m x 0.1 m one",
        lambda n, held_out: flow_pressure_system(
            "dam", {**DAM, "barrier_height": 0.15, "barrier_width": 0.1} if held_out else DAM, (15 * n // 4, n)
        ),
        lambda n: n >= 16 and n % 8 == 0,
        "a multiple of 8 and at least 16 (the barrier on cell faces)",
    ),
}


@dataclass(frozen=True)
class SolverRow:
    size: int
    grid: str
    unknowns: int
    tolerance: float
    solver: str
    iterations: int
    converged: bool
    seconds: float


def system_family(name: str) -> SystemFamily:
    if name not in SYSTEMS:
        raise UnknownNameError("system", name, list(SYSTEMS))
    return SYSTEMS[name]


def compare_linear_solvers(
    sizes: list[int],
    train_size: int = 32,
    train_steps: int = 400,
    tolerances: tuple[float, ...] = TOLERANCES,
    seed: int = 0,
    system: str = "box",
    memory: int = 2,
) -> tuple[list[SolverRow], float]:
    """(rows, DCDM training seconds): DCDM trained on the family's training geometry at ``train_size``,
    every solver on its held-out geometry at every size."""
    family = system_family(system)
    if not all(family.size_rule(n) for n in [*sizes, train_size]):
        raise CfdbenchError(f"{system} grid sizes must be {family.size_text}, got {sizes} and {train_size}")
    started = time.perf_counter()
    network, _ = train_dcdm(family.build(train_size, False), steps=train_steps, seed=seed)
    training_seconds = time.perf_counter() - started
    rows = []
    for n in sizes:
        test = family.build(n, True)
        matrix, rhs = test.matrix, consistent_rhs(test.matrix, test.rhs, test.singular)
        grid = "x".join(str(c) for c in reversed(test.mask.shape))
        solve = {
            "CG": lambda tol: conjugate_gradient(matrix, rhs, tol, 10 * matrix.shape[0]),
            "Jacobi-PCG": lambda tol: conjugate_gradient(matrix, rhs, tol, 10 * matrix.shape[0], jacobi(matrix)),
            "AMG-PCG": lambda tol: conjugate_gradient(matrix, rhs, tol, 1000, algebraic_multigrid(matrix)),
            "DCDM": lambda tol: conjugate_directions(matrix, rhs, proposal(network, test.mask), tol, 1000, memory),
        }
        for tol in tolerances:
            for name in SOLVERS:
                result = solve[name](tol)
                rows.append(SolverRow(n, grid, matrix.shape[0], tol, name, result.iterations, result.converged, result.seconds))
    return rows, training_seconds


def markdown_table(rows: list[SolverRow]) -> str:
    """One line per grid and tolerance: each solver's iterations, and its time relative to CG."""
    lines = [
        "| grid (unknowns) | tolerance | " + " | ".join(f"{s} iterations" for s in SOLVERS) + " | DCDM time / CG |",
        "|---|---:|" + "---:|" * (len(SOLVERS) + 1),
    ]
    for size, tol in dict.fromkeys((r.size, r.tolerance) for r in rows):
        group = {r.solver: r for r in rows if (r.size, r.tolerance) == (size, tol)}
        counts = " | ".join(f"{group[s].iterations}{'' if group[s].converged else ' (not converged)'}" for s in SOLVERS)
        ratio = group["DCDM"].seconds / max(group["CG"].seconds, 1e-12)
        lines.append(f"| {group['CG'].grid} ({group['CG'].unknowns}) | {tol:g} | {counts} | {ratio:.2f} |")
    return "\n".join(lines) + "\n"


def plot_iterations(rows: list[SolverRow], path: Path, title: str = "pressure systems") -> Path:
    """Iterations against unknowns, one line per solver, at the tightest tolerance."""
    tightest = min(r.tolerance for r in rows)
    figure, axis = plt.subplots(figsize=(5.5, 3.8))
    for solver in SOLVERS:
        points = sorted((r.unknowns, r.iterations) for r in rows if r.solver == solver and r.tolerance == tightest)
        axis.plot(*zip(*points), marker="o", label=solver)
    axis.set(xscale="log", yscale="log", xlabel="unknowns", ylabel=f"iterations to {tightest:g}", title=title)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def rows_as_dicts(rows: list[SolverRow]) -> list[dict]:
    return [asdict(r) for r in rows]


# --------------------------------------------------------------------------- entries of the track's own kind


def track_entry(
    rows: list[SolverRow], system: str, train_size: int, train_steps: int, training_seconds: float, memory: int = 2
) -> dict:
    """A published result of the track: the systems, DCDM's training, every row, and where it ran."""
    import datetime as dt

    from cfdbench.entries.entry import environment_info, make_entry_id

    hardware, software, commit = environment_info()
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    return {
        "kind": ENTRY_KIND,
        "entry_id": make_entry_id("dcdm", f"{ENTRY_KIND}-{system}", now),
        "date": now.isoformat().replace("+00:00", "Z"),
        "system": system,
        "description": system_family(system).description,
        "dcdm": {
            "train_size": train_size,
            "train_steps": train_steps,
            "training_seconds": round(training_seconds, 2),
            "memory": memory,
        },
        "rows": rows_as_dicts(rows),
        "hardware": hardware,
        "software": software,
        "git_commit": commit,
    }


def check_track_entry(entry: dict, source: str) -> None:
    """One readable line for a malformed track entry."""
    missing = {"kind", "entry_id", "system", "dcdm", "rows", "hardware", "git_commit"} - set(entry)
    if entry.get("kind") != ENTRY_KIND or missing:
        raise CfdbenchError(f"{source}: not a {ENTRY_KIND} entry (kind {entry.get('kind')!r}, missing {sorted(missing)})")
    fields = set(SolverRow.__dataclass_fields__)
    if not entry["rows"] or any(set(row) != fields or row["solver"] not in SOLVERS for row in entry["rows"]):
        raise CfdbenchError(f"{source}: every row needs exactly {sorted(fields)} and a solver of {list(SOLVERS)}")


def render_track(folder: Path) -> Path:
    """``folder/README.md``: every published entry of the track, newest first, with its plot."""
    import json

    from cfdbench.io import write_text_atomic

    entries = []
    for path in sorted(folder.glob("*.json")):
        entry = json.loads(path.read_text())
        check_track_entry(entry, str(path))
        entries.append(entry)
    lines = [
        "# Learned linear solvers: DCDM against CG and multigrid",
        "",
        "Generated by `cfdbench evaluate --track linear-solvers --publish`; do not edit. Every solver stops on the same",
        "true relative residual ‖b − Ax‖/‖b‖; DCDM is trained once on the training geometry at one size and tested on",
        "the held-out geometry at every size. Times are wall seconds on the entry's hardware, relative to CG.",
    ]
    for entry in sorted(entries, key=lambda e: e["date"], reverse=True):
        rows = [SolverRow(**row) for row in entry["rows"]]
        dcdm = entry["dcdm"]
        lines += [
            "",
            f"## {entry['system']}: {entry['date'][:10]} ({entry['hardware']['device']}, commit {entry['git_commit'][:10]})",
            "",
            f"{entry['description']}. DCDM trained at size {dcdm['train_size']} for {dcdm['train_steps']} Adam steps "
            f"({dcdm['training_seconds']:.0f} s), keeping {dcdm.get('memory', 2)} directions.",
            "",
            markdown_table(rows).rstrip(),
            "",
            f"![iterations against unknowns]({entry['entry_id']}.png) · [entry]({entry['entry_id']}.json)",
        ]
    return write_text_atomic(folder / "README.md", "\n".join(lines) + "\n")


# --------------------------------------------------------------------------- run and publish


@dataclass(frozen=True)
class TrackRun:
    """What one run of the track wrote: its folder, the markdown table, DCDM's training time and,
    when published, the track's rebuilt page."""

    folder: Path
    table: str
    training_seconds: float
    page: Path | None


def run_track(
    sizes: list[int],
    train_size: int,
    train_steps: int,
    system: str,
    memory: int,
    run_dir: Path | None = None,
    publish: bool = False,
) -> TrackRun:
    """Compare the solvers on ``system`` at ``sizes``; write table, entry and plot to ``run_dir``
    (default ``runs/<time>-linear-solvers-<system>``) and, with ``publish``, copy entry and plot to
    ``leaderboard/linear-solvers/`` and rebuild its page."""
    import datetime as dt
    import shutil

    from cfdbench.cards import project_root
    from cfdbench.io import write_json_atomic, write_text_atomic

    folder = run_dir or Path("runs") / f"{dt.datetime.now():%Y%m%dT%H%M%S}-linear-solvers-{system}"
    rows, training = compare_linear_solvers(sizes, train_size, train_steps, system=system, memory=memory)
    folder.mkdir(parents=True, exist_ok=True)
    table = markdown_table(rows)
    entry = track_entry(rows, system, train_size, train_steps, training, memory)
    write_text_atomic(folder / "linear_solvers.md", table)
    write_json_atomic(folder / "linear_solvers.json", entry)
    plot_iterations(rows, folder / "iterations.png", f"{system} pressure systems")
    page = None
    if publish:
        board = project_root() / "leaderboard" / "linear-solvers"
        board.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(folder / "iterations.png", board / f"{entry['entry_id']}.png")
        write_json_atomic(board / f"{entry['entry_id']}.json", entry)
        page = render_track(board)
    return TrackRun(folder, table, training, page)
