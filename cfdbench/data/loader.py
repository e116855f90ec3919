"""Autoregressive training samples from a stored dataset.

A sample is an input window of ``input_frames`` frames spaced by ``stride`` and the frame one
stride after the window, together with the case's mask and (normalised) parameters. Fields
are normalised with the dataset's training-split statistics.

Memory: each frame is held once, normalised in place in one preallocated tensor (or, in lazy
mode, read from disk per batch by a :class:`~cfdbench.data.frame_reader.FrameReader`, files
kept open, then normalised and masked as one block), never as
materialised (input, target) pairs; batches are gathered by one ``index_select``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from cfdbench.data.batches import Batches, BatchLoader, FixedBatches
from cfdbench.data.frame_reader import DEFAULT_MAX_OPEN_FILES, FrameReader
from cfdbench.data.view import StoredDataset
from cfdbench.errors import CfdbenchError

DEFAULT_CACHE_BYTES = 4 * 2**30


@dataclass(frozen=True)
class FieldScaler:
    """Per-field z-score normalisation with the training split's statistics."""

    mean: Tensor  # (C,)
    std: Tensor  # (C,)

    @classmethod
    def from_stats(cls, stats: dict, fields: Sequence[str]) -> "FieldScaler":
        try:
            mean = [float(stats[f]["mean"]) for f in fields]
            std = [float(stats[f]["std"]) for f in fields]
        except KeyError as missing:
            raise CfdbenchError(f"stats.yaml has no statistics for field {missing}") from None
        return cls(torch.tensor(mean), torch.tensor(std))

    def _shape(self, x: Tensor, channel_dim: int) -> tuple[Tensor, Tensor]:
        shape = [1] * x.dim()
        shape[channel_dim] = -1
        return self.mean.to(x).reshape(shape), self.std.to(x).reshape(shape)

    def normalize(self, x: Tensor, channel_dim: int) -> Tensor:
        """Standardise the fields along ``channel_dim`` (explicit: frames are planes or volumes)."""
        mean, std = self._shape(x, channel_dim)
        return (x - mean) / std

    def denormalize(self, x: Tensor, channel_dim: int) -> Tensor:
        mean, std = self._shape(x, channel_dim)
        return x * std + mean


@dataclass(frozen=True)
class ParameterScaler:
    """Case parameters span decades (viscosity 1e-3..1), so they are standardised in log10.

    Fitted on the training split only; a parameter constant over the training split maps to 0.
    """

    mean: Tensor
    std: Tensor

    @classmethod
    def fit(cls, params: np.ndarray) -> "ParameterScaler":
        logs = np.log10(params)
        std = logs.std(axis=0)
        return cls(
            torch.tensor(logs.mean(axis=0), dtype=torch.float32), torch.tensor(np.where(std > 0, std, 1.0), dtype=torch.float32)
        )

    def transform(self, params: np.ndarray | Tensor) -> Tensor:
        logs = torch.log10(torch.as_tensor(params, dtype=torch.float32))
        return (logs - self.mean) / self.std


@dataclass(frozen=True)
class Normalization:
    """Field and parameter scalers of a training run; saved in its checkpoints."""

    fields: FieldScaler
    params: ParameterScaler
    field_names: tuple[str, ...]

    @classmethod
    def from_dataset(
        cls, dataset: StoredDataset, fields: Sequence[str], params: ParameterScaler | None = None
    ) -> "Normalization":
        """Statistics of the dataset's training split: stats.yaml for the fields; the parameter
        scaler is fitted on the training cases unless it is given."""
        params = params or ParameterScaler.fit(case_parameters(dataset, dataset.split("train")))
        return cls(FieldScaler.from_stats(dataset.stats, fields), params, tuple(fields))

    def to_dict(self) -> dict:
        return {
            "field_names": list(self.field_names),
            "field_mean": self.fields.mean.tolist(),
            "field_std": self.fields.std.tolist(),
            "param_log_mean": self.params.mean.tolist(),
            "param_log_std": self.params.std.tolist(),
        }

    @classmethod
    def from_dict(cls, raw: dict) -> "Normalization":
        return cls(
            FieldScaler(torch.tensor(raw["field_mean"]), torch.tensor(raw["field_std"])),
            ParameterScaler(torch.tensor(raw["param_log_mean"]), torch.tensor(raw["param_log_std"])),
            tuple(raw["field_names"]),
        )


