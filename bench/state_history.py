"""A history of published batches merged into the maintained state, for benches and tests.

    build_history(root, batches=10, lines_per_batch=100_000)

writes N batches of run outputs (curated lines as the transform writes them, with pyarrow)
and their batch pointers, and after each batch plans a merge (duffbeer.state.plan_merge),
runs the real maintain_state job and publishes the version (state/current.json), so the
root ends up as the processed bucket would after N workflow executions. The data has the
shape of bench/bench_api.py's generate_lines (1000 clients, 10 products, 5 channels,
30 days, 3 lines per order); after the first batch, `update_share` of each batch's lines
are new versions of existing lines picked uniformly, the rest are new orders.

The steps (write_run, publish_run, plan_state, run_merge, publish_state) are also what the
state job's tests use to drive it the way the workflow does.
"""

from __future__ import annotations

import itertools
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from duffbeer import manifest, naming, state, utc
from duffbeer.contract import CURATED_DATA_COLUMNS, KNOWN_CHANNELS

ROOT = Path(__file__).resolve().parents[1]
INPUT_BUCKET = "bench-input-orders"
LOCAL_POINTER_ETAG = "local"
SETTINGS = state.StateSettings(
    line_buckets=state.DEFAULT_LINE_BUCKETS, client_buckets=state.DEFAULT_CLIENT_BUCKETS
)
FIRST_EVENT = datetime(2026, 11, 1, tzinfo=UTC)

# bench/bench_api.py's data shape (not imported: that bench may import this module).
CHANNELS = (*KNOWN_CHANNELS, "Kiosk")
DAYS = 30
FIRST_DAY = date(2026, 10, 1)
CLIENTS = 1_000
PRODUCTS = 10
LINES_PER_ORDER = 3
_PRICE_CENTS = np.array([250, 200, 300, 400, 375, 510, 199, 120, 125, 99])
_MILLILITRES = np.array([330, 500, 250, 1000, 500, 750, 330, 330, 355, 2000])
_STATUSES = ("created", "delivered", "broken")

ARROW_TYPES: dict[str, pa.DataType] = {
    "int": pa.int32(),
    "string": pa.string(),
    "decimal(12,2)": pa.decimal128(12, 2),
    "decimal(8,3)": pa.decimal128(8, 3),
    "decimal(18,2)": pa.decimal128(18, 2),
    "decimal(18,3)": pa.decimal128(18, 3),
    "timestamp": pa.timestamp("us", tz="UTC"),
}
CURATED_SCHEMA = pa.schema([(name, ARROW_TYPES[kind]) for name, kind in CURATED_DATA_COLUMNS])
# Characters Spark escapes in a partition directory name (ExternalCatalogUtils.escapePathName).
_ESCAPED = frozenset("\"#%'*/:=?\\{[]^\x7f") | frozenset(chr(c) for c in range(0x20))


def escape_partition_value(value: str) -> str:
    return "".join(f"%{ord(c):02X}" if c in _ESCAPED else c for c in value)


# --- The workflow's steps, locally --------------------------------------------------------


