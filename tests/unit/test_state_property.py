"""Property: after any sequence of uploads, processed by the real steps in arrival order with
some merges delayed (as concurrent executions are), the published state equals the contract
applied to the whole history (the plain-Python oracle of tests.state_support)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pyspark.sql import SparkSession

from duffbeer import naming
from duffbeer.contract import STATUSES
from tests.state_support import (
    INPUT_BUCKET,
    Line,
    StateReader,
    Steps,
    Upload,
    assert_state_equals,
    at,
    current_lines,
    new_state_database,
)

pytestmark = pytest.mark.spark


@dataclass(frozen=True)
class Arrival:
    """An upload as the pipeline receives it: its key, creation minute (event times need not
    follow arrival order), lines, whether its transform failed, and whether its MergeState ran
    before the next upload arrived (else it runs after every upload, as a late execution)."""

    key: str
    minute: int
    lines: tuple[Line, ...]
    failed: bool
    merge_now: bool

    @property
    def batch_id(self) -> str:
        return naming.batch_id_for(INPUT_BUCKET, self.key)

    @property
    def event_time(self) -> datetime:
        return at(8) + timedelta(minutes=self.minute)


lines_strategy = st.builds(
    Line,
    order_id=st.integers(1, 6),
    product_id=st.integers(1, 3),
    client_id=st.integers(1, 3),
    status=st.sampled_from(STATUSES),
    channel=st.sampled_from(("Retail", "Online")),
    day=st.sampled_from(("2026-11-01", "2026-11-02")),
    units=st.integers(1, 3),
    price=st.sampled_from(("0.50", "1.25", "2.00")),
    volume=st.sampled_from(("0.330", "0.500")),
    client_name=st.sampled_from(("Moe", "Barney", "Homer")),
    description=st.sampled_from(("Duff", "Duff Lite")),
)
arrivals_strategy = st.lists(
    st.builds(
        Arrival,
        key=st.sampled_from(("orders/a.csv", "orders/b.csv", "orders/c.csv")),
        minute=st.integers(0, 4),
        lines=st.lists(
            lines_strategy, min_size=1, max_size=5, unique_by=lambda x: (x.order_id, x.product_id)
        ).map(tuple),
        failed=st.sampled_from((False, False, False, True)),
        merge_now=st.booleans(),
    ),
    min_size=1,
    max_size=4,
)


def live_arrivals(arrivals: list[Arrival]) -> dict[str, int]:
    """Per batch, the index of the successful upload readers see: the latest created; of
    uploads created at the same moment, the one that arrived last (its S3 sequencer is the
    greater)."""
    live: dict[str, int] = {}
    for index, arrival in enumerate(arrivals):
        seen = live.get(arrival.batch_id)
        if not arrival.failed and (seen is None or arrival.event_time >= arrivals[seen].event_time):
            live[arrival.batch_id] = index
    return live


def uploads(arrivals: list[Arrival], live: dict[str, int]) -> list[Upload]:
    return [
        Upload(batch_id, arrivals[index].event_time, arrivals[index].lines)
        for batch_id, index in live.items()
    ]


def process(steps: Steps, arrivals: list[Arrival]) -> None:
    """What the workflow does with each upload, in arrival order: the transform job, the
    Store step and MergeState, the delayed merges last (each takes whatever is published)."""
    delayed = []
    for index, arrival in enumerate(arrivals):
        if arrival.failed:
            continue
        run = steps.transform(
            arrival.key,
            arrival.lines,
            arrival.event_time,
            run_id=f"run-{index:02d}",
            sequencer=f"{index:016X}",
        )
        steps.publish(run, now=at(9, index))
        if arrival.merge_now:
            steps.merge(arrival.batch_id, f"exec-{index:02d}")
        else:
            delayed.append((arrival.batch_id, f"exec-{index:02d}"))
    for batch_id, execution in delayed:
        steps.merge(batch_id, execution)


@settings(
    max_examples=3,
    database=None,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(arrivals=arrivals_strategy)
@example(
    # b.csv corrected without line (1, 1), whose older version is a.csv's, its merge delayed
    # until after c.csv (created before both, arriving last); a failed upload of a.csv is
    # never published.
    arrivals=[
        Arrival("orders/a.csv", 1, (Line(1, 1), Line(2, 1, client_id=2)), False, True),
        Arrival("orders/b.csv", 3, (Line(1, 1, status="delivered"), Line(1, 2)), False, True),
        Arrival("orders/b.csv", 4, (Line(1, 2, status="broken", channel="Online"),), False, False),
        Arrival("orders/c.csv", 0, (Line(1, 1, status="broken"), Line(2, 1, units=3)), False, True),
        Arrival("orders/a.csv", 4, (Line(1, 1, client_id=3),), True, True),
    ]
)
def test_state_equals_the_contract_over_the_whole_history(
    spark: SparkSession, aws_endpoint: str, arrivals: list[Arrival]
) -> None:
    database = new_state_database(aws_endpoint)
    with tempfile.TemporaryDirectory(prefix="state-property-") as scratch:
        root = Path(scratch) / "processed"
        root.mkdir()
        steps = Steps(spark, root, endpoint=aws_endpoint, database=database)
        # Given uploads processed in arrival order (event times in another order)
        process(steps, arrivals)
    live = live_arrivals(arrivals)
    reader = StateReader(aws_endpoint, database)
    publications = reader.publications() if live else []
    # Then the publications, numbered from 1, hold each live batch's run
    held: dict[str, str] = {}
    for publication in publications:
        held.update(publication.merged)
    assert held == {batch_id: f"run-{index:02d}" for batch_id, index in live.items()}
    assert [p.seq for p in publications] == list(range(1, len(publications) + 1))
    # And every table of the latest equals the oracle over the live uploads
    if live:
        assert_state_equals(reader, current_lines(uploads(arrivals, live)))


def test_the_oracle_on_a_hand_computed_history() -> None:
    # Given b.csv created at 8:05, then a.csv at 8:03 and a re-upload of b.csv at 8:04
    # (older than the first b.csv: it never replaces it)
    first = Arrival("orders/b.csv", 5, (Line(1, 1, status="delivered"),), False, True)
    older = Arrival("orders/a.csv", 3, (Line(1, 1, status="broken"), Line(1, 2)), False, True)
    stale = Arrival("orders/b.csv", 4, (Line(1, 1, status="created"),), False, True)
    arrivals = [first, older, stale]
    live = live_arrivals(arrivals)
    # Then b.csv's first upload and a.csv are live, and line (1, 1) is b.csv's delivered one
    assert live == {first.batch_id: 0, older.batch_id: 1}
    lines = {
        (r["order_id"], r["product_id"]): r["status"]
        for r in current_lines(uploads(arrivals, live))
    }
    assert lines == {(1, 1): "delivered", (1, 2): "created"}
