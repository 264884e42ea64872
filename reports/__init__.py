"""Reading a run back: statistics, and a trial told as a story (``harness show``); compare/gate,
HTML, Markdown and JUnit as they land. Reads the store only through the ``traces`` read model."""

from ._story import (
    BRIEF,
    DETAIL,
    Excerpt,
    Limits,
    NoSuchStep,
    RunStory,
    StoryChange,
    StoryStep,
    TrialStory,
    VerifierRun,
    excerpt,
    find,
    printable,
    run_story,
    trial_story,
)
from ._summary import effective_trials, pass_at_k, summarize, wilson

__all__ = [
    "BRIEF",
    "DETAIL",
    "Excerpt",
    "Limits",
    "NoSuchStep",
    "RunStory",
    "StoryChange",
    "StoryStep",
    "TrialStory",
    "VerifierRun",
    "effective_trials",
    "excerpt",
    "find",
    "pass_at_k",
    "printable",
    "run_story",
    "summarize",
    "trial_story",
    "wilson",
]
