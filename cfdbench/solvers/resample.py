"""From the solver's staggered grid to the stored frame grid, keeping mass conserved.

A stored frame is a uniform cell-centred grid over the same window as the solver's. Its velocity
is built from *fluxes*, not from point values:

1. The solver's face velocities define a field that is linear along each face normal within a
   cell and constant across it (the lowest-order Raviart–Thomas field of the MAC grid), whose
   divergence in each solver cell is that cell's discrete divergence.
2. The stored grid's face velocities are that field's mean over each stored face (its flux per unit
   length): ``U = W_y u B_xᵀ`` and ``V = B_y v W_xᵀ``, with ``B`` linear interpolation along the
   normal and ``W`` the share of each solver row (column) the stored face overlaps. By the
   divergence theorem a stored cell's net outflow is the sum of the solver cells' divergences over
   the part of it they cover: zero, to round-off, for a divergence-free solver field.
3. A stored cell's ``u`` is the mean of its two x-face velocities, ``v`` of its two y-face
   velocities (the solver's own cell-centring, :meth:`StaggeredGrid.to_cells`, when the grids
   coincide).

Pressure, a cell quantity, is the overlap-weighted mean of the solver cells a stored cell covers.
On such frames the stored grid's divergence (:func:`cfdbench.metrics.physics.divergence`:
central differences averaged 1-2-1 across, the exact image of the face divergence) is round-off.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def overlap_weights(cells: int, stored: int) -> np.ndarray:
    """(stored, cells): the share of each stored interval of [0, 1] that each solver interval covers."""
    edges, stored_edges = np.linspace(0.0, 1.0, cells + 1), np.linspace(0.0, 1.0, stored + 1)
    low = np.maximum(stored_edges[:-1, None], edges[None, :-1])
    high = np.minimum(stored_edges[1:, None], edges[None, 1:])
    return np.clip(high - low, 0.0, None) * stored


def face_interpolation(cells: int, stored: int, periodic: bool) -> np.ndarray:
    """(stored + 1, faces): linear interpolation of face values at the stored faces of [0, 1].

    Bounded axes have ``cells + 1`` faces, periodic ones ``cells`` (the face at 1 is the one at 0)."""
    faces = cells if periodic else cells + 1
    weights = np.zeros((stored + 1, faces))
    for k, position in enumerate(np.linspace(0.0, 1.0, stored + 1) * cells):
        i = min(int(np.floor(position)), cells - 1)
        a = position - i
        weights[k, i % faces] += 1 - a
        weights[k, (i + 1) % faces] += a
    return weights


class FrameResampler:
    """Stored-grid ``u``, ``v`` (from fluxes) and ``p`` (cell means) of solver fields, one set of
    matrices per (solver grid, stored grid, boundary kinds)."""

    def __init__(self, cells: tuple[int, int], stored: tuple[int, int], periodic: tuple[bool, bool], dtype, device):
        (ny, nx), (sy, sx) = cells, stored
        self.same = (ny, nx) == (sy, sx)
        self.periodic = periodic
        as_t = lambda a: torch.as_tensor(a, dtype=dtype, device=device)  # noqa: E731
        self.wx, self.wy = as_t(overlap_weights(nx, sx)), as_t(overlap_weights(ny, sy))
        self.bx, self.by = as_t(face_interpolation(nx, sx, periodic[1])), as_t(face_interpolation(ny, sy, periodic[0]))

    def velocity(self, u: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """(B, ny, nu), (B, nv, nx) solver faces -> (B, sy, sx) stored-cell u and v."""
        if self.same:
            return _face_mean(u, -1, self.periodic[1]), _face_mean(v, -2, self.periodic[0])
        u_faces = self.wy @ u @ self.bx.T  # (B, sy, sx + 1)
        v_faces = self.by @ v @ self.wx.T  # (B, sy + 1, sx)
        return _face_mean(u_faces, -1, False), _face_mean(v_faces, -2, False)

    def pressure(self, p: Tensor) -> Tensor:
        return p if self.same else self.wy @ p @ self.wx.T


def _face_mean(faces: Tensor, dim: int, periodic: bool) -> Tensor:
    """Mean of each cell's two faces along ``dim`` (a periodic axis stores no face at its far end)."""
    if periodic:
        return 0.5 * (faces + torch.roll(faces, -1, dim))
    n = faces.shape[dim]
    return 0.5 * (faces.narrow(dim, 1, n - 1) + faces.narrow(dim, 0, n - 1))
