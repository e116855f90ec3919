"""The model contract: shapes from metadata, mask applied, checkpoints rebuild the model alone."""

from __future__ import annotations

import pytest
import torch

from cfdbench.errors import CfdbenchError, UnknownNameError
from cfdbench.models.base import OperatorMeta
from cfdbench.models.registry import build_model, load_checkpoint, model_names, save_checkpoint

META = OperatorMeta(fields=("u", "v"), input_frames=1, n_params=5, grid_shape=(16, 16), parameter_names=("a", "b", "c", "d", "e"))


def sample_batch(batch: int = 3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(batch, 2, 16, 16, generator=generator)
    mask = torch.ones(batch, 1, 16, 16)
    mask[:, :, 5:9, 5:9] = 0  # an obstacle
    return inputs, mask, torch.randn(batch, 5, generator=generator)


def test_fno_has_cfdbench_parameter_count():
    # CFDBench reports 1,188,706 parameters for its cavity FNO (numel, complex weights counted once).
    model = build_model("fno", OperatorMeta(("u", "v"), 1, 5, (64, 64)), modes=(12, 12), hidden_channels=32)
    assert model.parameter_count() == 1_188_706


@pytest.mark.parametrize("residual", [False, True])
def test_output_shape_and_mask(residual):
    model = build_model("fno", META, modes=(4, 4), hidden_channels=8, residual=residual)
    inputs, mask, params = sample_batch()
    out = model(inputs, mask, params)
    assert out.shape == inputs.shape
    assert torch.all(out[:, :, 5:9, 5:9] == 0), "nothing is predicted inside a solid"
    assert out[:, :, :5].abs().sum() > 0


def test_checkpoint_rebuilds_the_same_model(tmp_path):
    model = build_model("fno", META, modes=(4, 4), hidden_channels=8).eval()
    path = save_checkpoint(model, tmp_path / "model.pt", normalization={"u": 1.0})
    rebuilt, extra = load_checkpoint(path)
    inputs, mask, params = sample_batch()
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(inputs, mask, params), model(inputs, mask, params), rtol=0, atol=0)
    assert extra == {"normalization": {"u": 1.0}}
    assert rebuilt.config == model.config
    assert not list(tmp_path.glob(".*")), "no temporary file left behind"


def test_unreadable_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "broken.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CfdbenchError, match="broken.pt"):
        load_checkpoint(path)


def test_unknown_model_and_bad_hyper_parameters():
    with pytest.raises(UnknownNameError, match="fno"):
        build_model("fnoo", META)
    with pytest.raises(CfdbenchError, match="widht"):
        build_model("fno", META, widht=3)
    assert "fno" in model_names()
