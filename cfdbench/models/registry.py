"""Models register by name; ``--model NAME`` picks one, checkpoints rebuild it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from cfdbench.errors import CfdbenchError, UnknownNameError
from cfdbench.io import atomic_path
from cfdbench.models.base import NeuralOperator, OperatorMeta

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
    from cfdbench.models import fno  # noqa: F401  (registers on import)


def model_names() -> list[str]:
    _load_builtin_models()
    return sorted(_REGISTRY)


def get_model_class(name: str) -> type[NeuralOperator]:
    _load_builtin_models()
    if name not in _REGISTRY:
        raise UnknownNameError("model", name, list(_REGISTRY))
    return _REGISTRY[name]


def build_model(name: str, meta: OperatorMeta, **hparams: Any) -> NeuralOperator:
    """Instantiate a registered model; bad hyper-parameter names get a one-line error."""
    cls = get_model_class(name)
    try:
        return cls(meta, **hparams)
    except TypeError as err:
        raise CfdbenchError(f"cannot build model '{name}' with {sorted(hparams)}: {err}") from None


def save_checkpoint(model: NeuralOperator, path: Path, **extra: Any) -> Path:
    """Weights plus the constructor config, written atomically."""
    with atomic_path(path) as tmp:
        torch.save({"config": model.config, "state_dict": model.state_dict(), **extra}, tmp)
    return Path(path)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> tuple[NeuralOperator, dict[str, Any]]:
    """Rebuild a model from a checkpoint alone; returns (model, the checkpoint's extra entries)."""
    if not Path(path).is_file():
        raise CfdbenchError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=False)
        config = payload["config"]
    except Exception as err:  # noqa: BLE001 - any unreadable file is the same user error
        raise CfdbenchError(f"{path}: not a readable cfdbench checkpoint ({err.__class__.__name__})") from None
    model = build_model(config["name"], OperatorMeta.from_dict(config["meta"]), **config["hparams"])
    model.load_state_dict(payload["state_dict"])
    model.to(map_location)
    extra = {k: v for k, v in payload.items() if k not in ("config", "state_dict")}
    return model, extra
