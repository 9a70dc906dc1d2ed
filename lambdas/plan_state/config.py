"""plan_state settings, read from the environment once per container."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from duffbeer import state
from duffbeer.errors import ConfigurationError

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class PlanConfig:
    processed_bucket: str
    # Used by the first version only: later versions keep their base's buckets.
    client_buckets: int = state.DEFAULT_CLIENT_BUCKETS
    line_buckets: int = state.DEFAULT_LINE_BUCKETS

    def __post_init__(self) -> None:
        if not _BUCKET.match(self.processed_bucket):
            raise ConfigurationError(
                f"PROCESSED_BUCKET {self.processed_bucket!r} is not a bucket name"
            )
        if not 1 <= self.client_buckets <= 4096 or not 1 <= self.line_buckets <= 256:
            raise ConfigurationError(
                f"CLIENT_BUCKETS {self.client_buckets} must be 1-4096 and "
                f"LINE_BUCKETS {self.line_buckets} 1-256"
            )

    @property
    def settings(self) -> state.StateSettings:
        return state.StateSettings(
            line_buckets=self.line_buckets, client_buckets=self.client_buckets
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> PlanConfig:
        try:
            return cls(
                processed_bucket=env.get("PROCESSED_BUCKET", ""),
                client_buckets=int(env.get("CLIENT_BUCKETS") or state.DEFAULT_CLIENT_BUCKETS),
                line_buckets=int(env.get("LINE_BUCKETS") or state.DEFAULT_LINE_BUCKETS),
            )
        except ValueError as e:
            raise ConfigurationError(f"CLIENT_BUCKETS/LINE_BUCKETS: {e}") from e
