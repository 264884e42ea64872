"""What a model's tokens cost, from OpenAI's published list prices.

The record keeps token counts, never money: prices change, and a count can be priced again.
Input tokens include the cached ones (billed at the cached rate) and output tokens include
the reasoning ones (billed as output), as the API reports them. A model not on the list has
no cost (None) rather than a guess.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Price:
    """US dollars per million tokens."""

    input: float
    cached_input: float
    output: float


# OpenAI's standard-tier list prices (USD per 1M tokens). A dated snapshot name
# ("gpt-5-mini-2025-08-07") is priced as its model: the longest matching prefix wins.
PRICES: dict[str, Price] = {
    "gpt-5": Price(1.25, 0.125, 10.0),
    "gpt-5-mini": Price(0.25, 0.025, 2.0),
    "gpt-5-nano": Price(0.05, 0.005, 0.40),
    "gpt-5.1": Price(1.25, 0.125, 10.0),
    "gpt-5-codex": Price(1.25, 0.125, 10.0),
    "gpt-4.1": Price(2.0, 0.50, 8.0),
    "gpt-4.1-mini": Price(0.40, 0.10, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.025, 0.40),
    "gpt-4o": Price(2.50, 1.25, 10.0),
    "gpt-4o-mini": Price(0.15, 0.075, 0.60),
    "o3": Price(2.0, 0.50, 8.0),
    "o4-mini": Price(1.10, 0.275, 4.40),
    "codex-mini-latest": Price(1.50, 0.375, 6.0),
}


def price(model: str | None) -> Price | None:
    """The list price of ``model`` (or of the model a dated snapshot name belongs to)."""
    if not model:
        return None
    if model in PRICES:
        return PRICES[model]
    # "gpt-5-mini-2025-08-07" is gpt-5-mini, but "gpt-5-mini" is not gpt-5.
    matches = [name for name in PRICES if model.startswith(name + "-") and _dated(model, name)]
    return PRICES[max(matches, key=len)] if matches else None


def _dated(model: str, name: str) -> bool:
    """Whether ``model`` is ``name`` plus a date (``-2025-08-07``)."""
    rest = model[len(name) + 1 :].split("-")
    return len(rest) == 3 and all(part.isdigit() for part in rest)


def cost_usd(
    model: str | None,
    input_tokens: int | None,
    output_tokens: int | None,
    cached_tokens: int | None = None,
) -> float | None:
    """What the tokens cost at ``model``'s list price; None for a model without one, or when
    there are no tokens to price."""
    p = price(model)
    if p is None or (input_tokens is None and output_tokens is None):
        return None
    cached = min(cached_tokens or 0, input_tokens or 0)
    fresh = (input_tokens or 0) - cached
    return (fresh * p.input + cached * p.cached_input + (output_tokens or 0) * p.output) / 1e6
