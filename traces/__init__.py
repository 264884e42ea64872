"""OpenTelemetry spans in DuckDB: exporter, schema, blobs, views and the query API.

Knows nothing of Docker; instrumented code reaches it only through the OpenTelemetry API and
the shared vocabulary in :mod:`traces.vocab` (a leaf module: importing it loads nothing else
of this package, so the sandbox layer can use it without DuckDB).

Example:
    import traces

    store = traces.open(".harness/traces.duckdb")
    df = store.sql("SELECT command, exit_code, duration_ms FROM commands")
    text = store.blob_text(df.stdout_sha256[0])
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # "X as X": an explicit re-export, for type checkers and linters (they cannot read
    # __all__ when it is computed).
    from ._exporter import DuckDBSpanExporter as DuckDBSpanExporter
    from ._io import ImportResult as ImportResult
    from ._io import export_run as export_run
    from ._io import import_path as import_path
    from ._model import Action as Action
    from ._model import Command as Command
    from ._model import FileChange as FileChange
    from ._model import ModelTurn as ModelTurn
    from ._model import ResourceSample as ResourceSample
    from ._model import Run as Run
    from ._model import Trial as Trial
    from ._origin import ModelCall as ModelCall
    from ._origin import Observation as Observation
    from ._origin import PathChange as PathChange
    from ._origin import Recorded as Recorded
    from ._origin import observations as observations
    from ._origin import recorded_trial as recorded_trial
    from ._origin import trace_actions as trace_actions
    from ._processor import BackpressureSpanProcessor as BackpressureSpanProcessor
    from ._recorder import Recorder as Recorder
    from ._records import Phase as Phase
    from ._records import TrialRecord as TrialRecord
    from ._records import trial_records as trial_records
    from ._schema import BLOB_TEXT_CAP as BLOB_TEXT_CAP
    from ._schema import SCHEMA_VERSION as SCHEMA_VERSION
    from ._schema import VIEW_DOCS as VIEW_DOCS
    from ._store import DEFAULT_DB as DEFAULT_DB
    from ._store import QueryError as QueryError
    from ._store import StoreBusy as StoreBusy
    from ._store import StoreError as StoreError
    from ._store import TraceStore as TraceStore
    from ._store import default_path as default_path
    from ._store import open as open
    from .vocab import BLOB_PREFIX as BLOB_PREFIX

# Public name -> the private module that defines it, imported on first use.
_EXPORTS = {
    "BLOB_PREFIX": "vocab",
    "BLOB_TEXT_CAP": "_schema",
    "DEFAULT_DB": "_store",
    "SCHEMA_VERSION": "_schema",
    "VIEW_DOCS": "_schema",
    "BackpressureSpanProcessor": "_processor",
    "DuckDBSpanExporter": "_exporter",
    "Action": "_model",
    "Command": "_model",
    "FileChange": "_model",
    "ModelTurn": "_model",
    "ModelCall": "_origin",
    "Observation": "_origin",
    "PathChange": "_origin",
    "Recorded": "_origin",
    "observations": "_origin",
    "recorded_trial": "_origin",
    "trace_actions": "_origin",
    "Phase": "_records",
    "TrialRecord": "_records",
    "trial_records": "_records",
    "ImportResult": "_io",
    "QueryError": "_store",
    "Recorder": "_recorder",
    "ResourceSample": "_model",
    "Run": "_model",
    "StoreBusy": "_store",
    "StoreError": "_store",
    "TraceStore": "_store",
    "Trial": "_model",
    "default_path": "_store",
    "export_run": "_io",
    "import_path": "_io",
    "open": "_store",
}

__all__ = [
    "BLOB_PREFIX",
    "BLOB_TEXT_CAP",
    "DEFAULT_DB",
    "SCHEMA_VERSION",
    "VIEW_DOCS",
    "BackpressureSpanProcessor",
    "DuckDBSpanExporter",
    "Action",
    "Command",
    "FileChange",
    "ModelTurn",
    "ModelCall",
    "Observation",
    "PathChange",
    "Recorded",
    "observations",
    "recorded_trial",
    "trace_actions",
    "Phase",
    "TrialRecord",
    "trial_records",
    "ImportResult",
    "QueryError",
    "Recorder",
    "ResourceSample",
    "Run",
    "StoreBusy",
    "StoreError",
    "TraceStore",
    "Trial",
    "default_path",
    "export_run",
    "import_path",
    "open",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'traces' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
