"""Direct numerical simulation of plane channel flow in 3D (Kim–Moin lineage), in torch.

Walls at y = ±1 (half-height δ = 1), periodic streamwise x and spanwise z. Second-order finite
differences on a staggered grid; Wray's low-storage RK3 for convection and the x/z viscous
terms; Crank–Nicolson for the wall-normal viscous term, which would otherwise force tiny steps
near the clustered walls; an incremental pressure projection after every sub-step. The Poisson
problem is solved directly: FFT in x and z with the modified wavenumbers of the discrete
operator (so the projection is exact), and a per-mode eigenbasis in y.

Units: with constant pressure-gradient forcing -dP/dx = 1, the friction velocity is 1, so
ν = 1/Re_τ and time is in δ/u_τ. Constant flow rate holds the bulk velocity instead and lets the
gradient float.

Wall-normal grid: cell centres follow a tanh map, interior faces lie midway between centres, the
walls are the outer faces. The wall flux comes from the quadratic through the wall and the first
two centres. With both choices the viscous operator is exact for quadratics, so laminar
Poiseuille flow is a discrete steady state to round-off.

Arrays are (B, nx, ny, nz) with a batch of independent flows: u on x-faces, w on z-faces, p at
centres, and v on the ny + 1 y-faces including the two walls, where it stays zero.
"""

from __future__ import annotations

import math
import pickle
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from cfdbench.errors import CfdbenchError, SimulationDivergedError
from cfdbench.io import atomic_path
from cfdbench.solvers.navier_stokes import RK3_ALPHA, RK3_GAMMA, RK3_ZETA
from cfdbench.solvers.transforms import one_cpu_thread

# Refused beyond these (wall units): the usual limits of a second-order channel DNS.
DNS_LIMITS = {"first_centre_y_plus": 1.0, "dx_plus": 20.0, "dz_plus": 10.0, "centre_dy_plus": 12.0}
# RK3's stability limits: convective (imaginary axis) and explicit diffusion (real axis).
RK3_CFL_LIMIT = math.sqrt(3.0)
RK3_DIFFUSION_LIMIT = 2.5
KARMAN = 0.41
CHECKPOINT_FORMAT = "cfdbench-channel-state-1"


@dataclass(frozen=True)
class ChannelGrid:
    """``nx`` x ``ny`` x ``nz`` cells on a ``lx`` x 2 x ``lz`` box; ``stretching`` is the tanh
    clustering of the wall-normal centres (0 = uniform)."""

    nx: int
    ny: int
    nz: int
    lx: float
    lz: float
    stretching: float = 0.0

    def __post_init__(self) -> None:
        if self.nx < 1 or self.nz < 1 or self.ny < 4:
            raise CfdbenchError(f"a channel grid needs nx, nz >= 1 and ny >= 4 cells, got {self.nx} x {self.ny} x {self.nz}")
        if not (self.lx > 0 and self.lz > 0 and math.isfinite(self.lx) and math.isfinite(self.lz)):
            raise CfdbenchError(f"channel box lengths must be positive, got lx={self.lx}, lz={self.lz}")
        if not 0 <= self.stretching < 10:
            raise CfdbenchError(f"stretching must be in [0, 10), got {self.stretching}")

    @property
    def dx(self) -> float:
        return self.lx / self.nx

    @property
    def dz(self) -> float:
        return self.lz / self.nz

    def y_centres(self) -> np.ndarray:
        """Cell centres in y, clustered towards the walls by the tanh map."""
        xi = -1.0 + (2.0 * np.arange(self.ny) + 1.0) / self.ny
        if self.stretching == 0:
            return xi
        return np.tanh(self.stretching * xi) / math.tanh(self.stretching)

    def y_faces(self) -> np.ndarray:
        """The ny + 1 y-faces: walls at ±1, interior faces midway between centres."""
        centres = self.y_centres()
        return np.concatenate([[-1.0], 0.5 * (centres[1:] + centres[:-1]), [1.0]])

    def x_faces(self) -> np.ndarray:
        return np.arange(self.nx) * self.dx

    def x_centres(self) -> np.ndarray:
        return (np.arange(self.nx) + 0.5) * self.dx

    def z_faces(self) -> np.ndarray:
        return np.arange(self.nz) * self.dz

    def z_centres(self) -> np.ndarray:
        return (np.arange(self.nz) + 0.5) * self.dz

    def wall_units(self, re_tau: float) -> dict[str, float]:
        """Resolution in wall units (δ = 1): spacings and the first centre's distance from the wall."""
        centres, faces = self.y_centres(), self.y_faces()
        return {
            "first_centre_y_plus": (centres[0] + 1.0) * re_tau,
            "dx_plus": self.dx * re_tau,
            "dz_plus": self.dz * re_tau,
            "centre_dy_plus": float(np.diff(faces).max()) * re_tau,
        }

    def check_resolution(self, re_tau: float) -> None:
        """Refuse a grid too coarse for a DNS at ``re_tau``, naming every limit it breaks."""
        resolution = self.wall_units(re_tau)
        broken = [f"{key} = {resolution[key]:.3g} > {limit:g}" for key, limit in DNS_LIMITS.items() if resolution[key] > limit]
        if broken:
            raise CfdbenchError(
                f"grid {self.nx}x{self.ny}x{self.nz} is too coarse for a DNS at Re_tau = {re_tau:g}: " + "; ".join(broken)
            )


