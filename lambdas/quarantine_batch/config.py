"""quarantine_batch settings, read from the environment once per container."""

from __future__ import annotations

from duffbeer.settings import BucketSettings


class QuarantineConfig(BucketSettings):
    """The processed bucket only."""
