"""Training DCDM's network on one pressure system (``../shared/reference/models.md`` C.3–C.4).

Right-hand sides are random combinations of Ritz vectors of the system matrix, with the
low-eigenvalue half weighted 9x (the reference's spectral weighting: CG struggles with exactly
those components). The loss needs no solutions (:func:`cfdbench.models.dcdm.dcdm_loss`).
Masked systems live on the fluid cells of a grid; the network sees them as images with zeros
in the solid cells.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse.linalg as spla
import torch

from cfdbench.models.dcdm import DCDMNetwork, dcdm_loss
from cfdbench.solvers.pressure import PressureSystem

DENSE_LIMIT = 4096  # unknowns up to which the Ritz vectors are the exact eigenvectors
LOW_WEIGHT = 9.0


def ritz_vectors(matrix, lanczos_steps: int = 10_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(values ascending, vectors as columns) of the matrix without its null space: all
    eigenpairs of a small system, else ``lanczos_steps`` Lanczos Ritz pairs (scipy's ARPACK)."""
    n = matrix.shape[0]
    if n <= DENSE_LIMIT:
        values, vectors = np.linalg.eigh(matrix.toarray())
    else:
        start = np.random.default_rng(seed).standard_normal(n)
        values, vectors = spla.eigsh(matrix, k=min(lanczos_steps, n - 1), which="SA", v0=matrix @ start)
    keep = values > 1e-8 * np.abs(values).max()  # the constant null space of an all-Neumann system
    return values[keep], vectors[:, keep]


def ritz_right_hand_sides(vectors: np.ndarray, count: int, rng: np.random.Generator, theta: int = 500) -> np.ndarray:
    """``count`` unit-norm b = Σ c_j q_j, c ~ N(0, 1), the lowest m/2 + θ Ritz components times 9: (count, n)."""
    coefficients = rng.standard_normal((count, vectors.shape[1]))
    coefficients[:, : min(vectors.shape[1] // 2 + theta, vectors.shape[1])] *= LOW_WEIGHT
    samples = coefficients @ vectors.T
    return samples / np.linalg.norm(samples, axis=1, keepdims=True)


@dataclass
class GridMap:
    """Between a masked system's unknowns (n,) and the grid images the network reads (B, 1, H, W)."""

    mask: np.ndarray

    def __post_init__(self) -> None:
        self.index = torch.as_tensor(np.flatnonzero(self.mask.ravel()))

    def to_grid(self, vectors: torch.Tensor) -> torch.Tensor:
        grid = torch.zeros(vectors.shape[0], self.mask.size, dtype=vectors.dtype)
        grid[:, self.index] = vectors
        return grid.reshape(-1, 1, *self.mask.shape)

    def from_grid(self, images: torch.Tensor) -> torch.Tensor:
        return images.reshape(images.shape[0], -1)[:, self.index]


def train_dcdm(system: PressureSystem, steps: int, batch: int = 16, lr: float = 1e-3, seed: int = 0):
    """(network, loss per step): a 2D DCDM network trained on ``system`` for ``steps`` Adam steps
    (the reference: lr 1e-4, batch 10, far longer)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    _, vectors = ritz_vectors(system.matrix, seed=seed)
    grid = GridMap(system.mask)
    apply = _sparse_apply(system.matrix)
    network = DCDMNetwork(2)
    optimizer = torch.optim.Adam(network.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        rhs = torch.tensor(ritz_right_hand_sides(vectors, batch, rng), dtype=torch.float32)
        loss = dcdm_loss(apply, rhs, grid.from_grid(network(grid.to_grid(rhs))))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return network.eval(), losses


def _sparse_apply(matrix) -> Callable[[torch.Tensor], torch.Tensor]:
    """Batched products A p for rows p (B, n), with A as a float32 torch sparse matrix."""
    coo = matrix.tocoo()
    indices = torch.as_tensor(np.vstack([coo.row, coo.col]))
    sparse = torch.sparse_coo_tensor(indices, coo.data, coo.shape, dtype=torch.float32, check_invariants=True).coalesce()
    return lambda p: torch.sparse.mm(sparse, p.T).T


def proposal(network: DCDMNetwork, mask: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """The network as :func:`cfdbench.solvers.krylov.conjugate_directions` calls it: residual -> direction."""
    grid = GridMap(mask)

    @torch.no_grad()
    def propose(residual: np.ndarray) -> np.ndarray:
        image = grid.to_grid(torch.as_tensor(residual[None], dtype=torch.float32))
        return grid.from_grid(network(image))[0].double().numpy()

    return propose