def wall_normal_operators(grid: ChannelGrid) -> dict[str, np.ndarray]:
    """The 1D wall-normal second-derivative matrices (float64) with homogeneous wall conditions.

    ``centre``: no-slip velocity at cell centres (u, w), wall flux from the quadratic through the
    wall and the first two centres; ``face``: v on the interior faces, zero on the walls;
    ``pressure``: zero-flux walls, the y-part of div(grad) (``W⁻¹ S`` with S symmetric).
    """
    centres, faces = grid.y_centres(), grid.y_faces()
    ny = grid.ny
    cell = np.diff(faces)  # cell widths (ny)
    gap = np.diff(centres)  # distances between neighbouring centres = interior faces (ny - 1)

    def centre_flux(wall_closure: bool) -> np.ndarray:
        flux = np.zeros((ny + 1, ny))  # d/dy at every face from centre values
        for j in range(1, ny):
            flux[j, j - 1], flux[j, j] = -1.0 / gap[j - 1], 1.0 / gap[j - 1]
        if wall_closure:
            for row, (first, second), sign in ((0, (0, 1), 1.0), (ny, (ny - 1, ny - 2), -1.0)):
                a, b = abs(centres[first] - faces[row]), abs(centres[second] - faces[row])
                flux[row, first] = sign * b / (a * (b - a))
                flux[row, second] = -sign * a / (b * (b - a))
        return flux

    def divergence_of(flux: np.ndarray, widths: np.ndarray) -> np.ndarray:
        return (flux[1:] - flux[:-1]) / widths[:, None]

    face_values = np.zeros((ny, ny - 1))  # d/dy at centres from interior-face values (walls zero)
    for j in range(ny):
        if j >= 1:
            face_values[j, j - 1] = -1.0 / cell[j]
        if j <= ny - 2:
            face_values[j, j] = 1.0 / cell[j]
    return {
        "centre": divergence_of(centre_flux(True), cell),
        "face": divergence_of(face_values, gap),
        "pressure": divergence_of(centre_flux(False), cell),
    }


@dataclass
class ChannelState:
    """Velocity, pressure and clock of a batch of channel flows."""

    u: Tensor
    v: Tensor
    w: Tensor
    p: Tensor
    time: float = 0.0
    steps: int = 0


