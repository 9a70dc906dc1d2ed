"""The transform of one batch: read -> validate -> de-duplicate -> write the run's outputs."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from pyspark.sql import DataFrame, SparkSession

from duffbeer import manifest as manifest_io
from duffbeer import utc
from duffbeer.contract import MAX_BATCH_TOTAL_SALES, MAX_BATCH_TOTAL_VOLUME_L
from duffbeer.errors import (
    BatchNotPublishedError,
    DuffBeerError,
    EmptyFileError,
    EncodingError,
    InvalidFileError,
    RejectThresholdExceededError,
    TotalsOutOfRangeError,
)
from duffbeer.manifest import ErrorInfo, Manifest, Partition
from duffbeer.naming import BATCH_REPORTS, run_manifest_key
from glue_jobs.orders.args import JobArgs
from glue_jobs.orders.logs import JobLogger
from glue_jobs.orders.manifests import RunFacts, build_manifest, run_outputs
from glue_jobs.orders.read import (
    HEAD_BYTES,
    HeaderLayout,
    check_size,
    parse_header,
    read_orders,
)
from glue_jobs.orders.reports import (
    REPORT_BUILDERS,
    conform_curated,
    curated_lines,
    report_totals,
)
from glue_jobs.orders.session import shuffle_partitions, split_bytes
from glue_jobs.orders.stats import BatchStats, batch_stats, with_source_row
from glue_jobs.orders.storage import HadoopStorage
from glue_jobs.orders.validate import (
    REASON_COLUMN,
    add_details,
    duplicate_keys,
    mark_duplicates,
    validate,
)
from glue_jobs.orders.write import (
    conform_rejects,
    write_order_lines,
    write_rejects,
    write_report,
)

Clock = Callable[[], datetime]


def join_path(root: str, key: str) -> str:
    return f"{root}/{key}"


def materialize(frame: DataFrame, *, now: bool = True) -> DataFrame:
    """The frame's rows kept in executor memory (spilling to disk), under a plan that starts
    from them: computed now, or (now=False) by the first query that reads them."""
    return frame.localCheckpoint(eager=now)


def release(frame: DataFrame) -> None:
    """Free the rows kept by `materialize` before the session ends (Spark would otherwise
    keep them until the frame is garbage-collected)."""
    # A local checkpoint is a LogicalRDD over a persisted RDD; DataFrame.unpersist only
    # knows about cached plans, so the RDD is unpersisted directly.
    plan = frame._jdf.queryExecution().analyzed()
    if plan.nodeName() == "LogicalRDD":
        # Blocking: a removal still under way when the session stops logs a
        # RejectedExecutionException for every block.
        plan.rdd().unpersist(True)


class BatchRun:
    """One run of one batch; `run()` returns the manifest it published or raises."""

    def __init__(
        self,
        args: JobArgs,
        spark: SparkSession,
        log: JobLogger,
        *,
        storage: HadoopStorage | None = None,
        clock: Clock = utc.now,
    ) -> None:
        self.args = args
        self.spark = spark
        self.log = log
        self.storage = storage or HadoopStorage(spark)
        self.clock = clock
        self.facts = RunFacts()

    @contextmanager
    def _phase(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        yield
        self.facts.timings[name] = self.facts.timings.get(name, 0.0) + time.monotonic() - start

    def run(self) -> Manifest:
        started = self.clock()
        try:
            self._transform()
        except DuffBeerError as e:
            self._finish(started, ErrorInfo(type=type(e).__name__, message=str(e)))
            raise
        except Exception as e:
            failure = BatchNotPublishedError(
                f"batch {self.args.batch_id} run {self.args.run_id} failed: {type(e).__name__}: {e}"
            )
            self._finish(started, ErrorInfo(type=type(failure).__name__, message=str(failure)))
            raise failure from e
        return self._finish(started, None)

    def _inspect(self) -> tuple[list[str], HeaderLayout]:
        files = self.storage.list_inputs(self.args.input_path)
        self.facts.size = check_size(
            files, max_bytes=self.args.max_file_bytes, where=self.args.input_path
        )
        layouts = {
            f.path: parse_header(
                self.storage.read_head(f.path, HEAD_BYTES), file_size=f.size, where=f.path
            )
            for f in files
        }
        distinct = {layout.file_columns for layout in layouts.values()}
        if len(distinct) > 1:
            raise InvalidFileError(
                f"{self.args.input_path}: the files do not share one header layout"
            )
        layout = next(iter(layouts.values()))
        if layout.extra_columns:
            self.facts.warnings.append(f"extra columns ignored: {', '.join(layout.extra_columns)}")
        return [f.path for f in files], layout

    def _transform(self) -> None:
        args = self.args
        with self._phase("inspect"):
            paths, layout = self._inspect()
        cores = self.spark.sparkContext.defaultParallelism
        partitions = shuffle_partitions(self.facts.size or 0, cores)
        self.spark.conf.set("spark.sql.shuffle.partitions", str(partitions))
        split = split_bytes(self.facts.size or 0, cores)
        self.spark.conf.set("spark.sql.files.maxPartitionBytes", str(split))
        self.log.info(
            "input checked",
            fields={
                "input_path": args.input_path,
                "files": len(paths),
                "bytes": self.facts.size,
                "shuffle_partitions": partitions,
                "split_bytes": split,
                "warnings": self.facts.warnings,
            },
        )
        # The one parse: rules and reasons evaluated once per row, the rows kept in memory
        # as a local checkpoint. The checkpoint also cuts the query plan: every later query
        # starts from it instead of re-planning (and re-generating code for) the rules.
        with self._phase("parse_validate"):
            parsed = materialize(
                validate(
                    read_orders(self.spark, paths, layout),
                    has_order_date=layout.has_order_date,
                    ingest_date=args.ingest_date,
                ),
                now=False,
            )
        kept = [parsed]
        try:
            with self._phase("parse_validate"):
                # The first query over the parsed rows, so the parse feeds it directly: the
                # file is parsed, checked, kept and its line keys aggregated in one pass.
                # Only the keys of repeated lines (usually a handful) are kept; marking
                # them is a broadcast join on top of the parsed rows.
                duplicates = materialize(duplicate_keys(parsed))
                kept.append(duplicates)
                final = mark_duplicates(parsed, duplicates)
                stats = batch_stats(final)
            self._record(stats)
            self._check_file(stats)
            outputs = run_outputs(args.batch_id, args.run_id)
            with self._phase("rejects"):
                rejects = add_details(final.where(final[REASON_COLUMN].isNotNull()))
                write_rejects(
                    conform_rejects(
                        with_source_row(self.spark, rejects, stats.blocks), args.batch_id
                    ),
                    stats.rows_rejected,
                    join_path(args.output_path, outputs["rejects"]),
                )
            ratio = stats.rows_rejected / stats.rows_read
            if ratio > args.max_reject_ratio:
                raise RejectThresholdExceededError(
                    f"{args.input_path}: {stats.rows_rejected} of {stats.rows_read} rows "
                    f"rejected ({ratio:.2%}), above the limit of {args.max_reject_ratio:.2%}; "
                    f"rejects kept in {outputs['rejects']}"
                )
            # The valid lines are derived from the kept rows for each of the four writes
            # (order lines and three reports): a filter and a projection of rows already in
            # memory cost less than building a second cache of them.
            lines = curated_lines(
                final, batch_id=args.batch_id, source_event_time=args.source_event_time
            )
            with self._phase("order_lines"):
                write_order_lines(
                    conform_curated(lines), join_path(args.output_path, outputs["order_lines"])
                )
            with self._phase("reports"):
                # The three reports' figures (a few thousand rows) in one go, then a small
                # write for each.
                totals = materialize(report_totals(lines))
                kept.append(totals)
                for name in BATCH_REPORTS:
                    build, keys = REPORT_BUILDERS[name]
                    write_report(
                        build(totals), keys, join_path(args.output_path, outputs["reports"][name])
                    )
        finally:
            for frame in kept:
                release(frame)

    def _record(self, stats: BatchStats) -> None:
        facts = self.facts
        facts.rows_read = stats.rows_read
        facts.rows_valid = stats.rows_valid
        facts.rejects_by_reason = dict(stats.rejects_by_reason)
        facts.total_sales = stats.total_sales
        facts.total_units = stats.total_units
        outputs = run_outputs(self.args.batch_id, self.args.run_id)
        # One JVM call per channel, not per partition (a batch has a few channels, many days).
        channels = {channel for channel, _ in stats.partition_rows}
        escaped = {channel: self.storage.escape_partition_value(channel) for channel in channels}
        facts.partitions = [
            Partition(
                point_of_sale_channel=channel,
                order_date=day.isoformat(),
                location=(
                    f"{outputs['order_lines']}point_of_sale_channel="
                    f"{escaped[channel]}/order_date={day.isoformat()}/"
                ),
                rows=rows,
            )
            for (channel, day), rows in sorted(stats.partition_rows.items())
        ]
        self.log.info(
            "rows checked",
            fields={
                "rows_read": stats.rows_read,
                "rows_valid": stats.rows_valid,
                "rejects_by_reason": stats.rejects_by_reason,
                "partitions": len(stats.partition_rows),
            },
        )

    def _check_file(self, stats: BatchStats) -> None:
        """The file-level faults only the parse finds: bytes that are not UTF-8, no data
        row, or totals beyond the reports' 64-bit whole-cent and millilitre sums (which
        Spark would let wrap around silently)."""
        where = self.args.input_path
        if stats.undecodable_rows:
            raise EncodingError(
                f"{where}: {stats.undecodable_rows} rows hold bytes that are not UTF-8"
            )
        if stats.rows_read == 0:
            raise EmptyFileError(f"{where} holds only a header row")
        beyond = [
            f"total {name} {total} exceeds {limit}"
            for name, total, limit in (
                ("sales", stats.total_sales, MAX_BATCH_TOTAL_SALES),
                ("volume (l)", stats.total_volume_l, MAX_BATCH_TOTAL_VOLUME_L),
            )
            if total > limit
        ]
        if beyond:
            raise TotalsOutOfRangeError(
                f"{where}: {'; '.join(beyond)}, beyond what the reports sum exactly"
            )

    def _finish(self, started: datetime, error: ErrorInfo | None) -> Manifest:
        """Write the run manifest last: it tells the Store step (and anyone listing the run)
        that the run's outputs are complete. Publishing the batch is the Store step's job."""
        finished = self.clock()
        document = build_manifest(
            self.args, self.facts, started_at=started, finished_at=finished, error=error
        )
        self.storage.write_text(
            join_path(
                self.args.output_path, run_manifest_key(self.args.batch_id, self.args.run_id)
            ),
            manifest_io.dumps(document),
        )
        fields = {
            "status": document["status"],
            "rows_read": document["rows_read"],
            "rows_valid": document["rows_valid"],
            "rows_rejected": document["rows_rejected"],
            "total_sales": document["total_sales"],
            "timings": document["timings"],
        }
        if error is not None:
            self.log.error("batch failed", fields={**fields, "error": error})
        else:
            self.log.info("run complete", fields=fields)
        return document


def run_batch(
    args: JobArgs, spark: SparkSession, log: JobLogger, *, clock: Clock = utc.now
) -> Manifest:
    """Transform one batch into its run's outputs and run manifest; raises a duffbeer.errors
    class on failure, after writing a FAILED run manifest."""
    return BatchRun(args, spark, log, clock=clock).run()
