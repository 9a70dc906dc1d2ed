"""clean_up settings, read from the environment once per container."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from duffbeer import naming
from duffbeer.errors import ConfigurationError

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_DATABASE = re.compile(r"^[a-z0-9_]{1,255}$")
# A superseded run or version is kept this long after it stopped being current: a reader
# that started on it (an API container's cached pointer, a running Athena query, a merge
# planned on it) may still use it meanwhile.
DEFAULT_READER_GRACE_SECONDS = 3600
# A run prefix without a run manifest is left alone this long: its Glue job may still be
# running (the job timeout is far shorter); after that it is an orphan of a crashed run.
DEFAULT_ORPHAN_GRACE_SECONDS = 24 * 3600


@dataclass(frozen=True)
class CleanUpConfig:
    processed_bucket: str
    database: str
    versions_database: str
    reader_grace_seconds: int = DEFAULT_READER_GRACE_SECONDS
    orphan_grace_seconds: int = DEFAULT_ORPHAN_GRACE_SECONDS

    def __post_init__(self) -> None:
        if not _BUCKET.match(self.processed_bucket):
            raise ConfigurationError(
                f"PROCESSED_BUCKET {self.processed_bucket!r} is not a bucket name"
            )
        databases = (
            ("GLUE_DATABASE", self.database),
            ("VERSIONS_DATABASE", self.versions_database),
        )
        for label, name in databases:
            if not _DATABASE.match(name):
                raise ConfigurationError(f"{label} {name!r} is not a valid name")
        if self.reader_grace_seconds < 0 or self.orphan_grace_seconds < 0:
            raise ConfigurationError("grace periods must not be negative")

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> CleanUpConfig:
        database = env.get("GLUE_DATABASE") or naming.DATABASE
        try:
            reader = int(env.get("READER_GRACE_SECONDS") or DEFAULT_READER_GRACE_SECONDS)
            orphan = int(env.get("ORPHAN_GRACE_SECONDS") or DEFAULT_ORPHAN_GRACE_SECONDS)
        except ValueError as e:
            raise ConfigurationError(f"READER_GRACE_SECONDS/ORPHAN_GRACE_SECONDS: {e}") from e
        return cls(
            processed_bucket=env.get("PROCESSED_BUCKET", ""),
            database=database,
            versions_database=env.get("VERSIONS_DATABASE") or naming.versions_database(database),
            reader_grace_seconds=reader,
            orphan_grace_seconds=orphan,
        )
