"""The API Lambda's configuration, read from the environment once at cold start."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from duffbeer.errors import ConfigurationError
from duffbeer.naming import ATHENA_RESULTS_PREFIX, DATABASE, DEFAULT_PROCESSED_BUCKET

BACKEND_ATHENA = "athena"
BACKEND_DUCKDB = "duckdb"
BACKENDS = (BACKEND_ATHENA, BACKEND_DUCKDB)

# API Gateway gives up on an integration after 29 s; the query deadline leaves room to answer
# with a 504 before that happens.
DEFAULT_QUERY_TIMEOUT_S = 25.0
# The DuckDB backend lists the published manifests at most this often; a newly published
# batch is visible within this delay plus the time to rebuild the snapshot.
DEFAULT_SNAPSHOT_CHECK_S = 5.0


@dataclass(frozen=True)
class ApiConfig:
    backend: str
    database: str
    workgroup: str
    processed_bucket: str
    region: str | None = None
    endpoint_url: str | None = None
    query_timeout_s: float = DEFAULT_QUERY_TIMEOUT_S
    snapshot_check_s: float = DEFAULT_SNAPSHOT_CHECK_S

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigurationError(
                f"QUERY_BACKEND must be one of {', '.join(BACKENDS)}, got {self.backend!r}"
            )
        if not self.database:
            raise ConfigurationError("GLUE_DATABASE must not be empty")
        if self.backend == BACKEND_ATHENA and not self.workgroup:
            raise ConfigurationError("ATHENA_WORKGROUP is required with QUERY_BACKEND=athena")
        if not self.processed_bucket:
            raise ConfigurationError("PROCESSED_BUCKET must not be empty")
        if self.endpoint_url is not None:
            parts = urlsplit(self.endpoint_url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ConfigurationError(
                    f"AWS_ENDPOINT_URL must be an http(s) URL, got {self.endpoint_url!r}"
                )
        if not 0 < self.query_timeout_s < 29:
            raise ConfigurationError("the query timeout must be between 0 and 29 seconds")
        if self.snapshot_check_s < 0:
            raise ConfigurationError("the snapshot check interval must not be negative")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ApiConfig:
        values = os.environ if env is None else env
        return cls(
            backend=values.get("QUERY_BACKEND", BACKEND_ATHENA).strip().lower(),
            database=values.get("GLUE_DATABASE", DATABASE),
            workgroup=values.get("ATHENA_WORKGROUP", ""),
            processed_bucket=values.get("PROCESSED_BUCKET", DEFAULT_PROCESSED_BUCKET),
            region=values.get("AWS_REGION") or values.get("AWS_DEFAULT_REGION") or None,
            endpoint_url=values.get("AWS_ENDPOINT_URL") or None,
        )

    @property
    def athena_output_location(self) -> str:
        return f"s3://{self.processed_bucket}/{ATHENA_RESULTS_PREFIX}"
