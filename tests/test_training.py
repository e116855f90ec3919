"""Training that scales: DDP on 2 gloo ranks equals one process, exact resume after a kill,
mixed precision with float32 spectral layers, stability guards, logs, and refused settings."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import run_entry_point

from cfdbench.data.batches import Ranks, check_batch_size, rank_batches
from cfdbench.errors import CfdbenchError
from cfdbench.training import distributed

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}


def train_cli(*args, torchrun: int = 0, env=ENV, **kwargs) -> subprocess.CompletedProcess | subprocess.Popen:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(torchrun), "--master_port", "29531"]
    command = [*(launcher if torchrun else [sys.executable]), "-m", "cfdbench", "train", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, **kwargs)


def history(run_dir) -> list[dict]:
    return json.loads((run_dir / "history.json").read_text())


def test_ranks_share_each_global_batch_exactly():
    singles = list(rank_batches(23, 8, Ranks(), seed=3, epoch=2))
    parts = [list(rank_batches(23, 8, Ranks(rank=r, world_size=2), seed=3, epoch=2)) for r in range(2)]
    assert [len(b) for b, _ in singles] == [8, 8, 7]
    for step, (batch, size) in enumerate(singles):
        union = torch.cat([parts[0][step][0], parts[1][step][0]])
        assert sorted(union.tolist()) == sorted(batch.tolist()) and parts[0][step][1] == size
    assert check_batch_size(8, 2) == 4
    with pytest.raises(CfdbenchError, match="batch size 9 is not divisible by the 2 ranks"):
        check_batch_size(9, 2)


@pytest.mark.slow  # 13 s of the default set's 10-minute budget; torchrun's gloo ranks stay in the default set through test_flows' generation test
def test_two_gloo_ranks_match_one_process(tiny_dataset, tmp_path):
    """Same global batch, same data order: the loss curve of 2 DDP ranks equals one process's.
    21 training samples in batches of 6 leave a last batch of 3, which both runs take (2 + 1 on the ranks)."""
    common = ["--model", "fno", "--dataset", str(tiny_dataset.path), "--epochs", "3", "--batch-size", "6", "--device", "cpu"]
    common += ["--set", "model.modes=[4,4]", "--set", "model.hidden_channels=8"]
    single = train_cli(*common, "--run-dir", str(tmp_path / "single"))
    assert single.returncode == 0, single.stderr[-2000:]
    ranks = train_cli(*common, "--run-dir", str(tmp_path / "ddp"), torchrun=2)
    assert ranks.returncode == 0, ranks.stderr[-3000:]
    one, two = history(tmp_path / "single"), history(tmp_path / "ddp")
    assert len(one) == len(two) == 3
    for a, b in zip(one, two):
        # Tolerance: float32 gradients summed in another order (gloo all-reduce) differ at ~1e-7
        # relative per step; three epochs of Adam keep that below 1e-5.
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-5)
        assert b["valid_nmse"] == pytest.approx(a["valid_nmse"], rel=1e-5)
    assert not any(p.name.startswith("rank") for p in (tmp_path / "ddp").iterdir())  # rank 0 alone wrote


@pytest.mark.slow  # 21 s: the default set's margin under CI's 10 minutes (564 s on a clean clone)
def test_a_killed_run_resumes_to_the_same_weights(tiny_dataset, tmp_path):
    common = ["--model", "resnet", "--dataset", str(tiny_dataset.path), "--epochs", "5", "--batch-size", "4", "--device", "cpu"]
    full = train_cli(*common, "--run-dir", str(tmp_path / "full"))
    assert full.returncode == 0, full.stderr[-2000:]
    command = [sys.executable, "-m", "cfdbench", "train", *common, "--run-dir", str(tmp_path / "killed")]
    process = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        path = tmp_path / "killed" / "history.json"
        if path.exists() and len(json.loads(path.read_text() or "[]")) >= 2:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done = len(history(tmp_path / "killed"))
    assert process.returncode == -signal.SIGKILL and 2 <= done < 5, "the run must be killed mid-way"
    resumed = train_cli("--resume", str(tmp_path / "killed"))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=False)
    b = torch.load(tmp_path / "killed" / "last.pt", weights_only=False)
    assert a["progress"]["step"] == b["progress"]["step"]
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    assert [r["train_loss"] for r in history(tmp_path / "full")] == [r["train_loss"] for r in history(tmp_path / "killed")]


def test_unknown_settings_are_refused_in_one_line(tiny_dataset):
    from cfdbench.pipeline import resolve_run_config

    result = run_entry_point("train", "--dataset", str(tiny_dataset.path), "--set", "training.nope=1", cwd=tiny_dataset.path)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and "unknown training settings ['nope']" in lines[0], result.stderr
    for setting, message in (
        ("model.nope=1", "model 'fno' has no settings \\['nope'\\]"),
        ("lr=1", "use model.<key>=<value> or training.<key>=<value>"),
        ("training.epochs=abc", "training setting epochs must be an integer, got 'abc'"),
    ):
        with pytest.raises(CfdbenchError, match=message):
            resolve_run_config("fno", str(tiny_dataset.path), torch.device("cpu"), settings=[setting])
    config = resolve_run_config("fno", str(tiny_dataset.path), torch.device("cpu"), settings=["training.lr=3e-4"])
    assert config.training["lr"] == 3e-4  # YAML reads 3e-4 as a string; the setting is a number


def small_run(tiny_dataset, tmp_path, **settings):
    from cfdbench.pipeline import require_dataset, resolve_run_config, train_stage

    overrides = {"epochs": 2, "batch_size": 4, **settings}
    config = resolve_run_config("fno", str(tiny_dataset.path), torch.device("cpu"), overrides, settings=["model.modes=[4,4]"])
    return train_stage(config, require_dataset(str(tiny_dataset.path)), tmp_path, show_progress=False)


def test_resume_refuses_another_run(tiny_dataset, tmp_path):
    from cfdbench.pipeline import require_dataset, resolve_run_config, train_stage

    small_run(tiny_dataset, tmp_path, epochs=1)
    other = resolve_run_config(
        "fno", str(tiny_dataset.path), torch.device("cpu"), {"epochs": 2, "batch_size": 4}, settings=["model.modes=[2,2]"]
    )
    with pytest.raises(CfdbenchError, match="it belongs to another run .*model"):
        train_stage(other, require_dataset(str(tiny_dataset.path)), tmp_path, show_progress=False, resume=True)



def test_a_run_saved_before_newer_training_settings_still_resumes(tiny_dataset, tmp_path):
    """A state whose identity lacks the settings added since (saved by an older cfdbench) resumes: it
    trained as their defaults do."""
    from cfdbench.pipeline import require_dataset, resolve_run_config, train_stage
    from cfdbench.training import state

    small_run(tiny_dataset, tmp_path, epochs=1)
    path = tmp_path / state.STATE_FILE
    payload = torch.load(path, weights_only=False)
    for key in state.ADDED_SETTINGS:
        payload["identity"]["training"].pop(key)
    torch.save(payload, path)
    config = resolve_run_config("fno", str(tiny_dataset.path), torch.device("cpu"), {"epochs": 1, "batch_size": 4}, settings=["model.modes=[4,4]"])
    _, result, _ = train_stage(config, require_dataset(str(tiny_dataset.path)), tmp_path, show_progress=False, resume=True)
    assert len(result.history) == 1

def test_bf16_autocast_keeps_spectral_layers_in_float32(tiny_dataset, tmp_path):
    from neuralop.layers.spectral_convolution import SpectralConv

    from cfdbench.training import trainer

    seen = []
    original = trainer.precision.keep_spectral_float32

    def spy(model):
        count = original(model)
        for module in model.modules():
            if isinstance(module, SpectralConv):
                module.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
        return count

    trainer.precision.keep_spectral_float32 = spy
    try:
        _, result, _ = small_run(tiny_dataset, tmp_path, precision="bf16", grad_clip=0.5)
    finally:
        trainer.precision.keep_spectral_float32 = original
    assert seen and set(seen) == {torch.float32} and result.steps > 0
    with pytest.raises(CfdbenchError, match="fp16 needs a CUDA device"):
        small_run(tiny_dataset, tmp_path / "fp16", precision="fp16")


def test_nan_loss_names_step_and_batch(tiny_dataset, tmp_path, monkeypatch):
    from cfdbench.training import trainer

    nan_loss = lambda pred, target, mask: (pred * float("nan")).flatten(1).sum(1)  # noqa: E731
    monkeypatch.setattr(trainer, "training_loss", lambda config, data: nan_loss)
    with pytest.raises(CfdbenchError, match=r"loss is nan at epoch 1, step 1, on the batch of cases \['"):
        small_run(tiny_dataset, tmp_path)


def test_out_of_memory_names_the_batch_size(tiny_dataset, tmp_path, monkeypatch):
    from cfdbench.training import trainer

    def oom(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(trainer, "training_loss", lambda config, data: oom)
    with pytest.raises(CfdbenchError, match="out of GPU memory at batch size 4 per rank .* lower it with --batch-size"):
        small_run(tiny_dataset, tmp_path)


def test_early_stopping_and_logs(tiny_dataset, tmp_path, monkeypatch):
    from cfdbench.training import trainer

    scores = iter([0.5, 0.6, 0.7, 0.8])
    real = trainer.validate
    monkeypatch.setattr(trainer, "validate", lambda *a, **k: {**real(*a, **k), "nmse": next(scores)})
    _, result, _ = small_run(tiny_dataset, tmp_path, epochs=4, early_stopping=1)
    assert result.epochs == 2 and result.best_epoch == 1 and result.history[-1]["early_stopped"]
    csv_lines = (tmp_path / "history.csv").read_text().splitlines()
    assert csv_lines[0].startswith("epoch,train_loss,lr,valid_mse") and len(csv_lines) == 3


def test_wandb_offline_logs_without_an_account(tiny_dataset, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    small_run(tiny_dataset, tmp_path, epochs=1, wandb="offline")
    assert list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))


def test_distributed_helpers_are_identities_on_one_rank():
    values = torch.tensor([1.0, 2.0])
    assert torch.equal(distributed.all_reduce_sums(values, Ranks()), values)
    assert distributed.broadcast_object("x", Ranks()) == "x"
    assert not distributed.launched_by_torchrun() or os.environ.get("WORLD_SIZE")
