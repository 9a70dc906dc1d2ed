"""publish_batch settings, read from the environment once per container."""

from __future__ import annotations

from duffbeer.settings import BucketSettings


class PublishConfig(BucketSettings):
    """The processed bucket only."""
