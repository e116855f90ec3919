"""Direct solves of separable Poisson and Helmholtz problems by fast diagonalisation.

On a rectangle the discrete Laplacian is ``A_x ⊕ A_y``. Each 1D operator is diagonalised
once (``eigh``; any mix of Neumann, Dirichlet and periodic ends), after which a solve is
two small dense products per axis and a division by the summed eigenvalues. Spacing only
scales the eigenvalues, so one factorisation serves a batch of cases with different windows.
"""

from __future__ import annotations

import torch
from torch import Tensor

END_DIAGONALS = {"neumann": -1.0, "dirichlet_faces": -2.0, "dirichlet_cells": -3.0}


def second_difference(n: int, kind: str | tuple[str, str]) -> Tensor:
    """Unit-spacing 1D second-difference matrix (n x n, float64).

    ``kind`` names the condition at both ends, or ``(low end, high end)`` for a mix:
      - ``"neumann"``: zero gradient (cell-centred pressure at a wall; an outflow velocity);
      - ``"dirichlet_faces"``: the values lie between two fixed boundary faces;
      - ``"dirichlet_cells"``: cell-centred values, zero value half a cell beyond the end
        (tangential velocity at a wall; pressure at an outlet held at p = 0);
      - ``"periodic"``: circulant (both ends only).
    """
    low, high = (kind, kind) if isinstance(kind, str) else kind
    a = -2.0 * torch.eye(n, dtype=torch.float64)
    idx = torch.arange(n - 1)
    a[idx, idx + 1] = 1.0
    a[idx + 1, idx] = 1.0
    if "periodic" in (low, high):
        if low != high:
            raise ValueError("a periodic axis is periodic at both ends")
        a[0, -1] += 1.0
        a[-1, 0] += 1.0
        return a
    for end, row in ((low, 0), (high, -1)):
        if end not in END_DIAGONALS:
            raise ValueError(f"unknown second-difference end condition {end!r}")
        a[row, row] = END_DIAGONALS[end]
    return a


class FastDiagonalSolver:
    """Solves ``(shift - coef * (A_x / dx² + A_y / dy²)) x = r`` for a batch of cases.

    ``shift = 0, coef = -1`` is the Poisson problem ∇²x = r; its constant null space (all
    Neumann/periodic ends) is removed by setting the zero mode to zero, i.e. zero mean.
    ``shift = 1, coef = c`` is the implicit viscous (Helmholtz) problem of Crank–Nicolson.
    """

    def __init__(self, kind_x: str | tuple[str, str], nx: int, kind_y: str | tuple[str, str], ny: int, dx: Tensor, dy: Tensor):
        dtype, device = dx.dtype, dx.device
        lam_x, vec_x = torch.linalg.eigh(second_difference(nx, kind_x))
        lam_y, vec_y = torch.linalg.eigh(second_difference(ny, kind_y))
        self.vec_x = vec_x.to(dtype=dtype, device=device)
        self.vec_y = vec_y.to(dtype=dtype, device=device)
        self.vec_xt = self.vec_x.T.contiguous()
        self.vec_yt = self.vec_y.T.contiguous()
        lam_x = lam_x.to(dtype=dtype, device=device).reshape(1, 1, -1)
        lam_y = lam_y.to(dtype=dtype, device=device).reshape(1, -1, 1)
        # Eigenvalues of the scaled Laplacian per case: (B, ny, nx), all <= 0.
        self.laplacian_eigenvalues = lam_x / dx.reshape(-1, 1, 1) ** 2 + lam_y / dy.reshape(-1, 1, 1) ** 2
        # Exact zeros become round-off after eigh; clean them so the null space is recognised.
        scale = self.laplacian_eigenvalues.abs().amax(dim=(1, 2), keepdim=True)
        tiny = self.laplacian_eigenvalues.abs() < 1e-10 * scale
        self.laplacian_eigenvalues = torch.where(tiny, torch.zeros_like(scale), self.laplacian_eigenvalues)

    @property
    def singular(self) -> bool:
        """True when the Laplacian has a null space (no Dirichlet end on any axis)."""
        return bool((self.laplacian_eigenvalues == 0).any())

    def denominator(self, shift: float, coef: Tensor | float) -> Tensor:
        """Per-mode divisor for ``shift - coef * λ``; zero modes of a singular problem map to inf."""
        if not torch.is_tensor(coef):
            coef = torch.tensor(coef, dtype=self.laplacian_eigenvalues.dtype, device=self.laplacian_eigenvalues.device)
        denom = shift - coef.reshape(-1, 1, 1) * self.laplacian_eigenvalues
        return torch.where(denom == 0, torch.full_like(denom, float("inf")), denom)

    def solve(self, rhs: Tensor, denominator: Tensor) -> Tensor:
        """Solve with a precomputed :meth:`denominator` (B, ny, nx) for right-hand sides (B, ny, nx)."""
        modal = self.vec_yt @ rhs @ self.vec_x
        return self.vec_y @ (modal / denominator) @ self.vec_xt
