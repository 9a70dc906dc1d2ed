"""validate_orders settings, read from the environment once per container."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from duffbeer import contract
from duffbeer.errors import ConfigurationError

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")

# Enough for the header and a few hundred typical rows; the ranged GET never reads more.
DEFAULT_SAMPLE_BYTES = 64 * 1024


@dataclass(frozen=True)
class ValidateConfig:
    # Where the run's copy of the upload goes.
    processed_bucket: str
    max_file_bytes: int = contract.DEFAULT_MAX_FILE_BYTES
    sample_bytes: int = DEFAULT_SAMPLE_BYTES

    def __post_init__(self) -> None:
        if not _BUCKET.match(self.processed_bucket):
            raise ConfigurationError(
                f"PROCESSED_BUCKET {self.processed_bucket!r} is not a bucket name"
            )
        if self.max_file_bytes <= 0:
            raise ConfigurationError(f"MAX_FILE_BYTES must be positive, got {self.max_file_bytes}")
        if self.sample_bytes < 1024:
            raise ConfigurationError(f"sample size must be at least 1 KiB, got {self.sample_bytes}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> ValidateConfig:
        bucket = env.get("PROCESSED_BUCKET", "")
        raw = env.get("MAX_FILE_BYTES", "").strip()
        if not raw:
            return cls(processed_bucket=bucket)
        try:
            max_file_bytes = int(raw)
        except ValueError as e:
            raise ConfigurationError(f"MAX_FILE_BYTES {raw!r} is not an integer") from e
        return cls(processed_bucket=bucket, max_file_bytes=max_file_bytes)
