"""Constructor arguments are recorded once, by the base class, for every model and plug-in: the record
equals what each built-in's hand-written ``super().__init__(meta, ...)`` echo recorded, so checkpoints
written before still load and entries' ``model.config`` blocks do not change."""

from __future__ import annotations

import copy
import inspect
import json
import math
import pickle
from pathlib import Path

import pytest
import torch

from cfdbench.errors import CfdbenchError
from cfdbench.leaderboard.code import _json_value, constructor_arguments
from cfdbench.models.base import NeuralOperator, OperatorMeta
from cfdbench.models.fno import FNO2d
from cfdbench.models.registry import build_model, builtin_model_names, get_model_class, load_checkpoint, save_checkpoint

META_2D = OperatorMeta(("u", "v"), 2, 5, (32, 32))
META_WINDOW = OperatorMeta(("u", "v"), 10, 5, (32, 32), output_frames=2)
META_3D = OperatorMeta(("u", "v", "w"), 1, 3, (8, 8, 8), ("re_tau", "length_x", "length_z"), n_spatial_dims=3)

# model.hparams of every built-in built with its defaults, as the hand-written echo blocks recorded
# them (printed at b493e53, the commit before the base class recorded the call).
IFACTFORMER = {
    "dim": 96,
    "heads": 5,
    "dim_head": 96,
    "depth": 1,
    "n_layer": 10,
    "kernel_multiplier": 3,
    "latent_dim": 96,
    "use_rope": True,
    "lx": 4 * math.pi,
    "lz": 4 * math.pi / 3,
}
RECORDED_BEFORE = {
    "auto-deeponet": {"residual": True, "width": 100, "depth": 8, "act": "relu"},
    "auto-deeponet-cnn": {
        "residual": True,
        "channels": 32,
        "kernel": 5,
        "width": 100,
        "trunk_depth": 4,
        "head_depth": 3,
        "act": "relu",
    },
    "auto-edeeponet": {"residual": True, "width": 100, "depth": 8, "act": "relu"},
    "auto-ffn": {"width": 200, "depth": 8, "act": "relu", "residual": True},
    "dcdm": {
        "channels": 16,
        "depths": [1, 3, 2],
        "tolerance": 0.0001,
        "max_iterations": 100,
        "memory": 2,
        "train_steps": 400,
        "train_batch": 16,
        "train_lr": 0.001,
        "lanczos_steps": 1000,
        "trained_on": None,
    },
    "deeponet": {"width": 100, "branch_depth": 8, "trunk_depth": 8, "act": "relu"},
    "ffn": {"width": 100, "depth": 8, "act": "relu"},
    "fno": {
        "modes": [12, 12],
        "hidden_channels": 32,
        "n_layers": 4,
        "projection_channels": 128,
        "domain_padding": 0.125,
        "residual": False,
    },
    "fno-cfdbench": {"modes": [12, 12], "hidden_channels": 32, "n_layers": 4, "projection_channels": 128},
    "fno3d": {
        "modes": [8, 16, 16],
        "hidden_channels": 32,
        "n_layers": 4,
        "projection_channels": 128,
        "wall_padding": 0.125,
        "residual": False,
    },
    "identity": {},
    "ifactformer_m": IFACTFORMER,
    "ifactformer_o": IFACTFORMER,
    "mean-field": {},
    "resnet": {"hidden": 16, "inner": 64, "depth": 4, "kernel": 7, "dropout": 0.2, "residual": True},
    "sfno": {
        "modes_x": 12,
        "modes_y": 12,
        "modes_t": 5,
        "width": 20,
        "latent_steps": 10,
        "num_layers": 4,
        "beta": -0.01,
        "delta": 0.1,
        "activation": "relu",
        "channel_expansion": 4,
        "spatial_padding": 0.125,
        "conditioning": True,
    },
    "unet": {"dim": 12, "levels": 4, "residual": True},
}


