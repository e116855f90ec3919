"""Plain NumPy implementation of cfdbench's cavity scheme, for one case at a time.

This is the speed baseline of ``bench_solver.py``: what a careful person writes in vectorised
NumPy (no numba, no torch) for the same discretisation as ``cfdbench.solvers``:

- MAC grid on the unit square, walls on all four sides, lid speed 1 at the top, ν = 1/Re;
  u: (ny, nx + 1) including both wall faces, v: (ny + 1, nx), p: (ny, nx);
- one ghost layer per side: tangential walls use ghost = 2 * wall - neighbour, the
  normal-to-wall direction uses linear extrapolation (it only feeds the fixed wall faces);
- conservative central advection ∇·(uu), five-point Laplacian;
- Wray's RK3, incremental pressure projection after each sub-step; the viscous term explicit
  (with the convection) when ν dt (4/dx² + 4/dy²) <= 2, else Crank–Nicolson in delta form;
- Helmholtz and Poisson problems solved directly by fast diagonalisation (``numpy.linalg.eigh``
  of the 1D second-difference matrices, then dense matmuls).

It is deliberately written from the scheme, not imported from the torch solver, so the
agreement check in the benchmark and in ``tests/test_numpy_reference_agrees.py`` is meaningful.
"""

from __future__ import annotations

import numpy as np

RK3_GAMMA = (8 / 15, 5 / 12, 3 / 4)
RK3_ZETA = (0.0, -17 / 60, -5 / 12)
RK3_ALPHA = tuple((g + z) / 2 for g, z in zip(RK3_GAMMA, RK3_ZETA))
EXPLICIT_VISCOUS_LIMIT = 2.0  # ν dt (4/dx² + 4/dy²) up to which viscosity is advanced explicitly


def second_difference(n: int, kind: str) -> np.ndarray:
    """Unit-spacing 1D second-difference matrix (float64).

    ``neumann``: cell values, zero gradient at the ends (pressure);
    ``dirichlet_faces``: interior faces between two fixed wall faces (normal velocity);
    ``dirichlet_cells``: cell values, zero half a cell beyond each end (tangential velocity).
    """
    a = -2.0 * np.eye(n) + np.eye(n, k=1) + np.eye(n, k=-1)
    if kind == "neumann":
        a[0, 0] = a[-1, -1] = -1.0
    elif kind == "dirichlet_cells":
        a[0, 0] = a[-1, -1] = -3.0
    elif kind != "dirichlet_faces":
        raise ValueError(f"unknown second-difference kind {kind!r}")
    return a


class FastDiagonalSolve:
    """Direct solver of ``(shift - coef * (A_x/dx² + A_y/dy²)) x = r`` on an (ny, nx) array.

    Both 1D operators are diagonalised once; a solve is then four small dense matmuls and a
    division by the summed eigenvalues. A zero eigenvalue (Poisson with Neumann ends) gets an
    infinite divisor, so the constant mode is dropped (zero-mean solution).
    """

    def __init__(self, kind_x: str, nx: int, kind_y: str, ny: int, dx: float, dy: float, dtype):
        lam_x, vec_x = np.linalg.eigh(second_difference(nx, kind_x))
        lam_y, vec_y = np.linalg.eigh(second_difference(ny, kind_y))
        self.vec_x, self.vec_y = vec_x.astype(dtype), vec_y.astype(dtype)
        self.vec_xt = np.ascontiguousarray(self.vec_x.T)
        self.vec_yt = np.ascontiguousarray(self.vec_y.T)
        lam = lam_x.astype(dtype)[None, :] / dtype(dx * dx) + lam_y.astype(dtype)[:, None] / dtype(dy * dy)
        tiny = np.abs(lam) < 1e-10 * np.abs(lam).max()
        self.eigenvalues = np.where(tiny, dtype(0), lam).astype(dtype)
        self.dtype = dtype

    def denominator(self, shift: float, coef: float) -> np.ndarray:
        """Per-mode divisor ``shift - coef * λ``; exact zeros become inf."""
        denom = (self.dtype(shift) - self.dtype(coef) * self.eigenvalues).astype(self.dtype)
        return np.where(denom == 0, self.dtype(np.inf), denom)

    def solve(self, rhs: np.ndarray, denominator: np.ndarray) -> np.ndarray:
        modal = self.vec_yt @ rhs @ self.vec_x
        return self.vec_y @ (modal / denominator) @ self.vec_xt


