"""Query backends of the API: Athena in AWS, DuckDB over the published Parquet locally."""

from __future__ import annotations

from lambdas.api.backends.athena import AthenaBackend
from lambdas.api.backends.duckdb_backend import DuckDBBackend
from lambdas.api.config import BACKEND_ATHENA, ApiConfig
from lambdas.api.queries import QueryBackend


def create_backend(config: ApiConfig) -> QueryBackend:
    """The backend the configuration names (the DuckDB one imports duckdb/pyarrow only when
    it builds its first snapshot, so the Athena Lambda never needs them)."""
    if config.backend == BACKEND_ATHENA:
        return AthenaBackend.from_config(config)
    return DuckDBBackend.from_config(config)
