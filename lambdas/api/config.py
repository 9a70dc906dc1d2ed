"""The API Lambda's configuration, read from the environment once at cold start."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

from duffbeer.errors import ConfigurationError
from duffbeer.naming import (
    ATHENA_RESULTS_PREFIX,
    DATABASE,
    DEFAULT_PROCESSED_BUCKET,
    versions_database,
)

BACKEND_ATHENA = "athena"
BACKEND_DUCKDB = "duckdb"
BACKENDS = (BACKEND_ATHENA, BACKEND_DUCKDB)

# API Gateway gives up on an integration after 29 s; the query deadline leaves room to answer
# with a 504 before that happens.
DEFAULT_QUERY_TIMEOUT_S = 25.0
# The DuckDB backend checks the state pointer at most this often; a newly published version
# is visible within this delay plus the time to load its snapshot.
DEFAULT_SNAPSHOT_CHECK_S = 5.0
# The Athena backend reads the state pointer again once its copy is this old: a published
# version reaches the API within this delay.
DEFAULT_POINTER_CACHE_S = 5.0
MAX_POINTER_CACHE_S = 300.0
# Athena may answer a query from a stored result up to this old. Safe at any age: the query
# text names the state version, so a new version never matches an older result. 10080
# minutes (7 days) is Athena's maximum; 0 turns reuse off.
DEFAULT_RESULT_REUSE_MINUTES = 10080
MAX_RESULT_REUSE_MINUTES = 10080
# The versions database is quoted into the query text, so only plain Glue names pass.
_DATABASE_NAME = re.compile(r"[a-z0-9_]{1,255}")


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
    pointer_cache_s: float = DEFAULT_POINTER_CACHE_S
    result_reuse_minutes: int = DEFAULT_RESULT_REUSE_MINUTES
    # None: naming.versions_database(database).
    versions_database: str | None = None

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
        if not 0 <= self.pointer_cache_s <= MAX_POINTER_CACHE_S:
            raise ConfigurationError(
                f"STATE_POINTER_CACHE_S must be from 0 to {MAX_POINTER_CACHE_S:g} seconds, "
                f"got {self.pointer_cache_s:g}"
            )
        if not 0 <= self.result_reuse_minutes <= MAX_RESULT_REUSE_MINUTES:
            raise ConfigurationError(
                f"ATHENA_RESULT_REUSE_MINUTES must be from 0 to {MAX_RESULT_REUSE_MINUTES}, "
                f"got {self.result_reuse_minutes}"
            )
        if not _DATABASE_NAME.fullmatch(self.state_database):
            raise ConfigurationError(
                "VERSIONS_DATABASE (default: GLUE_DATABASE + '_versions') must be "
                f"1-255 lower-case letters, digits or _, got {self.state_database!r}"
            )

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
            pointer_cache_s=_number(
                values, "STATE_POINTER_CACHE_S", float, DEFAULT_POINTER_CACHE_S
            ),
            result_reuse_minutes=_number(
                values, "ATHENA_RESULT_REUSE_MINUTES", int, DEFAULT_RESULT_REUSE_MINUTES
            ),
            versions_database=values.get("VERSIONS_DATABASE") or None,
        )

    @property
    def athena_output_location(self) -> str:
        return f"s3://{self.processed_bucket}/{ATHENA_RESULTS_PREFIX}"

    @property
    def state_database(self) -> str:
        """The Glue database of the versioned state tables."""
        return self.versions_database or versions_database(self.database)


_N = TypeVar("_N", int, float)


def _number(values: Mapping[str, str], name: str, kind: type[_N], default: _N) -> _N:
    raw = values.get(name, "").strip()
    if not raw:
        return default
    try:
        return kind(raw)
    except ValueError as e:
        raise ConfigurationError(f"{name} must be a number, got {raw!r}") from e
