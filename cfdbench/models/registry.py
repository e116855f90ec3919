"""Models by name: registered built-ins, plug-in packages and user classes.

``--model`` takes
- a registered name (``fno``, ``unet``, ...; ``cfdbench models`` lists them);
- the name of an entry point in the group ``cfdbench.models`` that a third-party package
  declares (``[project.entry-points."cfdbench.models"] myop = "my_pkg.models:MyOperator"``);
- ``package.module:ClassName`` (an importable module) or ``path/to/file.py:ClassName``.

Every class must subclass :class:`~cfdbench.models.base.NeuralOperator`. Checkpoints store the
name they were built from, so they rebuild plug-in models too.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import math
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from cfdbench.errors import CfdbenchError, UnknownNameError
from cfdbench.io import atomic_path
from cfdbench.models.base import NeuralOperator, OperatorMeta

ENTRY_POINT_GROUP = "cfdbench.models"
BUILTIN_MODULES = ("baselines", "fno", "unet", "resnet", "ffn", "deeponet", "ifactformer", "sfno", "dcdm")
_REGISTRY: dict[str, type[NeuralOperator]] = {}


def register_model(name: str) -> Callable[[type[NeuralOperator]], type[NeuralOperator]]:
    """Class decorator: make a :class:`NeuralOperator` available as ``name``."""

    def decorate(cls: type[NeuralOperator]) -> type[NeuralOperator]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise CfdbenchError(f"model name '{name}' is already registered by {_REGISTRY[name].__qualname__}")
        cls.registered_name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


def _load_builtin_models() -> None:
    for module in BUILTIN_MODULES:
        importlib.import_module(f"cfdbench.models.{module}")  # registers on import


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def model_names() -> list[str]:
    """Registered built-ins and installed plug-ins."""
    _load_builtin_models()
    return sorted(set(_REGISTRY) | set(_entry_points()))


def builtin_model_names() -> list[str]:
    """The models shipped with cfdbench (each has a card in ``models/``)."""
    _load_builtin_models()
    return sorted(name for name, cls in _REGISTRY.items() if cls.__module__.startswith("cfdbench."))


def model_label(spec: str) -> str:
    """A file-name- and leaderboard-safe label for a model spec (``pkg.mod:Cls`` -> ``pkg.mod-Cls``; a
    file's stem only: ``/home/me/ops/myop.py:MyOp`` -> ``myop-MyOp``)."""
    where, colon, attribute = spec.rpartition(":")
    if colon and where.endswith(".py"):
        spec = f"{Path(where).stem}:{attribute}"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", spec).strip("-.")


def get_model_class(spec: str) -> type[NeuralOperator]:
    """The class behind a registered name, an entry point, ``module:Class`` or ``file.py:Class``."""
    _load_builtin_models()
    if spec in _REGISTRY:
        return _REGISTRY[spec]
    entry_points = _entry_points()
    if spec in entry_points:
        return checked_operator(_load_entry_point(entry_points[spec]), spec)
    if ":" in spec:
        return checked_operator(_load_from_spec(spec), spec)
    raise UnknownNameError("model", spec, sorted(set(_REGISTRY) | set(entry_points)))


def _load_entry_point(entry_point: importlib.metadata.EntryPoint) -> Any:
    try:
        return entry_point.load()
    except Exception as err:  # noqa: BLE001 - a broken plug-in is one readable error
        raise CfdbenchError(f"model plug-in '{entry_point.name}' ({entry_point.value}) does not import: {err}") from None


def _load_from_spec(spec: str) -> Any:
    """``package.module:Class`` or ``path/to/file.py:Class``."""
    where, _, attribute = spec.rpartition(":")
    if not where or not attribute:
        raise CfdbenchError(f"model '{spec}': expected a registered name, module:ClassName or file.py:ClassName")
    try:
        module = _import_file(Path(where)) if where.endswith(".py") else importlib.import_module(where)
    except CfdbenchError:
        raise
    except Exception as err:  # noqa: BLE001 - ImportError, SyntaxError, errors raised by the module itself
        raise CfdbenchError(f"model '{spec}': {where} does not import ({err.__class__.__name__}: {err})") from None
    if not hasattr(module, attribute):
        raise CfdbenchError(f"model '{spec}': {where} has no attribute '{attribute}'")
    return getattr(module, attribute)


def _import_file(path: Path) -> Any:
    if not path.is_file():
        raise CfdbenchError(f"model file not found: {path}")
    name = f"cfdbench_plugin_{model_label(str(path.resolve()))}".replace(".", "_").replace("-", "_")
    if name in sys.modules:
        return sys.modules[name]
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def checked_operator(obj: Any, spec: str) -> type[NeuralOperator]:
    """A plug-in must be a NeuralOperator subclass; it is registered under the spec it came from (a
    stored copy of its source too, so that checkpoints naming the spec rebuild from it)."""
    if not (isinstance(obj, type) and issubclass(obj, nn.Module)):
        raise CfdbenchError(f"model '{spec}' is {obj!r}, not a torch module class")
    if not issubclass(obj, NeuralOperator):
        raise CfdbenchError(
            f"model '{spec}': {obj.__qualname__} is a torch module but not a cfdbench NeuralOperator; "
            "subclass cfdbench.models.NeuralOperator and implement predict (see docs/operator-contract.md)"
        )
    if _REGISTRY.get(obj.registered_name) is not obj:  # not self-registered: known by the spec it came from
        obj.registered_name = spec
    return obj


def build_model(name: str, meta: OperatorMeta, model_class: type[NeuralOperator] | None = None, **hparams: Any) -> NeuralOperator:
    """Instantiate the model ``name`` (its class given as ``model_class``, e.g. a stored plug-in, or looked
    up by name); bad hyper-parameter names get a one-line error."""
    cls = model_class or get_model_class(name)
    if meta.n_spatial_dims not in cls.spatial_dims:
        dims = " or ".join(f"{d}D" for d in cls.spatial_dims)
        shape = meta.grid_shape
        raise CfdbenchError(f"model '{name}' works on {dims} frames; the data has {meta.n_spatial_dims}D frames {shape}")
    if meta.output_frames > 1 and not cls.output_window:
        raise CfdbenchError(
            f"model '{name}' predicts one frame per call; training.output_frames must be 1, got {meta.output_frames}"
        )
    _check_hparam_values(name, hparams)
    _check_fits_in_memory(cls, name, meta, hparams)
    try:
        model = cls(meta, **hparams)
    except TypeError as err:
        raise CfdbenchError(f"cannot build model '{name}' with {sorted(hparams)}: {err}") from None
    except (RuntimeError, ValueError) as err:  # the sizes make no network: negative, zero, inconsistent
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CfdbenchError(f"cannot build model '{name}' with {hparams}: {message}") from None
    if not isinstance(getattr(model, "meta", None), OperatorMeta):
        raise CfdbenchError(f"model '{name}': its __init__ must call super().__init__(meta)")
    return model


SIZE_WORDS = ("channels", "width", "modes", "hidden", "layers", "depth", "dim", "heads", "features", "blocks")


def _check_hparam_values(name: str, hparams: dict[str, Any]) -> None:
    """Refuse values no network can be built or trained with: non-finite numbers, negative integers,
    and sizes (channels, widths, modes, layers, ...) below 1 (modes [0, 0] would train a model that
    cannot learn)."""
    for key, value in hparams.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        for item in values:
            if isinstance(item, bool) or not isinstance(item, (int, float)):
                continue
            if isinstance(item, float) and not math.isfinite(item):
                raise CfdbenchError(f"model '{name}': {key} must be a finite number, got {value!r}")
            if isinstance(item, int) and item < 0:
                raise CfdbenchError(f"model '{name}': {key} must not be negative, got {value!r}")
            if any(word in key for word in SIZE_WORDS) and item < 1:
                raise CfdbenchError(f"model '{name}': {key} is a size and must be at least 1, got {value!r}")


def _check_fits_in_memory(cls: type, name: str, meta: OperatorMeta, hparams: dict[str, Any]) -> None:
    """Build the model on the meta device (no memory) and refuse one whose weights, gradients and
    Adam state (4 copies) cannot fit this machine's memory, saying how much it would need."""
    try:
        with torch.device("meta"):
            probe = cls(meta, **hparams)
    except Exception:  # noqa: BLE001 - models that cannot be built on the meta device are checked when built
        return
    elements = sum(p.numel() * (2 if p.is_complex() else 1) for p in probe.parameters())
    needed = 4 * elements * 4  # float32 weights, gradients and two Adam moments
    available = _physical_memory()
    if available and needed > available:
        raise CfdbenchError(
            f"model '{name}' with {hparams} has {elements:.3g} parameters: training it needs about "
            f"{needed / 2**30:.3g} GiB, this machine has {available / 2**30:.3g} GiB; choose smaller sizes"
        )


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def save_checkpoint(model: NeuralOperator, path: Path, **extra: Any) -> Path:
    """Weights plus the constructor config, written atomically."""
    with atomic_path(path) as tmp:
        torch.save({"config": model.config, "state_dict": model.state_dict(), **extra}, tmp)
    return Path(path)


def load_checkpoint(
    path: Path, map_location: str | torch.device = "cpu", model_class: type[NeuralOperator] | None = None
) -> tuple[NeuralOperator, dict[str, Any]]:
    """Rebuild a model from a checkpoint alone (with ``model_class`` when the class the checkpoint names
    comes from elsewhere, e.g. an entry's stored source); returns (model, the checkpoint's extra entries)."""
    if not Path(path).is_file():
        raise CfdbenchError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=False)
        config = payload["config"]
    except Exception as err:  # noqa: BLE001 - any unreadable file is the same user error
        raise CfdbenchError(f"{path}: not a readable cfdbench checkpoint ({err.__class__.__name__})") from None
    model = build_model(config["name"], OperatorMeta.from_dict(config["meta"]), model_class, **config["hparams"])
    model.load_state_dict(payload["state_dict"])
    model.to(map_location)
    extra = {k: v for k, v in payload.items() if k not in ("config", "state_dict")}
    return model, extra


