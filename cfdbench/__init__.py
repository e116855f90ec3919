"""cfdbench: a benchmark suite for neural surrogates of fluid flow."""

__version__ = "0.1.0"

from cfdbench.errors import CfdbenchError  # noqa: E402


def open_dataset(path_or_name, **kwargs):
    """Open a stored dataset as a labelled view (see :func:`cfdbench.data.resolve.open_dataset`)."""
    from cfdbench.data.resolve import open_dataset as _open

    return _open(path_or_name, **kwargs)


__all__ = ["CfdbenchError", "open_dataset", "__version__"]
