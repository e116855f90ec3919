"""The deep conjugate-direction method's network and loss (``../shared/reference/models.md`` C.1–C.2).

A small fully convolutional network f_θ approximates the action of A⁻¹ up to a constant on the
pressure systems of a grid: given a (normalised) residual it proposes a search direction, which
:func:`cfdbench.solvers.krylov.conjugate_directions` A-orthogonalises and line-searches. The
loss is the residual left after one exact line search along the proposal, so training needs
no solutions, only right-hand sides.

The network is the reference's: 3x3(x3) convolutions with 16 channels (the first linear, the
others ReLU), residual pairs at full resolution, one average-pooling level with residual pairs,
nearest upsampling added to the full-resolution features, more residual pairs, a 1x1 linear head.
It is written for 2D and 3D grids alike.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from cfdbench.errors import CfdbenchError
from cfdbench.models.base import NeuralOperator, OperatorMeta
from cfdbench.models.registry import register_model

# Residual pairs (full resolution, half resolution, after upsampling) per training grid size:
# 15 convolutions at N = 64, 23 at N = 128 (first conv and the two around the full-resolution pairs included).
DEPTHS = {64: (1, 3, 2), 128: (2, 5, 3)}


class DCDMNetwork(nn.Module):
    """f_θ: residual (B, 1, *grid) -> direction (B, 1, *grid), on ``dims``-dimensional grids whose
    sizes are even (one pooling level)."""

    def __init__(self, dims: int = 3, channels: int = 16, depths: tuple[int, int, int] = DEPTHS[64]):
        super().__init__()
        if dims not in (2, 3):
            raise ValueError(f"DCDM works on 2D or 3D grids, not {dims}D")
        self.dims, self.depths = dims, tuple(depths)
        conv = nn.Conv3d if dims == 3 else nn.Conv2d
        self.pool = nn.AvgPool3d(2) if dims == 3 else nn.AvgPool2d(2)

        def layers(count: int) -> nn.ModuleList:
            return nn.ModuleList(conv(channels, channels, 3, padding=1) for _ in range(count))

        full, half, after = depths
        self.first = conv(1, channels, 3, padding=1)  # the only linear 3x3 convolution
        self.enter, self.exit = conv(channels, channels, 3, padding=1), conv(channels, channels, 3, padding=1)
        self.full_pairs, self.half_pairs, self.after_pairs = layers(2 * full), layers(2 * half), layers(2 * after)
        self.head = conv(channels, 1, 1)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Conv3d)):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    @staticmethod
    def _pairs(x: Tensor, layers: nn.ModuleList) -> Tensor:
        """Residual pairs: q = relu(conv(x)); x = relu(conv(q)) + x."""
        for first, second in zip(layers[::2], layers[1::2]):
            x = F.relu(second(F.relu(first(x)))) + x
        return x

    def forward(self, residual: Tensor) -> Tensor:
        if any(n % 2 for n in residual.shape[2:]):
            raise ValueError(f"DCDM's pooling level needs even grid sizes, got {tuple(residual.shape[2:])}")
        full = F.relu(self.exit(self._pairs(F.relu(self.enter(self.first(residual))), self.full_pairs)))
        coarse = self._pairs(self.pool(full), self.half_pairs)
        return self.head(self._pairs(F.interpolate(coarse, scale_factor=2, mode="nearest") + full, self.after_pairs))


def dcdm_loss(matrix_apply, rhs: Tensor, proposal: Tensor) -> Tensor:
    """Mean over the batch of ‖b − (pᵀb / pᵀAp) A p‖², the residual after one exact line search
    along each proposal p for each unit-norm right-hand side b (both flattened per sample)."""
    b, p = rhs.flatten(1), proposal.flatten(1)
    ap = matrix_apply(proposal).flatten(1)
    step = (p * b).sum(dim=1, keepdim=True) / (p * ap).sum(dim=1, keepdim=True)
    return ((b - step * ap) ** 2).sum(dim=1).mean()


@register_model("dcdm")
class DCDMSolver(NeuralOperator):
    """DCDM as a zoo entry: the dataset's own flow solver with the network's conjugate-direction
    iteration as its pressure solve, a hybrid surrogate (:mod:`cfdbench.evaluation.hybrid`).

    The network is trained on the Poisson system of one training case (``trained_on`` records
    which); a rollout re-runs the flow solver from the true state, so there is no frame-to-frame
    :meth:`predict`. ``tolerance`` is the relative residual every projection must reach, within
    ``max_iterations`` (a budget: a projection that runs out keeps its last iterate)."""

    hybrid_solver = True
    spatial_dims = (2,)

    def __init__(
        self,
        meta: OperatorMeta,
        channels: int = 16,
        depths: tuple[int, int, int] | list[int] = DEPTHS[64],
        tolerance: float = 1e-4,
        max_iterations: int = 100,
        memory: int = 2,
        train_steps: int = 400,
        train_batch: int = 16,
        train_lr: float = 1e-3,
        lanczos_steps: int = 1000,
        trained_on: dict[str, Any] | None = None,
    ):
        if not 0 < tolerance < 1 or max_iterations < 1 or memory < 1:
            raise CfdbenchError(
                f"dcdm needs 0 < tolerance < 1, max_iterations >= 1 and memory >= 1 (got {tolerance}, {max_iterations}, {memory})"
            )
        super().__init__(meta)
        self.network = DCDMNetwork(2, channels, tuple(depths))

    def predict(self, inputs: Tensor, mask: Tensor, params: Tensor) -> Tensor:
        raise CfdbenchError(
            "dcdm is a hybrid solver: it advances the flow solver's own state, not stored frames; "
            "score it with `cfdbench run --model dcdm --dataset <generated dataset>`"
        )

    def check_applicable(self, problem: str, cells: tuple[int, int]) -> None:
        """Refuse a flow whose pressure systems the network was not trained for: another problem
        (mask type) or another solver grid."""
        trained = self.hparams["trained_on"]
        if trained is None:
            raise CfdbenchError("this dcdm network has not been trained on any pressure system")
        if trained["problem"] != problem or tuple(trained["cells"]) != tuple(cells):
            raise CfdbenchError(
                f"this dcdm network was trained on {trained['problem']} systems on a {trained['cells'][0]}x{trained['cells'][1]} "
                f"grid; it cannot solve {problem} systems on a {cells[0]}x{cells[1]} grid "
                "(train one with `cfdbench run --model dcdm`)"
            )
