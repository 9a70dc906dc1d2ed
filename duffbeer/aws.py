"""The one boto3 client factory: retry and timeout config, endpoint override, lazy creation."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(
    retries={"max_attempts": 5, "mode": "adaptive"},
    connect_timeout=5,
    read_timeout=30,
)


def new_client(
    service: str,
    region: str | None = None,
    endpoint_url: str | None = None,
    profile: str | None = None,
) -> Any:
    """A boto3 client of its own (one whose events a caller changes), with the credentials of
    the named `profile` when given. boto3 itself honours AWS_ENDPOINT_URL(_<SERVICE>) when
    `endpoint_url` is None, which is how local mode points every client at 127.0.0.1."""
    return boto3.session.Session(profile_name=profile).client(
        service,
        region_name=region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
        endpoint_url=endpoint_url,
        config=_CONFIG,
    )


@lru_cache(maxsize=32)
def client(
    service: str,
    region: str | None = None,
    endpoint_url: str | None = None,
    profile: str | None = None,
) -> Any:
    """The shared, cached client of `new_client`'s arguments."""
    return new_client(service, region, endpoint_url, profile)
