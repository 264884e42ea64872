"""OpenTelemetry spans in DuckDB: exporter, schema, blobs, views and the query API.

Knows nothing of Docker; the sandbox reaches it only through the OpenTelemetry API.
"""

__all__: list[str] = []
