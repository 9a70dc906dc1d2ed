"""publish_state settings, read from the environment once per container."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from duffbeer import naming
from duffbeer.errors import ConfigurationError

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_DATABASE = re.compile(r"^[a-z0-9_]{1,255}$")
# How long a superseded version stays in the pointer's history: readers that started on it
# (an API container's cached pointer, a running Athena query) may use it that long, and the
# CleanUp step keeps it meanwhile.
DEFAULT_READER_GRACE_SECONDS = 3600


@dataclass(frozen=True)
class PublishStateConfig:
    processed_bucket: str
    versions_database: str
    reader_grace_seconds: int = DEFAULT_READER_GRACE_SECONDS

    def __post_init__(self) -> None:
        if not _BUCKET.match(self.processed_bucket):
            raise ConfigurationError(
                f"PROCESSED_BUCKET {self.processed_bucket!r} is not a bucket name"
            )
        if not _DATABASE.match(self.versions_database):
            raise ConfigurationError(
                f"VERSIONS_DATABASE {self.versions_database!r} is not a valid name"
            )
        if self.reader_grace_seconds < 0:
            raise ConfigurationError("READER_GRACE_SECONDS must not be negative")

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> PublishStateConfig:
        database = env.get("GLUE_DATABASE") or naming.DATABASE
        try:
            grace = int(env.get("READER_GRACE_SECONDS") or DEFAULT_READER_GRACE_SECONDS)
        except ValueError as e:
            raise ConfigurationError(f"READER_GRACE_SECONDS: {e}") from e
        return cls(
            processed_bucket=env.get("PROCESSED_BUCKET", ""),
            versions_database=env.get("VERSIONS_DATABASE") or naming.versions_database(database),
            reader_grace_seconds=grace,
        )
