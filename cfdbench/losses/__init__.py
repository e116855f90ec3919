"""Training losses usable by any model, selected by name (``registry``: ``nmse``, ``mse``,
``relative_l2``, ``sobolev``); ``sobolev`` holds the H^s norms through Fourier multipliers and
``navier_stokes_residual`` the residual Spectral-Refiner fine-tunes on."""

from cfdbench.losses.registry import LOSS_NAMES, PerSampleLoss, build_loss, check_loss, masked_loss, resolve_options

__all__ = ["LOSS_NAMES", "PerSampleLoss", "build_loss", "check_loss", "masked_loss", "resolve_options"]
