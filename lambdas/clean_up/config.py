"""clean_up settings, read from the environment once per container."""

from __future__ import annotations

from pydantic import Field

from duffbeer.settings import DEFAULT_READER_GRACE_SECONDS, BucketSettings, Seconds

# A run prefix without a run manifest is left alone this long: its Glue job may still be
# running (the job timeout is far shorter); after that it is an orphan of a crashed run.
DEFAULT_ORPHAN_GRACE_SECONDS = 24 * 3600


class CleanUpConfig(BucketSettings):
    reader_grace_seconds: Seconds = Field(
        default=DEFAULT_READER_GRACE_SECONDS, validation_alias="READER_GRACE_SECONDS"
    )
    orphan_grace_seconds: Seconds = Field(
        default=DEFAULT_ORPHAN_GRACE_SECONDS, validation_alias="ORPHAN_GRACE_SECONDS"
    )
