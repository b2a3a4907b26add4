"""Rules as data: the schema of a rules file, the built-in rules, and the loader.

The engines that evaluate rules (this package's processor layer, the collector connector) read the same
YAML; see ``docs/rules.md``.
"""

from __future__ import annotations

from .loader import load_rules, override_variable, parse_rules
from .schema import Condition, Rule, RuleSet, RulesFile, Source

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
