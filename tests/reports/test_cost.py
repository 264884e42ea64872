"""Cost at list prices: cached input at its own rate, dated snapshots priced as their model,
unknown models unpriced rather than guessed."""

from __future__ import annotations

import pytest

from reports._cost import PRICES, cost_usd, price


def test_dated_snapshots_are_priced_as_their_model_and_nothing_else() -> None:
    assert price("gpt-5-mini-2025-08-07") == PRICES["gpt-5-mini"]
    assert price("gpt-5-2025-08-07") == PRICES["gpt-5"]
    assert price("gpt-5-mini") != PRICES["gpt-5"]
    assert price("gpt-5-turbo-ultra") is None  # not a dated gpt-5
    assert price("llama-3.1-8b") is None and price(None) is None


def test_cached_input_is_billed_at_the_cached_rate() -> None:
    p = PRICES["gpt-5-mini"]
    got = cost_usd("gpt-5-mini", 1_000_000, 500_000, cached_tokens=400_000)
    assert got == pytest.approx(0.6 * p.input + 0.4 * p.cached_input + 0.5 * p.output)
    # More cached than input (a server's miscount) never gives a negative fresh count.
    assert cost_usd("gpt-5-mini", 10, 0, cached_tokens=50) == pytest.approx(
        10 * p.cached_input / 1e6
    )
    assert cost_usd("test-model", 100, 100) is None
    assert cost_usd("gpt-5-mini", None, None) is None
