"""The two exceptions b2b_otel lets reach application code."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One bad setting: the variable (or keyword) it came from, its value as shown, and what is wrong."""

    variable: str
    shown_value: str
    message: str

    def __str__(self) -> str:
        return f"{self.variable}={self.shown_value}: {self.message}"


class ConfigError(ValueError):
    """The configuration is invalid; raised by ``instrument()`` before anything is installed.

    ``problems`` lists every bad variable, one line each, secrets masked.
    """

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        head = f"invalid b2b-otel configuration ({count} problem{'s' if count != 1 else ''}):"
        super().__init__("\n".join([head, *(f"  {p}" for p in self.problems)]))


class AuditError(RuntimeError):
    """An audit record could not be made durable (disk full, file not writable)."""