def write_run(
    root: Path,
    batch_id: str,
    run_id: str,
    event_time: datetime,
    lines: pa.Table,
    *,
    source_key: str | None = None,
) -> manifest.Manifest:
    """A successful run's curated lines and run manifest, as the transform writes them.

    `lines` holds the curated data columns (batch_id and source_event_time are stamped
    here) plus `point_of_sale_channel` (text) and `order_date` (date): one file per
    partition directory."""
    prefix = naming.run_prefix(batch_id, run_id)
    lines_prefix = f"{prefix}{naming.ORDER_LINES_DIR}/"
    rows = lines.num_rows
    stamped = lines.drop_columns(
        [c for c in ("batch_id", "source_event_time") if c in lines.column_names]
    )
    stamped = stamped.append_column("batch_id", pa.repeat(pa.scalar(batch_id), rows))
    stamped = stamped.append_column(
        "source_event_time", pa.repeat(pa.scalar(event_time, pa.timestamp("us", tz="UTC")), rows)
    )
    ordered = stamped.sort_by([("point_of_sale_channel", "ascending"), ("order_date", "ascending")])
    data = ordered.select(CURATED_SCHEMA.names).cast(CURATED_SCHEMA)
    partitions: list[manifest.Partition] = []
    for start, end in _runs(ordered):
        channel = ordered["point_of_sale_channel"][start].as_py()
        day = ordered["order_date"][start].as_py().isoformat()
        location = (
            f"{lines_prefix}point_of_sale_channel={escape_partition_value(channel)}/"
            f"order_date={day}/"
        )
        directory = root / location
        directory.mkdir(parents=True, exist_ok=True)
        pq.write_table(data.slice(start, end - start), directory / "part-00000.snappy.parquet")
        partitions.append(
            manifest.Partition(
                point_of_sale_channel=channel, order_date=day, location=location, rows=end - start
            )
        )
    (root / lines_prefix).mkdir(parents=True, exist_ok=True)
    key = source_key or f"{batch_id}.csv"
    outputs = manifest.Outputs(
        order_lines=lines_prefix,
        reports={r: f"{prefix}{naming.REPORTS_DIR}/{r}/" for r in naming.BATCH_REPORTS},
        rejects=f"{prefix}{naming.REJECTS_DIR}/",
    )
    when = utc.iso(event_time)
    run = manifest.Manifest(
        manifest_version=manifest.MANIFEST_VERSION,
        batch_id=batch_id,
        run_id=run_id,
        status=naming.STATUS_SUCCEEDED,
        error=None,
        source=manifest.SourceObject(
            path=f"s3://{INPUT_BUCKET}/{key}",
            bucket=INPUT_BUCKET,
            key=key,
            size=None,
            event_time=when,
        ),
        ingest_date=when[:10],
        started_at=when,
        finished_at=when,
        timings={},
        rows_read=rows,
        rows_valid=rows,
        rows_rejected=0,
        rejects_by_reason={},
        duplicates=0,
        total_sales="0.00",
        total_units=0,
        partitions=partitions,
        outputs=outputs,
        warnings=[],
        published=None,
    )
    _write_json(root / naming.run_manifest_key(batch_id, run_id), manifest.dumps(run))
    return run


def _runs(ordered: pa.Table) -> list[tuple[int, int]]:
    """The [start, end) row ranges of equal (channel, date) in lines sorted by both."""
    if ordered.num_rows == 0:
        return []
    channel = pc.dictionary_encode(ordered["point_of_sale_channel"]).combine_chunks().indices
    codes = np.asarray(channel.to_numpy(zero_copy_only=False), dtype=np.int64)
    days = np.asarray(ordered["order_date"].cast(pa.int32()).to_numpy(), dtype=np.int64)
    cuts = np.flatnonzero((codes[1:] != codes[:-1]) | (days[1:] != days[:-1])) + 1
    bounds = [0, *cuts.tolist(), ordered.num_rows]
    return list(itertools.pairwise(bounds))


def read_pointer(root: Path, batch_id: str) -> manifest.Manifest | None:
    path = root / naming.manifest_key(batch_id)
    return manifest.loads(path.read_text()) if path.exists() else None


def publish_run(root: Path, run: manifest.Manifest, published_at: datetime) -> str:
    """The Store step: publish the run unless the batch pointer already names it or a run
    of a newer upload (duffbeer.manifest.publication_decision). Returns the decision."""
    decision = manifest.publication_decision(read_pointer(root, run["batch_id"]), run)
    if decision == manifest.PUBLISH:
        pointer = manifest.publish(run, utc.iso(published_at))
        _write_json(root / naming.manifest_key(run["batch_id"]), manifest.dumps(pointer))
    return decision


def published_batches(root: Path) -> dict[str, state.LiveBatch]:
    """Every batch pointer's published run, as PlanState reads them."""
    batches: dict[str, state.LiveBatch] = {}
    for path in sorted((root / naming.MANIFESTS_PREFIX).glob("*.json")):
        published = manifest.published_block(manifest.loads(path.read_text()))
        if published is not None:
            batches[path.stem] = state.LiveBatch(
                run_id=published["run_id"],
                source_event_time=published["source_event_time"],
                lines_prefix=published["outputs"]["order_lines"],
            )
    return batches


