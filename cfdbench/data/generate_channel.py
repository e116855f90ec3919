"""Generate a turbulent-channel dataset from its card: spin-up, trajectories, filtered frames.

Stages, each resumable from restart files in ``<dataset>/restart/`` (written atomically every
``checkpoint_every`` δ/u_τ, so a GPU session can end at any moment and the next one continues):

1. **spin-up** from Reichardt's profile plus large-scale noise; DNS statistics over its last
   ``spinup.average`` time units are compared with Moser, Kim & Mansour and written to
   ``spinup.json``;
2. **trajectories**, all advanced together along the batch dimension: the spun-up field with an
   independent small perturbation each, decorrelated, then one filtered coarse frame every
   ``frame_interval``;
3. **store**: one case per trajectory (u, v, w, p on the coarse grid), then splits, training-split
   statistics and the manifest, as for every cfdbench dataset.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from cfdbench.cards import ChannelCard
from cfdbench.data.dataset_dir import is_sealed
from cfdbench.data.generate import GenerationReport, finalize_dataset
from cfdbench.data.schema import CaseRecord
from cfdbench.data.store import list_cases, remove_partials, write_case
from cfdbench.data.view import StoredDataset
from cfdbench.errors import CfdbenchError
from cfdbench.io import write_json_atomic
from cfdbench.metrics.channel import RunningProfiles, mkm_gates, profiles_in_wall_units
from cfdbench.solvers.channel import ChannelSolver, ChannelState, load_checkpoint, save_checkpoint
from cfdbench.solvers.channel_filter import ChannelFilter
from cfdbench.solvers.transforms import one_cpu_thread

DTYPES = {"float32": torch.float32, "float64": torch.float64}
STATISTICS_EVERY = 0.2  # δ/u_τ between DNS samples of the running statistics
Progress = Callable[[str, float, float], None]  # (stage, time done, stage length)


def turbulence_report(card: ChannelCard, profiles: RunningProfiles) -> dict:
    """Wall-unit statistics of the DNS and the MKM gates (meaningful for the paper's box)."""
    units = profiles_in_wall_units(profiles.profiles(), card.dns.y_centres(), card.nu)
    plain = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in units.items()}
    return {"samples": profiles.count, "wall_units": plain, "mkm_gates": mkm_gates(units)}