def case_parameters(dataset: StoredDataset, case_ids: Sequence[str]) -> np.ndarray:
    """(N, P) physical parameters of the given cases, in the dataset's parameter order."""
    rows = []
    for case_id in case_ids:
        with dataset.open_case(case_id) as case:
            rows.append(list(case.params.values()))
    return np.asarray(rows, dtype=np.float64)


class AutoregressiveDataset(torch.utils.data.Dataset):
    """(input window -> next frame, or next ``output_frames`` frames) samples of one split, keyed by an integer index.

    ``dataset[i]`` gives one sample; ``dataset[[i, j, ...]]`` gives a batch gathered in one
    vectorised step (use :meth:`loader`, which hands index lists to ``__getitem__``).
    Returned tensors: ``input`` (k*C, H, W), ``target`` (m*C, H, W) for m output frames, ``mask`` (1, H, W), 1 on
    the fluid cells, and ``fluid_fraction`` (1, H, W), each cell's share outside every body, what a model
    sees of the geometry (with a leading D before H for 3D datasets, whose frame shape comes from the stored metadata),
    ``params`` (P,), plus ``case`` and ``frame`` indices and ``time`` (of the first target frame, its
    index as a fraction of its case's trajectory); batches add a leading dimension.
    Fields are normalised and zero outside the fluid, exactly as a model's masked output.

    ``cache``: ``None`` (auto) holds every frame of the split in memory when it fits in
    ``max_cache_bytes``, ``True`` forces that, ``False`` reads the needed frames from disk for
    each batch (``max_open_files`` bounds the case files kept open).
    """

    def __init__(
        self,
        dataset: StoredDataset,
        split: str = "train",
        input_frames: int = 1,
        stride: int = 1,
        fields: Sequence[str] = ("u", "v"),
        cache: bool | None = None,
        max_cache_bytes: int = DEFAULT_CACHE_BYTES,
        normalization: "Normalization | None" = None,
        output_frames: int = 1,
        max_open_files: int = DEFAULT_MAX_OPEN_FILES,
    ):
        if min(input_frames, stride, output_frames) < 1:
            raise CfdbenchError(
                f"input_frames, output_frames and stride must be >= 1, got {input_frames}, {output_frames} and {stride}"
            )
        if dataset.stats is None or dataset.splits is None:
            raise CfdbenchError(f"dataset {dataset.path} has no stats.yaml/splits.json; regenerate or finalise it")
        self.dataset, self.split = dataset, split
        self.fields = tuple(fields)
        self.input_frames, self.output_frames, self.stride = input_frames, output_frames, stride
        self.case_ids = list(dataset.split(split))
        if not self.case_ids:
            raise CfdbenchError(f"split '{split}' of {dataset.name} has no cases")
        dataset.prefetch(self.case_ids)  # a remote dataset fetches the split's cases now, concurrently
        raw_params = self._index_cases()
        # A model trained elsewhere brings its own normalisation; otherwise use this dataset's
        # training split (whose parameters were just read when this is the training split).
        if normalization is None:
            param_scaler = ParameterScaler.fit(raw_params) if split == "train" else None
            normalization = Normalization.from_dataset(dataset, self.fields, param_scaler)
        self.normalization = normalization
        self.scaler = normalization.fields
        self.param_scaler = normalization.params
        self.params = self.param_scaler.transform(raw_params)  # (cases, P)
        self.raw_params = torch.tensor(raw_params, dtype=torch.float64)
        frame_bytes = 4 * len(self.fields) * int(np.prod(self.frame_shape))
        self.cached = (self.total_frames * frame_bytes <= max_cache_bytes) if cache is None else cache
        self._frames = self._load_all_frames() if self.cached else None
        self._reader = None if self.cached else FrameReader(dataset, self.case_ids, self.fields, len(self.frame_shape), max_open_files)

    # ------------------------------------------------------------------ indexing
    @property
    def window(self) -> int:
        """Frames spanned by one sample, targets included."""
        return (self.input_frames + self.output_frames - 1) * self.stride + 1

    def _index_cases(self) -> np.ndarray:
        """Per case: frame count and mask; per sample: (case, first input frame). Returns the
        (cases, P) physical parameters."""
        n_frames, masks, fractions, params = [], [], [], []
        for case_id in self.case_ids:
            with self.dataset.open_case(case_id) as case:
                n_frames.append(case.n_frames)
                masks.append(torch.from_numpy(np.ascontiguousarray(case.mask, dtype=np.float32)))
                fractions.append(torch.from_numpy(case.fluid_fraction))
                params.append(list(case.params.values()))
                self.frame_shape = case.shape
                self.parameter_names = tuple(case.params)
        self.n_frames = torch.tensor(n_frames)
        self.masks = torch.stack(masks).unsqueeze(1)  # (cases, 1, H, W)
        self.fluid_fractions = torch.stack(fractions).unsqueeze(1)
        self.frame_offset = torch.cumsum(torch.cat([torch.zeros(1, dtype=torch.long), self.n_frames[:-1]]), 0)
        self.total_frames = int(self.n_frames.sum())
        starts_per_case = (self.n_frames - self.window + 1).clamp(min=0)
        self.sample_case = torch.repeat_interleave(torch.arange(len(self.case_ids)), starts_per_case)
        if len(self.sample_case) == 0:
            raise CfdbenchError(
                f"no sample fits: cases of split '{self.split}' have {int(self.n_frames.min())} frames, "
                f"a window of {self.input_frames} inputs and {self.output_frames} targets at stride {self.stride} "
                f"needs {self.window}"
            )
        self.sample_start = torch.cat([torch.arange(int(n)) for n in starts_per_case]).long()
        return np.asarray(params, dtype=np.float64)

    def _prepare(self, frames: Tensor, mask: Tensor) -> Tensor:
        """Normalise raw frames (n, C, *shape) and zero them outside the fluid (``mask`` broadcasts
        against them: one case's (1, *shape) or each frame's (n, 1, *shape)), in place."""
        trailing = (1,) * len(self.frame_shape)
        mean, std = self.scaler.mean.reshape(-1, *trailing), self.scaler.std.reshape(-1, *trailing)
        return frames.sub_(mean).div_(std).mul_(mask)

    def _load_all_frames(self) -> Tensor:
        """All frames of the split's cases, prepared, in one preallocated (total_frames, C, H, W) tensor."""
        frames = torch.empty((self.total_frames, len(self.fields), *self.frame_shape))
        for c, case_id in enumerate(self.case_ids):
            first, n = int(self.frame_offset[c]), int(self.n_frames[c])
            with self.dataset.open_case(case_id) as case:
                frames[first : first + n] = torch.from_numpy(case.read(self.fields, slice(None)))
            self._prepare(frames[first : first + n], self.masks[c])
        return frames

    def __len__(self) -> int:
        return len(self.sample_case)

    # ------------------------------------------------------------------ fetching
    def _frame_ids(self, index: Tensor) -> tuple[Tensor, Tensor]:
        """(case (B,), frame numbers (B, k+m): the input window then the targets) of sample indices."""
        case = self.sample_case[index]
        offsets = torch.arange(self.input_frames + self.output_frames) * self.stride
        return case, self.sample_start[index][:, None] + offsets

    def _read_frames(self, case: Tensor, frames: Tensor, mask: Tensor, out: Tensor) -> None:
        """Prepared frames of cases (B,), their frame numbers (B, n) and masks (B, 1, H, W), written
        into ``out`` (B, n, C, H, W)."""
        flat_out = out.view(-1, *out.shape[2:])
        if self._frames is not None:
            torch.index_select(self._frames, 0, (self.frame_offset[case][:, None] + frames).reshape(-1), out=flat_out)
            return
        # Read in file order straight into the batch's layout, then normalised and masked as one block.
        self._reader.read(case.repeat_interleave(frames.shape[1]), frames.reshape(-1), out=flat_out)
        self._prepare(out, mask.unsqueeze(1))

    def window_views(self, frames: Tensor) -> dict[str, Tensor]:
        """``input`` (B, k*C, H, W) and ``target`` (B, m*C, H, W): views of frames (B, k+m, C, H, W), no copy."""
        k = self.input_frames
        return {"input": frames[:, :k].flatten(1, 2), "target": frames[:, k:].flatten(1, 2)}

    def empty_batch(self, rows: int) -> dict[str, Tensor]:
        """Tensors that :meth:`gather` can write a batch of up to ``rows`` samples into: the batch's
        keys, with ``input`` and ``target`` views of one frame block, kept as ``frames``."""
        frames = torch.empty((rows, self.input_frames + self.output_frames, len(self.fields), *self.frame_shape))
        return {
            "frames": frames,
            **self.window_views(frames),
            "mask": torch.empty((rows, *self.masks.shape[1:])),
            "fluid_fraction": torch.empty((rows, *self.masks.shape[1:])),
            "params": torch.empty((rows, self.params.shape[1]), dtype=self.params.dtype),
            "case": torch.empty(rows, dtype=torch.long),
            "frame": torch.empty(rows, dtype=torch.long),
            "time": torch.empty(rows),
        }

    def gather(self, index: Tensor, out: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
        """The batch of sample indices (B,), written into the first B rows of ``out`` (from
        :meth:`empty_batch`; a new one when not given) and made of views of them: a worker fills a
        shared-memory batch without allocating one (``batches.py``)."""
        rows = len(index)
        out = self.empty_batch(rows) if out is None else out
        case, frame_ids = self._frame_ids(index)
        first_target = frame_ids[:, self.input_frames]
        mask = torch.index_select(self.masks, 0, case, out=out["mask"][:rows])
        torch.index_select(self.fluid_fractions, 0, case, out=out["fluid_fraction"][:rows])
        torch.index_select(self.params, 0, case, out=out["params"][:rows])
        out["case"][:rows].copy_(case)
        out["frame"][:rows].copy_(first_target)
        out["time"][:rows].copy_(first_target / (self.n_frames[case] - 1).clamp(min=1))  # for non-autoregressive models
        self._read_frames(case, frame_ids, mask, out["frames"][:rows])
        return {key: value[:rows] for key, value in out.items() if key != "frames"}

    def __getitem__(self, index: int | Sequence[int] | Tensor) -> dict[str, Tensor]:
        single = isinstance(index, (int, np.integer))
        batch = self.gather(torch.as_tensor([index] if single else index, dtype=torch.long))
        return {k: v[0] for k, v in batch.items()} if single else batch

    def loader(
        self,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        num_workers: int = 0,
        pin_memory: bool = False,
        lend: bool = False,
    ) -> Batches:
        """Whole batches, each gathered in one indexing step, in an order drawn in this process
        (``num_workers`` processes only read them: the same batches for any number; see ``batches.py``).
        ``lend``: batches read by workers come without a copy, each valid only until the loop draws
        a few more (:class:`~cfdbench.data.batches.BatchLoader`)."""
        order = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed)) if shuffle else torch.arange(len(self))
        if drop_last:
            order = order[: len(order) - len(order) % batch_size]
        return Batches(BatchLoader(self, FixedBatches(order, batch_size), num_workers, pin_memory, lend))
