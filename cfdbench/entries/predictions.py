"""The predictions an entry's scores are computed from, published beside the entry.

Every evaluation stores the model's predictions compactly: for each frame and field, the residual
``prediction - truth`` in 16-bit fixed point relative to its largest magnitude (a float32 scale).
The scores are computed from the decoded predictions, ``truth + scale * code / 32767``, not from
the model's raw output, so that anyone with the dataset recomputes every score exactly from the
file (verification tier B). Decoding moves each prediction by at most 2^-16 of the largest error
in its frame and field (then rounds it to float32). A value that is not finite (a diverged
rollout) is stored as the code -32768 and decoded as NaN, which every score treats as a NaN or
Inf prediction. The identity baseline is not encoded: its predictions are the data.

The file (``<entry_id>.predictions.npz``) holds the one-step predictions of every (window -> next
frame) pair of the split in loader order, the K-step rollouts of every case, the normalisation the
one-step pairs were formed with, the case ids and the task. The 16-bit codes are stored
byte-planar (all high bytes, then all low bytes), which deflate compresses about a third better.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from cfdbench.data.download import sha256_of
from cfdbench.errors import CfdbenchError
from cfdbench.io import atomic_path

FORMAT = 1
PREDICTIONS_SUFFIX = ".predictions.npz"  # the file beside an entry: <entry_id>.predictions.npz
FULL_SCALE = 32767  # the code of a residual as large as its frame's largest
NOT_FINITE = -32768  # the code of a NaN or Inf prediction
ENCODING = "int16 residuals against the truth per frame and field, in units of their largest magnitude / 32767; -32768: NaN"


@dataclass
class Encoded:
    """Residual codes (..., C, *space) as int16 and their scales (..., C) as float32."""

    residual: np.ndarray
    scale: np.ndarray

    def __len__(self) -> int:
        return len(self.scale)

    def __getitem__(self, index: Any) -> "Encoded":
        return Encoded(self.residual[index], self.scale[index])

    @classmethod
    def concatenate(cls, parts: list["Encoded"]) -> "Encoded":
        return cls(np.concatenate([p.residual for p in parts]), np.concatenate([p.scale for p in parts]))


def encode(predicted: Tensor, truth: Tensor, channel_dim: int) -> Encoded:
    """``predicted`` against ``truth`` (same shape, fields on ``channel_dim``, space after it)."""
    residual = predicted.double() - truth.double()
    finite = torch.isfinite(residual)
    space = tuple(range(channel_dim + 1, residual.dim()))
    magnitude = torch.where(finite, residual.abs(), torch.zeros((), dtype=residual.dtype))
    scale = magnitude.amax(dim=space).float()
    divisor = _broadcast(torch.where(scale > 0, scale, torch.ones_like(scale)).double(), len(space))
    codes = torch.where(finite, torch.round(residual / divisor * FULL_SCALE).clamp(-FULL_SCALE, FULL_SCALE), NOT_FINITE)
    return Encoded(codes.to(torch.int16).numpy(), scale.numpy())


def decode(encoded: Encoded, truth: Tensor, channel_dim: int) -> Tensor:
    """The published predictions: ``truth + scale * code / 32767`` in float64, rounded to float32."""
    codes = torch.from_numpy(encoded.residual.astype(np.float64))
    scale = _broadcast(torch.from_numpy(encoded.scale.astype(np.float64)), codes.dim() - channel_dim - 1)
    residual = torch.where(codes == NOT_FINITE, torch.nan, codes * scale / FULL_SCALE)
    return (truth.double() + residual).float()


def _broadcast(scale: Tensor, space_dims: int) -> Tensor:
    return scale.reshape(*scale.shape, *(1,) * space_dims)


def publish(predicted: Tensor, truth: Tensor, channel_dim: int) -> tuple[Tensor, Encoded]:
    """(the predictions as published, their encoding): what every score is computed from."""
    encoded = encode(predicted, truth, channel_dim)
    return decode(encoded, truth, channel_dim), encoded


@dataclass
class Pairs:
    """Published one-step predictions (pairs, C, *space) with each pair's case index and target frame."""

    encoded: Encoded
    case: np.ndarray
    frame: np.ndarray

    def batch(self, first: int, case: Tensor, frame: Tensor) -> Encoded:
        """The predictions of the pairs ``first``, ``first + 1``, ...; they must be the given (case, frame) pairs."""
        last = first + len(case)
        if last > len(self.case) or not (
            np.array_equal(self.case[first:last], case) and np.array_equal(self.frame[first:last], frame)
        ):
            raise CfdbenchError(
                "the predictions file's one-step pairs are not the split's (case, frame) pairs: it belongs to other data"
            )
        return self.encoded[first:last]


@dataclass
class Predictions:
    """One evaluation's published predictions: the one-step pairs and the rollouts (cases, K, C, *space),
    with the normalisation, case ids and task they belong to."""

    one_step: Pairs
    rollout: Encoded
    case_ids: list[str]
    normalization: dict
    task: dict

    def save(self, path: Path) -> str:
        """Write the file atomically; returns its SHA-256."""
        arrays = {
            "format": np.asarray(FORMAT),
            "one_step_residual": _planar(self.one_step.encoded.residual),
            "one_step_shape": np.asarray(self.one_step.encoded.residual.shape),
            "one_step_scale": self.one_step.encoded.scale,
            "one_step_case": self.one_step.case.astype(np.int32),
            "one_step_frame": self.one_step.frame.astype(np.int32),
            "rollout_residual": _planar(self.rollout.residual),
            "rollout_shape": np.asarray(self.rollout.residual.shape),
            "rollout_scale": self.rollout.scale,
            "meta": np.asarray(json.dumps({"case_ids": self.case_ids, "normalization": self.normalization, "task": self.task})),
        }
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                np.savez_compressed(handle, **arrays)
        return sha256_of(Path(path))

    @classmethod
    def load(cls, path: Path) -> "Predictions":
        """Read a predictions file; an unreadable or foreign one is one readable error."""
        try:
            with np.load(path, allow_pickle=False) as data:
                if int(data["format"]) != FORMAT:
                    raise CfdbenchError(f"{path}: predictions format {int(data['format'])}; this cfdbench reads {FORMAT}")
                meta = json.loads(str(data["meta"]))
                one_step = Encoded(_unplanar(data["one_step_residual"], data["one_step_shape"]), data["one_step_scale"])
                rollout = Encoded(_unplanar(data["rollout_residual"], data["rollout_shape"]), data["rollout_scale"])
                pairs = Pairs(one_step, data["one_step_case"], data["one_step_frame"])
                return cls(pairs, rollout, meta["case_ids"], meta["normalization"], meta["task"])
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, io.UnsupportedOperation) as err:
            raise CfdbenchError(f"{path}: not a readable predictions file ({err.__class__.__name__}: {err})") from None


def _planar(values: np.ndarray) -> np.ndarray:
    """16-bit values as (2, n) bytes: every value's first byte, then every second byte."""
    return np.ascontiguousarray(values.reshape(-1).view(np.uint8).reshape(-1, 2).T)


def _unplanar(planes: np.ndarray, shape: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(planes.T).view(np.int16).reshape(tuple(int(n) for n in shape))