class ChannelGenerator:
    """Runs one channel card's stages on one device, resuming from ``<out>/restart``."""

    def __init__(self, card: ChannelCard, out_dir: Path, device: str, progress: Progress | None = None):
        self.card, self.out_dir, self.device = card, Path(out_dir), device
        self.progress = progress or (lambda stage, done, total: None)
        forcing = {"pressure_gradient": 1.0} if card.forcing == "pressure_gradient" else {"bulk_velocity": card.bulk_velocity}
        self.solver = ChannelSolver(card.dns, card.nu, dtype=DTYPES[card.dtype], device=device, **forcing)
        self.restart = self.out_dir / "restart"
        self.card_key = f"{card.name} {card.content_hash()}"  # restart files belong to one card and preset

    # ------------------------------------------------------------------ stage 1
    def _load(self, name: str) -> tuple[ChannelState, dict] | None:
        """A restart file of this card and preset, or None; one written for another card is refused."""
        path = self.restart / name
        if not path.is_file():
            return None
        state, extra = load_checkpoint(path, self.solver)
        if extra.get("card") != self.card_key:
            raise CfdbenchError(
                f"{path} was written for another card or preset ({extra.get('card')}); delete {self.restart} to start over"
            )
        return state, extra

    def _save(self, name: str, state: ChannelState, **extra) -> None:
        save_checkpoint(self.restart / name, self.solver, state, {"card": self.card_key, **extra})

    def spin_up(self) -> ChannelState:
        card = self.card
        restored = self._load("spinup.pt")
        if restored is not None:
            state, profiles = restored[0], RunningProfiles(card.dns.ny, **restored[1]["profiles"])
        else:
            state, profiles = self.solver.turbulent_start(1, card.spinup_amplitude, card.seed), RunningProfiles(card.dns.ny)
        self.solver.check_time_step(state, card.dt)
        average_from = card.spinup - card.spinup_average
        while state.time < card.spinup - 1e-9:
            chunk = min(card.checkpoint_every, card.spinup - state.time)
            state = self._advance(state, chunk, profiles, average_from, ("spin-up", card.spinup))
            self._save("spinup.pt", state, profiles=profiles.to_dict())
        if profiles.count == 0:
            raise CfdbenchError(f"{card.name}: the spin-up statistics window (spinup.average = {card.spinup_average}) is empty")
        write_json_atomic(self.out_dir / "spinup.json", {"time": state.time, **turbulence_report(card, profiles)})
        return state

    def _advance(self, state: ChannelState, duration: float, profiles: RunningProfiles, sample_from: float, stage: tuple):
        """Advance in steps of the card's dt; statistics every STATISTICS_EVERY once past ``sample_from``;
        ``stage`` = (name, length) for the progress callback."""
        samples = max(1, round(duration / STATISTICS_EVERY))
        for _ in range(samples):
            state = self.solver.advance(state, duration / samples, self.card.dt)
            if state.time >= sample_from - 1e-9:
                profiles.add(*ChannelSolver.cell_centred(state.u, state.v, state.w))
            self.progress(stage[0], state.time, stage[1])
        return state

    # ------------------------------------------------------------------ stage 2
    def trajectories(self) -> tuple[dict[str, np.ndarray], RunningProfiles]:
        """Coarse frames (trajectories, frames, nz, ny, nx) per field, and the DNS statistics over them."""
        card = self.card
        filter_ = ChannelFilter(card.dns, card.coarse, self.solver.dtype, self.device)
        restored = self._load("trajectories.pt")
        if restored is not None:
            state, extra = restored
            frames = {name: list(values.unbind(1)) for name, values in extra["frames"].items()}  # (B, T, ...) per field
            profiles = RunningProfiles(card.dns.ny, **extra["profiles"])
        else:
            state = self._perturbed_copies(self.spin_up())
            state = self.solver.advance(state, card.decorrelation, card.dt)
            frames, profiles = {name: [] for name in card.fields}, RunningProfiles(card.dns.ny)
        total = card.frame_interval * (card.frames - 1)
        last_saved = time.monotonic()
        while len(frames["u"]) < card.frames:
            if frames["u"]:
                state = self.solver.advance(state, card.frame_interval, card.dt)
                profiles.add(*ChannelSolver.cell_centred(state.u, state.v, state.w))
            for name, values in filter_(state).items():
                frames[name].append(values.to("cpu", torch.float32))
            self.progress("trajectories", (len(frames["u"]) - 1) * card.frame_interval, total)
            due = len(frames["u"]) % max(1, round(card.checkpoint_every / card.frame_interval)) == 0
            if due or time.monotonic() - last_saved > 600:
                stacked = {name: torch.stack(values, dim=1) for name, values in frames.items()}
                self._save("trajectories.pt", state, frames=stacked, profiles=profiles.to_dict())
                last_saved = time.monotonic()
        stacked = {name: torch.stack(values, dim=1).numpy() for name, values in frames.items()}  # (B, T, nz, ny, nx)
        return stacked, profiles

    def _perturbed_copies(self, state: ChannelState) -> ChannelState:
        """One copy of the spun-up field per trajectory, each with its own divergence-free perturbation."""
        count = self.card.trajectories
        copies = ChannelState(*(getattr(state, n).expand(count, -1, -1, -1).clone() for n in ("u", "v", "w", "p")), 0.0, 0)
        noise = self.solver.turbulent_start(count, amplitude=self.card.perturbation, seed=self.card.seed + 1)
        mean = noise.u.mean(dim=(1, 3), keepdim=True)  # keep only the perturbation, not a second mean profile
        copies.u, copies.v, copies.w = copies.u + noise.u - mean, copies.v + noise.v, copies.w + noise.w
        copies.u, copies.v, copies.w, _ = self.solver.project(copies.u, copies.v, copies.w)
        return copies

    # ------------------------------------------------------------------ stage 3
    def records(self, frames: dict[str, np.ndarray], statistics: dict) -> list[CaseRecord]:
        card, grid, coarse = self.card, self.card.dns, self.card.coarse
        shape = frames["u"].shape[2:]
        described = coarse.describe(grid)
        return [
            CaseRecord(
                case_id=f"traj-{index:04d}",
                subset="traj",
                params={"re_tau": card.re_tau, "length_x": grid.lx, "length_z": grid.lz},
                dt=card.frame_interval,
                x=coarse.x(grid.lx),
                y=coarse.y(),
                z=coarse.z(grid.lz),
                fields={name: frames[name][index] for name in card.fields},
                mask=np.ones(shape, dtype=bool),
                boundary_conditions={"x": "periodic", "y": "wall", "z": "periodic"},
                attrs={
                    "units": "delta = 1, u_tau = 1, nu = 1/Re_tau (stored as m, m/s, Pa with density 1)",
                    "filter": described,
                    "dns_dt": card.dt,
                    "forcing": card.forcing,
                    "measured_re_tau": statistics["wall_units"]["re_tau"],
                },
            )
            for index in range(card.trajectories)
        ]


