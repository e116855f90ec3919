"""Real trigonometric transforms that diagonalise the 1D second-difference operators of a uniform axis.

Every end condition of :func:`second_difference` on a uniform axis has sines or cosines as its
eigenvectors: ``T[k, j] = cos or sin(π (k + a)(j + b) / M)`` with eigenvalue
``-4 sin²(π (k + a) / (2 M))`` (unit spacing). The offsets say where the unknowns sit and how
the ends close:

============================== ================ ===== ===== ========= =====================
end conditions (low, high)     where it is used  trig  a     b         M
============================== ================ ===== ===== ========= =====================
neumann                        pressure, walls   cos   0     1/2       n      (DCT-II)
dirichlet_cells                tangential u, v   sin   1     1/2       n      (DST-II)
dirichlet_faces                normal u, v       sin   1     1         n + 1  (DST-I)
(neumann, dirichlet_cells)     p, inlet→outlet   cos   1/2   1/2       n      (DCT-IV)
(dirichlet_cells, neumann)     v, inlet→outlet   sin   1/2   1/2       n      (DST-IV)
(dirichlet_faces, neumann)     u, inlet→outlet   sin   1/2   1         n + 1/2 (DST-VII)
periodic                       periodic axes     real and imaginary parts of the DFT
============================== ================ ===== ===== ========= =====================

Long axes (more than ``MATRIX_MAX`` unknowns) are transformed by one real FFT (``torch.fft.rfft``
of the zero-padded line, O(n log n)) and a twiddle, on any device and in any float dtype; DCT-II
and DST-II, the most used, take Makhoul's (1980) single FFT of length n. The inverse uses the
same sums with the roles of ``a`` and ``b`` swapped, after dividing by each mode's squared norm.
Short axes multiply by the same basis, tabulated and normalised: below the crossover measured
in ``benchmarks/bench_solver.py`` one matrix product beats the FFT's several passes over the data.
From ``FOLD_MIN`` unknowns an axis with the same condition at both ends folds its mirror symmetry
(:class:`_FoldedMatrix`: two half-size products, half the flops; 1.3-1.5x faster at 128 unknowns,
slower below 64, where the extra passes cost more than the flops saved). All give the same modes
to round-off. Axes that are not uniform (the 3D channel's wall-normal
axis, :mod:`cfdbench.solvers.channel`) have no such basis and keep a dense eigen-decomposition
there.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor

from cfdbench.errors import CfdbenchError

END_DIAGONALS = {"neumann": -1.0, "dirichlet_faces": -2.0, "dirichlet_cells": -3.0}
MATRIX_MAX = 320  # axes up to this many unknowns transform by a matrix product (see the module docstring)
FOLD_MIN = 65  # matrix axes from this many unknowns fold their mirror symmetry into two half-size products


def second_difference(n: int, kind: str | tuple[str, str]) -> Tensor:
    """Unit-spacing 1D second-difference matrix (n x n, float64): the operator the transforms diagonalise.

    ``kind`` names the condition at both ends, or ``(low end, high end)`` for a mix:
      - ``"neumann"``: zero gradient (cell-centred pressure at a wall; an outflow velocity);
      - ``"dirichlet_faces"``: the values lie between two fixed boundary faces;
      - ``"dirichlet_cells"``: cell-centred values, zero value half a cell beyond the end
        (tangential velocity at a wall; pressure at an outlet held at p = 0);
      - ``"periodic"``: circulant (both ends only).
    """
    low, high = _ends(kind)
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


@contextmanager
def one_cpu_thread(device: torch.device | str) -> Iterator[None]:
    """Run CPU work on one thread. Threaded FFTs and reductions split their work by thread count and
    batch size, which changes the last bits of some results; on one thread every line gets the same
    arithmetic whatever the batch, so a case's fields do not depend on the cases batched with it or
    on the thread count (a chaotic flow, the 3D channel, amplifies any such bit into a new flow)."""
    if torch.device(device).type != "cpu" or torch.compiler.is_compiling() or torch.get_num_threads() == 1:
        yield  # (compiled steps agree with the eager ones to round-off only, so they keep their threads)
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def rfft(x: Tensor, dim: int, n: int | None = None) -> Tensor:
    with one_cpu_thread(x.device):
        return torch.fft.rfft(x, n=n, dim=dim)


def irfft(x: Tensor, dim: int, n: int) -> Tensor:
    with one_cpu_thread(x.device):
        return torch.fft.irfft(x, n=n, dim=dim)


def _ends(kind: str | tuple[str, str]) -> tuple[str, str]:
    return (kind, kind) if isinstance(kind, str) else tuple(kind)


@dataclass(frozen=True)
class _TrigBasis:
    """``T[k, j] = trig(π (k + a)(j + b) / M)`` for k, j < n."""

    trig: str  # "cos" or "sin"
    a: float
    b: float
    M: float


def _basis(kind: str | tuple[str, str], n: int) -> _TrigBasis | None:
    """The sine/cosine basis of an end-condition pair (None: periodic)."""
    ends = _ends(kind)
    table = {
        ("neumann", "neumann"): _TrigBasis("cos", 0.0, 0.5, n),
        ("dirichlet_cells", "dirichlet_cells"): _TrigBasis("sin", 1.0, 0.5, n),
        ("dirichlet_faces", "dirichlet_faces"): _TrigBasis("sin", 1.0, 1.0, n + 1),
        ("neumann", "dirichlet_cells"): _TrigBasis("cos", 0.5, 0.5, n),
        ("dirichlet_cells", "neumann"): _TrigBasis("sin", 0.5, 0.5, n),
        ("dirichlet_faces", "neumann"): _TrigBasis("sin", 0.5, 1.0, n + 0.5),
    }
    if ends == ("periodic", "periodic"):
        return None
    if ends not in table:
        raise CfdbenchError(f"no transform for the end conditions {ends}: supported are {sorted(table)} and periodic")
    return table[ends]


class AxisTransform:
    """Forward and inverse diagonalising transform of one uniform axis of ``n`` unknowns.

    ``forward(x, dim)`` gives the modal coefficients along ``dim``; ``inverse`` undoes it exactly
    (up to round-off). ``eigenvalues`` are those of :func:`second_difference` at unit spacing,
    in the order ``forward`` gives the modes (natural order, except on a folded axis: even modes
    first), exactly 0 for a constant (null) mode.
    """

    def __init__(
        self, kind: str | tuple[str, str], n: int, dtype: torch.dtype, device: torch.device | str, method: str | None = None
    ):
        if n < 2:
            raise CfdbenchError(f"a transform axis needs at least 2 unknowns, got {n}")
        self.kind, self.n = kind, n
        self.method = method or ("matrix" if n <= MATRIX_MAX else "fft")
        if self.method not in ("matrix", "fft"):
            raise CfdbenchError(f"transform method must be 'matrix' or 'fft', got {self.method!r}")
        self.basis = _basis(kind, n)
        if self.basis is None:
            k = torch.cat([torch.arange(n // 2 + 1), torch.arange(1, (n + 1) // 2)]).double()
            eigenvalues = -4 * torch.sin(math.pi * k / n) ** 2
        else:
            k = torch.arange(n, dtype=torch.float64)
            eigenvalues = -4 * torch.sin(math.pi * (k + self.basis.a) / (2 * self.basis.M)) ** 2
        self.eigenvalues = eigenvalues.to(dtype=dtype, device=device)
        if self.basis is not None:
            self._forward = _TrigSum(self.basis.trig, self.basis.a, self.basis.b, self.basis.M, n, dtype, device)
            self._inverse = _TrigSum(self.basis.trig, self.basis.b, self.basis.a, self.basis.M, n, dtype, device)
            self._inverse_scale = (1 / _squared_norms(self.basis, n)).to(dtype=dtype, device=device)
            self._makhoul = _Makhoul(n, dtype, device) if (self.basis.a, self.basis.b, self.basis.M) in ((0.0, 0.5, n), (1.0, 0.5, n)) else None
        self._folded: _FoldedMatrix | None = None
        if self.method == "matrix":
            matrix = _orthonormal_basis(self.basis, n)  # rows are modes
            if n >= FOLD_MIN and _ends(kind)[0] == _ends(kind)[1] != "periodic":
                self._folded = _FoldedMatrix(matrix, dtype, device)
                self.eigenvalues = self.eigenvalues[self._folded.order]
            self._matrix = matrix.to(dtype=dtype, device=device)
            self._matrix_t = self._matrix.T.contiguous()

    def forward(self, x: Tensor, dim: int = -1) -> Tensor:
        dim = dim % x.ndim
        if self._folded is not None:
            return self._folded.forward(x, dim)
        if self.method == "matrix":
            return _matrix_product(self._matrix, x, dim)
        if self.basis is None:
            spectrum = rfft(x, dim)
            return torch.cat([spectrum.real, spectrum.imag.narrow(dim, 1, (self.n - 1) // 2)], dim=dim)
        if self._makhoul is not None:
            if self.basis.trig == "cos":
                return self._makhoul.dct2(x, dim)
            return self._makhoul.dct2(x * _shaped(self._makhoul.alternating, dim, x.ndim), dim).flip(dim)  # DST-II
        return self._forward(x, dim)

    def inverse(self, y: Tensor, dim: int = -1) -> Tensor:
        dim = dim % y.ndim
        n = self.n
        if self._folded is not None:
            return self._folded.inverse(y, dim)
        if self.method == "matrix":
            return _matrix_product(self._matrix_t, y, dim)
        if self.basis is None:
            half = n // 2 + 1
            imag = _pad_along(y.narrow(dim, half, n - half), dim, 1, half - (n + 1) // 2)
            return irfft(torch.complex(y.narrow(dim, 0, half), imag), dim, n)
        if self._makhoul is not None:
            if self.basis.trig == "cos":
                return self._makhoul.idct2(y, dim)
            return self._makhoul.idct2(y.flip(dim), dim) * _shaped(self._makhoul.alternating, dim, y.ndim)
        return self._inverse(y * _shaped(self._inverse_scale, dim, y.ndim), dim)


def _matrix_product(matrix: Tensor, x: Tensor, dim: int) -> Tensor:
    """``matrix`` applied to every line of ``x`` along ``dim``."""
    if dim == x.ndim - 1:
        return x @ matrix.T
    if dim == x.ndim - 2:
        return matrix @ x
    return (x.movedim(dim, -1) @ matrix.T).movedim(-1, dim)


class _FoldedMatrix:
    """A matrix transform of an axis with the same end condition at both ends, at half the flops.

    Such an operator commutes with the mirror ``j -> n - 1 - j``, so each basis vector is either
    even or odd under it. Folding a line into its mirror sum ``s`` and difference ``d`` (half the
    length each) leaves two products of half size: the even modes act on ``s`` only, the odd modes
    on ``d`` only. Modes come out even ones first (``order`` maps them to the natural order).
    """

    def __init__(self, matrix: Tensor, dtype: torch.dtype, device: torch.device | str):
        n = matrix.shape[1]
        self.n, self.half = n, n // 2
        mirrored = matrix.flip(1)
        even = (matrix - mirrored).abs().amax(dim=1) < 1e-9
        odd = (matrix + mirrored).abs().amax(dim=1) < 1e-9
        if not bool((even | odd).all()) or int(even.sum()) != n - self.half:
            raise CfdbenchError("internal: a folded transform needs a basis of even and odd modes")
        self.order = torch.cat([torch.nonzero(even).flatten(), torch.nonzero(odd).flatten()])
        # Columns of the first half (and the middle point of an odd n, which only even modes see).
        self.even = matrix[even][:, : n - self.half].to(dtype=dtype, device=device).contiguous()
        self.odd = matrix[odd][:, : self.half].to(dtype=dtype, device=device).contiguous()
        self.even_t, self.odd_t = self.even.T.contiguous(), self.odd.T.contiguous()

    def forward(self, x: Tensor, dim: int) -> Tensor:
        n, h = self.n, self.half
        head, tail = x.narrow(dim, 0, h), x.narrow(dim, n - h, h).flip(dim)
        total = head + tail
        if n % 2:
            total = torch.cat([total, x.narrow(dim, h, 1)], dim=dim)
        return torch.cat([_matrix_product(self.even, total, dim), _matrix_product(self.odd, head - tail, dim)], dim=dim)

    def inverse(self, y: Tensor, dim: int) -> Tensor:
        n, h = self.n, self.half
        even = _matrix_product(self.even_t, y.narrow(dim, 0, n - h), dim)
        odd = _matrix_product(self.odd_t, y.narrow(dim, n - h, h), dim)
        even_head = even.narrow(dim, 0, h)
        parts = [even_head + odd, *([even.narrow(dim, h, 1)] if n % 2 else []), (even_head - odd).flip(dim)]
        return torch.cat(parts, dim=dim)


def _shaped(vector: Tensor, dim: int, ndim: int) -> Tensor:
    """A 1D tensor shaped to broadcast along ``dim`` of an ``ndim``-dimensional tensor."""
    shape = [1] * ndim
    shape[dim] = -1
    return vector.reshape(shape)


def _pad_along(x: Tensor, dim: int, before: int, after: int) -> Tensor:
    """Zeros before and after ``x`` along ``dim``."""
    pad = [0, 0] * (x.ndim - 1 - dim) + [before, after]
    return torch.nn.functional.pad(x, pad)


def _orthonormal_basis(basis: _TrigBasis | None, n: int) -> Tensor:
    """The transform as an orthonormal n x n matrix (float64), one mode per row."""
    if basis is None:  # the periodic axis's real DFT: cosines, then sines
        j = torch.arange(n, dtype=torch.float64)
        rows = [torch.cos(2 * math.pi * k * j / n) for k in range(n // 2 + 1)]
        rows += [torch.sin(2 * math.pi * k * j / n) for k in range(1, (n + 1) // 2)]
        matrix = torch.stack(rows)
    else:
        k = torch.arange(n, dtype=torch.float64).reshape(-1, 1)
        j = torch.arange(n, dtype=torch.float64).reshape(1, -1)
        angle = math.pi * (k + basis.a) * (j + basis.b) / basis.M
        matrix = torch.cos(angle) if basis.trig == "cos" else torch.sin(angle)
    return matrix / matrix.norm(dim=1, keepdim=True)


def _squared_norms(basis: _TrigBasis, n: int) -> Tensor:
    """Σ_j T[k, j]² of each basis vector, in float64 (the basis is orthogonal, not orthonormal)."""
    k = torch.arange(n, dtype=torch.float64).reshape(-1, 1)
    j = torch.arange(n, dtype=torch.float64).reshape(1, -1)
    angle = math.pi * (k + basis.a) * (j + basis.b) / basis.M
    values = torch.cos(angle) if basis.trig == "cos" else torch.sin(angle)
    return (values**2).sum(dim=1)


class _TrigSum:
    """``y[k] = Σ_j x[j] trig(π (k + a)(j + b) / M)`` along the last axis, by one zero-padded rfft.

    With an integer ``a`` the frequencies k + a are rfft bins of length 2M; with a = 1/2 they are
    the odd bins of length 4M. A twiddle by π (k + a) b / M then gives the cosine (real part) or
    sine (minus the imaginary part) sum.
    """

    def __init__(self, trig: str, a: float, b: float, M: float, n: int, dtype, device):
        per_bin = 1 if float(a).is_integer() else 2
        self.length = round(2 * M * per_bin)
        self.start, self.stride, self.n = round(per_bin * a), per_bin, n
        theta = math.pi * (torch.arange(n, dtype=torch.float64) + a) * b / M
        cos, sin = torch.cos(theta), torch.sin(theta)
        coefficient_real, coefficient_imag = (cos, sin) if trig == "cos" else (sin, -cos)
        self.coefficient_real = coefficient_real.to(dtype=dtype, device=device)
        self.coefficient_imag = coefficient_imag.to(dtype=dtype, device=device)

    def __call__(self, x: Tensor, dim: int) -> Tensor:
        spectrum = rfft(x, dim, self.length)
        index = [slice(None)] * x.ndim
        index[dim] = slice(self.start, self.start + self.stride * self.n, self.stride)
        bins = torch.view_as_real(spectrum[tuple(index)])
        real, imag = _shaped(self.coefficient_real, dim, x.ndim), _shaped(self.coefficient_imag, dim, x.ndim)
        return bins[..., 0] * real + bins[..., 1] * imag


class _Makhoul:
    """DCT-II ``y[k] = Σ_j x[j] cos(π k (j + 1/2) / n)`` and its inverse with one rfft of length n.

    The even-indexed values followed by the odd-indexed ones reversed have a DFT V with
    ``y[k] = Re(e^{-iπk/2n} V[k])`` and ``y[n-k] = -Im(e^{-iπk/2n} V[k])`` (Makhoul 1980)."""

    def __init__(self, n: int, dtype, device):
        self.n, self.half, self.upper = n, n // 2 + 1, (n + 1) // 2  # y[n-k] comes from bins 1 .. upper - 1
        angle = -math.pi * torch.arange(self.half, dtype=torch.float64) / (2 * n)
        self.twiddle_real = torch.cos(angle).to(dtype=dtype, device=device)
        self.twiddle_imag = torch.sin(angle).to(dtype=dtype, device=device)
        self.alternating = torch.tensor([(-1.0) ** j for j in range(n)], dtype=dtype, device=device)

    def dct2(self, x: Tensor, dim: int) -> Tensor:
        reordered = torch.cat([_every_other(x, dim, 0), _every_other(x, dim, 1).flip(dim)], dim=dim)
        spectrum = torch.view_as_real(rfft(reordered, dim))  # real arithmetic from here: it fuses when compiled
        sr, si = spectrum[..., 0], spectrum[..., 1]
        wr, wi = _shaped(self.twiddle_real, dim, x.ndim), _shaped(self.twiddle_imag, dim, x.ndim)
        real = sr * wr - si * wi
        imag = sr * wi + si * wr
        return torch.cat([real, -imag.narrow(dim, 1, self.upper - 1).flip(dim)], dim=dim)

    def idct2(self, y: Tensor, dim: int) -> Tensor:
        n, half = self.n, self.half
        # Z[k] = y[k] - i m[k] with m[k] = y[n - k] (y[n] = 0), then V = Z conj(e^{-iπk/2n}).
        mirrored = _pad_along(y.narrow(dim, n - half + 1, half - 1).flip(dim), dim, 1, 0)
        first = y.narrow(dim, 0, half)
        wr, wi = _shaped(self.twiddle_real, dim, y.ndim), _shaped(self.twiddle_imag, dim, y.ndim)
        real = first * wr - mirrored * wi
        imag = -(mirrored * wr + first * wi)
        values = irfft(torch.view_as_complex(torch.stack([real, imag], dim=-1)), dim, n)
        # x[2j] = v[j], x[2j + 1] = v[n - 1 - j]
        evens = values.narrow(dim, 0, self.upper)
        odds = values.narrow(dim, self.upper, n - self.upper).flip(dim)
        if n % 2:
            odds = _pad_along(odds, dim, 0, 1)
        return torch.stack([evens, odds], dim=dim + 1).flatten(dim, dim + 1).narrow(dim, 0, n)


def _every_other(x: Tensor, dim: int, start: int) -> Tensor:
    index = [slice(None)] * x.ndim
    index[dim] = slice(start, None, 2)
    return x[tuple(index)]
