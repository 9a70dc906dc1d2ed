"""publish_batch settings, read from the environment once per container."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from duffbeer.errors import ConfigurationError

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class PublishConfig:
    processed_bucket: str

    def __post_init__(self) -> None:
        if not _BUCKET.match(self.processed_bucket):
            raise ConfigurationError(
                f"PROCESSED_BUCKET {self.processed_bucket!r} is not a bucket name"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> PublishConfig:
        return cls(processed_bucket=env.get("PROCESSED_BUCKET", ""))
