"""The model zoo as ``cfdbench models`` lists it: every built-in model and installed plug-in, built
from its card's settings on a dataset's metadata, with its parameter count beside the paper's."""

from __future__ import annotations

from dataclasses import dataclass, replace

from cfdbench.cards import find_channel_card, load_dataset_card, load_model_card
from cfdbench.models.registry import build_model, build_summary, builtin_model_names, card_meta, get_model_class, model_names

CHANNEL_CARD = "channel180"  # 3D models are sized on the channel's coarse frames


@dataclass(frozen=True)
class ModelSummary:
    """One row of the model table."""

    name: str
    task: str  # autoregressive, non-autoregressive, window i -> o, or hybrid solver
    parameter_count: int
    sized_on: str  # the dataset card whose metadata sized the model
    reference_parameter_count: int | None  # CFDBench's or the paper's count, from the model card
    build: str  # how it was built (neuraloperator's class, cfdbench's own, ...)
    source: str  # models/<name>.yaml or plug-in


def model_summaries(dataset: str = "cavity-mini") -> list[ModelSummary]:
    """Every model that runs on 2D data sized on ``dataset``'s card (and every 3D model on the
    channel's, when its card is here), each built with its model card's settings for that dataset."""
    metas = {2: (load_dataset_card(dataset).name, card_meta(dataset))}
    if find_channel_card(CHANNEL_CARD) is not None:
        metas[3] = (CHANNEL_CARD, card_meta(CHANNEL_CARD))
    builtins = builtin_model_names()
    summaries = []
    for name in model_names():
        dims = [d for d in get_model_class(name).spatial_dims if d in metas]
        if not dims:
            continue
        sized_on, meta = metas[dims[0]]
        model_card = load_model_card(name) if name in builtins else None
        hparams, training = model_card.resolve(sized_on) if model_card else ({}, {})
        window = {key: int(training.get(key, 1)) for key in ("input_frames", "output_frames")}  # a window model's
        model = build_model(name, replace(meta, **window), **hparams)
        task = "autoregressive" if model.autoregressive else "non-autoregressive"
        if model.output_window:
            task = f"window {window['input_frames']} -> {window['output_frames']}"
        if model.hybrid_solver:
            task = "hybrid solver (learned pressure solve)"
        summaries.append(
            ModelSummary(
                name,
                task,
                model.parameter_count(),
                sized_on,
                model_card.reference_parameter_count if model_card else None,
                build_summary(model),
                f"models/{name}.yaml" if model_card else "plug-in",
            )
        )
    return summaries
