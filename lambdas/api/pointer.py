"""The published state version, read from the state pointer (`state/current.json`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from duffbeer import state
from duffbeer.errors import QueryError, StateNotPublishedError
from duffbeer.naming import STATE_POINTER_KEY

_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})


@dataclass(frozen=True)
class PublishedState:
    """One published state version as the pointer names it."""

    version: str
    seq: int
    client_buckets: int
    state_manifest: str  # key of the version's _state.json
    etag: str  # the pointer's ETag when it was read


def read_pointer(s3: Any, bucket: str) -> PublishedState | None:
    """The version the pointer publishes, or None when no version was ever published."""
    try:
        response = s3.get_object(Bucket=bucket, Key=STATE_POINTER_KEY)
        body = response["Body"].read()
    except ClientError as e:
        if str(e.response.get("Error", {}).get("Code", "")) in _MISSING:
            return None
        raise QueryError(f"could not read s3://{bucket}/{STATE_POINTER_KEY}: {e}") from e
    except BotoCoreError as e:
        raise QueryError(f"could not read s3://{bucket}/{STATE_POINTER_KEY}: {e}") from e
    try:
        pointer = state.loads_pointer(body)
        client_buckets = pointer["settings"]["client_buckets"]
    except (StateNotPublishedError, KeyError, TypeError) as e:
        raise QueryError(
            f"s3://{bucket}/{STATE_POINTER_KEY} is not a valid state pointer: {e}"
        ) from e
    if type(client_buckets) is not int or client_buckets < 1:
        raise QueryError(
            f"s3://{bucket}/{STATE_POINTER_KEY} names {client_buckets!r} client buckets"
        )
    return PublishedState(
        version=pointer["version"],
        seq=int(pointer["seq"]),
        client_buckets=client_buckets,
        state_manifest=str(pointer["state_manifest"]),
        etag=str(response.get("ETag", "")),
    )


class PointerCache:
    """The pointer, read again once it is older than `max_age_s`: a publication reaches the
    API within that delay, and a warm function reads the pointer at most once per delay."""

    def __init__(
        self,
        read: Callable[[], PublishedState | None],
        max_age_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self.max_age_s = max_age_s
        self._clock = clock
        self._lock = threading.Lock()
        self._value: PublishedState | None = None
        self._read_at: float | None = None

    def get(self) -> PublishedState | None:
        with self._lock:
            now = self._clock()
            if self._read_at is None or now - self._read_at >= self.max_age_s:
                self._value = self._read()
                self._read_at = now
            return self._value

    @property
    def last(self) -> PublishedState | None:
        """The last pointer read, without reading it again."""
        return self._value
