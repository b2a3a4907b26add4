"""The price table's validated path: YAML -> pydantic models -> ``PriceTable``, every problem at its
file line and field.

Loaded only when a prices file is read this way: a user's ``B2B_OTEL_LLM_PRICES_FILE`` (at
``instrument()``, so that a bad file fails it), ``parse_prices()``, and the tests that hold the
built-in table's fast path (``prices.py``) to this one. pydantic and YAML stay out of start-up.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from .._internal.errors import ConfigError
from .._internal.yamlfile import Loc, dig, duplicate_keys, expands_beyond, field_path, line_of, shown
from .prices import Price, PricesProblem, PriceTable

# Far above any real price table, far below what a YAML alias bomb expands to.
MAX_NODES = 50_000


def _finite(value: float) -> float:
    if not math.isfinite(value) or value < 0:
        raise ValueError("not a finite price >= 0")
    return value


def _iso_date(value: Any) -> Any:
    # The loader keeps dates as text (below), so that an impossible date is this field's problem.
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        raise ValueError("not a date")
    return datetime.date.fromisoformat(value.strip())


UsdPerMillion = Annotated[float, AfterValidator(_finite)]
ModelName = Annotated[str, Field(min_length=1)]


class ModelPrice(BaseModel):
    """One model's prices, USD per million tokens."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    model: ModelName
    aliases: list[ModelName] = Field(default_factory=list)
    input: UsdPerMillion
    output: UsdPerMillion
    cached_input: UsdPerMillion | None = None


class PricesFile(BaseModel):
    """The whole file: ``version: 1``, the date the prices were taken, the models."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    version: Literal[1]
    prices_taken: Annotated[datetime.date, BeforeValidator(_iso_date)]
    models: list[ModelPrice] = Field(min_length=1)


_PRICE = "a price in USD per million tokens: a number >= 0"
_ACCEPTED: dict[str, str] = {
    "version": "1",
    "prices_taken": "the date the prices were taken, YYYY-MM-DD",
    "models": "a non-empty list of models",
    "model": "a model name (text)",
    "aliases": "a list of model names",
    "input": _PRICE,
    "output": _PRICE,
    "cached_input": _PRICE,
}
_OBJECT: dict[tuple[str, ...], tuple[str, type[BaseModel]]] = {
    (): ("the prices file", PricesFile),
    ("models",): ("a model", ModelPrice),
}


def validate_prices(text: str, source: str) -> PriceTable:
    """Validate the YAML text of a prices file; ``source`` names it in error messages."""
    root, data = _compose(text, source)
    problems: list[tuple[int, PricesProblem]] = []

    def add(loc: Loc, shown: str, message: str, line: int | None = None) -> None:
        line = line_of(root, loc) if line is None else line
        path = field_path(loc)
        where = f"{source}:{line}: {path}" if path else f"{source}:{line}"
        if all(p.variable != where for _, p in problems):
            problems.append((line, PricesProblem(where, shown, message)))

    # YAML keeps the last of two equal keys silently; in a price table that hides a mistake.
    duplicate_keys(root, (), lambda loc, line: add(loc, "", "duplicate key; give each key once", line))
    parsed: PricesFile | None = None
    try:
        parsed = PricesFile.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            loc, message = _explain(error)
            value = "" if error["type"] == "missing" or not loc else shown(dig(data, loc))
            add(loc, value, message)
    if isinstance(data, dict) and isinstance(data.get("models"), list):
        _duplicate_names(data["models"], add)
    if problems:
        problems.sort(key=lambda item: item[0])
        raise ConfigError([problem for _, problem in problems])
    assert parsed is not None
    prices: dict[str, Price] = {}
    for entry in parsed.models:
        price = Price(entry.input, entry.output, entry.cached_input)
        for name in (entry.model, *entry.aliases):
            prices[name.strip().lower()] = price
    return PriceTable(source=source, taken=parsed.prices_taken, prices=prices)


# --- checking ------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """YAML's safe loader, with dates left as text."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _compose(text: str, source: str) -> tuple[yaml.Node | None, Any]:
    """The node tree (for line numbers) and the data; a file that is no YAML is one problem."""
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if root is not None and expands_beyond(root, MAX_NODES):
            raise ConfigError(
                [
                    PricesProblem(
                        f"{source}:{root.start_mark.line + 1}",
                        "",
                        f"the file expands to more than {MAX_NODES} YAML nodes (aliases followed); "
                        "write the models out instead of nesting anchors",
                    )
                ]
            )
        return root, (loader.construct_document(root) if root is not None else None)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise ConfigError([PricesProblem(where, "", f"not valid YAML: {exc.problem}")]) from None
    except (yaml.YAMLError, RecursionError) as exc:
        raise ConfigError([PricesProblem(source, "", f"not valid YAML ({type(exc).__name__})")]) from None
    finally:
        loader.dispose()


def _explain(error: Any) -> tuple[Loc, str]:
    """This module's words for one pydantic error: where, and what is accepted."""
    loc: Loc = tuple(error["loc"])
    kind = error["type"]
    field_loc = loc
    # A list item's error is reported at the item (aliases[1]); its field name is the list's.
    name = next((part for part in reversed(loc) if isinstance(part, str)), "")
    if kind == "extra_forbidden":
        owner = tuple(p for p in loc[:-1] if isinstance(p, str))
        what, model = _OBJECT.get(owner, ("a model", ModelPrice))
        return field_loc, f"unknown field of {what}; accepted: {', '.join(model.model_fields)}"
    if kind == "missing":
        return field_loc, f"required; accepted: {_ACCEPTED.get(name, 'a value')}"
    if kind in ("model_type", "dict_type"):
        owner = tuple(p for p in loc if isinstance(p, str))
        what, model = _OBJECT.get(owner, ("a model", ModelPrice))
        return field_loc, f"{what} is a mapping of {', '.join(model.model_fields)}"
    if name in ("models",) and kind == "too_short":
        return field_loc, f"accepted: {_ACCEPTED['models']}"
    return field_loc, f"accepted: {_ACCEPTED.get(name, 'a value')}"


def _duplicate_names(models: Sequence[Any], add: Any) -> None:
    """A model name (or alias) priced twice: which price would win is a guess."""
    first: dict[str, Loc] = {}
    for index, entry in enumerate(models):
        if not isinstance(entry, dict):
            continue
        names: list[tuple[Loc, Any]] = [(("models", index, "model"), entry.get("model"))]
        aliases = entry.get("aliases")
        if isinstance(aliases, list):
            names += [(("models", index, "aliases", i), alias) for i, alias in enumerate(aliases)]
        for loc, name in names:
            if not isinstance(name, str) or not name.strip():
                continue
            key = name.strip().lower()
            if key in first:
                add(loc, name, f"model name already priced at {field_path(first[key])}; give each name once")
            else:
                first[key] = loc