def current_manifest(root: Path) -> state.StateManifest | None:
    pointer = root / naming.STATE_POINTER_KEY
    if not pointer.exists():
        return None
    key = state.loads_pointer(pointer.read_text())["state_manifest"]
    return state.loads_manifest((root / key).read_text())


def plan_state(
    root: Path, *, run_id: str, token: str, now: datetime, settings: state.StateSettings = SETTINGS
) -> state.MergePlan | None:
    """PlanState: the merge from the published version to the published batches, written
    to state/plans/<version>.json (None: the state is up to date)."""
    base = current_manifest(root)
    plan = state.plan_merge(
        base=base,
        base_pointer_etag=LOCAL_POINTER_ETAG if base is not None else None,
        published=published_batches(root),
        run_id=run_id,
        token=token,
        now=now,
        settings=settings,
    )
    if plan is not None:
        _write_json(root / naming.state_plan_key(plan["version"]), state.dumps(plan))
    return plan


def job_argv(root: Path, plan: state.MergePlan) -> list[str]:
    return [
        "maintain_state.py",
        "--JOB_NAME",
        "maintain_state",
        "--processed_path",
        str(root),
        "--plan_key",
        naming.state_plan_key(plan["version"]),
    ]


def spark_submit_command(
    root: Path, plan: state.MergePlan, *, driver_memory: str = "6g", java_options: str = ""
) -> list[str]:
    from bench.bench_glue_job import JAVA_OPTIONS  # noqa: PLC0415

    options = " ".join((*JAVA_OPTIONS, java_options)).strip()
    return [
        str(Path(sys.executable).parent / "spark-submit"),
        "--master",
        "local[2]",
        "--driver-memory",
        driver_memory,
        "--driver-java-options",
        options,
        "--conf",
        "spark.ui.enabled=false",
        str(ROOT / "glue_jobs" / "maintain_state.py"),
        *job_argv(root, plan)[1:],
    ]


def run_merge(
    root: Path,
    plan: state.MergePlan,
    *,
    spark: Any | None = None,
    driver_memory: str = "6g",
    java_options: str = "",
    log: Path | None = None,
    cpu: list[float] | None = None,
) -> float:
    """MergeState: the maintain_state job on `plan`, in this process's SparkSession or (no
    session) as its own spark-submit process; returns its wall seconds (and appends the
    process's CPU seconds to `cpu`, when given, for a spark-submit run)."""
    started = time.monotonic()
    if spark is not None:
        from glue_jobs.maintain_state import main  # noqa: PLC0415

        main(job_argv(root, plan), spark)
        return time.monotonic() - started
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    children_cpu = before.ru_utime + before.ru_stime
    env = {
        **os.environ,
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "PYTHONPATH": str(ROOT),
    }
    command = spark_submit_command(
        root, plan, driver_memory=driver_memory, java_options=java_options
    )
    with open(log or os.devnull, "w") as out:
        done = subprocess.run(command, cwd=ROOT, env=env, stdout=out, stderr=out, check=False)
    seconds = time.monotonic() - started
    if cpu is not None:
        used = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(used.ru_utime + used.ru_stime - children_cpu)
    if done.returncode != 0:
        raise RuntimeError(
            f"maintain_state exited {done.returncode}" + (f"; see {log}" if log else "")
        )
    return seconds


def publish_state(root: Path, plan: state.MergePlan, now: datetime) -> state.StatePointer | None:
    """PublishState: move state/current.json to the plan's version if the job built it
    (None: the plan was stale and nothing was built)."""
    built = root / naming.state_manifest_key(plan["version"])
    if not built.exists():
        return None
    path = root / naming.STATE_POINTER_KEY
    previous = state.loads_pointer(path.read_text()) if path.exists() else None
    pointer = state.StatePointer(
        pointer_format=state.STATE_FORMAT,
        version=plan["version"],
        seq=plan["seq"],
        published_at=utc.iso(now),
        state_manifest=naming.state_manifest_key(plan["version"]),
        settings=plan["settings"],
        history=state.next_history(previous, now, timedelta(hours=1)),
    )
    _write_json(path, state.dumps(pointer))
    return pointer