def generate_channel_dataset(
    card: ChannelCard,
    out_dir: Path,
    fmt: str = "zarr",
    device: str = "cpu",
    progress: Progress | None = None,
    zarr_shards: bool = False,
) -> GenerationReport:
    """Simulate, filter and store a channel card's trajectories; resumes an interrupted run.
    ``zarr_shards`` stores each zarr array as one object (for object stores; ``zarr_store.py``)."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_partials(out_dir)
    case_ids = [f"traj-{index:04d}" for index in range(card.trajectories)]
    stored = list_cases(out_dir)
    if set(case_ids) <= set(stored) and is_sealed(out_dir):
        _check_same_card(card, out_dir)
        return GenerationReport(out_dir, [], case_ids, time.perf_counter() - started)
    generator = ChannelGenerator(card, out_dir, device, progress)
    if not set(case_ids) <= set(stored):
        with one_cpu_thread(device):  # the filter and statistics too: bytes independent of the thread count
            frames, profiles = generator.trajectories()
        statistics = {"time": float(card.frame_interval * (card.frames - 1)), **turbulence_report(card, profiles)}
        write_json_atomic(out_dir / "statistics.json", statistics)
        for record in generator.records(frames, statistics):
            write_case(out_dir, record, card.name, fmt=fmt, zarr_shards=zarr_shards)
    _finalize(card, out_dir, case_ids, fmt, device)
    return GenerationReport(out_dir, case_ids, [], time.perf_counter() - started)


def _check_same_card(card: ChannelCard, out_dir: Path) -> None:
    if StoredDataset(out_dir).metadata.card_sha256 != card.content_hash():
        raise CfdbenchError(f"{out_dir} was generated from another version of {card.name}'s card; move it away to regenerate")


def _finalize(card: ChannelCard, out_dir: Path, case_ids: list[str], fmt: str, device: str) -> None:
    """Splits, statistics and the manifest as for every dataset; the restart files go first."""
    shutil.rmtree(out_dir / "restart", ignore_errors=True)  # temporaries of a killed write included
    spinup = json.loads((out_dir / "spinup.json").read_text()) if (out_dir / "spinup.json").is_file() else {}
    generator = {
        "dns": asdict(card.dns),
        "dt": card.dt,
        "dtype": card.dtype,
        "re_tau": card.re_tau,
        "forcing": card.forcing,
        "spinup": card.spinup,
        "spinup_re_tau": spinup.get("wall_units", {}).get("re_tau", math.nan),
    }
    finalize_dataset(card, out_dir, case_ids, fmt, device, generator)
