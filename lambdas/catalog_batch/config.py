"""catalog_batch settings, read from the environment once per container."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from duffbeer import naming
from duffbeer.errors import ConfigurationError

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_DATABASE = re.compile(r"^[a-z0-9_]{1,255}$")


@dataclass(frozen=True)
class CatalogConfig:
    processed_bucket: str
    database: str = naming.DATABASE
    versions_database: str = naming.versions_database(naming.DATABASE)

    def __post_init__(self) -> None:
        if not _BUCKET.match(self.processed_bucket):
            raise ConfigurationError(
                f"PROCESSED_BUCKET {self.processed_bucket!r} is not a bucket name"
            )
        for label, name in (
            ("GLUE_DATABASE", self.database),
            ("VERSIONS_DATABASE", self.versions_database),
        ):
            if not _DATABASE.match(name):
                # Athena only handles lower-case names of letters, digits and underscores.
                raise ConfigurationError(f"{label} {name!r} is not a valid name")

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> CatalogConfig:
        database = env.get("GLUE_DATABASE") or naming.DATABASE
        return cls(
            processed_bucket=env.get("PROCESSED_BUCKET", ""),
            database=database,
            versions_database=env.get("VERSIONS_DATABASE") or naming.versions_database(database),
        )
