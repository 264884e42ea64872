"""What a model's tokens cost, from a price list: the built-in one (OpenAI's published list
prices, ``reports/prices.toml``) extended by the user's.

The record keeps token counts, never money: prices change, and a count can be priced again.
Input tokens include the cached ones (billed at the cached rate) and output tokens include
the reasoning ones (billed as output), as the API reports them. A model not on the list has
no cost (None) rather than a guess.

A user's price file has the built-in file's shape (one table per model, USD per million
tokens) and wins over it, model by model: ``$HARNESS_PRICES`` for every command, then a file
given explicitly (``--prices FILE``). A self-hosted or negotiated model gets its cost this way
without a release of harness.
"""

from __future__ import annotations

import functools
import math
import os
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

PRICES_ENV = "HARNESS_PRICES"
_FIELDS = ("input", "cached_input", "output")
_EXAMPLE = '["my-model"]\ninput = 0.50\ncached_input = 0.05\noutput = 1.50'


@dataclass(frozen=True)
class Price:
    """US dollars per million tokens."""

    input: float
    cached_input: float
    output: float


class PricesError(ValueError):
    """A price file that cannot be used: the message names the file, the model and the fix."""


def parse_prices(text: str, source: str) -> dict[str, Price]:
    """The prices in a TOML document (``source`` names it in errors).

    Raises:
        PricesError: not TOML, or a model's table is not ``input``/``cached_input``/``output``
            as non-negative numbers.
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PricesError(
            f"{source}: not valid TOML ({exc}); a model's price is:\n{_EXAMPLE}"
        ) from None
    prices: dict[str, Price] = {}
    for model, table in data.items():
        where = f"{source}: [{_quoted(model)}]"
        if not isinstance(table, dict):
            raise PricesError(
                f"{where}: expected a table of prices per million tokens, got "
                f"{type(table).__name__}; write it as:\n{_EXAMPLE}"
            )
        nested = [k for k, v in table.items() if isinstance(v, dict)]
        if nested:
            raise PricesError(
                f"{where}: [{model}.{nested[0]}] was read as a table inside [{model}] (a dot "
                f'separates TOML keys): quote the model name, ["{model}.{nested[0]}"]'
            )
        unknown = sorted(set(table) - set(_FIELDS))
        if unknown:
            raise PricesError(
                f"{where}: unknown field {unknown[0]!r}; the fields are input, cached_input "
                "(optional, default: input) and output, in USD per million tokens"
            )
        values: dict[str, float] = {}
        for name in _FIELDS:
            value = table.get(name, table.get("input") if name == "cached_input" else None)
            if value is None:
                raise PricesError(f"{where}: missing `{name} = ...` (USD per million tokens)")
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
            ):
                raise PricesError(
                    f"{where}: {name} = {value!r} is not a price; give a number >= 0 "
                    "(USD per million tokens)"
                )
            values[name] = float(value)
        prices[model] = Price(**values)
    return prices


def _quoted(model: str) -> str:
    return f'"{model}"'


def read_prices(path: str | os.PathLike[str]) -> dict[str, Price]:
    """The prices in a user's TOML file.

    Raises:
        PricesError: the file cannot be read or is not a price list (the message says why).
    """
    p = Path(path)
    try:
        stat = p.stat()
    except OSError as exc:
        raise PricesError(f"price file {p}: {exc.strerror or exc}") from None
    return _read_cached(str(p), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=16)
def _read_cached(path: str, mtime_ns: int, size: int) -> dict[str, Price]:
    # Keyed on the file's mtime and size: pricing a run's trials one by one reads it once.
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PricesError(f"price file {path}: cannot read it: {exc}") from None
    return parse_prices(text, path)


def builtin_prices() -> dict[str, Price]:
    """The price list shipped with harness (``reports/prices.toml``)."""
    return dict(_builtin())


@functools.cache
def _builtin() -> dict[str, Price]:
    text = resources.files(__package__).joinpath("prices.toml").read_text(encoding="utf-8")
    return parse_prices(text, "reports/prices.toml")


def load_prices(path: str | os.PathLike[str] | None = None) -> dict[str, Price]:
    """The price list in force: the built-in one, then ``$HARNESS_PRICES``, then ``path``,
    each model's last price winning.

    Raises:
        PricesError: a user's file cannot be used (the message names it and the fix).
    """
    prices = dict(_builtin())
    env = os.environ.get(PRICES_ENV)
    for source in (env, path):
        if source:
            prices.update(read_prices(source))
    return prices


# The built-in list (USD per 1M tokens), as a mapping; `load_prices()` adds the user's.
PRICES: dict[str, Price] = builtin_prices()


def price(model: str | None, prices: dict[str, Price] | None = None) -> Price | None:
    """The price of ``model`` (or of the model a dated snapshot name belongs to) in ``prices``
    (default: :func:`load_prices`)."""
    if not model:
        return None
    table = load_prices() if prices is None else prices
    if model in table:
        return table[model]
    # "gpt-5-mini-2025-08-07" is gpt-5-mini, but "gpt-5-mini" is not gpt-5.
    matches = [name for name in table if model.startswith(name + "-") and _dated(model, name)]
    return table[max(matches, key=len)] if matches else None


def _dated(model: str, name: str) -> bool:
    """Whether ``model`` is ``name`` plus a date (``-2025-08-07``)."""
    rest = model[len(name) + 1 :].split("-")
    return len(rest) == 3 and all(part.isdigit() for part in rest)


def cost_usd(
    model: str | None,
    input_tokens: int | None,
    output_tokens: int | None,
    cached_tokens: int | None = None,
    prices: dict[str, Price] | None = None,
) -> float | None:
    """What the tokens cost at ``model``'s price in ``prices`` (default: :func:`load_prices`);
    None for a model without one, or when there are no tokens to price."""
    p = price(model, prices)
    if p is None or (input_tokens is None and output_tokens is None):
        return None
    cached = min(cached_tokens or 0, input_tokens or 0)
    fresh = (input_tokens or 0) - cached
    return (fresh * p.input + cached * p.cached_input + (output_tokens or 0) * p.output) / 1e6
