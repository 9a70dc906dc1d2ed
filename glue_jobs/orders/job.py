"""The transform of one batch: inspect -> parse and check -> write the run's outputs."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from duffbeer import manifest as manifest_io
from duffbeer import utc
from duffbeer.contract import (
    MAX_BATCH_TOTAL_SALES,
    MAX_BATCH_TOTAL_VOLUME_L,
    MAX_CHANNELS_PER_BATCH,
)
from duffbeer.errors import (
    BatchNotPublishedError,
    DuffBeerError,
    EmptyFileError,
    EncodingError,
    InvalidFileError,
    RejectThresholdExceededError,
    TooManyChannelsError,
    TotalsOutOfRangeError,
)
from duffbeer.manifest import ErrorInfo, Manifest, Outputs, Partition
from duffbeer.naming import BATCH_REPORTS, run_manifest_key
from glue_jobs.orders.args import JobArgs
from glue_jobs.orders.logs import JobLogger
from glue_jobs.orders.manifests import RunFacts, build_manifest, run_outputs
from glue_jobs.orders.read import (
    HEAD_BYTES,
    ROW_ID_COLUMN,
    HeaderLayout,
    check_size,
    line_separator,
    parse_header,
    read_orders,
    refuse_hidden_names,
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


def keep(frame: DataFrame) -> DataFrame:
    """The frame's rows kept in executor memory (spilling to disk), filled by the first
    query that reads them. A cache, not a checkpoint: blocks lost with an executor are
    computed again from the frame's plan, so the run survives losing a worker."""
    return frame.persist(StorageLevel.MEMORY_AND_DISK)


