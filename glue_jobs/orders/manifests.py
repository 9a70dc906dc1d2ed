"""Building the batch manifest (duffbeer.manifest) from a run's facts; pure Python."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from duffbeer import utc
from duffbeer.manifest import (
    MANIFEST_VERSION,
    ErrorInfo,
    Manifest,
    Outputs,
    Partition,
    SourceObject,
)
from duffbeer.naming import (
    BATCH_REPORTS,
    REJECTS_DIR,
    REPORTS_DIR,
    STATUS_FAILED,
    STATUS_SUCCEEDED,
    run_lines_prefix,
    run_prefix,
)
from glue_jobs.orders.args import JobArgs

_S3_SCHEMES = ("s3://", "s3a://", "s3n://")


def run_outputs(batch_id: str, run_id: str) -> Outputs:
    """Output prefixes of a run, relative to the output root."""
    prefix = run_prefix(batch_id, run_id)
    return Outputs(
        order_lines=run_lines_prefix(batch_id, run_id),
        reports={name: f"{prefix}{REPORTS_DIR}/{name}/" for name in BATCH_REPORTS},
        rejects=f"{prefix}{REJECTS_DIR}/",
    )


def source_object(args: JobArgs, size: int | None) -> SourceObject:
    bucket: str | None = None
    key: str | None = None
    if args.source_uri.startswith(_S3_SCHEMES):
        bucket, _, key = args.source_uri.split("://", 1)[1].partition("/")
    return SourceObject(
        path=args.source_uri,
        bucket=bucket,
        key=key,
        etag=args.source_etag,
        version_id=args.source_version_id,
        size=size,
        event_time=utc.iso(args.source_event_time),
        sequencer=args.source_sequencer,
        rerun_at=args.rerun_at,
    )


@dataclass
class RunFacts:
    """What a run found out, filled in as far as it got before succeeding or failing."""

    size: int | None = None
    rows_read: int = 0
    rows_valid: int = 0
    rejects_by_reason: dict[str, int] = field(default_factory=dict)
    total_sales: Decimal = Decimal("0.00")
    total_units: int = 0
    partitions: list[Partition] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def rows_rejected(self) -> int:
        return sum(self.rejects_by_reason.values())

    @property
    def duplicates(self) -> int:
        return self.rejects_by_reason.get("duplicate_line", 0)


def build_manifest(
    args: JobArgs,
    facts: RunFacts,
    *,
    started_at: datetime,
    finished_at: datetime,
    error: ErrorInfo | None,
) -> Manifest:
    """The run manifest. `published` stays empty: the Store step publishes a run by writing
    the batch pointer (duffbeer.manifest.publish)."""
    succeeded = error is None
    outputs = run_outputs(args.batch_id, args.run_id) if succeeded else None
    return Manifest(
        manifest_version=MANIFEST_VERSION,
        batch_id=args.batch_id,
        run_id=args.run_id,
        status=STATUS_SUCCEEDED if succeeded else STATUS_FAILED,
        error=error,
        source=source_object(args, facts.size),
        ingest_date=args.ingest_date.isoformat(),
        started_at=utc.iso(started_at),
        finished_at=utc.iso(finished_at),
        timings={k: round(v, 3) for k, v in facts.timings.items()},
        rows_read=facts.rows_read,
        rows_valid=facts.rows_valid,
        rows_rejected=facts.rows_rejected,
        rejects_by_reason=dict(sorted(facts.rejects_by_reason.items())),
        duplicates=facts.duplicates,
        total_sales=f"{facts.total_sales:.2f}",
        total_units=facts.total_units,
        partitions=facts.partitions if succeeded else [],
        outputs=outputs,
        warnings=facts.warnings,
        published=None,
    )
