"""Worker processes only read: the batches of 0 and 2 workers, and of 2 DDP ranks, are the same tensors
in the same order, so resumed and distributed runs stay exact."""

from __future__ import annotations

import json
import multiprocessing

import pytest
import torch
from conftest import run_entry_point

from cfdbench.data.batches import LENT_STEPS, BatchLoader, FixedBatches, RankBatches, Ranks
from cfdbench.data.loader import AutoregressiveDataset
from cfdbench.data.resolve import open_dataset
from cfdbench.errors import CorruptCaseError


def epochs_of_batches(samples, ranks: Ranks, workers: int, epochs=(1, 2), batch_size: int = 6) -> list[list[tuple[dict, int]]]:
    """Every (batch, global size) of each epoch, from one persistent loader."""
    loader = BatchLoader(samples, RankBatches(len(samples), batch_size, ranks, seed=7), workers)
    drawn = []
    for epoch in epochs:
        loader.set_epoch(epoch)
        drawn.append(list(loader))
    return drawn


def assert_same_batches(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("cache", [False, True])
def test_two_workers_give_bitwise_the_batches_of_none(tiny_dataset, cache):
    samples = AutoregressiveDataset(tiny_dataset, "train", cache=cache)
    none, two = (epochs_of_batches(samples, Ranks(), workers) for workers in (0, 2))
    assert [len(epoch) for epoch in none] == [len(epoch) for epoch in two] == [4, 4]  # 21 samples in batches of 6
    assert not torch.equal(none[0][0][0]["case"], none[1][0][0]["case"])  # each epoch has its own order
    for epoch_none, epoch_two in zip(none, two):
        for (batch_a, size_a), (batch_b, size_b) in zip(epoch_none, epoch_two):
            assert size_a == size_b
            assert_same_batches(batch_a, batch_b)


def test_ddp_ranks_with_workers_share_the_single_process_global_batches(tiny_dataset):
    """Rank r of 2 takes rows r, r+2, ... of each global batch (batches.rank_batches): with 2
    workers per rank, their union is bitwise the global batch one process without workers reads."""
    samples = AutoregressiveDataset(tiny_dataset, "train", cache=False)
    single = epochs_of_batches(samples, Ranks(), 0)
    ranks = [epochs_of_batches(samples, Ranks(rank=r, world_size=2), 2) for r in range(2)]
    for epoch, batches in enumerate(single):
        for step, (batch, size) in enumerate(batches):
            parts = [ranks[r][epoch][step] for r in range(2)]
            assert parts[0][1] == parts[1][1] == size
            for key, value in batch.items():
                assert torch.equal(value[0::2], parts[0][0][key]) and torch.equal(value[1::2], parts[1][0][key]), key


def test_an_error_in_a_worker_arrives_as_its_one_line(tiny_dataset, tmp_path):
    samples = AutoregressiveDataset(open_dataset(tiny_dataset.path), "train", cache=False)  # its own copy: altered below
    case = samples.dataset.case_path(samples.case_ids[0])
    copy = tmp_path / case.name
    copy.write_bytes(case.read_bytes())
    samples.dataset._cases[samples.case_ids[0]] = copy
    loader = BatchLoader(samples, RankBatches(len(samples), 21, Ranks(), seed=0), num_workers=1)
    copy.write_bytes(case.read_bytes()[: case.stat().st_size // 2])  # truncated once the loader exists: the worker finds it
    with pytest.raises(CorruptCaseError) as error:
        list(loader)
    assert "\n" not in str(error.value) and str(copy) in str(error.value)


def test_train_with_workers_records_them_and_matches_none(tiny_dataset, tmp_path):
    common = ["train", "--model", "fno", "--dataset", str(tiny_dataset.path), "--epochs", "1", "--batch-size", "6"]
    common += ["--device", "cpu", "--set", "model.modes=[4,4]", "--set", "model.hidden_channels=8"]
    for workers in (0, 2):
        result = run_entry_point(*common, "--num-workers", str(workers), "--run-dir", str(tmp_path / f"w{workers}"), cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-2000:]
    config = json.loads((tmp_path / "w2" / "config.json").read_text())
    assert config["training"]["num_workers"] == 2
    losses = [[r["train_loss"] for r in json.loads((tmp_path / f"w{w}" / "history.json").read_text())] for w in (0, 2)]
    assert losses[0] == losses[1]  # the same batches in the same order: the same floats


def test_lent_batches_are_the_copied_ones_and_outlive_their_step(tiny_dataset):
    """Lent (no copy) batches equal the batches of no workers when drawn, and still do after the
    loop has drawn LENT_STEPS more of the pass; the stream runs on across epochs."""
    samples = AutoregressiveDataset(tiny_dataset, "train", cache=False)
    expected = epochs_of_batches(samples, Ranks(), 0, epochs=(1, 2, 3), batch_size=4)
    loader = BatchLoader(samples, RankBatches(len(samples), 4, Ranks(), seed=7), num_workers=2, lend=True)
    streams = set()
    for epoch, batches in zip((1, 2, 3), expected):
        loader.set_epoch(epoch)
        held = []  # (batch as lent, its copy when drawn, step)
        for step, (batch, size) in enumerate(loader):
            assert size == batches[step][1]
            assert_same_batches(batch, batches[step][0])
            held.append((batch, {key: value.clone() for key, value in batch.items()}))
            for lent, copied in held[-1 - LENT_STEPS :]:
                assert_same_batches(lent, copied)
        streams.add(id(loader._stream))
    assert len(streams) == 1  # one set of workers for the three epochs


def test_a_stopped_pass_or_another_epoch_starts_a_new_stream_with_the_right_batches(tiny_dataset):
    samples = AutoregressiveDataset(tiny_dataset, "train", cache=False)
    expected = {epoch: batches for epoch, batches in zip((1, 3), epochs_of_batches(samples, Ranks(), 0, epochs=(1, 3)))}
    loader = BatchLoader(samples, RankBatches(len(samples), 6, Ranks(), seed=7), num_workers=2)
    loader.set_epoch(1)
    first = iter(loader)
    next(first)
    first.close()  # a consumer that stops early
    assert loader._stream is None
    for epoch in (1, 3):  # epoch 3 does not follow epoch 1: its stream is new
        loader.set_epoch(epoch)
        for (batch, size), (want, want_size) in zip(loader, expected[epoch], strict=True):
            assert size == want_size
            assert_same_batches(batch, want)


@pytest.mark.timeout(120)
def test_an_empty_schedule_gives_no_batches_with_workers(tiny_dataset):
    samples = AutoregressiveDataset(tiny_dataset, "train", cache=False)
    loader = BatchLoader(samples, FixedBatches(torch.arange(0), 4), num_workers=2, lend=True)
    assert len(loader) == 0 and list(loader) == []


class _FailsWhileMarked(torch.utils.data.Dataset):
    """The samples of ``samples``, except that a read fails with an OSError (not a CfdbenchError)
    while ``marker`` exists: a disk or network error in a worker."""

    def __init__(self, samples, marker):
        self.samples, self.marker = samples, marker

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        return self.gather(torch.as_tensor(index))

    def empty_batch(self, rows):
        return self.samples.empty_batch(rows)

    def gather(self, index, out=None):
        if self.marker.exists():
            raise OSError(f"cannot read {self.marker}")
        return self.samples.gather(index, out)


def test_workers_that_failed_are_stopped_before_the_next_pass_starts(tiny_dataset, tmp_path):
    """A worker's OSError reaches the loop; its workers are gone at once (they would otherwise go on
    writing the shared slots beside the next pass's), and the next pass reads the right batches."""
    samples = AutoregressiveDataset(tiny_dataset, "train", cache=False)
    expected = epochs_of_batches(samples, Ranks(), 0, epochs=(1,))[0]
    marker = tmp_path / "failing"
    loader = BatchLoader(_FailsWhileMarked(samples, marker), RankBatches(len(samples), 6, Ranks(), seed=7), num_workers=2)
    marker.touch()  # after the loader has read its probe batch in this process
    loader.set_epoch(1)
    with pytest.raises(OSError, match="cannot read"):
        list(loader)
    assert multiprocessing.active_children() == []
    marker.unlink()
    for (batch, size), (want, want_size) in zip(loader, expected, strict=True):
        assert size == want_size
        assert_same_batches(batch, want)


def test_a_pass_draws_from_the_global_generator_as_a_data_loader_pass_does(tiny_dataset):
    """Dropout and other draws during training see the same global random state for 0 and 2
    workers: each pass makes the one draw a DataLoader pass makes."""
    samples = AutoregressiveDataset(tiny_dataset, "train", cache=False)
    states = []
    for workers in (0, 2):
        loader = BatchLoader(samples, RankBatches(len(samples), 6, Ranks(), seed=7), num_workers=workers, lend=True)
        torch.manual_seed(0)
        for epoch in (1, 2):
            loader.set_epoch(epoch)
            for _ in loader:
                pass
        states.append(torch.get_rng_state())
    torch.manual_seed(0)
    for _ in range(2):
        list(torch.utils.data.DataLoader([]))
    assert torch.equal(states[0], states[1]) and torch.equal(states[0], torch.get_rng_state())
