"""User-facing errors.

Anything raised as a :class:`CfdbenchError` is a problem with the user's input or
environment, not a bug: the CLI prints its message as one line and exits non-zero
(a traceback only with ``--debug``).
"""


class CfdbenchError(Exception):
    """An error whose message alone tells the user what went wrong and what to do."""


class UnknownNameError(CfdbenchError):
    """A dataset, model or option name that does not exist; the message lists the valid ones."""

    def __init__(self, kind: str, name: str, choices: list[str]):
        self.kind, self.name, self.choices = kind, name, sorted(choices)
        valid = ", ".join(self.choices) if self.choices else "(none)"
        super().__init__(f"unknown {kind} '{name}'; valid choices: {valid}")


class DatasetNotFoundError(CfdbenchError):
    """A dataset that has a card but has not been generated or downloaded yet."""


class CorruptCaseError(CfdbenchError):
    """A case file that is truncated, unreadable or fails its checksum."""


class SimulationDivergedError(CfdbenchError):
    """The solver produced NaN/Inf or a blow-up; names the case and its parameters."""
