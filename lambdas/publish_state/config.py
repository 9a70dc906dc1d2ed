"""publish_state settings, read from the environment once per container."""

from __future__ import annotations

from pydantic import Field

from duffbeer.settings import DEFAULT_READER_GRACE_SECONDS, CatalogSettings, Seconds


class PublishStateConfig(CatalogSettings):
    # How long a superseded version stays in the pointer's history (the CleanUp step keeps
    # it meanwhile).
    reader_grace_seconds: Seconds = Field(
        default=DEFAULT_READER_GRACE_SECONDS, validation_alias="READER_GRACE_SECONDS"
    )