def merge_and_publish(
    root: Path, *, run_id: str, token: str, now: datetime, spark: Any | None = None, **job: Any
) -> tuple[state.MergePlan | None, float]:
    """PlanState, MergeState and PublishState in a row; the plan (None: nothing to merge)
    and the job's wall seconds."""
    plan = plan_state(root, run_id=run_id, token=token, now=now)
    if plan is None:
        return None, 0.0
    seconds = run_merge(root, plan, spark=spark, **job)
    publish_state(root, plan, now)
    return plan, seconds


def _write_json(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.tmp")
    partial.write_text(text)
    partial.replace(path)


# --- Generated history ----------------------------------------------------------------------


@dataclass
class _Lines:
    """Every line key generated so far, with what an update keeps of it."""

    order_id: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    product: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    client: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    channel: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    day: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    next_order: int = 100_000

    def add_orders(self, lines: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        orders = -(-lines // LINES_PER_ORDER)
        index = np.repeat(np.arange(orders), LINES_PER_ORDER)[:lines]
        first = rng.integers(0, PRODUCTS, orders)[index]
        new = {
            "order_id": (self.next_order + index).astype(np.int32),
            "product": (
                (first + np.tile(np.arange(LINES_PER_ORDER), orders)[:lines]) % PRODUCTS
            ).astype(np.int32),
            "client": rng.integers(1, CLIENTS + 1, orders)[index].astype(np.int32),
            "channel": rng.integers(0, len(CHANNELS), orders)[index].astype(np.int32),
            "day": rng.integers(0, DAYS, orders)[index].astype(np.int32),
        }
        self.next_order += orders
        for name, values in new.items():
            setattr(self, name, np.concatenate([getattr(self, name), values]))
        return new

    def pick(self, lines: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        chosen = rng.choice(len(self.order_id), size=lines, replace=False)
        return {
            name: getattr(self, name)[chosen]
            for name in ("order_id", "product", "client", "channel", "day")
        }


def generated_lines(keys: Mapping[str, np.ndarray], rng: np.random.Generator) -> pa.Table:
    """Curated lines (without lineage) for these keys: fresh status and units."""
    rows = len(keys["order_id"])
    product = keys["product"]
    units = rng.integers(1, 25, rows)
    price = pa.array(_PRICE_CENTS[product] / 100).cast(pa.decimal128(12, 2))
    volume = pa.array(_MILLILITRES[product] / 1000).cast(pa.decimal128(8, 3))
    quantity = pa.array(units, pa.int32())
    client = keys["client"]
    return pa.table(
        {
            "client_id": pa.array(client, pa.int32()),
            "client_name": pc.binary_join_element_wise(
                "Client ", pa.array(client).cast(pa.string()), ""
            ),
            "order_id": pa.array(keys["order_id"], pa.int32()),
            "product_id": pa.array(100 + product, pa.int32()),
            "product_description": pc.binary_join_element_wise(
                "Duff ", pa.array(product).cast(pa.string()), ""
            ),
            "product_price": price,
            "product_ccf": quantity,
            "product_volume": volume,
            "status": pc.take(pa.array(_STATUSES), pa.array(rng.integers(0, 3, rows))),
            "line_total": pc.multiply(price, quantity).cast(pa.decimal128(18, 2)),
            "line_volume_l": pc.multiply(volume, quantity).cast(pa.decimal128(18, 3)),
            "point_of_sale_channel": pc.take(pa.array(CHANNELS), pa.array(keys["channel"])),
            "order_date": pa.array(
                [FIRST_DAY + timedelta(days=int(d)) for d in range(DAYS)], pa.date32()
            ).take(pa.array(keys["day"])),
        }
    )


class History:
    """Batches of generated lines: the first all new orders, later ones `update_share`
    updates of existing lines (picked uniformly) and new orders for the rest."""

    def __init__(self, root: Path, *, seed: int = 1) -> None:
        self.root = root
        self.rng = np.random.default_rng(seed)
        self.lines = _Lines()
        self.index = 0

    def next_batch(self, lines: int, update_share: float) -> dict[str, Any]:
        """Write and publish the next batch; returns its facts."""
        self.index += 1
        existing = len(self.lines.order_id)
        updates = min(existing, round(lines * update_share)) if existing else 0
        parts = []
        if updates:
            parts.append(generated_lines(self.lines.pick(updates, self.rng), self.rng))
        parts.append(generated_lines(self.lines.add_orders(lines - updates, self.rng), self.rng))
        table = pa.concat_tables(parts)
        key = f"history/orders-{self.index:04d}.csv"
        batch_id = naming.batch_id_for(INPUT_BUCKET, key)
        run_id = f"{batch_id}-run-1"
        event_time = FIRST_EVENT + timedelta(hours=self.index)
        run = write_run(self.root, batch_id, run_id, event_time, table, source_key=key)
        publish_run(self.root, run, event_time + timedelta(minutes=1))
        return {
            "batch": self.index,
            "batch_id": batch_id,
            "run_id": run_id,
            "lines": table.num_rows,
            "updates": updates,
            "new_lines": table.num_rows - updates,
            "event_time": utc.iso(event_time),
        }


def local_spark(driver_memory: str = "6g") -> Any:
    """One long-lived local session with the job's settings (a JVM start saved per merge)."""
    from glue_jobs.orders.session import build_spark  # noqa: PLC0415

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    session = build_spark(
        "state-history",
        {
            "spark.master": "local[2]",
            "spark.driver.memory": driver_memory,
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
        },
    )
    session.sparkContext.setLogLevel("ERROR")
    return session


def build_history(
    root: Path,
    *,
    batches: int,
    lines_per_batch: int,
    update_share: float = 0.5,
    seed: int = 1,
    spark_submit: bool = False,
    spark: Any | None = None,
    driver_memory: str = "6g",
) -> list[dict[str, Any]]:
    """Write `batches` published batches under `root` and merge each into the state (the
    real job: in one local SparkSession, `spark` or a new one, or with spark_submit=True as
    its own process per merge). Returns per-batch facts: ids, lines, updates, the version,
    the merge's wall seconds and its manifest's counts and phase timings."""
    root.mkdir(parents=True, exist_ok=True)
    history = History(root, seed=seed)
    session = None if spark_submit else (spark or local_spark(driver_memory))
    facts: list[dict[str, Any]] = []
    try:
        for _ in range(batches):
            batch = history.next_batch(lines_per_batch, update_share)
            now = utc.parse(batch["event_time"]) + timedelta(minutes=2)
            plan, seconds = merge_and_publish(
                root,
                run_id=f"state-{batch['batch']:04d}",
                token=f"{batch['batch']:08x}",
                now=now,
                spark=session,
                driver_memory=driver_memory,
            )
            built = current_manifest(root)
            facts.append(
                {
                    **batch,
                    "version": plan["version"] if plan else None,
                    "merge_seconds": round(seconds, 2),
                    "counts": built["counts"] if built else {},
                    "timings": built["merge"]["timings"] if built else {},
                }
            )
    finally:
        if session is not None and spark is None:
            session.stop()
    return facts


def main(argv: Sequence[str] | None = None) -> int:
    import argparse  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--update-share", type=float, default=0.5)
    parser.add_argument("--spark-submit", action="store_true")
    ns = parser.parse_args(argv)
    for fact in build_history(
        ns.root,
        batches=ns.batches,
        lines_per_batch=ns.lines,
        update_share=ns.update_share,
        spark_submit=ns.spark_submit,
    ):
        print(json.dumps(fact))
    return 0


if __name__ == "__main__":
    sys.exit(main())
