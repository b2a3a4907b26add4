"""The LLM price table: YAML -> validated ``PriceTable``, every problem at its file line and field.

The table is data: the built-in ``prices.yaml`` (list prices in USD per million tokens, with the
date they were taken), replaceable with ``B2B_OTEL_LLM_PRICES_FILE``. A model the table does not
know has no price: :meth:`PriceTable.cost` returns None and the caller counts the call as unpriced,
never a guess.

Model names match exactly (case-insensitive), then with a snapshot suffix removed: the providers
answer with dated snapshots of the model asked for (``gpt-4o`` -> ``gpt-4o-2024-08-06``,
``claude-sonnet-4-5`` -> ``claude-sonnet-4-5-20250929``), and ``-latest`` names the newest snapshot.
Nothing else is stripped: ``gpt-4o-audio-preview`` is not ``gpt-4o``, so a model priced differently
is never priced as its neighbour; ``aliases`` name other spellings.
"""

from __future__ import annotations

import datetime
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from .._internal import selflog
from .._internal.errors import ConfigError, Problem

PRICES_VARIABLE = "B2B_OTEL_LLM_PRICES_FILE"
BUILTIN_RESOURCE = "prices.yaml"
BUILTIN_SOURCE = f"<built-in {BUILTIN_RESOURCE}>"
PER_TOKENS = 1_000_000
# A snapshot of a model: -2024-08-06 (OpenAI), -20250929 (Anthropic), or -latest.
_SNAPSHOT = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|latest)$")


class PricesProblem(Problem):
    """A problem of the prices file: ``variable`` is ``FILE:LINE: field.path``."""

    def __str__(self) -> str:
        return f"{self.variable}: {self.message}" if not self.shown_value else super().__str__()


@dataclass(frozen=True)
class Price:
    """USD per million tokens of one model."""

    input: float
    output: float
    cached_input: float | None = None


class PriceTable:
    """Model name -> price, and where the prices come from.

    A table made with ``load`` (the built-in one) reads its prices at the first question asked of
    it, not at ``instrument()``: most processes never price a call, and the built-in file is
    checked by the tests, not at every start.

    >>> table = load_prices(None)
    >>> round(table.cost("gpt-4o-2024-08-06", 1_000_000, 100_000), 4)
    3.5
    >>> table.cost("my-own-model", 10, 10) is None
    True
    """

    def __init__(
        self,
        source: str,
        taken: datetime.date | None = None,
        prices: dict[str, Price] | None = None,
        load: Callable[[], tuple[datetime.date, dict[str, Price]]] | None = None,
    ) -> None:
        self.source = source
        self._taken = taken
        self._prices = prices
        self._load = load
        self._lock = threading.Lock()

    def _loaded(self) -> tuple[datetime.date, dict[str, Price]]:
        if self._prices is None:
            with self._lock:
                if self._prices is None:
                    self._taken, self._prices = self._read()
        assert self._taken is not None
        return self._taken, self._prices

    def _read(self) -> tuple[datetime.date, dict[str, Price]]:
        try:
            if self._load is None:
                raise ValueError("no prices and nothing to load them from")
            return self._load()
        except Exception as exc:  # never into the application: its calls count as unpriced
            selflog.warn_once_a_minute(
                "llm-prices", "b2b_otel: cannot read the price table %s: %r", self.source, exc
            )
            return datetime.date.min, {}

    @property
    def taken(self) -> datetime.date:
        """The date the prices were taken."""
        return self._loaded()[0]

    @property
    def prices(self) -> dict[str, Price]:
        """Lower-cased model name (and alias) -> its price."""
        return self._loaded()[1]

    def lookup(self, model: str | None) -> Price | None:
        """The price of ``model``: exact name first, then without its snapshot suffix."""
        if not model:
            return None
        prices = self._prices if self._prices is not None else self._loaded()[1]
        name = model.strip().lower()
        price = prices.get(name)
        if price is None:
            base = _SNAPSHOT.sub("", name)
            price = prices.get(base) if base != name else None
        return price

    def cost(
        self, model: str | None, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0
    ) -> float | None:
        """USD of one call, or None when the table does not know ``model``.

        ``cached_input_tokens`` are part of ``input_tokens`` (as the GenAI conventions count them) and
        priced at ``cached_input`` where the table has it.
        """
        price = self.lookup(model)
        if price is None:
            return None
        cached = min(max(cached_input_tokens, 0), input_tokens) if price.cached_input is not None else 0
        fresh = input_tokens - cached
        total = fresh * price.input + output_tokens * price.output
        if cached:
            assert price.cached_input is not None
            total += cached * price.cached_input
        return total / PER_TOKENS


def load_prices(path: str | None) -> PriceTable:
    """The price table at ``path``, or the built-in one when ``None``.

    A file at ``path`` is read and validated now: ``ConfigError`` lists every problem of it, each
    naming the file, line and field. The built-in table is read at its first use
    (:func:`builtin_prices`, the fast path; ``tests/test_llm_prices.py`` holds it to the validated one).
    """
    if path is None:
        return PriceTable(BUILTIN_SOURCE, load=builtin_prices)
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            [Problem(PRICES_VARIABLE, path, f"cannot read the prices file ({type(exc).__name__})")]
        ) from None
    return parse_prices(text, path)


def parse_prices(text: str, source: str) -> PriceTable:
    """Validate the YAML text of a prices file; ``source`` names it in error messages."""
    from .price_file import validate_prices

    return validate_prices(text, source)


def builtin_text() -> str:
    """The text of the built-in ``prices.yaml``."""
    return resources.files(__package__).joinpath(BUILTIN_RESOURCE).read_text(encoding="utf-8")


def builtin_prices() -> tuple[datetime.date, dict[str, Price]]:
    """The built-in table read without the models: the file is known valid (the tests validate it).

    libyaml's parser where installed; the same names, aliases and prices the validated path gives.
    """
    import yaml

    loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    data = yaml.load(builtin_text(), Loader=loader)  # a safe loader
    taken = data["prices_taken"]
    if not isinstance(taken, datetime.date):
        taken = datetime.date.fromisoformat(str(taken).strip())
    prices: dict[str, Price] = {}
    for entry in data["models"]:
        cached = entry.get("cached_input")
        cached = None if cached is None else float(cached)
        price = Price(float(entry["input"]), float(entry["output"]), cached)
        for name in (entry["model"], *entry.get("aliases", ())):
            prices[name.strip().lower()] = price
    return taken, prices