def small_meta(name: str) -> OperatorMeta:
    """A small metadata the model ``name`` builds on: 3D volumes, a 10-frame window, or 2D frames."""
    cls = get_model_class(name)
    if 3 in cls.spatial_dims:
        return META_3D
    return META_WINDOW if cls.output_window else META_2D


def build_on_meta_device(name: str, **hparams) -> NeuralOperator:
    """The model built without allocating its weights (only the record matters here)."""
    with torch.device("meta"):
        return build_model(name, small_meta(name), **hparams)


def test_the_table_covers_the_whole_registry():
    assert set(RECORDED_BEFORE) == set(builtin_model_names())


@pytest.mark.parametrize("name", sorted(RECORDED_BEFORE))
def test_every_builtin_records_what_its_hand_written_block_recorded(name):
    assert build_on_meta_device(name).hparams == RECORDED_BEFORE[name]


@pytest.mark.parametrize(
    ("name", "given", "recorded"),
    [
        ("fno", {"modes": (6, 5), "residual": True}, {"modes": [6, 5], "residual": True}),  # a tuple as list(modes) made it
        ("dcdm", {"depths": (1, 1, 1), "trained_on": {"cells": (8, 8)}}, {"depths": [1, 1, 1], "trained_on": {"cells": [8, 8]}}),
        ("unet", {"dim": 4, "levels": 2}, {"dim": 4, "levels": 2, "residual": True}),
    ],
)
def test_given_arguments_are_recorded_over_the_defaults_tuples_as_lists(name, given, recorded):
    assert build_on_meta_device(name, **given).hparams == {**RECORDED_BEFORE[name], **recorded}


def test_a_checkpoint_written_before_still_loads(tmp_path):
    """A checkpoint holds config = (name, meta, hparams) as the hand-written blocks recorded them."""
    model = build_model("fno", META_2D, modes=[4, 4], hidden_channels=8, projection_channels=8, n_layers=1)
    old_record = {**RECORDED_BEFORE["fno"], "modes": [4, 4], "hidden_channels": 8, "projection_channels": 8, "n_layers": 1}
    config = {"name": "fno", "meta": META_2D.to_dict(), "hparams": old_record}
    torch.save({"config": config, "state_dict": model.state_dict()}, tmp_path / "old.pt")
    rebuilt, _ = load_checkpoint(tmp_path / "old.pt")
    assert rebuilt.hparams == old_record and rebuilt.config == config


class Outer(FNO2d):
    """A subclass of a subclass with arguments of its own, passing others to its parent."""

    def __init__(self, meta: OperatorMeta, size: int = 4, scale: float = 0.5):
        super().__init__(meta, modes=(size, size), hidden_channels=8, projection_channels=8, n_layers=1)
        self.scale = scale


def test_the_class_actually_instantiated_is_what_is_recorded():
    assert Outer(META_2D, 3).hparams == {"size": 3, "scale": 0.5}
    assert FNO2d(META_2D, modes=(3, 3), n_layers=1).hparams == {**RECORDED_BEFORE["fno"], "modes": [3, 3], "n_layers": 1}


class TinyPlugin(NeuralOperator):
    """A third-party operator: a couple of keyword arguments, no recording of its own."""

    registered_name = "tests.tiny-plugin"

    def __init__(self, meta: OperatorMeta, width: int = 3, act: str = "gelu"):
        super().__init__(meta)
        self.net = torch.nn.Conv2d(meta.image_channels, width, 1)
        self.out = torch.nn.Conv2d(width, meta.n_fields, 1)
        self.act = torch.nn.GELU() if act == "gelu" else torch.nn.ReLU()

    def predict(self, inputs, mask, params):
        planes = params[:, :, None, None].expand(-1, -1, *inputs.shape[-2:])
        return self.out(self.act(self.net(torch.cat([inputs, mask, planes], dim=1))))


