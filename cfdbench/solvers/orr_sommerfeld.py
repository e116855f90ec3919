"""Linear stability of plane Poiseuille flow: the Orr–Sommerfeld eigenproblem by Chebyshev collocation.

The reference for the channel DNS's Tollmien–Schlichting test: the least-stable mode of
U = 1 - y² at (Re, α) gives both the growth rate the DNS must reproduce and the eigenfunction it
is seeded with. Stream function ψ = φ(y) exp(iα(x - ct)); clamped walls φ = φ' = 0, built into
the fourth-derivative operator by the substitution φ = (1 - y²) g.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
from numpy.polynomial import chebyshev


def chebyshev_differentiation(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss–Lobatto points y_j = cos(jπ/n), j = 0..n, and the first-derivative matrix on them."""
    y = np.cos(np.pi * np.arange(n + 1) / n)
    weights = np.hstack([2.0, np.ones(n - 1), 2.0]) * (-1.0) ** np.arange(n + 1)
    difference = y[:, None] - y[None, :]
    matrix = np.outer(weights, 1.0 / weights) / (difference + np.eye(n + 1))
    matrix -= np.diag(matrix.sum(axis=1))
    return y, matrix


@dataclass(frozen=True)
class OrrSommerfeldMode:
    """The least-stable mode: complex phase speed ``c`` and φ on the interior Chebyshev points."""

    reynolds: float
    alpha: float
    c: complex
    y: np.ndarray
    phi: np.ndarray

    @property
    def growth_rate(self) -> float:
        """Temporal growth rate of the amplitude, ω_i = α c_i."""
        return self.alpha * self.c.imag

    def _series(self) -> chebyshev.Chebyshev:
        y = np.concatenate([[1.0], self.y, [-1.0]])
        values = np.concatenate([[0.0], self.phi, [0.0]])
        return chebyshev.Chebyshev.fit(y, values, deg=len(y) - 1, domain=[-1, 1])

    def velocity(self, x: np.ndarray, y_u: np.ndarray, y_v: np.ndarray, amplitude: float) -> tuple[np.ndarray, np.ndarray]:
        """The mode's perturbation u' = Re(φ' e^{iαx}) at heights ``y_u`` and v' = Re(-iαφ e^{iαx}) at
        ``y_v``, for streamwise positions ``x`` (arrays (len(x), len(y))), scaled so max|v'| = amplitude."""
        series = self._series()
        phase = np.exp(1j * self.alpha * np.asarray(x))[:, None]
        u = series.deriv()(np.asarray(y_u))[None, :] * phase
        v = -1j * self.alpha * series(np.asarray(y_v))[None, :] * phase
        scale = amplitude / np.abs(self.alpha * series(self.y)).max()
        return (scale * u).real, (scale * v).real


def least_stable_mode(reynolds: float, alpha: float, n: int = 120) -> OrrSommerfeldMode:
    """Solve (U - c)(D² - α²)φ - U''φ = (D² - α²)²φ / (iαRe) for the mode with the largest c_i."""
    y, d1 = chebyshev_differentiation(n)
    d2 = d1 @ d1
    d3, d4 = d2 @ d1, d2 @ d2
    inner = slice(1, n)
    yi = y[inner]
    # φ = (1 - y²) g turns the clamped fourth derivative into an operator on the interior values.
    clamped = (np.diag(1 - yi**2) @ d4[inner, inner] - 8 * np.diag(yi) @ d3[inner, inner] - 12 * d2[inner, inner]) @ np.diag(
        1 / (1 - yi**2)
    )
    second = d2[inner, inner]
    eye = np.eye(n - 1)
    base, curvature = np.diag(1 - yi**2), -2.0 * eye
    laplacian = second - alpha**2 * eye
    lhs = base @ laplacian - curvature - (clamped - 2 * alpha**2 * second + alpha**4 * eye) / (1j * alpha * reynolds)
    eigenvalues, eigenvectors = scipy.linalg.eig(lhs, laplacian)
    finite = np.isfinite(eigenvalues)
    index = np.flatnonzero(finite)[np.argmax(eigenvalues[finite].imag)]
    phi = eigenvectors[:, index]
    phi = phi / phi[np.argmax(np.abs(phi))]
    return OrrSommerfeldMode(float(reynolds), float(alpha), complex(eigenvalues[index]), yi, phi)
