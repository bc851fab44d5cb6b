"""API prices, to put a dollar figure next to token counts.

USD per 1M tokens (input, output), list prices as of early 2026 for standard (non-batch, uncached)
requests. Prices change: check the provider's pricing page, and override or extend this table with
a JSON/YAML file (`--prices FILE` or the `KARDIABENCH_PRICES` environment variable):

    gpt-4o: {input: 2.5, output: 10}     # or as a pair: gpt-4o: [2.5, 10]

A model that is not in the table costs None: a guessed figure is worse than none. Lookup is by exact
id (case-insensitive), so a dated snapshot such as `gpt-4o-2024-05-13`, priced differently from the
alias, needs its own entry.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PRICES_ENV = "KARDIABENCH_PRICES"
# A provider batch job (`--batch`) is billed at this fraction of the normal price (OpenAI: 50%).
BATCH_PRICE_FACTOR = 0.5


@dataclass(frozen=True, slots=True)
class Price:
    input: float  # USD per 1M prompt tokens
    output: float  # USD per 1M completion tokens


# As of early 2026 (OpenAI, DeepSeek, Google list prices; check provider pages before quoting).
DEFAULT_PRICES: dict[str, Price] = {
    "gpt-4o": Price(2.50, 10.00),
    "gpt-4o-mini": Price(0.15, 0.60),
    "gpt-4.1": Price(2.00, 8.00),
    "gpt-4.1-mini": Price(0.40, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.40),
    "gpt-5": Price(1.25, 10.00),
    "gpt-5-mini": Price(0.25, 2.00),
    "gpt-5-nano": Price(0.05, 0.40),
    "o3": Price(2.00, 8.00),
    "o4-mini": Price(1.10, 4.40),
    "deepseek-chat": Price(0.28, 0.42),
    "deepseek-reasoner": Price(0.28, 0.42),
    "gemini-2.0-flash": Price(0.10, 0.40),
    "gemini-2.5-flash": Price(0.30, 2.50),
    "gemini-2.5-pro": Price(1.25, 10.00),
}


@dataclass(frozen=True)
class PriceTable:
    prices: Mapping[str, Price] = field(default_factory=dict)

    @classmethod
    def default(cls) -> PriceTable:
        """The built-in table, extended by the file named in $KARDIABENCH_PRICES if set."""
        table = cls({k.lower(): v for k, v in DEFAULT_PRICES.items()})
        path = os.environ.get(PRICES_ENV)
        return table.extended(load_prices(path)) if path else table

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PriceTable:
        """The default table extended (and overridden) by a user's JSON/YAML price file."""
        return cls.default().with_file(path)

    def extended(self, more: Mapping[str, Price]) -> PriceTable:
        """A new table where `more` adds models and overrides existing ones."""
        return PriceTable({**self.prices, **{k.lower(): v for k, v in more.items()}})

    def with_file(self, path: str | os.PathLike[str]) -> PriceTable:
        return self.extended(load_prices(path))

    def get(self, model: str) -> Price | None:
        return self.prices.get(model.lower())

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float | None:
        """USD for this many tokens, or None for a model without a known price."""
        p = self.get(model)
        if p is None:
            return None
        return (prompt_tokens * p.input + completion_tokens * p.output) / 1_000_000


def load_prices(path: str | os.PathLike[str]) -> dict[str, Price]:
    """Read `{model: {input: X, output: Y}}` or `{model: [X, Y]}` from JSON or YAML."""
    p = Path(path)
    text = p.read_text(encoding="utf-8")
    if p.suffix.lower() == ".json":
        raw = json.loads(text)
    else:
        import yaml

        raw = yaml.safe_load(text)
    if not isinstance(raw, dict):
        raise ValueError(f"{p}: expected a mapping of model id → price, got {type(raw).__name__}")
    return {str(model): _price(p, str(model), v) for model, v in raw.items()}


def _price(path: Path, model: str, v: Any) -> Price:
    try:
        if isinstance(v, Mapping):
            price = Price(float(v["input"]), float(v["output"]))
        elif isinstance(v, list | tuple) and len(v) == 2:
            price = Price(float(v[0]), float(v[1]))
        else:
            raise ValueError
    except (KeyError, TypeError, ValueError):
        raise ValueError(
            f"{path}: price of {model!r} must be {{input: X, output: Y}} or [X, Y] (USD per 1M tokens), got {v!r}"
        ) from None
    if price.input < 0 or price.output < 0:
        raise ValueError(f"{path}: negative price for {model!r}")
    return price


def cost(
    model: str, prompt_tokens: int, completion_tokens: int, table: PriceTable | None = None
) -> float | None:
    """USD for a call, from `table` (default: built-in + $KARDIABENCH_PRICES); None if unknown."""
    return (table or PriceTable.default()).cost(model, prompt_tokens, completion_tokens)
