"""Direct solves of separable Poisson and Helmholtz problems on a batch of uniform rectangles.

On a rectangle the discrete Laplacian is ``A_x ⊕ A_y``. Each 1D operator is diagonalised by a
real trigonometric transform (:mod:`cfdbench.solvers.transforms`: DCT/DST variants or the DFT,
by the axis's end conditions), so a solve is a forward transform per axis, a division by the
summed eigenvalues and the inverse transforms: O(n² log n) per case. Spacing only scales the
eigenvalues, so one pair of transforms serves a batch of cases with different windows.
"""

from __future__ import annotations

import torch
from torch import Tensor

from cfdbench.solvers.transforms import END_DIAGONALS, AxisTransform, second_difference

__all__ = ["END_DIAGONALS", "FastDiagonalSolver", "second_difference"]


class FastDiagonalSolver:
    """Solves ``(shift - coef * (A_x / dx² + A_y / dy²)) x = r`` for a batch of cases (B, ny, nx).

    ``shift = 0, coef = -1`` is the Poisson problem ∇²x = r; its constant null space (all
    Neumann/periodic ends) is removed by setting the zero mode to zero, i.e. zero mean.
    ``shift = 1, coef = c`` is the implicit viscous (Helmholtz) problem of Crank–Nicolson.
    """

    def __init__(self, kind_x: str | tuple[str, str], nx: int, kind_y: str | tuple[str, str], ny: int, dx: Tensor, dy: Tensor):
        dtype, device = dx.dtype, dx.device
        self.along_x = AxisTransform(kind_x, nx, dtype, device)
        self.along_y = AxisTransform(kind_y, ny, dtype, device)
        lam_x = self.along_x.eigenvalues.reshape(1, 1, -1)
        lam_y = self.along_y.eigenvalues.reshape(1, -1, 1)
        # Eigenvalues of the scaled Laplacian per case: (B, ny, nx), all <= 0, exactly 0 for a null mode.
        self.laplacian_eigenvalues = lam_x / dx.reshape(-1, 1, 1) ** 2 + lam_y / dy.reshape(-1, 1, 1) ** 2

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
        modal = self.along_y.forward(self.along_x.forward(rhs, -1), -2)
        return self.along_x.inverse(self.along_y.inverse(modal / denominator, -2), -1)
