"""Rules as data: the schema of a rules file, the built-in rules, and the loader.

The engines that evaluate rules (this package's processor layer, the collector connector) read the same
YAML; see ``docs/rules.md``. ``RulesFile`` (the pydantic model of a whole file) is loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .loader import load_rules, override_variable, parse_rules
from .schema import Condition, Rule, RuleSet, Source

if TYPE_CHECKING:
    from .models import RulesFile

__all__ = [
    "Condition",
    "Rule",
    "RuleSet",
    "RulesFile",
    "Source",
    "load_rules",
    "override_variable",
    "parse_rules",
]


def __getattr__(name: str) -> Any:
    if name == "RulesFile":
        from .models import RulesFile

        return RulesFile
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