def card_meta(dataset: str) -> OperatorMeta:
    """Model metadata sized on a dataset card, as ``cfdbench models`` and the model cards' ``builds``
    size models: (u, v) frames of a 2D card with its parameters, or (u, v, w) on a channel card's
    coarse volumes with its three parameters."""
    from cfdbench.cards import ChannelCard, find_card

    card = find_card(dataset)
    if isinstance(card, ChannelCard):
        shape = (card.coarse.nz, card.coarse.ny, card.coarse.nx)
        return OperatorMeta(("u", "v", "w"), 1, 3, shape, ("re_tau", "length_x", "length_z"), 3)
    return OperatorMeta(("u", "v"), 1, len(card.parameters), card.frame_shape, tuple(card.parameters))


def build_summary(model: NeuralOperator) -> str:
    """The class a model is built as; for a spectral model its modes in both conventions, the
    library's ``n_modes`` and, where they differ, the model's ``modes`` (CFDBench's count)."""
    cls, arguments = model.library_call()
    if "n_modes" not in arguments:
        return cls
    n_modes = tuple(arguments["n_modes"])
    modes = tuple(model.hparams.get("modes", n_modes))
    same = modes == n_modes
    return f"{cls}(n_modes={n_modes})" + ("" if same else f" from modes={modes} (CFDBench's count)")
