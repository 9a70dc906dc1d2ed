"""The Glue job's arguments: one frozen dataclass parsed once from sys.argv."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from awsglue.utils import GlueArgumentError, getResolvedOptions

from duffbeer import utc
from duffbeer.contract import DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_REJECT_RATIO
from duffbeer.errors import ConfigurationError

REQUIRED_ARGS: tuple[str, ...] = ("JOB_NAME", "input_path", "output_path", "batch_id")
OPTIONAL_ARGS: tuple[str, ...] = (
    "ingest_date",
    "run_id",
    "source_event_time",
    "source_uri",
    "source_etag",
    "source_version_id",
    "source_sequencer",
    "rerun_at",
    "max_reject_ratio",
    "max_file_bytes",
)
# Batch and run ids end up in S3 keys and partition paths: keep them to a safe alphabet.
_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")


def _present(argv: Sequence[str], name: str) -> bool:
    flag = f"--{name}"
    return any(token == flag or token.startswith(f"{flag}=") for token in argv)


def _checked_id(kind: str, value: str) -> str:
    if not _ID_PATTERN.match(value):
        raise ConfigurationError(
            f"--{kind} {value!r} must be 1-128 characters of [A-Za-z0-9_-], starting alphanumeric"
        )
    return value


def _parse_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as e:
        raise ConfigurationError(f"--ingest_date {value!r} is not a YYYY-MM-DD date") from e


def _parse_time(value: str, name: str = "source_event_time") -> datetime:
    # An S3 event time is UTC; a naive value is taken to be UTC as well.
    try:
        return utc.parse(value)
    except ValueError as e:
        raise ConfigurationError(f"--{name} {value!r} is not ISO-8601") from e


def _rerun_at(value: str | None) -> str | None:
    return utc.iso(_parse_time(value, "rerun_at")) if value else None


def new_run_id(now: datetime) -> str:
    """A fresh, sortable run id for runs started by hand (the workflow passes its own)."""
    return f"run-{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class JobArgs:
    """Everything the job needs to know about one run, validated once."""

    job_name: str
    input_path: str
    output_path: str
    batch_id: str
    run_id: str
    ingest_date: date
    source_event_time: datetime
    # Where the batch came from, for the manifest: differs from input_path when a runner
    # staged the S3 object to a local file before starting the job.
    source_uri: str
    source_etag: str | None
    source_version_id: str | None
    # The upload's S3 sequencer and, for a run started by hand, when (ISO-8601): with the
    # event time they order the runs of a batch (duffbeer.manifest.RunOrder).
    source_sequencer: str | None
    rerun_at: str | None
    max_reject_ratio: float
    max_file_bytes: int

    @classmethod
    def from_args(cls, argv: Sequence[str], now: datetime | None = None) -> JobArgs:
        """Parse `sys.argv` with Glue's getResolvedOptions (optional names only if present)."""
        clock = now or utc.now()
        names = [*REQUIRED_ARGS, *(n for n in OPTIONAL_ARGS if _present(argv, n))]
        try:
            raw: dict[str, str] = getResolvedOptions(list(argv), names)
        except (GlueArgumentError, SystemExit) as e:
            raise ConfigurationError(
                f"the job needs --{' --'.join(REQUIRED_ARGS)}; got {list(argv[1:])}"
            ) from e
        for name in REQUIRED_ARGS:
            if not raw[name]:
                raise ConfigurationError(f"--{name} must not be empty")
        ingest_date = _parse_date(raw["ingest_date"]) if "ingest_date" in raw else clock.date()
        event_time = (
            _parse_time(raw["source_event_time"])
            if "source_event_time" in raw
            else datetime(ingest_date.year, ingest_date.month, ingest_date.day, tzinfo=UTC)
        )
        try:
            ratio = float(raw.get("max_reject_ratio", DEFAULT_MAX_REJECT_RATIO))
            max_bytes = int(raw.get("max_file_bytes", DEFAULT_MAX_FILE_BYTES))
        except ValueError as e:
            raise ConfigurationError(f"--max_reject_ratio/--max_file_bytes: {e}") from e
        if not 0.0 <= ratio <= 1.0:
            raise ConfigurationError(f"--max_reject_ratio {ratio} must be between 0 and 1")
        if max_bytes <= 0:
            raise ConfigurationError(f"--max_file_bytes {max_bytes} must be positive")
        return cls(
            job_name=raw["JOB_NAME"],
            input_path=raw["input_path"],
            output_path=raw["output_path"].rstrip("/"),
            batch_id=_checked_id("batch_id", raw["batch_id"]),
            run_id=_checked_id("run_id", raw["run_id"]) if "run_id" in raw else new_run_id(clock),
            ingest_date=ingest_date,
            source_event_time=event_time,
            source_uri=raw.get("source_uri") or raw["input_path"],
            source_etag=raw.get("source_etag") or None,
            source_version_id=raw.get("source_version_id") or None,
            source_sequencer=raw.get("source_sequencer") or None,
            rerun_at=_rerun_at(raw.get("rerun_at")),
            max_reject_ratio=ratio,
            max_file_bytes=max_bytes,
        )