@dataclass
class Checked:
    """The parsed, checked and de-duplicated rows of a batch, and their statistics."""

    rows: DataFrame
    stats: BatchStats
    kept: list[DataFrame]

    def release(self) -> None:
        # Blocking: a removal still under way when the session stops logs an error per block.
        for frame in self.kept:
            frame.unpersist(blocking=True)


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
        """Time a phase for the manifest; its Spark jobs carry its name (Spark UI, logs)."""
        start = time.monotonic()
        self.spark.sparkContext.setJobDescription(name)
        try:
            yield
        finally:
            self.spark.sparkContext.setJobDescription(None)  # type: ignore[arg-type]
            elapsed = time.monotonic() - start
            self.facts.timings[name] = self.facts.timings.get(name, 0.0) + elapsed

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

    def _inspect(self) -> tuple[list[str], HeaderLayout, str]:
        """The input's files, their common header layout and line separator, from the
        listing and the first bytes of each file (no Spark job)."""
        files = self.storage.list_inputs(self.args.input_path)
        self.facts.size = check_size(
            files, max_bytes=self.args.max_file_bytes, where=self.args.input_path
        )
        refuse_hidden_names(files, where=self.args.input_path)
        heads = {f.path: self.storage.read_head(f.path, HEAD_BYTES) for f in files}
        layouts = {
            f.path: parse_header(heads[f.path], file_size=f.size, where=f.path) for f in files
        }
        distinct = {layout.file_columns for layout in layouts.values()}
        if len(distinct) > 1:
            raise InvalidFileError(
                f"{self.args.input_path}: the files do not share one header layout"
            )
        layout = next(iter(layouts.values()))
        if layout.extra_columns:
            self.facts.warnings.append(f"extra columns ignored: {', '.join(layout.extra_columns)}")
        return [f.path for f in files], layout, line_separator(heads[files[0].path])

    def _transform(self) -> None:
        with self._phase("inspect"):
            paths, layout, line_sep = self._inspect()
        self._size_session()
        with self._phase("parse_validate"):
            checked = self._parse(paths, layout, line_sep)
        try:
            self._record(checked.stats)
            self._check_file(checked.stats)
            with self._phase("rejects"):
                self._write_rejects(checked)
            self._check_reject_ratio(checked.stats)
            lines = curated_lines(
                checked.rows,
                batch_id=self.args.batch_id,
                source_event_time=self.args.source_event_time,
            )
            with self._phase("order_lines"):
                write_order_lines(conform_curated(lines), self._output("order_lines"))
            with self._phase("reports"):
                self._write_reports(lines)
        finally:
            checked.release()

    def _size_session(self) -> None:
        """Read splits and shuffle partitions sized from the input and the cores, and no
        adaptive execution: the shuffles are sized already, and an adaptive query that
        reads a kept frame twice fills it twice, in parallel (each read is a query stage
        of its own)."""
        size = self.facts.size or 0
        cores = self.spark.sparkContext.defaultParallelism
        partitions = shuffle_partitions(size, cores)
        split = split_bytes(size, cores)
        self.spark.conf.set("spark.sql.adaptive.enabled", "false")
        self.spark.conf.set("spark.sql.shuffle.partitions", str(partitions))
        self.spark.conf.set("spark.sql.files.maxPartitionBytes", str(split))
        self.log.info(
            "input checked",
            fields={
                "input_path": self.args.input_path,
                "bytes": size,
                "cores": cores,
                "shuffle_partitions": partitions,
                "split_bytes": split,
                "warnings": self.facts.warnings,
            },
        )

    def _parse(self, paths: list[str], layout: HeaderLayout, line_sep: str) -> Checked:
        """Parse line by line (splittable); a file whose quoted fields hold line breaks is
        parsed again as multi-line records (one task per file)."""
        checked = self._check(paths, layout, multi_line=False, line_sep=line_sep)
        if checked.stats.quoted_line_breaks:
            self.log.info(
                "quoted line breaks found, parsing multi-line records",
                fields={"lines": checked.stats.quoted_line_breaks},
            )
            checked.release()
            checked = self._check(paths, layout, multi_line=True, line_sep=line_sep)
        return checked

    def _check(
        self, paths: list[str], layout: HeaderLayout, *, multi_line: bool, line_sep: str
    ) -> Checked:
        """Parse, apply the rules, mark the duplicates and gather the statistics. The
        checked rows are kept; the first query (the duplicate keys, through the
        statistics) fills them."""
        rows = read_orders(self.spark, paths, layout, multi_line=multi_line, line_sep=line_sep)
        if multi_line:
            # One task read each file: spread the rules over every core.
            cores = self.spark.sparkContext.defaultParallelism
            rows = rows.repartition(cores, F.col(ROW_ID_COLUMN))
        args = self.args
        parsed = keep(
            validate(rows, has_order_date=layout.has_order_date, ingest_date=args.ingest_date)
        )
        duplicates = keep(duplicate_keys(parsed))
        final = mark_duplicates(parsed, duplicates)
        return Checked(final, batch_stats(final), [parsed, duplicates])

    @property
    def _outputs(self) -> Outputs:
        return run_outputs(self.args.batch_id, self.args.run_id)

    def _output(self, name: str) -> str:
        """Where an output of this run goes: `order_lines`, `rejects` or a report's name."""
        outputs = self._outputs
        keys = {
            "order_lines": outputs["order_lines"],
            "rejects": outputs["rejects"],
            **outputs["reports"],
        }
        return join_path(self.args.output_path, keys[name])

    def _write_rejects(self, checked: Checked) -> None:
        rows = checked.rows
        rejects = add_details(rows.where(rows[REASON_COLUMN].isNotNull()))
        write_rejects(
            conform_rejects(
                with_source_row(self.spark, rejects, checked.stats.blocks), self.args.batch_id
            ),
            checked.stats.rows_rejected,
            self._output("rejects"),
        )

    def _check_reject_ratio(self, stats: BatchStats) -> None:
        ratio = stats.rows_rejected / stats.rows_read
        if ratio > self.args.max_reject_ratio:
            raise RejectThresholdExceededError(
                f"{self.args.input_path}: {stats.rows_rejected} of {stats.rows_read} rows "
                f"rejected ({ratio:.2%}), above the limit of {self.args.max_reject_ratio:.2%}; "
                f"rejects kept in {self._outputs['rejects']}"
            )

    def _write_reports(self, lines: DataFrame) -> None:
        """The three reports' figures (a few thousand rows) in one go, kept, then a small
        write for each."""
        totals = keep(report_totals(lines))
        try:
            for name in BATCH_REPORTS:
                build, keys = REPORT_BUILDERS[name]
                write_report(build(totals), keys, self._output(name))
        finally:
            totals.unpersist(blocking=True)

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
        row, more distinct channels than a batch may have, or totals beyond the reports'
        64-bit whole-cent and millilitre sums (which Spark would let wrap around silently)."""
        where = self.args.input_path
        if stats.undecodable_rows:
            raise EncodingError(
                f"{where}: {stats.undecodable_rows} rows hold bytes that are not UTF-8"
            )
        if stats.rows_read == 0:
            raise EmptyFileError(f"{where} holds only a header row")
        channels = {channel for channel, _ in stats.partition_rows}
        if len(channels) > MAX_CHANNELS_PER_BATCH:
            raise TooManyChannelsError(
                f"{where}: its valid rows name {len(channels)} distinct channels, more than "
                f"the {MAX_CHANNELS_PER_BATCH} a batch may have (e.g. "
                f"{', '.join(sorted(channels)[:5])})"
            )
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
