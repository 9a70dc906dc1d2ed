"""The tables' upkeep job on a state built by the real steps: compaction published like a
merge, publications past the retention expired with their snapshots, a killed merge's
branch and stray files removed; every retained publication still reads, and merges go on."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from moto.backends import get_backend
from moto.core import DEFAULT_ACCOUNT_ID
from pyspark.sql import SparkSession

from duffbeer import naming, state, utc
from glue_jobs import maintain_tables
from glue_jobs.state.catalog import StateCatalog
from glue_jobs.state.job import PUBLISHED, StateMerge
from tests.state_support import (
    INPUT_BUCKET,
    Line,
    StateReader,
    Steps,
    Upload,
    at,
    current_lines,
    expected_tables,
    rows_of,
)

pytestmark = pytest.mark.spark

A = (Line(1, 1), Line(2, 1, client_id=2, channel="Online"))
B = (Line(1, 1, status="delivered"), Line(3, 2, units=4))
B_CORRECTED = (Line(3, 2, status="broken", units=2),)
C = (Line(4, 3, client_id=3, day="2026-11-02"),)


def batch(key: str) -> str:
    return naming.batch_id_for(INPUT_BUCKET, key)


def age_object(bucket: str, key: str, age: timedelta) -> None:
    """Make an object of the in-process moto server `age` old (its Last-Modified time)."""
    backend = get_backend("s3")[DEFAULT_ACCOUNT_ID]["global"]
    stored = backend.get_object(bucket, key)
    stored.last_modified = stored.last_modified - age


def assert_publication_reads(
    reader: StateReader, publication: state.Publication, live: list[Upload]
) -> None:
    expected = expected_tables(current_lines(live))
    for name, table in state.STATE_TABLES.items():
        rows = reader.rows(name, publication.snapshots[name])
        assert rows_of(rows, table.column_names) == expected[name], (publication.seq, name)


def test_maintenance_compacts_expires_and_keeps_every_retained_publication_readable(
    spark: SparkSession, aws_endpoint: str, state_database: str, tmp_path: Path
) -> None:
    root = tmp_path / "processed"
    root.mkdir()
    steps = Steps(spark, root, endpoint=aws_endpoint, database=state_database)
    reader = StateReader(aws_endpoint, state_database)
    # Given two publications, then (after `cutoff`) a correction that deletes and updates
    # lines in the merge-on-read tables
    steps.process("orders/a.csv", A, at(8), "a-run")
    steps.process("orders/b.csv", B, at(9), "b-run")
    cutoff = utc.now()
    steps.process("orders/b.csv", B_CORRECTED, at(10), "b-run-2")
    live = [
        Upload(batch("orders/a.csv"), at(8), A),
        Upload(batch("orders/b.csv"), at(10), B_CORRECTED),
    ]
    lines = reader.catalog.load_table(f"{state_database}.{state.CURRENT_LINES_TABLE}")
    assert int(lines.current_snapshot().summary["total-position-deletes"]) > 0
    # And a branch left by a merge killed before it published, and a stray file in a table
    catalog = StateCatalog(spark, state_database)
    spark.sql(f"ALTER TABLE {catalog.name(state.ORDERS_SUMMARY_TABLE)} CREATE BRANCH merge_x_1")
    location = lines.location().removeprefix("s3://")
    bucket, prefix = location.split("/", 1)
    stray = f"{prefix}/data/stray-00000.parquet"
    steps.s3.put_object(Bucket=bucket, Key=stray, Body=b"written by a job that died")
    age_object(bucket, stray, timedelta(days=4))

    # When the maintenance job runs a retention period after `cutoff`
    facts = maintain_tables.main(
        [
            "maintain_tables.py",
            *("--JOB_NAME", "maintain_tables", "--database", state_database),
            *("--snapshot_retention_hours", "168", "--orphan_retention_hours", "72"),
        ],
        spark=spark,
        s3=steps.s3,
        clock=lambda: cutoff + timedelta(hours=168),
    )

    # Then the merge-on-read tables are compacted, published as publication 4
    merge_on_read = {t.name for t in state.STATE_TABLES.values() if t.merge_on_read}
    assert set(facts.compacted) >= {state.CURRENT_LINES_TABLE}
    assert set(facts.compacted) <= merge_on_read
    lines = reader.catalog.load_table(f"{state_database}.{state.CURRENT_LINES_TABLE}")
    assert int(lines.current_snapshot().summary.get("total-position-deletes", "0")) == 0
    # And publications 1 and 2 left the history; 3 and 4 read, and equal the contract
    publications = reader.publications()
    assert [(p.seq, p.kind) for p in publications] == [
        (3, state.KIND_MERGE),
        (4, state.KIND_MAINTENANCE),
    ]
    for publication in publications:
        assert_publication_reads(reader, publication, live)
    # And the expired snapshots, the killed merge's branch and the stray file are gone
    assert facts.expired_snapshots.get(state.CURRENT_LINES_TABLE, 0) >= 2
    assert facts.dropped_branches == [f"{state.ORDERS_SUMMARY_TABLE}.merge_x_1"]
    assert stray not in {
        item["Key"]
        for item in steps.s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/data/")["Contents"]
    }
    assert facts.orphan_files.get(state.CURRENT_LINES_TABLE, 0) >= 1

    # When another batch is merged on the compacted tables
    outcome = steps.process("orders/c.csv", C, at(11), "c-run")
    # Then it is publication 5 and the state equals the contract over every live upload
    assert (outcome.outcome, outcome.seq) == (PUBLISHED, 5)
    assert_publication_reads(
        reader, reader.publications()[-1], [*live, Upload(batch("orders/c.csv"), at(11), C)]
    )


def test_a_table_added_by_an_upgrade_is_left_by_the_upkeep_and_built_by_the_next_merge(
    spark: SparkSession,
    aws_endpoint: str,
    state_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = tmp_path / "processed"
    root.mkdir()
    steps = Steps(spark, root, endpoint=aws_endpoint, database=state_database)
    reader = StateReader(aws_endpoint, state_database)
    # Given a state whose merge-on-read tables need compacting, published by a release
    # without client_order_cells
    added = state.CLIENT_ORDER_CELLS_TABLE
    with monkeypatch.context() as earlier_release:
        earlier_release.delitem(state.STATE_TABLES, added)
        earlier_release.setattr(StateMerge, "_write_client_order_cells", lambda *_: None)
        steps.process("orders/a.csv", A, at(8), "a-run")
        steps.process("orders/b.csv", B, at(9), "b-run")
        steps.process("orders/b.csv", B_CORRECTED, at(10), "b-run-2")
    assert added not in reader.publications()[-1].snapshots
    # When this release's upkeep job compacts them
    facts = maintain_tables.main(
        ["maintain_tables.py", *("--JOB_NAME", "maintain_tables", "--database", state_database)],
        spark=spark,
        s3=steps.s3,
    )
    # Then its publication names the tables it compacted and not the one it never built
    assert state.CURRENT_LINES_TABLE in facts.compacted
    latest = reader.publications()[-1]
    assert latest.kind == state.KIND_MAINTENANCE
    assert added not in latest.snapshots
    # When this release merges a batch that adds order 4 only (orders 1-3 untouched)
    outcome = steps.process("orders/c.csv", C, at(11), "c-run")
    # Then the new table holds the cells of every current line, untouched orders included
    assert outcome.outcome == PUBLISHED
    assert set(reader.publications()[-1].snapshots) == set(state.STATE_TABLES)
    live = [
        Upload(batch("orders/a.csv"), at(8), A),
        Upload(batch("orders/b.csv"), at(10), B_CORRECTED),
        Upload(batch("orders/c.csv"), at(11), C),
    ]
    assert_publication_reads(reader, reader.publications()[-1], live)
    # And the next merge keeps it up to date
    corrected = (Line(4, 3, client_id=3, day="2026-11-02", units=5),)
    steps.process("orders/c.csv", corrected, at(12), "c-run-2")
    live[2] = Upload(batch("orders/c.csv"), at(12), corrected)
    assert_publication_reads(reader, reader.publications()[-1], live)