def test_a_plugin_gets_its_arguments_recorded_and_a_checkpoint_rebuilds_it(tmp_path):
    model = TinyPlugin(META_2D, width=5)
    assert model.hparams == {"width": 5, "act": "gelu"}
    rebuilt, _ = load_checkpoint(save_checkpoint(model, tmp_path / "plugin.pt"), model_class=TinyPlugin)
    assert type(rebuilt) is TinyPlugin and rebuilt.config == model.config and rebuilt.net.out_channels == 5
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(rebuilt.state_dict()[name], tensor, rtol=0, atol=0)


def test_copies_and_pickles_keep_the_record():
    model = TinyPlugin(META_2D, act="relu")
    assert copy.deepcopy(model).hparams == pickle.loads(pickle.dumps(model)).hparams == {"width": 3, "act": "relu"}


class Catchall(NeuralOperator):
    def __init__(self, meta: OperatorMeta, *args, depth: int = 2, **kwargs):
        super().__init__(meta)


class PassThrough(TinyPlugin):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)


def test_kwargs_are_recorded_by_keyword_and_unnamed_args_refused():
    assert Catchall(META_2D, width=4, act="relu").hparams == {"depth": 2, "width": 4, "act": "relu"}
    assert PassThrough(META_2D, width=4).hparams == {"width": 4}  # the parent's defaults are not seen
    with pytest.raises(CfdbenchError, match=r"Catchall got 2 unnamed argument\(s\) through \*args"):
        Catchall(META_2D, 1, 2)


def test_a_call_the_constructor_does_not_take_fails_as_before():
    with pytest.raises(TypeError, match="unexpected keyword argument 'depth'"):
        TinyPlugin(META_2D, depth=3)


def merged_over_defaults(model_class: type, hparams: dict) -> dict:
    """What ``constructor_arguments`` wrote before the base class recorded the call: ``hparams`` over
    the constructor's defaults, as JSON values."""
    parameters = inspect.signature(model_class.__init__).parameters.values()
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    defaults = {p.name: p.default for p in parameters if p.kind in named and p.default is not p.empty and p.name != "meta"}
    return {key: _json_value(value) for key, value in {**defaults, **hparams}.items()}


@pytest.mark.parametrize("name", sorted(RECORDED_BEFORE))
def test_entry_config_is_the_json_the_merge_over_defaults_wrote(name):
    config = constructor_arguments(build_on_meta_device(name))
    assert config == merged_over_defaults(get_model_class(name), RECORDED_BEFORE[name])
    assert json.loads(json.dumps(config)) == config


class Unusual(TinyPlugin):
    def __init__(self, meta: OperatorMeta, limit: float = math.inf, device: torch.device = torch.device("cpu"), width: int = 2):
        super().__init__(meta, width=width)


def test_values_json_cannot_hold_are_written_as_repr():
    assert constructor_arguments(Unusual(META_2D, width=4)) == {"limit": "inf", "device": "device(type='cpu')", "width": 4}


def committed_entries() -> list[tuple[str, dict]]:
    """(model card name, model.config) of every committed leaderboard entry built from a card."""
    entries = []
    for path in sorted((Path(__file__).resolve().parents[1] / "leaderboard" / "entries").rglob("*.json")):
        model = json.loads(path.read_text())["model"]
        if model.get("card"):
            entries.append((Path(model["card"]).stem, model["config"]))
    return entries


def test_committed_entries_configs_are_what_their_arguments_record_now():
    """Rebuilt from its config, each model writes the same config again; an entry whose config names
    arguments its constructor no longer takes (written by an older class) cannot be rebuilt: skipped."""
    checked = 0
    for name, config in committed_entries():
        accepted = set(inspect.signature(get_model_class(name).__init__).parameters)
        if set(config) <= accepted:
            assert constructor_arguments(build_on_meta_device(name, **config)) == config, name
            checked += 1
    assert checked >= 50
