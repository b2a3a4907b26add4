"""What the rules file and the price table both need to report a YAML file's problems by line.

Each loader keeps its own models and words; the walking of YAML nodes and values is here, once: how
large a file expands to (alias bombs), duplicate keys, the line of a field, a field's path, and a
value as the file wrote it.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable
from typing import Any

import yaml

Loc = tuple[str | int, ...]


def expands_beyond(root: yaml.Node | None, limit: int) -> bool:
    """Whether the node tree, aliases followed (a shared node once per reference), has over ``limit``
    nodes; counting stops at the limit, so an alias bomb is refused before anything walks it."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        sizes[id(node)] = 1  # a recursive alias counts once instead of looping
        total = 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                total = min(total + size(key) + size(value), limit + 1)
        elif isinstance(node, yaml.SequenceNode):
            for child in node.value:
                total = min(total + size(child), limit + 1)
        sizes[id(node)] = total
        return total

    return root is not None and size(root) > limit


def duplicate_keys(node: yaml.Node | None, loc: Loc, report: Callable[[Loc, int], None]) -> None:
    """``report(loc, line)`` for every mapping key written twice (YAML silently keeps the last)."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                continue
            if key.value in seen:
                report((*loc, key.value), key.start_mark.line + 1)
            seen.add(key.value)
            duplicate_keys(value, (*loc, key.value), report)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            duplicate_keys(item, (*loc, index), report)


def line_of(root: yaml.Node | None, loc: Loc) -> int:
    """The 1-based line of the deepest node of ``loc`` present in the file (a mapping key's own line)."""
    if root is None:
        return 1
    node: yaml.Node = root
    line = node.start_mark.line + 1
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == part:
                    line = key.start_mark.line + 1
                    child = value
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line


def field_path(loc: Loc) -> str:
    """``rules[3].match`` for ``("rules", 3, "match")``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def dig(value: Any, loc: Loc, absent: Any = None) -> Any:
    """The value at ``loc`` in the data as loaded; ``absent`` when it is not there."""
    for part in loc:
        in_dict = isinstance(value, dict) and part in value
        if in_dict or (isinstance(value, list) and isinstance(part, int) and part < len(value)):
            value = value[part]
        else:
            return absent
    return value


def shown(value: Any) -> str:
    """A value as the file wrote it, short: YAML flow style, never a Python repr."""
    if isinstance(value, str):
        text = value or '""'
    elif value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float) and not math.isfinite(value):
        text = ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
    elif isinstance(value, (int, float, datetime.date)):
        text = str(value)
    else:
        try:
            text = yaml.safe_dump(value, default_flow_style=True, width=1 << 20).strip()
            text = text.removesuffix("\n...").strip()
        except yaml.YAMLError:
            text = "(a value)"
    text = " ".join(text.split())
    return text if len(text) <= 60 else text[:57] + "..."
