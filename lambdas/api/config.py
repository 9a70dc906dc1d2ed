"""The API Lambda's configuration, read from the environment once at cold start."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    BeforeValidator,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticUseDefault
from pydantic_settings import SettingsConfigDict

from duffbeer.naming import ATHENA_RESULTS_PREFIX, DATABASE, DEFAULT_PROCESSED_BUCKET
from duffbeer.settings import Settings

BACKEND_ATHENA = "athena"
BACKEND_DUCKDB = "duckdb"
BACKENDS = (BACKEND_ATHENA, BACKEND_DUCKDB)

# API Gateway gives up on an integration after 29 s; the query deadline leaves room to answer
# with a 504 before that happens.
DEFAULT_QUERY_TIMEOUT_S = 25.0
# The DuckDB backend checks the publications at most this often; a new publication is
# visible within this delay plus the time to load its tables.
DEFAULT_SNAPSHOT_CHECK_S = 5.0
# The Athena backend reads the publications again once its copy is this old: a new
# publication reaches the API within this delay.
DEFAULT_POINTER_CACHE_S = 5.0
MAX_POINTER_CACHE_S = 300.0
# Athena may answer a query from a stored result up to this old. Safe at any age: the query
# text names every table's snapshot, so a new publication never matches an older result.
# 10080 minutes (7 days) is Athena's maximum; 0 turns reuse off.
DEFAULT_RESULT_REUSE_MINUTES = 10080
MAX_RESULT_REUSE_MINUTES = 10080
# The database is quoted into the query text, so only plain Glue names pass.
_DATABASE_NAME = re.compile(r"[a-z0-9_]{1,255}")
# The currency of every amount (an ISO 4217 code): the reports page formats money with it.
DEFAULT_CURRENCY = "EUR"
_CURRENCY = re.compile(r"[A-Z]{3}")


def _number(raw: Any, info: ValidationInfo) -> Any:
    """A number from its text; an empty text stands for the default."""
    if not isinstance(raw, str):
        return raw
    if not raw.strip():
        raise PydanticUseDefault
    kind = int if info.field_name == "result_reuse_minutes" else float
    try:
        return kind(raw.strip())
    except ValueError as e:
        raise ValueError(f"must be a number, got {raw!r}") from e


def _none_if_empty(raw: Any) -> Any:
    return raw or None


Number = BeforeValidator(_number)
Optional = BeforeValidator(_none_if_empty)


class ApiConfig(Settings):
    # An empty GLUE_DATABASE or PROCESSED_BUCKET is refused, not defaulted.
    model_config = SettingsConfigDict(env_ignore_empty=False)

    backend: str = Field(default=BACKEND_ATHENA, validation_alias="QUERY_BACKEND")
    database: str = Field(default=DATABASE, validation_alias="GLUE_DATABASE")
    workgroup: str = Field(default="", validation_alias="ATHENA_WORKGROUP")
    processed_bucket: str = Field(
        default=DEFAULT_PROCESSED_BUCKET, validation_alias="PROCESSED_BUCKET"
    )
    region: Annotated[str | None, Optional] = Field(
        default=None, validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION")
    )
    endpoint_url: Annotated[str | None, Optional] = Field(
        default=None, validation_alias="AWS_ENDPOINT_URL"
    )
    query_timeout_s: Annotated[float, Number] = DEFAULT_QUERY_TIMEOUT_S
    snapshot_check_s: Annotated[float, Number] = DEFAULT_SNAPSHOT_CHECK_S
    pointer_cache_s: Annotated[float, Number] = Field(
        default=DEFAULT_POINTER_CACHE_S, validation_alias="PUBLICATIONS_CACHE_S"
    )
    result_reuse_minutes: Annotated[int, Number] = Field(
        default=DEFAULT_RESULT_REUSE_MINUTES, validation_alias="ATHENA_RESULT_REUSE_MINUTES"
    )
    currency: str = Field(default=DEFAULT_CURRENCY, validation_alias="REPORT_CURRENCY")

    @field_validator("backend", mode="before")
    @classmethod
    def _backend(cls, raw: Any) -> Any:
        backend = raw.strip().lower() if isinstance(raw, str) else raw
        if backend not in BACKENDS:
            raise ValueError(f"must be one of {', '.join(BACKENDS)}, got {backend!r}")
        return backend

    @field_validator("database", "processed_bucket")
    @classmethod
    def _not_empty(cls, value: str) -> str:
        if not value:
            raise ValueError("must not be empty")
        return value

    @field_validator("endpoint_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        parts = urlsplit(value or "")
        if value is not None and (parts.scheme not in ("http", "https") or not parts.netloc):
            raise ValueError(f"must be an http(s) URL, got {value!r}")
        return value

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        if not _CURRENCY.fullmatch(value):
            raise ValueError(f"must be an ISO 4217 code such as EUR, got {value!r}")
        return value

    @field_validator("pointer_cache_s")
    @classmethod
    def _pointer_cache(cls, value: float) -> float:
        if math.isnan(value) or not 0 <= value <= MAX_POINTER_CACHE_S:
            raise ValueError(f"must be from 0 to {MAX_POINTER_CACHE_S:g} seconds, got {value:g}")
        return value

    @field_validator("result_reuse_minutes")
    @classmethod
    def _result_reuse(cls, value: int) -> int:
        if not 0 <= value <= MAX_RESULT_REUSE_MINUTES:
            raise ValueError(f"must be from 0 to {MAX_RESULT_REUSE_MINUTES}, got {value}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ApiConfig:
        # Whole messages: these name more than one setting.
        if self.backend == BACKEND_ATHENA and not self.workgroup:
            raise ValueError("ATHENA_WORKGROUP is required with QUERY_BACKEND=athena")
        if not 0 < self.query_timeout_s < 29:
            raise ValueError("the query timeout must be between 0 and 29 seconds")
        if self.snapshot_check_s < 0:
            raise ValueError("the snapshot check interval must not be negative")
        if not _DATABASE_NAME.fullmatch(self.database):
            raise ValueError(
                "GLUE_DATABASE must be 1-255 lower-case letters, digits or _, "
                f"got {self.database!r}"
            )
        return self

    @property
    def athena_output_location(self) -> str:
        return f"s3://{self.processed_bucket}/{ATHENA_RESULTS_PREFIX}"
