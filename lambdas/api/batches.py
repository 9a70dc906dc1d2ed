"""The batch history of GET /batches: every run that left a record, newest first, paged.

A run leaves `runs/<batch>/<run>/_manifest.json` once it reaches the transform (SUCCEEDED or
FAILED) and `quarantine/<batch>/<run>/error.json` when it fails before publication (a
validation failure leaves only that). The batch pointer `manifests/<batch>.json` says which
run is published. The history is what exists: CleanUp deletes superseded runs after a grace
period. Records are listed (one ListObjectsV2 page per 1000 keys under runs/ and
quarantine/) and ordered by when they were last written; only the page's records are read.
A run's `in_reports_since` comes from the state's publications (the ones the report routes
read): the instant to give as `as_of` to see the reports as they stood with that run.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

# pydantic (the OpenAPI schema of the responses) needs this TypedDict before Python 3.12.
from typing_extensions import TypedDict

from duffbeer import aws, naming, state, utc
from duffbeer.errors import InvalidParameterError
from lambdas.api.config import ApiConfig
from lambdas.api.params import parse_limit
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

_RUN_MANIFEST = re.compile(
    re.escape(naming.RUNS_PREFIX) + r"([^/]+)/([^/]+)/" + re.escape(naming.RUN_MANIFEST_FILE)
)
_ERROR_REPORT = re.compile(
    re.escape(naming.QUARANTINE_PREFIX) + r"([^/]+)/([^/]+)/" + re.escape(naming.ERROR_REPORT_FILE)
)
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


@dataclass(frozen=True)
class RunRecords:
    """The records one run left, as listed: keys and the time the newest was written."""

    batch_id: str
    run_id: str
    recorded_at: datetime
    manifest_key: str | None = None
    error_key: str | None = None

    @property
    def order(self) -> tuple[str, str, str]:
        return (self.recorded_at.isoformat(), self.batch_id, self.run_id)


def parse_page(limit: str | None, cursor: str | None) -> tuple[int, tuple[str, str, str] | None]:
    """(page size, position after which the page starts) from the query parameters."""
    size = parse_limit(limit, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    return size, (decode_cursor(cursor) if cursor is not None else None)


def encode_cursor(order: tuple[str, str, str]) -> str:
    token = base64.urlsafe_b64encode("\n".join(order).encode("utf-8"))
    return token.decode("ascii").rstrip("=")


def decode_cursor(raw: str) -> tuple[str, str, str]:
    error = InvalidParameterError(f"cursor is not one this API returned: {raw[:40]!a}")
    if not _CURSOR.fullmatch(raw):
        raise error
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as e:
        raise error from e
    parts = text.split("\n")
    if len(parts) != 3 or not all(parts):
        raise error
    try:
        datetime.fromisoformat(parts[0])
    except ValueError as e:
        raise error from e
    return parts[0], parts[1], parts[2]


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
        limit: str | None = None,
        cursor: str | None = None,
        published: Sequence[state.Publication] = (),
    ) -> BatchesPage:
        """One page of the history; `published` (the state's retained publications) dates
        when each run entered the reports."""
        size, after = parse_page(limit, cursor)
        records = sorted(self.records(), key=lambda r: r.order, reverse=True)
        if after is not None:
            records = [r for r in records if r.order < after]
        chosen = records[:size]
        pointers = self._pointers({r.batch_id for r in chosen})
        with ThreadPoolExecutor(max_workers=_READERS) as pool:
            items = list(pool.map(lambda r: self._describe(r, pointers.get(r.batch_id)), chosen))
        entered = state.merged_at(published)
        for item in items:
            since = entered.get((item["batch_id"], item["run_id"]))
            item["in_reports_since"] = utc.iso(since) if since else None
        more = len(records) > size
        return {
            "items": items,
            "next_cursor": encode_cursor(chosen[-1].order) if more and chosen else None,
        }

    def records(self) -> list[RunRecords]:
        """Every run with a run manifest or a quarantine report, from two listings."""
        found: dict[tuple[str, str], RunRecords] = {}
        for pattern, prefix, field in (
            (_RUN_MANIFEST, naming.RUNS_PREFIX, "manifest_key"),
            (_ERROR_REPORT, naming.QUARANTINE_PREFIX, "error_key"),
        ):
            for key, modified in self._list(prefix):
                match = pattern.fullmatch(key)
                if not match:
                    continue
                run = (match.group(1), match.group(2))
                known = found.get(run) or RunRecords(run[0], run[1], modified)
                found[run] = RunRecords(
                    **{
                        **known.__dict__,
                        field: key,
                        "recorded_at": max(known.recorded_at, modified),
                    }
                )
        return list(found.values())

    def _list(self, prefix: str) -> Iterator[tuple[str, datetime]]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield str(item["Key"]), item["LastModified"]

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

    def _describe(self, records: RunRecords, published_run: str | None) -> BatchRun:
        run: BatchRun = {
            "batch_id": records.batch_id,
            "run_id": records.run_id,
            "status": PENDING,
            "published": published_run == records.run_id,
            "file": None,
            "uploaded_at": None,
            "started_at": None,
            "finished_at": None,
            "recorded_at": records.recorded_at.isoformat(),
            "rows_read": None,
            "rows_valid": None,
            "rows_rejected": None,
            "rejects_by_reason": {},
            "total_sales": None,
            "error": None,
            "in_reports_since": None,
        }
        try:
            manifest = self._read(records.manifest_key) if records.manifest_key else None
            report = self._read(records.error_key) if records.error_key else None
        except ValueError as e:
            # One broken record must not hide the rest of the history.
            run["status"] = UNREADABLE
            run["error"] = {"name": type(e).__name__, "message": str(e)}
            return run
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
