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


# --------------------------------------------------------------------------- CFDBench's structures
# Checked against CFDBench's own code (commit c721f67) with its weights copied in: ResNet and U-Net
# outputs identical, fno-cfdbench's within 1.1e-7 (relative L2), neuraloperator's FNO 12 % apart.

CAVITY = OperatorMeta(("u", "v"), 1, 5, (64, 64))  # 2 fields + mask + 5 parameters = 8 input planes


class FunctionCalls(torch.overrides.TorchFunctionMode):
    """The names of the torch functions a forward pass calls, in order."""

    def __init__(self):
        super().__init__()
        self.names: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.names.append(getattr(func, "__name__", ""))
        return func(*args, **(kwargs or {}))


def activation_pattern(name: str, **hparams) -> str:
    """The model's forward as a string of S (a spectral contraction) and G (a GELU)."""
    model = build_model(name, META, modes=(4, 4), hidden_channels=8, **hparams).eval()
    with FunctionCalls() as calls, torch.no_grad():
        model(*sample_batch())
    return "".join({"einsum": "S", "gelu": "G"}.get(name, "") for name in calls.names)


def test_fno_cfdbench_applies_one_gelu_after_every_fourier_block():
    assert activation_pattern("fno-cfdbench") == "SG" * 4 + "G"  # + the projection's


def test_fno_is_neuraloperators_with_two_gelus_after_each_block_but_the_last():
    assert activation_pattern("fno", domain_padding=None) == "SGG" * 3 + "S" + "G"


def test_fno_cfdbench_coordinates_end_at_one_and_its_parameters_are_cfdbenchs():
    from cfdbench.models.fno import unit_grid

    grid = unit_grid(torch.zeros(2, 3, 5, 4))
    assert grid.shape == (2, 2, 5, 4)
    assert grid[0, 0, :, 0].tolist() == pytest.approx([0, 0.25, 0.5, 0.75, 1]) and grid[0, 0].diff(dim=1).abs().max() == 0
    assert grid[0, 1, 0].tolist() == pytest.approx([0, 1 / 3, 2 / 3, 1]) and grid[0, 1].diff(dim=0).abs().max() == 0
    model = build_model("fno-cfdbench", CAVITY)
    assert model.lift.in_channels == 8 + 2 and len(model.blocks) == 4
    assert model.parameter_count() == 1_188_706


def test_resnet_stages_are_cfdbenchs():
    """CFDBench's first and last stages are full residual blocks with 1x1 shortcuts; its 534,696
    parameters include 932 of batch norms it never calls, which cfdbench leaves out."""
    from cfdbench.models.resnet import ResidualBlock

    model = build_model("resnet", CAVITY)
    stages = [model.lift, *model.blocks, model.project]
    assert all(isinstance(stage, ResidualBlock) for stage in stages) and len(stages) == 6
    shapes = [(s.body[0].in_channels, s.body[0].out_channels, s.body[3].out_channels) for s in stages]
    assert shapes == [(8, 64, 16)] + [(16, 64, 16)] * 4 + [(16, 64, 2)]
    for stage in stages:
        conv, dropout, gelu, conv2 = stage.body
        assert conv.kernel_size == conv2.kernel_size == (7, 7) and conv.padding_mode == "replicate"
        assert isinstance(dropout, torch.nn.Dropout) and dropout.p == 0.2 and isinstance(gelu, torch.nn.GELU)
    assert [type(s.shortcut).__name__ for s in stages] == ["Conv2d"] + ["Identity"] * 4 + ["Conv2d"]
    assert model.lift.shortcut.kernel_size == model.project.shortcut.kernel_size == (1, 1)
    assert model.parameter_count() == 534_696 - 932
    x = torch.randn(2, 8, 16, 16)
    with torch.no_grad():
        model.lift.eval()
        torch.testing.assert_close(model.lift(x), model.lift.shortcut(x) + model.lift.body(x))


def test_unet_stages_are_cfdbenchs_and_see_no_coordinates():
    model = build_model("unet", CAVITY)
    assert model.inlet[0].in_channels == 8  # u, v, mask, 5 parameters: no coordinate planes (as CFDBench)
    assert [block[0].out_channels for block in [model.inlet, *model.down]] == [12, 24, 48, 96, 192]
    assert [(up.in_channels, up.out_channels, up.kernel_size) for up in model.upsample] == [
        (24, 12, (2, 2)),
        (48, 24, (2, 2)),
        (96, 48, (2, 2)),
        (192, 96, (2, 2)),
    ]
    assert model.parameter_count() == 1_095_038
