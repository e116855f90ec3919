"""Exact cell fractions of the suite's bodies (cfdbench/solvers/geometry.py) against sampling."""

from __future__ import annotations

import numpy as np
import pytest

from cfdbench.solvers.geometry import fluid_fraction


def _sampled(x_edges, y_edges, inside, samples: int = 400) -> np.ndarray:
    """Share of each cell outside a body by samples x samples midpoints (an independent estimate)."""
    out = np.zeros((len(y_edges) - 1, len(x_edges) - 1))
    unit = (np.arange(samples) + 0.5) / samples
    for j in range(out.shape[0]):
        ys = y_edges[j] + unit * (y_edges[j + 1] - y_edges[j])
        for i in range(out.shape[1]):
            xs = x_edges[i] + unit * (x_edges[i + 1] - x_edges[i])
            out[j, i] = 1 - inside(xs[None, :], ys[:, None]).mean()
    return out


@pytest.mark.parametrize("centre", [(0.2, 0.2), (0.213, 0.1874), (0.2125, 0.2)])  # on a node, anywhere, on a face
def test_disc_fractions_match_sampling_and_hold_its_area(centre):
    cx, cy, r = *centre, 0.05
    x_edges, y_edges = np.linspace(0.1, 0.3, 11), np.linspace(0.1, 0.3, 9)  # cells narrower than tall
    exact = fluid_fraction(x_edges, y_edges, disc=(cx, cy, r))
    sampled = _sampled(x_edges, y_edges, lambda x, y: (x - cx) ** 2 + (y - cy) ** 2 <= r**2)
    assert np.abs(exact - sampled).max() < 2e-3  # the sampling's own error at 400 x 400 points
    cell_area = 0.02 * 0.025
    assert (1 - exact).sum() * cell_area == pytest.approx(np.pi * r**2, rel=1e-12)
    assert exact.min() == 0.0 and exact.max() == 1.0 and np.any((exact > 0) & (exact < 1))


def test_rectangle_fractions_are_its_overlaps():
    x_edges, y_edges = np.linspace(0.0, 1.0, 5), np.linspace(0.0, 1.0, 3)  # cells 0.25 x 0.5
    exact = fluid_fraction(x_edges, y_edges, block=(0.3, 0.4, 0.0, 0.6))  # inside the second column, to 0.6
    expected = np.ones((2, 4))
    expected[0, 1] = 1 - 0.1 / 0.25
    expected[1, 1] = 1 - (0.1 * 0.1) / (0.25 * 0.5)
    np.testing.assert_allclose(exact, expected, rtol=0, atol=1e-15)


def test_a_disc_away_from_the_cells_leaves_them_fluid():
    exact = fluid_fraction(np.linspace(0, 1, 4), np.linspace(0, 1, 4), disc=(5.0, 5.0, 0.5))
    assert np.array_equal(exact, np.ones((3, 3)))
