"""validate_orders settings, read from the environment once per container."""

from __future__ import annotations

from pydantic import Field

from duffbeer import contract
from duffbeer.settings import BucketSettings, Positive

# Enough for the header and a few hundred typical rows; the ranged GET never reads more.
DEFAULT_SAMPLE_BYTES = 64 * 1024


class ValidateConfig(BucketSettings):
    # processed_bucket: where the run's copy of the upload goes.
    max_file_bytes: Positive = Field(
        default=contract.DEFAULT_MAX_FILE_BYTES, validation_alias="MAX_FILE_BYTES"
    )
    sample_bytes: int = Field(
        default=DEFAULT_SAMPLE_BYTES, ge=1024, validation_alias="SAMPLE_BYTES"
    )
