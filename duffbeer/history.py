"""The run index GET /batches pages through: one small object per finished run, newest first.

PublishBatch records a run once it has decided about it (published, already published or
superseded), QuarantineInput when the run failed; CleanUp forgets a superseded run it
deletes. The key alone orders the history and names the run:

    history/<inverted run time>/<batch_id>/<run_id>.json

The run time is the hand re-run time, else the upload's S3 event time, in milliseconds since
the epoch; inverted (`_LATEST_MS - ms`, 13 digits) so that S3's ascending listing gives the
newest run first. One page of the history is then one ListObjectsV2 with `StartAfter` and
`MaxKeys`, whatever the number of runs ever recorded. Entries of quarantined runs carry a tag
that lets the bucket's lifecycle expire them with the quarantine reports they point to.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from duffbeer import naming, utc

# Entry tag of a quarantined run (the lifecycle rule that expires quarantine/ matches it).
QUARANTINED_TAG = {"Key": "duffbeer-history", "Value": "quarantined"}
_LATEST_MS = 10**13 - 1  # the year 2286: fixed width keeps the keys' order numeric
_ENTRY_KEY = re.compile(
    re.escape(naming.HISTORY_PREFIX) + r"(\d{13})/([A-Za-z0-9._-]+)/([A-Za-z0-9._-]+)\.json"
)


@dataclass(frozen=True)
class Entry:
    """One recorded run, as its key names it."""

    key: str
    batch_id: str
    run_id: str
    run_time: datetime


def run_time(event_time: str, rerun_at: str | None = None) -> datetime:
    """When a run happened, for the history's order: re-run by hand, else uploaded."""
    return utc.parse(rerun_at or event_time)


def entry_key(batch_id: str, run_id: str, at: datetime) -> str:
    inverted = _LATEST_MS - int(at.timestamp() * 1000)
    return f"{naming.HISTORY_PREFIX}{inverted:013d}/{batch_id}/{run_id}.json"


def parse_key(key: str) -> Entry | None:
    """The run an index key names, or None for any other key."""
    match = _ENTRY_KEY.fullmatch(key)
    if not match:
        return None
    at = datetime.fromtimestamp((_LATEST_MS - int(match.group(1))) / 1000, UTC)
    return Entry(key=key, batch_id=match.group(2), run_id=match.group(3), run_time=at)


def record(
    client: Any,
    bucket: str,
    *,
    batch_id: str,
    run_id: str,
    at: datetime,
    outcome: str,
    quarantined: bool = False,
) -> str:
    """Write (or write again: it is idempotent) the run's entry; its key."""
    key = entry_key(batch_id, run_id, at)
    body = {"batch_id": batch_id, "run_id": run_id, "run_time": utc.iso(at), "outcome": outcome}
    tagging = f"{QUARANTINED_TAG['Key']}={QUARANTINED_TAG['Value']}"
    extra = {"Tagging": tagging} if quarantined else {}
    client.put_object(
        Bucket=bucket,
        Key=key,
        Body=json.dumps(body, sort_keys=True).encode("utf-8"),
        ContentType="application/json",
        **extra,
    )
    return key


@dataclass(frozen=True)
class Listed:
    """An entry as listed: the run and when its entry was (last) written."""

    entry: Entry
    recorded_at: datetime


def page(
    client: Any, bucket: str, *, size: int, after: str | None
) -> tuple[list[Listed], str | None]:
    """Up to `size` entries (newest run first) after the key `after`, and the key the next
    page starts after (None: this is the last): one ListObjectsV2 request whatever the
    history holds."""
    request: dict[str, Any] = {
        "Bucket": bucket,
        "Prefix": naming.HISTORY_PREFIX,
        "MaxKeys": size + 1,
    }
    if after is not None:
        request["StartAfter"] = after
    listed = client.list_objects_v2(**request).get("Contents", [])
    found = [
        Listed(entry, item["LastModified"])
        for item in listed[:size]
        if (entry := parse_key(str(item["Key"]))) is not None
    ]
    more = len(listed) > size
    return found, (str(listed[size - 1]["Key"]) if more else None)
