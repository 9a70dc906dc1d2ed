"""The state's publications, read from the publications table's Iceberg metadata.

A request reads one publication: the latest, or the one current at its `as_of` instant.
The snapshot summaries of the `state_publications` table hold every publication and the
snapshot each state table was at (duffbeer.state). Reading them takes one Glue GetTable
(the table's current metadata file) and one S3 GET of that JSON document, per refresh.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlparse

from botocore.exceptions import BotoCoreError, ClientError

from duffbeer import state
from duffbeer.errors import InvalidParameterError, QueryError
from duffbeer.state import Publication, SnapshotInfo

_MISSING = frozenset({"EntityNotFoundException"})


def read_publications(glue: Any, s3: Any, database: str) -> list[Publication]:
    """Every retained publication, oldest first (none before the first merge)."""
    where = f"{database}.{state.PUBLICATIONS_TABLE}"
    try:
        table = glue.get_table(DatabaseName=database, Name=state.PUBLICATIONS_TABLE)["Table"]
    except ClientError as e:
        if str(e.response.get("Error", {}).get("Code", "")) in _MISSING:
            return []
        raise QueryError(f"could not read the table {where} from the catalog: {e}") from e
    except BotoCoreError as e:
        raise QueryError(f"could not read the table {where} from the catalog: {e}") from e
    location = table.get("Parameters", {}).get("metadata_location", "")
    parsed = urlparse(location)
    if parsed.scheme not in ("s3", "s3a") or not parsed.netloc:
        raise QueryError(f"{where} has no Iceberg metadata location ({location!r})")
    try:
        body = s3.get_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))["Body"].read()
        metadata = json.loads(body)
        snapshots = [
            SnapshotInfo(
                snapshot_id=int(s["snapshot-id"]),
                timestamp_ms=int(s["timestamp-ms"]),
                summary={str(k): str(v) for k, v in s.get("summary", {}).items()},
            )
            for s in metadata.get("snapshots", [])
        ]
    except (ClientError, BotoCoreError) as e:
        raise QueryError(f"could not read {location}: {e}") from e
    except (ValueError, KeyError, TypeError) as e:
        raise QueryError(f"{location} is not Iceberg table metadata: {e}") from e
    return state.publications(snapshots)


def select(published: list[Publication], as_of: datetime | None) -> Publication | None:
    """The publication a request reads: the latest (None before the first), or the one
    current at `as_of`, which must not be before the oldest retained one."""
    chosen = state.as_of(published, as_of)
    if as_of is not None and chosen is None:
        oldest = published[0].published_at.isoformat() if published else None
        raise InvalidParameterError(
            f"as_of {as_of.isoformat()} is before the first publication of the reports"
            + (f" still kept ({oldest})" if oldest else " (nothing is published yet)")
        )
    return chosen


class PublicationCache:
    """The publications, read again once older than `max_age_s`: a new publication reaches
    the API within that delay, and a warm function reads the metadata at most once per
    delay."""

    def __init__(
        self,
        read: Callable[[], list[Publication]],
        max_age_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read = read
        self.max_age_s = max_age_s
        self._clock = clock
        self._lock = threading.Lock()
        self._value: list[Publication] = []
        self._read_at: float | None = None

    def get(self, *, fresh: bool = False) -> list[Publication]:
        """The publications, read again when older than `max_age_s` (or when `fresh`)."""
        with self._lock:
            now = self._clock()
            if fresh or self._read_at is None or now - self._read_at >= self.max_age_s:
                self._value = self._read()
                self._read_at = now
            return self._value

    def choose(self, as_of: datetime | None) -> Publication | None:
        return select(self.get(), as_of)

    @property
    def last(self) -> list[Publication]:
        """The publications last read, without reading them again."""
        return self._value
