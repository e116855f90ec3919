"""An example cfdbench plug-in: one operator class, registered through an entry point."""

from my_operator.model import MyOperator

__all__ = ["MyOperator"]
