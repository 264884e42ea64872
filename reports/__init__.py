"""Reading a run back: statistics now; compare/gate, terminal story, HTML, Markdown and JUnit
as they land. Reads the store only through the ``traces`` read model."""

from ._summary import effective_trials, pass_at_k, summarize, wilson

__all__ = ["effective_trials", "pass_at_k", "summarize", "wilson"]
