"""An independent explicit cavity solver in NumPy/SciPy: the kind of code a user writes in an afternoon.

The speed reference of ``bench_solver.py`` for the time to a steady lid-driven cavity. It is written
from the textbook method, not from cfdbench's solver:

- MAC grid on the unit square, lid speed 1 at the top, ν = 1/Re; u: (ny, nx + 1) with both wall
  faces, v: (ny + 1, nx); no-slip by ghost values (2 * wall - neighbour);
- conservative central convection and the five-point Laplacian, both explicit, Adams–Bashforth 2
  (forward Euler for the first step);
- Chorin's projection: ∇²p = ∇·u* / dt with zero-gradient walls, solved by a type-II DCT in both
  directions (``scipy.fft.dctn``), then u = u* - dt ∇p;
- the largest stable step: dt = 0.9 min(h² / (8ν), 0.5 h / |u|max) (AB2's diffusion bound on the
  negative real axis and a convective CFL of 0.5).

It runs one case at a time, in float32 or float64, on one thread (``workers=1``).
"""

from __future__ import annotations

import numpy as np
import scipy.fft


class ExplicitCavity:
    """Lid-driven cavity on an ``n`` x ``n`` MAC grid, Re = ``reynolds``."""

    def __init__(self, n: int, reynolds: float, dtype=np.float64):
        self.n, self.dtype = n, dtype
        self.h = 1.0 / n
        self.nu = 1.0 / reynolds
        self.u = np.zeros((n, n + 1), dtype)
        self.v = np.zeros((n + 1, n), dtype)
        self.previous: tuple[np.ndarray, np.ndarray] | None = None
        k = np.arange(n)
        eigen = -4 * np.sin(np.pi * k / (2 * n)) ** 2 / self.h**2
        denominator = eigen[:, None] + eigen[None, :]
        denominator[0, 0] = np.inf  # the free constant: zero-mean pressure
        self.denominator = denominator.astype(dtype)
        self.dt = dtype(0.9 * min(self.h**2 / (8 * self.nu), 0.5 * self.h / 1.0))

    def tendencies(self) -> tuple[np.ndarray, np.ndarray]:
        """-∇·(uu) + ν∇²u on the interior u and v faces."""
        n, h, nu = self.n, self.h, self.dtype(self.nu)
        up = np.empty((n + 2, n + 1), self.dtype)
        up[1:-1] = self.u
        up[0] = -self.u[0]
        up[-1] = 2 - self.u[-1]
        vp = np.empty((n + 1, n + 2), self.dtype)
        vp[:, 1:-1] = self.v
        vp[:, 0] = -self.v[:, 0]
        vp[:, -1] = -self.v[:, -1]
        # u-momentum on interior faces (rows 0..n-1, columns 1..n-1)
        uc = 0.5 * (up[1:-1, 1:] + up[1:-1, :-1])  # cell centres
        uy = 0.5 * (up[1:, 1:-1] + up[:-1, 1:-1])  # corners, interior x-faces
        vx = 0.5 * (vp[:, 1:-2] + vp[:, 2:-1])  # corners
        fu = -(uc[:, 1:] ** 2 - uc[:, :-1] ** 2) / h - (uy[1:] * vx[1:] - uy[:-1] * vx[:-1]) / h
        fu += nu * (up[1:-1, 2:] + up[1:-1, :-2] + up[2:, 1:-1] + up[:-2, 1:-1] - 4 * up[1:-1, 1:-1]) / h**2
        # v-momentum on interior faces (rows 1..n-1, columns 0..n-1)
        vc = 0.5 * (vp[1:, 1:-1] + vp[:-1, 1:-1])
        vx2 = 0.5 * (vp[1:-1, 1:] + vp[1:-1, :-1])  # corners, interior y-faces
        uy2 = 0.5 * (up[1:-2, :] + up[2:-1, :])
        fv = -(vc[1:] ** 2 - vc[:-1] ** 2) / h - (vx2[:, 1:] * uy2[:, 1:] - vx2[:, :-1] * uy2[:, :-1]) / h
        fv += nu * (vp[2:, 1:-1] + vp[:-2, 1:-1] + vp[1:-1, 2:] + vp[1:-1, :-2] - 4 * vp[1:-1, 1:-1]) / h**2
        return fu, fv

    def step(self) -> float:
        """One AB2 step and projection; returns max |Δu|, |Δv| / dt (the steady residual)."""
        dt = self.dt
        fu, fv = self.tendencies()
        if self.previous is None:
            du, dv = dt * fu, dt * fv
        else:
            du, dv = dt * (1.5 * fu - 0.5 * self.previous[0]), dt * (1.5 * fv - 0.5 * self.previous[1])
        self.previous = (fu, fv)
        u, v = self.u.copy(), self.v.copy()
        u[:, 1:-1] += du
        v[1:-1] += dv
        divergence = (u[:, 1:] - u[:, :-1] + v[1:] - v[:-1]) / self.h
        modal = scipy.fft.dctn(divergence / dt, type=2, norm="ortho", workers=1) / self.denominator
        p = scipy.fft.idctn(modal, type=2, norm="ortho", workers=1)
        u[:, 1:-1] -= dt * (p[:, 1:] - p[:, :-1]) / self.h
        v[1:-1] -= dt * (p[1:] - p[:-1]) / self.h
        residual = max(np.abs(u - self.u).max(), np.abs(v - self.v).max()) / dt
        self.u, self.v = u, v
        return float(residual)

    def run_to_steady(self, tolerance: float = 1e-5, max_steps: int = 10**7) -> int:
        """Steps until the steady residual drops below ``tolerance``."""
        for step in range(1, max_steps + 1):
            if self.step() < tolerance:
                return step
        raise RuntimeError(f"no steady state within {max_steps} steps")
