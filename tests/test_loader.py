"""Autoregressive samples: right frames, right normalisation, one copy of each frame."""

import pytest
import torch

from cfdbench.data.loader import AutoregressiveDataset
from cfdbench.errors import CfdbenchError


def stored_frames(dataset, case_id, fields=("u", "v")):
    with dataset.open_case(case_id) as case:
        return torch.from_numpy(case.read(fields, slice(None)))


@pytest.mark.parametrize("cache", [True, False])
def test_samples_are_the_right_frames(tiny_dataset, cache):
    samples = AutoregressiveDataset(tiny_dataset, "train", input_frames=2, stride=2, cache=cache)
    n_frames = [stored_frames(tiny_dataset, c).shape[0] for c in samples.case_ids]
    assert len(samples) == sum(n - 2 * 2 for n in n_frames)
    for index in (0, 1, len(samples) - 1):
        sample = samples[index]
        case_id = samples.case_ids[int(sample["case"])]
        frames = samples.scaler.normalize(stored_frames(tiny_dataset, case_id), channel_dim=1)
        target = int(sample["frame"])
        torch.testing.assert_close(sample["target"], frames[target])
        torch.testing.assert_close(sample["input"], torch.cat([frames[target - 4], frames[target - 2]]))


def test_batches_equal_stacked_samples_and_modes_agree(tiny_dataset):
    cached = AutoregressiveDataset(tiny_dataset, "train", cache=True)
    lazy = AutoregressiveDataset(tiny_dataset, "train", cache=False)
    index = [5, 0, 3, 3]
    batch = cached[index]
    for key, value in lazy[index].items():
        torch.testing.assert_close(batch[key], value)
    for row, i in enumerate(index):
        for key, value in cached[i].items():
            torch.testing.assert_close(batch[key][row], value)


def test_each_frame_is_held_once(tiny_dataset):
    samples = AutoregressiveDataset(tiny_dataset, "train", cache=True)
    assert samples._frames.shape[0] == samples.total_frames


def test_normalisation_uses_training_statistics(tiny_dataset):
    samples = AutoregressiveDataset(tiny_dataset, "test", cache=True)
    stats = tiny_dataset.stats
    assert samples.scaler.mean.tolist() == pytest.approx([stats["u"]["mean"], stats["v"]["mean"]])
    train = AutoregressiveDataset(tiny_dataset, "train")
    torch.testing.assert_close(samples.param_scaler.mean, train.param_scaler.mean)


def test_loader_yields_whole_batches(tiny_dataset):
    samples = AutoregressiveDataset(tiny_dataset, "train")
    batches = list(samples.loader(batch_size=4, shuffle=True, seed=1))
    assert sum(b["input"].shape[0] for b in batches) == len(samples)
    assert batches[0]["input"].shape == (4, 2, 16, 16)
    again = list(samples.loader(batch_size=4, shuffle=True, seed=1))
    torch.testing.assert_close(batches[0]["frame"], again[0]["frame"])


def test_window_longer_than_cases_is_a_clear_error(tiny_dataset):
    with pytest.raises(CfdbenchError, match="no sample fits"):
        AutoregressiveDataset(tiny_dataset, "train", input_frames=4, stride=3)
