"""plan_state settings, read from the environment once per container."""

from __future__ import annotations

from pydantic import Field

from duffbeer import state
from duffbeer.settings import BucketSettings

# Used by the first version only: later versions keep their base's buckets.
_CLIENT_BUCKETS = Field(
    default=state.DEFAULT_CLIENT_BUCKETS, ge=1, le=4096, validation_alias="CLIENT_BUCKETS"
)
_LINE_BUCKETS = Field(
    default=state.DEFAULT_LINE_BUCKETS, ge=1, le=256, validation_alias="LINE_BUCKETS"
)


class PlanConfig(BucketSettings):
    client_buckets: int = _CLIENT_BUCKETS
    line_buckets: int = _LINE_BUCKETS

    @property
    def settings(self) -> state.StateSettings:
        return state.StateSettings(
            line_buckets=self.line_buckets, client_buckets=self.client_buckets
        )
