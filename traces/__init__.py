"""OpenTelemetry spans in DuckDB: exporter, schema, blobs, views and the query API.

Knows nothing of Docker; instrumented code reaches it only through the OpenTelemetry API.

Example:
    import traces

    store = traces.open(".harness/traces.duckdb")
    df = store.sql("SELECT command, exit_code, duration_ms FROM commands")
    text = store.blob_text(df.stdout_sha256[0])
"""

from ._exporter import DuckDBSpanExporter
from ._io import ImportResult, export_run, import_path
from ._processor import BackpressureSpanProcessor
from ._recorder import Recorder
from ._schema import SCHEMA_VERSION, VIEW_DOCS
from ._store import (
    BLOB_PREFIX,
    DEFAULT_DB,
    QueryError,
    StoreBusy,
    StoreError,
    TraceStore,
    default_path,
    open,
)

__all__ = [
    "BLOB_PREFIX",
    "DEFAULT_DB",
    "SCHEMA_VERSION",
    "VIEW_DOCS",
    "BackpressureSpanProcessor",
    "DuckDBSpanExporter",
    "ImportResult",
    "QueryError",
    "Recorder",
    "StoreBusy",
    "StoreError",
    "TraceStore",
    "default_path",
    "export_run",
    "import_path",
    "open",
]
