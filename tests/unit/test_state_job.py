"""The state job on Iceberg tables: arguments, publications, corrections, re-runs, failures
and concurrent merges, driven through the real steps and read back with pyiceberg."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from duffbeer import manifest, naming, state, utc
from duffbeer.errors import ConfigurationError
from glue_jobs.state.args import StateJobArgs
from glue_jobs.state.catalog import StateCatalog
from glue_jobs.state.job import PUBLISHED, UP_TO_DATE
from tests.state_support import (
    INPUT_BUCKET,
    Line,
    StateReader,
    Steps,
    Upload,
    assert_state_equals,
    at,
    current_lines,
)

pytestmark = pytest.mark.spark

BASE = [
    "maintain_state.py",
    *("--JOB_NAME", "maintain_state", "--processed_path", "s3://processed/"),
    *("--database", "duffbeer_reports", "--batch_id", "orders-1", "--run_id", "exec-1"),
]


def test_arguments_are_parsed_once() -> None:
    # Given the job's arguments and Glue's own (ignored)
    argv = [*BASE, "--job-bookmark-option", "job-bookmark-disable", "--TempDir", "s3://t/"]
    # When parsed
    args = StateJobArgs.from_args(argv)
    # Then the root loses its trailing slash and keys join onto it
    assert args == StateJobArgs(
        job_name="maintain_state",
        processed_path="s3://processed",
        database="duffbeer_reports",
        batch_id="orders-1",
        run_id="exec-1",
        processed_uri="s3://processed",
    )
    assert args.path("manifests/orders-1.json") == "s3://processed/manifests/orders-1.json"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (BASE[:-2], "the job needs --JOB_NAME --processed_path --database --batch_id --run_id"),
        ([*BASE[:-1], "../x"], "--run_id '../x' is not a batch or run id"),
        ([*BASE[:6], "Duff-Reports", *BASE[7:]], "--database 'Duff-Reports' is not a Glue"),
        ([*BASE, "--max_attempts", "0"], "--max_attempts must be at least 1"),
    ],
)
def test_invalid_arguments_are_configuration_errors(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        StateJobArgs.from_args(argv)
    assert str(raised.value).startswith(message)


@pytest.fixture
def steps(spark: SparkSession, aws_endpoint: str, state_database: str, tmp_path: Path) -> Steps:
    root = tmp_path / "processed"
    root.mkdir()
    return Steps(spark, root, endpoint=aws_endpoint, database=state_database)


@pytest.fixture
def reader(aws_endpoint: str, state_database: str) -> StateReader:
    return StateReader(aws_endpoint, state_database)


A = (Line(1, 1, client_id=1), Line(2, 1, client_id=2, channel="Online", day="2026-11-02"))
B = (Line(1, 1, status="delivered"), Line(3, 2, status="broken", units=3))


def batch(key: str) -> str:
    return naming.batch_id_for(INPUT_BUCKET, key)


def test_a_first_batch_is_published_with_every_table(steps: Steps, reader: StateReader) -> None:
    # When one upload goes through the workflow's steps
    outcome = steps.process("orders/a.csv", A, at(8), "a-run")
    # Then one publication names the batch's run and a snapshot of every state table
    assert outcome.outcome == PUBLISHED and outcome.seq == 1
    [publication] = reader.publications()
    assert (publication.seq, publication.kind) == (1, state.KIND_MERGE)
    assert publication.merged == {batch("orders/a.csv"): "a-run"}
    assert set(publication.snapshots) == set(state.STATE_TABLES)
    # And the tables hold the contract's figures, and main (queries by name) shows them too
    assert_state_equals(reader, current_lines([Upload(batch("orders/a.csv"), at(8), A)]))
    summary = reader.rows(state.ORDERS_SUMMARY_TABLE)
    assert sorted(r["client_id"] for r in summary) == [1, 2]
    assert reader.main_rows(state.ORDERS_SUMMARY_TABLE) == summary


def test_a_correction_falls_back_to_the_older_versions_of_the_lines_it_withdraws(
    steps: Steps, reader: StateReader
) -> None:
    # Given a.csv, then b.csv updating line (1, 1) and adding (3, 2)
    steps.process("orders/a.csv", A, at(8), "a-run")
    steps.process("orders/b.csv", B, at(9), "b-run-1")
    # When b.csv is corrected without line (1, 1)
    corrected = (Line(3, 2, status="broken", units=3),)
    outcome = steps.process("orders/b.csv", corrected, at(10), "b-run-2")
    # Then line (1, 1) is a.csv's again, and every table follows
    assert outcome.outcome == PUBLISHED and outcome.seq == 3
    live = [
        Upload(batch("orders/a.csv"), at(8), A),
        Upload(batch("orders/b.csv"), at(10), corrected),
    ]
    assert_state_equals(reader, current_lines(live))
    lines = {
        (r["order_id"], r["product_id"]): r["status"]
        for r in reader.rows(state.CURRENT_LINES_TABLE)
    }
    assert lines == {(1, 1): "created", (2, 1): "created", (3, 2): "broken"}


def test_a_batch_merged_twice_changes_nothing(steps: Steps, reader: StateReader) -> None:
    # Given a published merge of a.csv
    steps.process("orders/a.csv", A, at(8), "a-run")
    before = reader.publications()
    # When the merge runs again (a retried execution)
    outcome = steps.merge(batch("orders/a.csv"), "exec-a-run-retried")
    # Then it finds the run in the state and publishes nothing
    assert outcome.outcome == UP_TO_DATE and outcome.seq == 1
    assert reader.publications() == before


def test_an_older_run_never_moves_the_state_back(steps: Steps, reader: StateReader) -> None:
    # Given b.csv's newer upload merged
    old = steps.transform("orders/b.csv", B, at(9), run_id="b-old")
    steps.publish(old)
    new = steps.transform("orders/b.csv", B[1:], at(10), run_id="b-new")
    steps.publish(new)
    steps.merge(batch("orders/b.csv"), "exec-b-new")
    # When a merge reads a pointer still naming the older run (a stale view of the bucket)
    pointer = steps.root / naming.manifest_key(batch("orders/b.csv"))
    pointer.write_text(manifest.dumps(manifest.publish(old, utc.iso(at(11)))))
    outcome = steps.merge(batch("orders/b.csv"), "exec-b-old")
    # Then the state keeps the newer run
    assert outcome.outcome == UP_TO_DATE
    assert [p.merged for p in reader.publications()] == [{batch("orders/b.csv"): "b-new"}]


@pytest.fixture
def paused_publication(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[threading.Event, threading.Event]]:
    """The first publish() of the test waits (`reached` set) until `release` is set."""
    reached, release = threading.Event(), threading.Event()
    original = StateCatalog.publish
    calls: list[int] = []

    def publish(self: StateCatalog, *args: Any, **kwargs: Any) -> bool:
        calls.append(1)
        if len(calls) == 1:
            reached.set()
            assert release.wait(120)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(StateCatalog, "publish", publish)
    yield reached, release


def test_two_merges_started_together_both_land_in_one_publication(
    steps: Steps,
    reader: StateReader,
    spark: SparkSession,
    paused_publication: tuple[threading.Event, threading.Event],
) -> None:
    # Given two published batches
    a = steps.transform("orders/a.csv", A, at(8), run_id="a-run")
    steps.publish(a)
    b = steps.transform("orders/b.csv", B, at(9), run_id="b-run")
    steps.publish(b)
    reached, release = paused_publication
    # When a.csv's merge is about to publish, b.csv's merge starts on the same state and
    # publishes first
    results: dict[str, Any] = {}
    first = threading.Thread(
        target=lambda: results.update(a=steps.merge(a["batch_id"], "exec-a", spark.newSession()))
    )
    first.start()
    assert reached.wait(300)
    results["b"] = steps.merge(b["batch_id"], "exec-b", spark.newSession())
    release.set()
    first.join(300)
    # Then a.csv's publication lost to b.csv's, which took a.csv in too (it was published),
    # and a.csv's merge, starting again, found nothing left to do
    assert results["b"].outcome == PUBLISHED and results["b"].attempts == 1
    assert results["b"].merged == {a["batch_id"]: "a-run", b["batch_id"]: "b-run"}
    assert results["a"].outcome == UP_TO_DATE and results["a"].attempts == 2
    assert [p.merged for p in reader.publications()] == [results["b"].merged]
    live = [Upload(batch("orders/a.csv"), at(8), A), Upload(batch("orders/b.csv"), at(9), B)]
    assert_state_equals(reader, current_lines(live))


def test_a_merge_that_fails_before_publishing_leaves_the_previous_publication(
    steps: Steps, reader: StateReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a.csv published
    steps.process("orders/a.csv", A, at(8), "a-run")
    expected = reader.rows(state.CLIENT_REPORT_TABLE)
    # When b.csv's merge dies after writing its tables, before its publication commits
    b = steps.transform("orders/b.csv", B, at(9), run_id="b-run")
    steps.publish(b)

    def fail(*args: Any, **kwargs: Any) -> bool:
        raise RuntimeError("the job died before committing its publication")

    monkeypatch.setattr(StateCatalog, "publish", fail)
    with pytest.raises(RuntimeError):
        steps.merge(b["batch_id"], "exec-b")
    # Then readers (a publication's snapshots, and main) still see a.csv's state only
    assert [p.seq for p in reader.publications()] == [1]
    assert reader.rows(state.CLIENT_REPORT_TABLE) == expected
    assert reader.main_rows(state.CLIENT_REPORT_TABLE) == expected
    # And a retry completes the merge
    monkeypatch.undo()
    assert steps.merge(b["batch_id"], "exec-b-retried").outcome == PUBLISHED
    live = [Upload(batch("orders/a.csv"), at(8), A), Upload(batch("orders/b.csv"), at(9), B)]
    assert_state_equals(reader, current_lines(live))
