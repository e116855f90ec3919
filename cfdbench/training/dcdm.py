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
import scipy.linalg
import torch

from cfdbench.models.dcdm import DCDMNetwork, dcdm_loss
from cfdbench.solvers.pressure import PressureSystem

DENSE_LIMIT = 4096  # unknowns up to which the Ritz vectors are the exact eigenvectors
LOW_WEIGHT = 9.0
LOW_FRACTION = 0.55  # the reference's m/2 + θ of m = 10,000 Ritz vectors (θ = 500) that get LOW_WEIGHT


def ritz_vectors(matrix, lanczos_steps: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(values ascending, vectors as columns) of the matrix without its null space: all
    eigenpairs of a small system, else the Ritz pairs of ``lanczos_steps`` Lanczos steps."""
    if matrix.shape[0] <= DENSE_LIMIT:
        values, vectors = np.linalg.eigh(matrix.toarray())
    else:
        values, vectors = lanczos(matrix, min(lanczos_steps, matrix.shape[0]), seed)
    keep = values > 1e-8 * np.abs(values).max()  # the constant null space of an all-Neumann system
    return values[keep], vectors[:, keep]


def lanczos(matrix, steps: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Ritz values (ascending) and vectors of ``steps`` Lanczos steps with full
    reorthogonalisation, started from A x with x ~ N(0, I) (so no null-space component), as the
    reference does."""
    n = matrix.shape[0]
    q = matrix @ np.random.default_rng(seed).standard_normal(n)
    basis, alpha, beta = np.zeros((n, steps)), np.zeros(steps), np.zeros(steps)
    q /= np.linalg.norm(q)
    taken = steps
    for j in range(steps):
        basis[:, j] = q
        w = matrix @ q
        alpha[j] = q @ w
        for _ in range(2):  # classical Gram-Schmidt twice against every previous vector
            w -= basis[:, : j + 1] @ (basis[:, : j + 1].T @ w)
        beta[j] = np.linalg.norm(w)
        if beta[j] <= 1e-10 * abs(alpha[j]):  # an invariant subspace: the Ritz pairs are exact
            taken = j + 1
            break
        q = w / beta[j]
    values, rotation = scipy.linalg.eigh_tridiagonal(alpha[:taken], beta[: taken - 1])
    return values, basis[:, :taken] @ rotation


def ritz_right_hand_sides(vectors: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` unit-norm b = Σ c_j q_j, c ~ N(0, 1), the lowest 55 % of the Ritz components times 9: (count, n)."""
    coefficients = rng.standard_normal((count, vectors.shape[1]))
    coefficients[:, : round(LOW_FRACTION * vectors.shape[1])] *= LOW_WEIGHT
    samples = coefficients @ vectors.T
    return samples / np.linalg.norm(samples, axis=1, keepdims=True)


@dataclass
class GridMap:
    """Between a masked system's unknowns (n,) and the grid images the network reads (B, 1, *grid), 2D or 3D."""

    mask: np.ndarray

    def __post_init__(self) -> None:
        self.index = torch.as_tensor(np.flatnonzero(self.mask.ravel()))

    def to_grid(self, vectors: torch.Tensor) -> torch.Tensor:
        grid = torch.zeros(vectors.shape[0], self.mask.size, dtype=vectors.dtype)
        grid[:, self.index] = vectors
        return grid.reshape(-1, 1, *self.mask.shape)

    def from_grid(self, images: torch.Tensor) -> torch.Tensor:
        return images.reshape(images.shape[0], -1)[:, self.index]


def train_dcdm(
    system: PressureSystem,
    steps: int,
    batch: int = 16,
    lr: float = 1e-3,
    seed: int = 0,
    network: DCDMNetwork | None = None,
    lanczos_steps: int = 1000,
) -> tuple[DCDMNetwork, list[float]]:
    """(network, loss per step): a DCDM network of the system's dimension (a fresh one, or ``network``) trained on
    ``system`` for ``steps`` Adam steps (the reference: lr 1e-4, batch 10, far longer)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    _, vectors = ritz_vectors(system.matrix, lanczos_steps, seed=seed)
    grid = GridMap(system.mask)
    apply = _sparse_apply(system.matrix)
    network = network if network is not None else DCDMNetwork(system.mask.ndim)
    network.train()
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