class ChannelSolver:
    """Advances a batch of channel flows on one :class:`ChannelGrid`.

    Exactly one forcing: ``pressure_gradient`` (-dP/dx, constant) or ``bulk_velocity`` (the
    flow rate held by a uniform driving gradient computed at every sub-step).
    """

    def __init__(
        self,
        grid: ChannelGrid,
        nu: float,
        pressure_gradient: float | None = None,
        bulk_velocity: float | None = None,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str = "cpu",
    ):
        if not (nu > 0 and math.isfinite(nu)):
            raise CfdbenchError(f"viscosity must be positive and finite, got {nu}")
        if (pressure_gradient is None) == (bulk_velocity is None):
            raise CfdbenchError("give exactly one forcing: a pressure gradient or a bulk velocity")
        self.grid, self.nu = grid, float(nu)
        self.pressure_gradient, self.bulk_velocity = pressure_gradient, bulk_velocity
        self.dtype, self.device = dtype, torch.device(device)
        ops = wall_normal_operators(grid)
        self._lap_centre = self._tensor(ops["centre"])
        self._lap_face = self._tensor(ops["face"])
        faces, centres = grid.y_faces(), grid.y_centres()
        self.cell = self._tensor(np.diff(faces)).reshape(1, 1, -1, 1)
        self.gap = self._tensor(np.diff(centres)).reshape(1, 1, -1, 1)
        self._setup_poisson(ops["pressure"], np.diff(faces))
        self._helmholtz_cache: dict[tuple[float, int], tuple[Tensor, Tensor]] = {}

    def _tensor(self, array: np.ndarray) -> Tensor:
        return torch.as_tensor(array, dtype=self.dtype, device=self.device)

    # ------------------------------------------------------------------ direct solvers
    def _setup_poisson(self, pressure_y: np.ndarray, widths: np.ndarray) -> None:
        """Eigenbasis of the symmetrised y-operator W^½ (W⁻¹S) W^-½ and the x/z modified wavenumbers."""
        g = self.grid
        root = np.sqrt(widths)
        symmetric = root[:, None] * pressure_y / root[None, :]
        eigenvalues, basis = np.linalg.eigh(0.5 * (symmetric + symmetric.T))
        self._to_modes = self._tensor(basis.T * root[None, :])  # Q^T W^½
        self._from_modes = self._tensor(basis / root[:, None])  # W^-½ Q
        kx = (2.0 / g.dx * np.sin(np.pi * np.arange(g.nx) / g.nx)) ** 2
        kz = (2.0 / g.dz * np.sin(np.pi * np.arange(g.nz // 2 + 1) / g.nz)) ** 2
        denominator = eigenvalues[None, :, None] - kx[:, None, None] - kz[None, None, :]
        scale = np.abs(denominator).max()
        denominator[np.abs(denominator) < 1e-10 * scale] = np.inf  # the constant: zero-mean pressure
        self._poisson_denominator = self._tensor(denominator).unsqueeze(-1)  # (nx, ny, nz//2+1, 1)

    def solve_poisson(self, rhs: Tensor) -> Tensor:
        """∇²φ = rhs with zero-flux walls and zero mean (rhs must have zero mean)."""
        g = self.grid
        spectrum = torch.view_as_real(torch.fft.rfftn(rhs, dim=(1, 3)))  # (B, nx, ny, nz//2+1, 2)
        modal = torch.einsum("ij,bxjzc->bxizc", self._to_modes, spectrum) / self._poisson_denominator
        spectrum = torch.einsum("ij,bxjzc->bxizc", self._from_modes, modal)
        return torch.fft.irfftn(torch.view_as_complex(spectrum.contiguous()), s=(g.nx, g.nz), dim=(1, 3))

    def _helmholtz(self, dt: float, stage: int) -> tuple[Tensor, Tensor]:
        """Inverses of (1 - α dt ν ∂²/∂y²) for centre and face unknowns, cached per step size."""
        key = (round(dt, 15), stage)
        if key not in self._helmholtz_cache:
            if len(self._helmholtz_cache) > 12:
                self._helmholtz_cache.clear()
            coef = RK3_ALPHA[stage] * dt * self.nu
            inverses = []
            for lap in (self._lap_centre, self._lap_face):
                eye = torch.eye(lap.shape[0], dtype=torch.float64, device=self.device)
                inverses.append(torch.linalg.inv(eye - coef * lap.to(torch.float64)).to(self.dtype))
            self._helmholtz_cache[key] = (inverses[0], inverses[1])
        return self._helmholtz_cache[key]

    # ------------------------------------------------------------------ operators
    @staticmethod
    def along_y(matrix: Tensor, field: Tensor) -> Tensor:
        return torch.einsum("ij,bxjz->bxiz", matrix, field)

    @staticmethod
    def cell_centred(u: Tensor, v: Tensor, w: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The three velocity components averaged from their faces to the cell centres."""
        return 0.5 * (u + torch.roll(u, -1, 1)), 0.5 * (v[:, :, 1:] + v[:, :, :-1]), 0.5 * (w + torch.roll(w, -1, 3))

    def divergence(self, u: Tensor, v: Tensor, w: Tensor) -> Tensor:
        g = self.grid
        return (torch.roll(u, -1, 1) - u) / g.dx + (v[:, :, 1:] - v[:, :, :-1]) / self.cell + (torch.roll(w, -1, 3) - w) / g.dz

    def gradient(self, p: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """∇p on the u, v (interior faces only) and w positions."""
        g = self.grid
        return (p - torch.roll(p, 1, 1)) / g.dx, (p[:, :, 1:] - p[:, :, :-1]) / self.gap, (p - torch.roll(p, 1, 3)) / g.dz

    def _lap_xz(self, f: Tensor) -> Tensor:
        g = self.grid
        return (torch.roll(f, -1, 1) - 2 * f + torch.roll(f, 1, 1)) / g.dx**2 + (
            torch.roll(f, -1, 3) - 2 * f + torch.roll(f, 1, 3)
        ) / g.dz**2

    @staticmethod
    def _with_walls(interior: Tensor) -> Tensor:
        """Interior y-face values padded with zeros on the two walls."""
        return torch.nn.functional.pad(interior, (0, 0, 1, 1))

    def convection(self, u: Tensor, v: Tensor, w: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """∇·(uu) in divergence form (second order, conservative), at u, interior v and w points."""
        g = self.grid
        uc, vc, wc = self.cell_centred(u, v, w)
        # Products on the cell edges: (x face, y face), (x face, z face), (y face, z face).
        flux_xy = self._with_walls(0.5 * (u[:, :, 1:] + u[:, :, :-1])) * 0.5 * (v + torch.roll(v, 1, 1))
        flux_xz = 0.5 * (u + torch.roll(u, 1, 3)) * 0.5 * (w + torch.roll(w, 1, 1))
        flux_yz = 0.5 * (v + torch.roll(v, 1, 3)) * self._with_walls(0.5 * (w[:, :, 1:] + w[:, :, :-1]))
        conv_u = (
            (uc**2 - torch.roll(uc**2, 1, 1)) / g.dx
            + (flux_xy[:, :, 1:] - flux_xy[:, :, :-1]) / self.cell
            + (torch.roll(flux_xz, -1, 3) - flux_xz) / g.dz
        )
        conv_v = (
            (torch.roll(flux_xy, -1, 1) - flux_xy)[:, :, 1:-1] / g.dx
            + (vc[:, :, 1:] ** 2 - vc[:, :, :-1] ** 2) / self.gap
            + (torch.roll(flux_yz, -1, 3) - flux_yz)[:, :, 1:-1] / g.dz
        )
        conv_w = (
            (torch.roll(flux_xz, -1, 1) - flux_xz) / g.dx
            + (flux_yz[:, :, 1:] - flux_yz[:, :, :-1]) / self.cell
            + (wc**2 - torch.roll(wc**2, 1, 3)) / g.dz
        )
        return conv_u, conv_v, conv_w

    # ------------------------------------------------------------------ state
    def zeros(self, batch: int = 1) -> ChannelState:
        g = self.grid
        centre = (batch, g.nx, g.ny, g.nz)
        new = lambda shape: torch.zeros(shape, dtype=self.dtype, device=self.device)  # noqa: E731
        return ChannelState(new(centre), new((batch, g.nx, g.ny + 1, g.nz)), new(centre), new(centre))

    def laminar_state(self, batch: int = 1) -> ChannelState:
        """Plane Poiseuille flow for this forcing (the bulk velocity's parabola under constant flow rate)."""
        state = self.zeros(batch)
        y = self._tensor(self.grid.y_centres()).reshape(1, 1, -1, 1)
        state.u = (1 - y**2).expand_as(state.u).clone()
        if self.bulk_velocity is None:
            state.u = state.u * self.pressure_gradient / (2 * self.nu)
        else:  # the parabola whose discrete bulk velocity is the one held
            state.u = state.u * (self.bulk_velocity / self.bulk(state.u)).reshape(-1, 1, 1, 1)
        return state

    def turbulent_start(self, batch: int = 1, amplitude: float = 0.3, seed: int = 0) -> ChannelState:
        """Reichardt's mean profile plus large-scale random velocity (relative ``amplitude`` of the
        mean centreline velocity), projected to be divergence-free: a start that transitions.

        The perturbation holds only the box's longest waves (streamwise 1-2, spanwise 1-4, four
        wall-normal sine modes vanishing at the walls): small-scale noise would just decay.
        """
        g = self.grid
        if self.bulk_velocity is None:
            re_tau = 1.0 / self.nu
        else:  # Dean's correlation for the friction Reynolds number of a given bulk Reynolds number
            re_tau = 0.09 * (2 * self.bulk_velocity / self.nu) ** 0.88
        y_plus = (1 - np.abs(g.y_centres())) * re_tau
        mean = np.log1p(KARMAN * y_plus) / KARMAN + 7.8 * (1 - np.exp(-y_plus / 11) - y_plus / 11 * np.exp(-y_plus / 3))
        if self.bulk_velocity is not None:
            mean *= self.bulk_velocity / (np.sum(mean * np.diff(g.y_faces())) / 2)
        rng = np.random.default_rng(seed)
        state = self.zeros(batch)
        scale = amplitude * float(mean.max())
        positions = {
            "u": (g.x_faces(), g.y_centres(), g.z_centres()),
            "v": (g.x_centres(), g.y_faces(), g.z_centres()),
            "w": (g.x_centres(), g.y_centres(), g.z_faces()),
        }
        for name, (x, y, z) in positions.items():
            field = np.stack([scale * _large_scale_noise(rng, x, y, z, g.lx, g.lz) for _ in range(batch)])
            setattr(state, name, getattr(state, name) + self._tensor(field))
        state.u = state.u + self._tensor(mean).reshape(1, 1, -1, 1)
        state.u, state.v, state.w, _ = self.project(state.u, state.v, state.w)
        return state

    # ------------------------------------------------------------------ time stepping
    def project(self, u: Tensor, v: Tensor, w: Tensor, scale: float = 1.0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Remove the divergent part: u - scale ∇φ with ∇²φ = ∇·u / scale."""
        phi = self.solve_poisson(self.divergence(u, v, w) / scale)
        gx, gy, gz = self.gradient(phi)
        v = v.clone()
        v[:, :, 1:-1] = v[:, :, 1:-1] - scale * gy
        return u - scale * gx, v, w - scale * gz, phi

    def bulk(self, u: Tensor) -> Tensor:
        """Bulk (volume-mean) streamwise velocity per flow: (B,)."""
        return (u * self.cell).sum(dim=(1, 2, 3)) / (2.0 * self.grid.nx * self.grid.nz)

    def step(self, state: ChannelState, dt: float) -> ChannelState:
        """One RK3 step of size ``dt``, on one thread on a CPU (bytes independent of the thread count)."""
        with one_cpu_thread(self.device):
            return self._step(state, dt)

    def _step(self, state: ChannelState, dt: float) -> ChannelState:
        u, v, w, p = state.u, state.v, state.w, state.p
        previous = None
        for stage in range(3):
            gamma, zeta, alpha = RK3_GAMMA[stage], RK3_ZETA[stage], RK3_ALPHA[stage]
            vi = v[:, :, 1:-1]
            conv = self.convection(u, v, w)
            explicit = tuple(-c + self.nu * self._lap_xz(f) for c, f in zip(conv, (u, vi, w)))
            gx, gy, gz = self.gradient(p)
            implicit = (
                2 * alpha * (self.nu * self.along_y(self._lap_centre, u) - gx + (self.pressure_gradient or 0.0)),
                2 * alpha * (self.nu * self.along_y(self._lap_face, vi) - gy),
                2 * alpha * (self.nu * self.along_y(self._lap_centre, w) - gz),
            )
            rhs = [dt * (gamma * e + i) for e, i in zip(explicit, implicit)]
            if previous is not None:
                rhs = [r + dt * zeta * e for r, e in zip(rhs, previous)]
            previous = explicit
            inv_centre, inv_face = self._helmholtz(dt, stage)
            u_star = u + self.along_y(inv_centre, rhs[0])
            if self.bulk_velocity is not None:
                u_star = self._hold_flow_rate(u_star, inv_centre, 2 * alpha * dt)
            v_star = v.clone()
            v_star[:, :, 1:-1] = vi + self.along_y(inv_face, rhs[1])
            w_star = w + self.along_y(inv_centre, rhs[2])
            u, v, w, phi = self.project(u_star, v_star, w_star, 2 * alpha * dt)
            p = p + phi
        return ChannelState(u, v, w, p, state.time + dt, state.steps + 1)

    def _hold_flow_rate(self, u_star: Tensor, inv_centre: Tensor, weight: float) -> Tensor:
        """Add the uniform driving gradient, passed through the implicit viscous solve like any force,
        that brings the bulk velocity back to the one held (the projection leaves it unchanged)."""
        response = self.along_y(inv_centre, torch.full_like(u_star[:, :1, :, :1], weight))
        gradient = (self.bulk_velocity - self.bulk(u_star)) / self.bulk(response.expand(-1, self.grid.nx, -1, self.grid.nz))
        return u_star + gradient.reshape(-1, 1, 1, 1) * response

    def stability_numbers(self, state: ChannelState, dt: float) -> dict[str, float]:
        """Convective CFL (|u|/dx + |v|/dy + |w|/dz) dt and the explicit x/z diffusion number."""
        g = self.grid
        uc, vc, wc = self.cell_centred(state.u, state.v, state.w)
        rate = uc.abs() / g.dx + vc.abs() / self.cell + wc.abs() / g.dz
        return {"cfl": float(rate.max()) * dt, "diffusion": self.nu * dt * (4 / g.dx**2 + 4 / g.dz**2)}

    def check_time_step(self, state: ChannelState, dt: float, cfl_limit: float = RK3_CFL_LIMIT) -> None:
        """Refuse ``dt`` beyond the stability bound for this state: convective CFL above RK3's √3 (or
        a stricter ``cfl_limit``), or explicit x/z diffusion above RK3's real-axis limit."""
        if not (dt > 0 and math.isfinite(dt)):
            raise CfdbenchError(f"time step must be positive and finite, got {dt}")
        numbers = self.stability_numbers(state, dt)
        if numbers["cfl"] > cfl_limit:
            raise CfdbenchError(f"time step {dt:g} is beyond the stability bound: CFL = {numbers['cfl']:.3g} > {cfl_limit:.3g}")
        if numbers["diffusion"] > RK3_DIFFUSION_LIMIT:
            raise CfdbenchError(
                f"time step {dt:g} is beyond the explicit diffusion bound: "
                f"ν dt (4/dx² + 4/dz²) = {numbers['diffusion']:.3g} > {RK3_DIFFUSION_LIMIT:g}"
            )

    def advance(self, state: ChannelState, duration: float, dt: float, check_every: int = 50) -> ChannelState:
        """Advance by ``duration`` in fixed steps of at most ``dt``; stops with an error when the flow
        blows up (NaN/Inf or CFL beyond RK3's bound)."""
        n_steps = max(1, math.ceil(duration / dt - 1e-9))
        step = duration / n_steps
        for index in range(n_steps):
            state = self.step(state, step)
            if (index + 1) % check_every == 0 or index == n_steps - 1:
                self._check_alive(state, step)
        return state

    def _check_alive(self, state: ChannelState, dt: float) -> None:
        finite = all(bool(torch.isfinite(f).all()) for f in (state.u, state.v, state.w, state.p))
        cfl = self.stability_numbers(state, dt)["cfl"] if finite else float("nan")
        if not finite or cfl > RK3_CFL_LIMIT:
            raise SimulationDivergedError(
                f"channel flow diverged at t = {state.time:.4g} (step {state.steps}): "
                + ("NaN/Inf in the fields" if not finite else f"CFL = {cfl:.3g} > {RK3_CFL_LIMIT:.3g}")
            )

    def config(self) -> dict:
        """What a checkpoint must match to be continued by this solver."""
        return {
            "grid": asdict(self.grid),
            "nu": self.nu,
            "pressure_gradient": self.pressure_gradient,
            "bulk_velocity": self.bulk_velocity,
        }


def _large_scale_noise(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, z: np.ndarray, lx: float, lz: float) -> np.ndarray:
    """Random field of unit rms on the points (x, y, z) from the box's longest waves, zero at the walls."""
    kx = 2 * np.pi * np.arange(0, 3) / lx
    kz = 2 * np.pi * np.arange(-4, 5) / lz
    ky = np.pi * np.arange(1, 5) / 2
    coefficients = rng.standard_normal((len(kx), len(ky), len(kz))) + 1j * rng.standard_normal((len(kx), len(ky), len(kz)))
    coefficients[0, :, :4] = 0  # each (kx = 0, ±kz) pair once
    ex = np.exp(1j * np.outer(x, kx))
    sy = np.sin(np.outer(y + 1, ky))
    ez = np.exp(1j * np.outer(z, kz))
    field = np.einsum("ia,jb,kc,abc->ijk", ex, sy, ez, coefficients).real
    return field / max(field.std(), 1e-300)


# --------------------------------------------------------------------------- checkpoints


def save_checkpoint(path: str | Path, solver: ChannelSolver, state: ChannelState, extra: dict | None = None) -> Path:
    """Write the full state and the solver settings it belongs to, atomically (a long spin-up
    runs in pieces)."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "solver": solver.config(),
        "time": state.time,
        "steps": state.steps,
        "fields": {name: getattr(state, name).detach().to("cpu") for name in ("u", "v", "w", "p")},  # solver's dtype
        "extra": extra or {},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint(path: str | Path, solver: ChannelSolver) -> tuple[ChannelState, dict]:
    """The state saved at ``path`` and its ``extra`` dict; refused, with the reason, when the file is
    not a channel checkpoint, was written for other settings, or holds malformed fields."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as error:
        raise CfdbenchError(f"cannot read channel checkpoint {path}: {error}") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CfdbenchError(f"{path} is not a channel-flow checkpoint ({CHECKPOINT_FORMAT})")
    if not isinstance(payload.get("solver"), dict) or not isinstance(payload.get("fields"), dict):
        raise CfdbenchError(f"{path}: a channel-flow checkpoint without its solver settings or fields")
    saved, expected = payload["solver"], solver.config()
    differing = sorted(key for key in expected if saved.get(key) != expected[key])
    if differing:
        details = "; ".join(f"{key}: saved {saved.get(key)!r}, now {expected[key]!r}" for key in differing)
        raise CfdbenchError(f"checkpoint {path} was written for other solver settings ({details})")
    reference = solver.zeros(payload["fields"]["u"].shape[0])
    fields = {}
    for name in ("u", "v", "w", "p"):
        array = payload["fields"].get(name)
        if not torch.is_tensor(array) or array.shape != getattr(reference, name).shape:
            raise CfdbenchError(f"checkpoint {path}: field {name!r} is missing or has the wrong shape")
        if not bool(torch.isfinite(array).all()):
            raise CfdbenchError(f"checkpoint {path}: field {name!r} contains NaN or Inf")
        fields[name] = array.to(solver.device, solver.dtype)
    return ChannelState(**fields, time=float(payload["time"]), steps=int(payload["steps"])), dict(payload["extra"])