class NumpyCavitySolver:
    """Lid-driven cavity on an ``nx`` x ``ny`` MAC grid over the unit square (one case).

    ``dtype`` is ``np.float64`` or ``np.float32``; every array and constant is kept in it.
    """

    def __init__(self, nx: int, ny: int, reynolds: float, dtype=np.float64, lid_speed: float = 1.0):
        self.nx, self.ny, self.dtype = nx, ny, dtype
        self.dx, self.dy = 1.0 / nx, 1.0 / ny
        self.nu = float(dtype(1.0 / reynolds))
        self.lid = dtype(lid_speed)
        self.pressure = FastDiagonalSolve("neumann", nx, "neumann", ny, self.dx, self.dy, dtype)
        self.helmholtz_u = FastDiagonalSolve("dirichlet_faces", nx - 1, "dirichlet_cells", ny, self.dx, self.dy, dtype)
        self.helmholtz_v = FastDiagonalSolve("dirichlet_cells", nx, "dirichlet_faces", ny - 1, self.dx, self.dy, dtype)
        self.poisson_denominator = self.pressure.denominator(0.0, -1.0)
        self._helmholtz_cache: dict[tuple[float, int], tuple[np.ndarray, np.ndarray]] = {}

    def rest_state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(u, v, p) all zero."""
        nx, ny, dt = self.nx, self.ny, self.dtype
        return np.zeros((ny, nx + 1), dt), np.zeros((ny + 1, nx), dt), np.zeros((ny, nx), dt)

    # ------------------------------------------------------------------ ghost layers
    def pad_u(self, u: np.ndarray) -> np.ndarray:
        """u with ghosts: rows mirror about the walls (lid at the top), columns extrapolated."""
        ny, nu = u.shape
        up = np.empty((ny + 2, nu + 2), self.dtype)
        up[1:-1, 1:-1] = u
        up[0, 1:-1] = -u[0]  # bottom wall at rest
        up[-1, 1:-1] = 2 * self.lid - u[-1]  # moving lid
        up[:, 0] = 2 * up[:, 1] - up[:, 2]
        up[:, -1] = 2 * up[:, -2] - up[:, -3]
        return up

    def pad_v(self, v: np.ndarray) -> np.ndarray:
        """v with ghosts: columns mirror about the (still) side walls, rows extrapolated."""
        nv, nx = v.shape
        vp = np.empty((nv + 2, nx + 2), self.dtype)
        vp[1:-1, 1:-1] = v
        vp[1:-1, 0] = -v[:, 0]
        vp[1:-1, -1] = -v[:, -1]
        vp[0] = 2 * vp[1] - vp[2]
        vp[-1] = 2 * vp[-2] - vp[-3]
        return vp

    # ------------------------------------------------------------------ operators
    def divergence(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        return (u[:, 1:] - u[:, :-1]) / self.dx + (v[1:] - v[:-1]) / self.dy

    def gradient(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """∇p on the u and v faces, zero on the wall faces."""
        gx = np.zeros((self.ny, self.nx + 1), self.dtype)
        gy = np.zeros((self.ny + 1, self.nx), self.dtype)
        gx[:, 1:-1] = (p[:, 1:] - p[:, :-1]) / self.dx
        gy[1:-1] = (p[1:] - p[:-1]) / self.dy
        return gx, gy

    def laplacian(self, padded: np.ndarray) -> np.ndarray:
        """Five-point Laplacian of a padded field, on its unpadded points."""
        centre = padded[1:-1, 1:-1]
        d2x = (padded[1:-1, 2:] - 2 * centre + padded[1:-1, :-2]) / self.dx**2
        d2y = (padded[2:, 1:-1] - 2 * centre + padded[:-2, 1:-1]) / self.dy**2
        return d2x + d2y

    def advection(self, up: np.ndarray, vp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Conservative ∇·(uu) on the u faces and the v faces (central, energy-conserving)."""
        dx, dy = self.dx, self.dy
        # u-momentum: uu at cell centres, uv at cell corners.
        uc = 0.5 * (up[1:-1, 1:] + up[1:-1, :-1])
        duu = (uc[:, 1:] ** 2 - uc[:, :-1] ** 2) / dx
        uv = 0.5 * (up[1:, 1:-1] + up[:-1, 1:-1]) * (0.5 * (vp[1:-1, 1:] + vp[1:-1, :-1]))
        duv = (uv[1:] - uv[:-1]) / dy
        # v-momentum: vv at cell centres, vu at cell corners.
        vc = 0.5 * (vp[1:, 1:-1] + vp[:-1, 1:-1])
        dvv = (vc[1:] ** 2 - vc[:-1] ** 2) / dy
        vu = 0.5 * (vp[1:-1, 1:] + vp[1:-1, :-1]) * (0.5 * (up[1:, 1:-1] + up[:-1, 1:-1]))
        dvu = (vu[:, 1:] - vu[:, :-1]) / dx
        return duu + duv, dvv + dvu

    # ------------------------------------------------------------------ time stepping
    def _helmholtz_denominators(self, dt: float, stage: int) -> tuple[np.ndarray, np.ndarray]:
        """CN divisors of sub-step ``stage``, cached because dt rarely changes."""
        key = (dt, stage)
        if key not in self._helmholtz_cache:
            coef = RK3_ALPHA[stage] * dt * self.nu
            self._helmholtz_cache[key] = (
                self.helmholtz_u.denominator(1.0, coef),
                self.helmholtz_v.denominator(1.0, coef),
            )
        return self._helmholtz_cache[key]

    def project(self, u: np.ndarray, v: np.ndarray, scale: float):
        """u - scale ∇phi with ∇²phi = ∇·u / scale; returns the new (u, v) and phi."""
        phi = self.pressure.solve(self.divergence(u, v) / scale, self.poisson_denominator)
        gx, gy = self.gradient(phi)
        return u - scale * gx, v - scale * gy, phi

    def step(self, u: np.ndarray, v: np.ndarray, p: np.ndarray, dt: float):
        """One RK3 step (three sub-steps); returns the new (u, v, p), p with zero mean."""
        nu = self.nu
        explicit = nu * dt * (4 / self.dx**2 + 4 / self.dy**2) <= EXPLICIT_VISCOUS_LIMIT * (1 + 1e-6)
        previous_u = previous_v = None
        for stage in range(3):
            gamma, zeta, alpha = RK3_GAMMA[stage], RK3_ZETA[stage], RK3_ALPHA[stage]
            up, vp = self.pad_u(u), self.pad_v(v)
            adv_u, adv_v = self.advection(up, vp)
            lap_u, lap_v = self.laplacian(up), self.laplacian(vp)
            # What RK3 carries between sub-steps: convection, plus viscosity when explicit.
            carried_u = -adv_u + nu * lap_u if explicit else -adv_u
            carried_v = -adv_v + nu * lap_v if explicit else -adv_v
            gx, gy = self.gradient(p)
            rhs_u = dt * (gamma * carried_u - 2 * alpha * gx)
            rhs_v = dt * (gamma * carried_v - 2 * alpha * gy)
            if not explicit:
                rhs_u += dt * 2 * alpha * nu * lap_u
                rhs_v += dt * 2 * alpha * nu * lap_v
            if previous_u is not None:
                rhs_u += dt * zeta * previous_u
                rhs_v += dt * zeta * previous_v
            previous_u, previous_v = carried_u, carried_v
            # The unknown faces move; the wall faces stay fixed. Crank–Nicolson solves in delta form.
            u_star, v_star = u.copy(), v.copy()
            if explicit:
                u_star[:, 1:-1] += rhs_u[:, 1:-1]
                v_star[1:-1] += rhs_v[1:-1]
            else:
                den_u, den_v = self._helmholtz_denominators(dt, stage)
                u_star[:, 1:-1] += self.helmholtz_u.solve(rhs_u[:, 1:-1], den_u)
                v_star[1:-1] += self.helmholtz_v.solve(rhs_v[1:-1], den_v)
            u, v, phi = self.project(u_star, v_star, 2 * alpha * dt)
            p = p + phi
        return u, v, p - p.mean()

    def run(self, steps: int, dt: float, state=None):
        """``steps`` RK3 steps from ``state`` (default: rest); returns (u, v, p)."""
        u, v, p = state if state is not None else self.rest_state()
        for _ in range(steps):
            u, v, p = self.step(u, v, p, dt)
        return u, v, p
