"""Exact shares of grid cells inside the suite's bodies: an axis-aligned rectangle (the dam's
barrier) and a disc (the cylinder).

The stored masks hold these fractions (docs/data-format.md), and the disc's solver-grid fluid cells
are the cells at least half outside it. Exact, not sampled: a barrier narrower than a cell or a disc's
edge inside one shows as the area it covers, to round-off.
"""

from __future__ import annotations

import numpy as np

FLUID_CELL_SHARE = 0.5  # a cell at least this much fluid is a fluid cell: stored, predicted and scored


def is_fluid_cell(fluid_fraction):
    """True where a cell's fluid fraction (a NumPy array or a tensor) makes it a fluid cell: the one
    rule for stored masks, the disc's solver cells and the cells a model predicts."""
    return fluid_fraction >= FLUID_CELL_SHARE


def fluid_fraction(
    x_edges: np.ndarray,
    y_edges: np.ndarray,
    block: tuple[float, float, float, float] | None = None,
    disc: tuple[float, float, float] | None = None,
) -> np.ndarray:
    """(ny, nx) share of each cell [x_edges[i], x_edges[i+1]] x [y_edges[j], y_edges[j+1]] outside the
    rectangle ``block`` = (x0, x1, y0, y1) and the disc ``disc`` = (cx, cy, radius) (bodies that do not
    overlap), in [0, 1]."""
    x_edges, y_edges = np.asarray(x_edges, dtype=np.float64), np.asarray(y_edges, dtype=np.float64)
    solid = np.zeros((len(y_edges) - 1, len(x_edges) - 1))
    if block is not None:
        x0, x1, y0, y1 = block
        solid += np.outer(_overlap(y_edges, y0, y1), _overlap(x_edges, x0, x1))
    if disc is not None:
        cx, cy, r = disc
        corners = _disc_quadrant_area(x_edges[None, :] - cx, y_edges[:, None] - cy, r)
        solid += corners[1:, 1:] - corners[1:, :-1] - corners[:-1, 1:] + corners[:-1, :-1]
    areas = np.outer(np.diff(y_edges), np.diff(x_edges))
    return np.clip(1.0 - solid / areas, 0.0, 1.0)


def _overlap(edges: np.ndarray, low: float, high: float) -> np.ndarray:
    """Length of each interval [edges[i], edges[i+1]] inside [low, high]."""
    return np.clip(np.minimum(edges[1:], high) - np.maximum(edges[:-1], low), 0.0, None)


def _disc_quadrant_area(x: np.ndarray, y: np.ndarray, r: float) -> np.ndarray:
    """Area of the disc of radius ``r`` about the origin below ``y`` and left of ``x`` (broadcast).

    With s(t) = sqrt(r² - t²) the chord at abscissa t, the part below y has length
    clip(y + s, 0, 2s) = s + clip(y, -s, s); integrated from -r to a = clip(x, -r, r), the first term
    is G(a) = ∫ s, the second is sign(y) s where |t| > w = sqrt(r² - y²) and y where |t| < w."""
    a = np.clip(x, -r, r)
    y = np.broadcast_to(y, np.broadcast(a, y).shape)
    w = np.sqrt(np.clip(r * r - y * y, 0.0, None))

    def chord_integral(t):  # G(t) = ∫_{-r}^{t} s, t in [-r, r]
        root = np.sqrt(np.clip(r * r - t * t, 0.0, None))
        return 0.5 * (t * root + r * r * np.arcsin(np.clip(t / r, -1.0, 1.0))) + 0.25 * np.pi * r * r

    outer = chord_integral(np.minimum(a, -w)) + chord_integral(np.maximum(a, w)) - chord_integral(w)
    return chord_integral(a) + np.sign(y) * outer + y * np.clip(a + w, 0.0, 2 * w)
