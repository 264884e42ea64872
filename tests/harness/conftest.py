"""Fixtures for the agents' tests: strict OpenAI API servers and a throwaway API key."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from tests.harness.openai_api import Servers, serving


@pytest.fixture
def serve() -> Iterator[Servers]:
    """``serve(Model([...]))`` starts a strict API server and returns its base URL."""
    yield from serving()


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    key = "sk-test-" + secrets.token_hex(16)
    monkeypatch.setenv("OPENAI_API_KEY", key)
    return key
