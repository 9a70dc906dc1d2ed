"""The batch history of GET /batches: every recorded run, newest first, paged.

PublishBatch and QuarantineInput record each run they finish in the run index
(duffbeer.history, `history/`), whose keys sort newest run first: a page is one
ListObjectsV2 of the index (`StartAfter` the cursor), then the records of that page's runs
only: the run manifest `runs/<batch>/<run>/_manifest.json` (once the transform ran) and the
quarantine report `quarantine/<batch>/<run>/error.json` (when the run failed), and the batch
pointers `manifests/<batch>.json` that say which run is published. Its cost does not grow
with the history. CleanUp forgets the superseded runs it deletes.
A run's `in_reports_since` comes from the state's publications (the ones the report routes
read): the instant to give as `as_of` to see the reports as they stood with that run.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import ClientError

# pydantic (the OpenAPI schema of the responses) needs this TypedDict before Python 3.12.
from typing_extensions import TypedDict

from duffbeer import aws, history, naming, state, utc
from duffbeer.errors import InvalidParameterError
from lambdas.api.config import ApiConfig
from lambdas.api.queries import money

BATCH_PARAMS = ("limit", "cursor")
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100

PUBLISHED = "PUBLISHED"
SUPERSEDED = "SUPERSEDED"
PENDING = "PENDING"
FAILED = "FAILED"
UNREADABLE = "UNREADABLE"
STATUSES = (PUBLISHED, SUPERSEDED, PENDING, FAILED, UNREADABLE)

_CURSOR = re.compile(r"[A-Za-z0-9_-]{1,400}")
# Reading a page's records one after another would add their latencies up.
_READERS = 8


class BatchError(TypedDict):
    name: str
    message: str


class BatchRun(TypedDict):
    batch_id: str
    run_id: str
    status: str
    published: bool
    file: str | None
    uploaded_at: str | None
    started_at: str | None
    finished_at: str | None
    recorded_at: str
    rows_read: int | None
    rows_valid: int | None
    rows_rejected: int | None
    rejects_by_reason: dict[str, int]
    total_sales: float | None
    error: BatchError | None
    in_reports_since: str | None


class BatchesPage(TypedDict):
    items: list[BatchRun]
    next_cursor: str | None


def encode_cursor(after_key: str) -> str:
    token = base64.urlsafe_b64encode(after_key.encode("utf-8"))
    return token.decode("ascii").rstrip("=")


def decode_cursor(raw: str) -> str:
    """The index key a cursor stands for; only keys under the run index are accepted."""
    error = InvalidParameterError(f"cursor is not one this API returned: {raw[:40]!a}")
    if not _CURSOR.fullmatch(raw):
        raise error
    try:
        key = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as e:
        raise error from e
    if not key.startswith(naming.HISTORY_PREFIX) or not key.isprintable():
        raise error
    return key


class BatchHistory:
    """Reads the run records of one processed bucket through an injected S3 client."""

    def __init__(self, bucket: str, client: Any) -> None:
        self.bucket = bucket
        self.client = client

    @classmethod
    def from_config(cls, config: ApiConfig) -> BatchHistory:
        return cls(config.processed_bucket, aws.client("s3", config.region, config.endpoint_url))

    def page(
        self,
        limit: int = DEFAULT_PAGE_SIZE,
        cursor: str | None = None,
        published: Sequence[state.Publication] = (),
    ) -> BatchesPage:
        """One page of the history; `published` (the state's retained publications) dates
        when each run entered the reports."""
        after = decode_cursor(cursor) if cursor is not None else None
        listed, next_after = history.page(self.client, self.bucket, size=limit, after=after)
        pointers = self._pointers({item.entry.batch_id for item in listed})
        with ThreadPoolExecutor(max_workers=_READERS) as pool:
            described = list(
                pool.map(
                    lambda item: self._describe(item, pointers.get(item.entry.batch_id)), listed
                )
            )
        entered = state.merged_at(published)
        items = [run for run in described if run is not None]
        for item in items:
            since = entered.get((item["batch_id"], item["run_id"]))
            item["in_reports_since"] = utc.iso(since) if since else None
        return {
            "items": items,
            "next_cursor": encode_cursor(next_after) if next_after is not None else None,
        }

    def _read(self, key: str) -> dict[str, Any] | None:
        """A JSON record, or None when it was deleted since the listing."""
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        document = json.loads(body)
        if not isinstance(document, dict):
            raise ValueError(f"{key} does not hold a JSON object")
        return document

    def _pointers(self, batch_ids: set[str]) -> dict[str, str | None]:
        """The published run of each batch (None: nothing published)."""

        def published(batch_id: str) -> str | None:
            try:
                pointer = self._read(naming.manifest_key(batch_id))
            except ValueError:
                return None
            block = (pointer or {}).get("published") or {}
            return str(block["run_id"]) if block.get("run_id") else None

        ordered = sorted(batch_ids)
        with ThreadPoolExecutor(max_workers=_READERS) as pool:
            return dict(zip(ordered, pool.map(published, ordered), strict=True))

    def _describe(self, listed: history.Listed, published_run: str | None) -> BatchRun | None:
        """The run's row from its records; None when they are gone (deleted or expired
        since the index was listed)."""
        entry = listed.entry
        run: BatchRun = {
            "batch_id": entry.batch_id,
            "run_id": entry.run_id,
            "status": PENDING,
            "published": published_run == entry.run_id,
            "file": None,
            "uploaded_at": None,
            "started_at": None,
            "finished_at": None,
            "recorded_at": listed.recorded_at.isoformat(),
            "rows_read": None,
            "rows_valid": None,
            "rows_rejected": None,
            "rejects_by_reason": {},
            "total_sales": None,
            "error": None,
            "in_reports_since": None,
        }
        report_key = naming.quarantine_prefix(entry.batch_id, entry.run_id)
        try:
            manifest = self._read(naming.run_manifest_key(entry.batch_id, entry.run_id))
            # Only a run that failed (or never reached the transform) has a report.
            failed = manifest is None or manifest.get("status") == naming.STATUS_FAILED
            report = self._read(f"{report_key}{naming.ERROR_REPORT_FILE}") if failed else None
        except ValueError as e:
            # One broken record must not hide the rest of the history.
            run["status"] = UNREADABLE
            run["error"] = {"name": type(e).__name__, "message": str(e)}
            return run
        if manifest is None and report is None:
            return None
        if manifest is not None:
            _from_manifest(run, manifest)
        if report is not None:
            _from_error_report(run, report)
        if run["status"] != FAILED:
            if run["published"]:
                run["status"] = PUBLISHED
            elif published_run is not None:
                run["status"] = SUPERSEDED
        return run


def _uri(source: dict[str, Any]) -> str | None:
    if source.get("bucket") and source.get("key"):
        return f"s3://{source['bucket']}/{source['key']}"
    return str(source["path"]) if source.get("path") else None


def _from_manifest(run: BatchRun, manifest: dict[str, Any]) -> None:
    source = manifest.get("source") or {}
    run["file"] = _uri(source)
    run["uploaded_at"] = source.get("event_time")
    run["started_at"] = manifest.get("started_at")
    run["finished_at"] = manifest.get("finished_at")
    run["rows_read"] = manifest.get("rows_read")
    run["rows_valid"] = manifest.get("rows_valid")
    run["rows_rejected"] = manifest.get("rows_rejected")
    run["rejects_by_reason"] = {
        str(k): int(v) for k, v in (manifest.get("rejects_by_reason") or {}).items()
    }
    if manifest.get("total_sales") is not None:
        run["total_sales"] = money(manifest["total_sales"])
    if manifest.get("status") == naming.STATUS_FAILED:
        run["status"] = FAILED
        error = manifest.get("error") or {}
        run["error"] = {
            "name": str(error.get("type") or "Failed"),
            "message": str(error.get("message") or ""),
        }


def _from_error_report(run: BatchRun, report: dict[str, Any]) -> None:
    """A quarantine report: the run failed before publication, whatever its manifest says."""
    source = report.get("source") or {}
    run["status"] = FAILED
    run["file"] = run["file"] or source.get("uri") or _uri(source)
    run["uploaded_at"] = run["uploaded_at"] or source.get("event_time")
    run["finished_at"] = run["finished_at"] or report.get("quarantined_at")
    run["error"] = {
        "name": str(report.get("reason") or report.get("error") or "Failed"),
        "message": str(report.get("message") or ""),
    }
