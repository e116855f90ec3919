"""``python -m cfdbench`` is the ``cfdbench`` command (torchrun launches it this way)."""

from cfdbench.cli import main

main()
