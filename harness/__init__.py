"""harness: run agent tasks in instrumented containers, record everything, replay and score.

This package holds orchestration and the ``harness`` CLI; the container runtime lives in
``sandbox``, the trace store in ``traces``, rendering in ``reports``.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
