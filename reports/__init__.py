"""Rendering from the trace store: HTML report, Markdown and JUnit."""

__all__: list[str] = []
