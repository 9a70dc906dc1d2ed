"""The maintain_state job on small hand-computed histories: every table compared whole."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from bench.state_history import (
    merge_and_publish,
    plan_state,
    publish_run,
    publish_state,
    run_merge,
    write_run,
)
from duffbeer import naming
from duffbeer.state import STATE_TABLES
from tests.unit.state_support import Line, at, current_version, lines_table, read_version, rows_of

pytestmark = pytest.mark.spark

BUCKET = "duffbeer-input-orders"
D1, D2 = date(2026, 11, 1), date(2026, 11, 2)
ODD_CHANNEL = "Kiosk: Stadium/East"  # escaped in paths as Kiosk%3A Stadium%2FEast
NO_SPANNING: list[tuple[Any, ...]] = []


def batch(key: str) -> str:
    return naming.batch_id_for(BUCKET, f"orders/{key}")


def upload(root: Path, key: str, hour: int, lines: list[Line], *, run: int = 1) -> str:
    """A successful run of orders/<key> created at <hour>:00, published by the Store step."""
    batch_id = batch(key)
    made = write_run(
        root, batch_id, f"{batch_id}-run-{run}", at(hour), lines_table(lines), source_key=key
    )
    publish_run(root, made, at(hour, 30))
    return batch_id


def merge(spark: SparkSession, root: Path, step: int) -> dict[str, Any]:
    merge_and_publish(
        root, run_id=f"exec-{step}", token=f"{step:08x}", now=at(20, step), spark=spark
    )
    return current_version(root)


def table(root: Path, name: str) -> list[tuple[Any, ...]]:
    columns = STATE_TABLES[name]
    names = tuple(c for c, _ in (*columns.columns, *columns.partition_keys))
    return rows_of(read_version(root, current_version(root))[name], names)


def line_row(line: Line, batch_id: str, hour: int) -> tuple[Any, ...]:
    """A current line as order_lines_current holds it (data columns, then partitions)."""
    row = {**line.row(), "batch_id": batch_id, "source_event_time": at(hour)}
    names = [c for c, _ in STATE_TABLES["order_lines_current"].columns]
    return (*(row[n] for n in names), line.channel, date.fromisoformat(line.day))


def expect(root: Path, name: str, rows: list[tuple[Any, ...]]) -> None:
    assert table(root, name) == rows_of(
        [dict(enumerate(r)) for r in rows], tuple(range(len(rows[0]))) if rows else ()
    ), name


# --- First batch ----------------------------------------------------------------------------


def test_first_batch_builds_every_table(spark: SparkSession, tmp_path: Path) -> None:
    # Given one published batch: client 1's order 1 (two lines, Retail on Nov 1) and
    # client 2's order 2 (one line, at a kiosk whose name needs escaping in paths, Nov 2)
    moe1 = Line(1, 1, client_id=1, client_name="Moe", units=2, price="1.50")
    moe2 = Line(
        1, 2, client_id=1, client_name="Moe", status="delivered", price="3.00", volume="0.330"
    )
    barney = Line(
        2,
        1,
        client_id=2,
        client_name="Barney",
        channel=ODD_CHANNEL,
        day="2026-11-02",
        units=3,
        price="1.50",
    )
    a = upload(tmp_path, "a.csv", 8, [moe1, moe2, barney])
    # When the state is merged for the first time
    manifest = merge(spark, tmp_path, 1)
    # Then every table holds the batch's figures, worked out by hand
    expect(tmp_path, "order_lines_current", [line_row(x, a, 8) for x in (moe1, moe2, barney)])
    money = Decimal
    expect(
        tmp_path,
        "client_report",
        [
            (1, None, None, 1, 1, "Moe", 1, 2, 3, money("6.00"), 1),
            (1, "created", None, 0, 1, "Moe", 1, 1, 2, money("3.00"), 1),
            (1, "delivered", None, 0, 1, "Moe", 1, 1, 1, money("3.00"), 1),
            (1, None, "Retail", 1, 0, "Moe", 1, 2, 3, money("6.00"), 1),
            (2, None, None, 1, 1, "Barney", 1, 1, 3, money("4.50"), 2),
            (2, "created", None, 0, 1, "Barney", 1, 1, 3, money("4.50"), 2),
            (2, None, ODD_CHANNEL, 1, 0, "Barney", 1, 1, 3, money("4.50"), 2),
        ],
    )
    expect(
        tmp_path,
        "client_orders",
        [
            (1, 1, D1, "Retail", 2, 3, money("6.00"), 1, 1, 0, "Moe", at(8), a, 2, 1),
            (2, 2, D2, ODD_CHANNEL, 1, 3, money("4.50"), 1, 0, 0, "Barney", at(8), a, 1, 2),
        ],
    )
    expect(
        tmp_path,
        "product_daily",
        [
            (1, "Retail", D1, "Duff 1", at(8), a, 1, 1, 2, money("3.00"), money("1.000")),
            (2, "Retail", D1, "Duff 2", at(8), a, 1, 1, 1, money("3.00"), money("0.330")),
            (1, ODD_CHANNEL, D2, "Duff 1", at(8), a, 2, 1, 3, money("4.50"), money("1.500")),
        ],
    )
    expect(
        tmp_path,
        "status_daily",
        [
            ("created", "Retail", D1, 0, 1, 1, money("3.00")),
            ("delivered", "Retail", D1, 0, 1, 1, money("3.00")),
            (None, "Retail", D1, 1, 1, 2, money("6.00")),
            ("created", ODD_CHANNEL, D2, 0, 1, 1, money("4.50")),
            (None, ODD_CHANNEL, D2, 1, 1, 1, money("4.50")),
        ],
    )
    expect(tmp_path, "spanning_order_cells", NO_SPANNING)
    expect(tmp_path, "orders_summary", [(1, "Moe", 1, 6.0), (2, "Barney", 1, 4.5)])
    # ... and the manifest says where everything is and what the merge did
    version = manifest["version"]
    lines = f"state/versions/{version}/order_lines_current/"
    assert manifest["base_version"] is None
    assert manifest["counts"] == {"lines": 3, "orders": 2, "clients": 2}
    assert [p["location"] for p in manifest["tables"]["order_lines_current"]["partitions"]] == [
        f"{lines}point_of_sale_channel=Kiosk%3A Stadium%2FEast/order_date=2026-11-02/",
        f"{lines}point_of_sale_channel=Retail/order_date=2026-11-01/",
    ]
    assert manifest["tables"]["client_orders"]["partitions"] == [
        {
            "values": {"client_bucket": "1"},
            "rows": 1,
            "location": f"state/versions/{version}/client_orders/client_bucket=1/",
        },
        {
            "values": {"client_bucket": "2"},
            "rows": 1,
            "location": f"state/versions/{version}/client_orders/client_bucket=2/",
        },
    ]
    assert manifest["tables"]["product_daily"] == {
        "rows": 3,
        "location": f"state/versions/{version}/product_daily/",
    }
    assert manifest["batches"] == {
        a: {
            "run_id": f"{a}-run-1",
            "source_event_time": "2026-11-02T08:00:00.000Z",
            "lines_prefix": f"runs/{a}/{a}-run-1/order_lines/",
        }
    }
    facts = manifest["merge"]
    assert (facts["changed_batches"], facts["withdrawn_batches"]) == ([a], [])
    assert (facts["touched_partitions"], facts["touched_orders"], facts["fallback_lines"]) == (
        2,
        2,
        0,
    )
    assert set(facts["timings"]) >= {"read", "touched_orders", "order_lines_current"}


def test_current_lines_are_bucketed_by_client(spark: SparkSession, tmp_path: Path) -> None:
    # Given a batch of 40 lines of 20 clients in one partition
    lines = [
        Line(order, product, client_id=order % 20 + 1)
        for order in range(1, 21)
        for product in (1, 2)
    ]
    upload(tmp_path, "a.csv", 8, lines)
    # When it is merged
    manifest = merge(spark, tmp_path, 1)
    # Then the partition holds one file per bucket, named with the bucket id, and every
    # row sits in the bucket Spark's bucketing gives its client: pmod(hash(client_id), 4)
    (partition,) = manifest["tables"]["order_lines_current"]["partitions"]
    files = sorted((tmp_path / partition["location"]).glob("*.parquet"))
    buckets = [int(f.name.split("_")[-1].split(".")[0]) for f in files]
    assert len(files) == len(set(buckets)) and set(buckets) <= {0, 1, 2, 3} and len(buckets) > 1
    for file, bucket in zip(files, buckets, strict=True):
        assert file.name.endswith(f"_{bucket:05d}.c000.snappy.parquet")
        wrong = spark.read.parquet(str(file)).where(F.expr("pmod(hash(client_id), 4)") != bucket)
        assert wrong.count() == 0


# --- Later batches ----------------------------------------------------------------------------

A_LINES = [
    Line(1, 1),
    Line(1, 2, price="2.00"),
    Line(2, 1, client_id=2, channel="Online", day="2026-11-02"),
]
B_LINES = [Line(1, 1, status="delivered", units=2)]


@pytest.mark.parametrize("arrival", ["a-then-b", "b-then-a"])
def test_the_latest_upload_wins_whatever_the_arrival_order(
    spark: SparkSession, tmp_path: Path, arrival: str
) -> None:
    # Given a.csv created at 8:00 and b.csv at 9:00, where b.csv delivers line (1, 1)
    steps = [("a.csv", 8, A_LINES), ("b.csv", 9, B_LINES)]
    if arrival == "b-then-a":
        steps.reverse()  # the older upload is processed last: it must not win
    # When each is merged as it arrives
    for step, (key, hour, lines) in enumerate(steps, start=1):
        upload(tmp_path, key, hour, lines)
        manifest = merge(spark, tmp_path, step)
    a, b = batch("a.csv"), batch("b.csv")
    # Then line (1, 1) is b.csv's, the others a.csv's
    expect(
        tmp_path,
        "order_lines_current",
        [line_row(B_LINES[0], b, 9), line_row(A_LINES[1], a, 8), line_row(A_LINES[2], a, 8)],
    )
    money = Decimal
    expect(
        tmp_path,
        "client_report",
        [
            (1, None, None, 1, 1, "Client 1", 1, 2, 3, money("4.00"), 1),
            (1, "created", None, 0, 1, "Client 1", 1, 1, 1, money("2.00"), 1),
            (1, "delivered", None, 0, 1, "Client 1", 1, 1, 2, money("2.00"), 1),
            (1, None, "Retail", 1, 0, "Client 1", 1, 2, 3, money("4.00"), 1),
            (2, None, None, 1, 1, "Client 2", 1, 1, 1, money("1.00"), 2),
            (2, "created", None, 0, 1, "Client 2", 1, 1, 1, money("1.00"), 2),
            (2, None, "Online", 1, 0, "Client 2", 1, 1, 1, money("1.00"), 2),
        ],
    )
    expect(
        tmp_path,
        "client_orders",
        [
            (1, 1, D1, "Retail", 2, 3, money("4.00"), 1, 1, 0, "Client 1", at(9), b, 1, 1),
            (2, 2, D2, "Online", 1, 1, money("1.00"), 1, 0, 0, "Client 2", at(8), a, 1, 2),
        ],
    )
    expect(
        tmp_path,
        "product_daily",
        [
            (1, "Retail", D1, "Duff 1", at(9), b, 1, 1, 2, money("2.00"), money("1.000")),
            (2, "Retail", D1, "Duff 2", at(8), a, 1, 1, 1, money("2.00"), money("0.500")),
            (1, "Online", D2, "Duff 1", at(8), a, 2, 1, 1, money("1.00"), money("0.500")),
        ],
    )
    expect(
        tmp_path,
        "status_daily",
        [
            ("created", "Retail", D1, 0, 1, 1, money("2.00")),
            ("delivered", "Retail", D1, 0, 1, 1, money("2.00")),
            (None, "Retail", D1, 1, 1, 2, money("4.00")),
            ("created", "Online", D2, 0, 1, 1, money("1.00")),
            (None, "Online", D2, 1, 1, 1, money("1.00")),
        ],
    )
    expect(tmp_path, "spanning_order_cells", NO_SPANNING)
    expect(tmp_path, "orders_summary", [(1, "Client 1", 1, 4.0), (2, "Client 2", 1, 1.0)])
    assert manifest["counts"] == {"lines": 3, "orders": 2, "clients": 2}
    if arrival == "a-then-b":
        # ... and b.csv's merge rewrote only Retail/Nov 1 and client 1's bucket; the rest is
        # the first version's
        first = manifest["base_version"]
        partitions = manifest["tables"]["order_lines_current"]["partitions"]
        assert [p["location"].split("/")[2] for p in partitions] == [first, manifest["version"]]
        buckets = manifest["tables"]["client_report"]["partitions"]
        assert [p["location"].split("/")[2] for p in buckets] == [manifest["version"], first]
        assert manifest["merge"]["touched_partitions"] == 1
        assert manifest["merge"]["touched_orders"] == 1


def test_a_correction_that_drops_a_line_falls_back_to_its_older_version(
    spark: SparkSession, tmp_path: Path
) -> None:
    # Given a.csv (8:00) with lines (1, 1) and (3, 1) in Retail/Nov 1, and b.csv (9:00)
    # updating (1, 1) and adding order 2 elsewhere
    old = Line(1, 1, units=1, description="Duff Old")
    other = Line(3, 1, client_id=3, units=5)
    a = upload(tmp_path, "a.csv", 8, [old, other])
    merge(spark, tmp_path, 1)
    b = upload(
        tmp_path,
        "b.csv",
        9,
        [
            Line(1, 1, status="delivered", units=4, description="Duff New"),
            Line(2, 1, client_id=2, channel="Online"),
        ],
    )
    merge(spark, tmp_path, 2)
    # When b.csv is re-uploaded at 10:00 without line (1, 1)
    fixed = Line(2, 1, client_id=2, channel="Online", status="broken")
    upload(tmp_path, "b.csv", 10, [fixed], run=2)
    manifest = merge(spark, tmp_path, 3)
    # Then (1, 1) is a.csv's version again, read back from a.csv's run
    expect(
        tmp_path,
        "order_lines_current",
        [line_row(old, a, 8), line_row(fixed, b, 10), line_row(other, a, 8)],
    )
    facts = manifest["merge"]
    assert (facts["changed_batches"], facts["withdrawn_batches"], facts["fallback_lines"]) == (
        [b],
        [b],
        1,
    )
    money = Decimal
    # ... the cell's latest line, which b.csv held, is found again among its lines (a tie
    # of event time and batch: the greater order id)
    expect(
        tmp_path,
        "product_daily",
        [
            (1, "Retail", D1, "Duff 1", at(8), a, 3, 2, 6, money("6.00"), money("3.000")),
            (1, "Online", D1, "Duff 1", at(10), b, 2, 1, 1, money("1.00"), money("0.500")),
        ],
    )
    expect(
        tmp_path,
        "client_orders",
        [
            (1, 1, D1, "Retail", 1, 1, money("1.00"), 1, 0, 0, "Client 1", at(8), a, 1, 1),
            (2, 2, D1, "Online", 1, 1, money("1.00"), 0, 0, 1, "Client 2", at(10), b, 1, 2),
            (3, 3, D1, "Retail", 1, 5, money("5.00"), 1, 0, 0, "Client 3", at(8), a, 1, 3),
        ],
    )
    expect(
        tmp_path,
        "client_report",
        [
            (1, None, None, 1, 1, "Client 1", 1, 1, 1, money("1.00"), 1),
            (1, "created", None, 0, 1, "Client 1", 1, 1, 1, money("1.00"), 1),
            (1, None, "Retail", 1, 0, "Client 1", 1, 1, 1, money("1.00"), 1),
            (2, None, None, 1, 1, "Client 2", 1, 1, 1, money("1.00"), 2),
            (2, "broken", None, 0, 1, "Client 2", 1, 1, 1, money("1.00"), 2),
            (2, None, "Online", 1, 0, "Client 2", 1, 1, 1, money("1.00"), 2),
            (3, None, None, 1, 1, "Client 3", 1, 1, 5, money("5.00"), 3),
            (3, "created", None, 0, 1, "Client 3", 1, 1, 5, money("5.00"), 3),
            (3, None, "Retail", 1, 0, "Client 3", 1, 1, 5, money("5.00"), 3),
        ],
    )
    expect(
        tmp_path,
        "status_daily",
        [
            ("broken", "Online", D1, 0, 1, 1, money("1.00")),
            ("created", "Retail", D1, 0, 2, 2, money("6.00")),
            (None, "Online", D1, 1, 1, 1, money("1.00")),
            (None, "Retail", D1, 1, 2, 2, money("6.00")),
        ],
    )
    expect(
        tmp_path,
        "orders_summary",
        [(1, "Client 1", 1, 1.0), (2, "Client 2", 1, 1.0), (3, "Client 3", 1, 5.0)],
    )
    assert manifest["counts"] == {"lines": 3, "orders": 3, "clients": 3}


def test_a_line_moving_partition_and_client_makes_its_order_span_two_cells(
    spark: SparkSession, tmp_path: Path
) -> None:
    # Given order 1 of client 1 in Retail/Nov 1 (two lines, one broken)
    a = upload(
        tmp_path,
        "a.csv",
        8,
        [Line(1, 1, client_name="Moe"), Line(1, 2, status="broken", client_name="Moe")],
    )
    merge(spark, tmp_path, 1)
    # When b.csv moves line (1, 1) to Online/Nov 2 and to client 2
    moved = Line(
        1,
        1,
        client_id=2,
        client_name="Barney",
        channel="Online",
        day="2026-11-02",
        status="delivered",
    )
    b = upload(tmp_path, "b.csv", 9, [moved])
    manifest = merge(spark, tmp_path, 2)
    # Then the line left its old partition and client
    expect(
        tmp_path,
        "order_lines_current",
        [line_row(Line(1, 2, status="broken", client_name="Moe"), a, 8), line_row(moved, b, 9)],
    )
    assert manifest["merge"]["touched_partitions"] == 2
    money = Decimal
    expect(
        tmp_path,
        "client_orders",
        [
            (1, 1, D1, "Retail", 1, 1, money("1.00"), 0, 0, 1, "Moe", at(8), a, 2, 1),
            (2, 1, D2, "Online", 1, 1, money("1.00"), 0, 1, 0, "Barney", at(9), b, 1, 2),
        ],
    )
    expect(
        tmp_path,
        "client_report",
        [
            (1, None, None, 1, 1, "Moe", 1, 1, 1, money("1.00"), 1),
            (1, "broken", None, 0, 1, "Moe", 1, 1, 1, money("1.00"), 1),
            (1, None, "Retail", 1, 0, "Moe", 1, 1, 1, money("1.00"), 1),
            (2, None, None, 1, 1, "Barney", 1, 1, 1, money("1.00"), 2),
            (2, "delivered", None, 0, 1, "Barney", 1, 1, 1, money("1.00"), 2),
            (2, None, "Online", 1, 0, "Barney", 1, 1, 1, money("1.00"), 2),
        ],
    )
    # ... and order 1 now spans two cells, each counted once per cell and status
    expect(
        tmp_path,
        "spanning_order_cells",
        [
            (1, None, "Online", D2),
            (1, None, "Retail", D1),
            (1, "broken", "Retail", D1),
            (1, "delivered", "Online", D2),
        ],
    )
    expect(
        tmp_path,
        "status_daily",
        [
            ("broken", "Retail", D1, 0, 1, 1, money("1.00")),
            ("delivered", "Online", D2, 0, 1, 1, money("1.00")),
            (None, "Online", D2, 1, 1, 1, money("1.00")),
            (None, "Retail", D1, 1, 1, 1, money("1.00")),
        ],
    )
    expect(tmp_path, "orders_summary", [(1, "Moe", 1, 1.0), (2, "Barney", 1, 1.0)])
    assert manifest["counts"] == {"lines": 2, "orders": 1, "clients": 2}
    # When c.csv moves it back: the order spans one cell again and its rows go
    c = upload(tmp_path, "c.csv", 10, [Line(1, 1, client_name="Moe")])
    merge(spark, tmp_path, 3)
    expect(tmp_path, "spanning_order_cells", NO_SPANNING)
    expect(
        tmp_path,
        "client_orders",
        [(1, 1, D1, "Retail", 2, 2, money("2.00"), 1, 0, 1, "Moe", at(10), c, 1, 1)],
    )
    expect(tmp_path, "orders_summary", [(1, "Moe", 1, 2.0)])


# --- Re-runs and stale plans ---------------------------------------------------------------------


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_a_re_run_of_a_built_version_changes_nothing(spark: SparkSession, tmp_path: Path) -> None:
    # Given a version built from a plan
    upload(tmp_path, "a.csv", 8, A_LINES)
    plan = plan_state(tmp_path, run_id="exec-1", token="00000001", now=at(20))
    assert plan is not None
    run_merge(tmp_path, plan, spark=spark)
    before = _files(tmp_path)
    # When the job runs the same plan again (a retried execution)
    run_merge(tmp_path, plan, spark=spark)
    # Then nothing is written
    assert _files(tmp_path) == before
    # When a run stopped before its version manifest is retried
    version = tmp_path / "state" / "versions" / plan["version"]
    (version / "_state.json").unlink()
    run_merge(tmp_path, plan, spark=spark)
    # Then the version is written whole again, the same tables
    publish_state(tmp_path, plan, at(20))
    expect(tmp_path, "order_lines_current", [line_row(x, batch("a.csv"), 8) for x in A_LINES])
    assert sorted(p.name for p in version.iterdir()) == sorted(["_state.json", *STATE_TABLES])


def test_a_stale_plan_writes_nothing(spark: SparkSession, tmp_path: Path) -> None:
    # Given two plans made on the same published version (two executions racing)
    upload(tmp_path, "a.csv", 8, A_LINES)
    merge(spark, tmp_path, 1)
    upload(tmp_path, "b.csv", 9, B_LINES)
    first = plan_state(tmp_path, run_id="exec-2", token="00000002", now=at(21))
    second = plan_state(tmp_path, run_id="exec-3", token="00000003", now=at(21))
    assert first is not None and second is not None
    # When the first is merged and published
    run_merge(tmp_path, first, spark=spark)
    publish_state(tmp_path, first, at(21))
    published = _files(tmp_path)
    # Then the second, based on the version before, writes nothing
    run_merge(tmp_path, second, spark=spark)
    assert _files(tmp_path) == published
    assert not (tmp_path / "state" / "versions" / second["version"]).exists()


def test_a_plan_for_a_first_version_is_stale_once_a_state_is_published(
    spark: SparkSession, tmp_path: Path
) -> None:
    upload(tmp_path, "a.csv", 8, A_LINES)
    first = plan_state(tmp_path, run_id="exec-1", token="00000001", now=at(20))
    again = plan_state(tmp_path, run_id="exec-2", token="00000002", now=at(20))
    assert first is not None and again is not None and again["base"] is None
    run_merge(tmp_path, first, spark=spark)
    publish_state(tmp_path, first, at(20))
    run_merge(tmp_path, again, spark=spark)
    assert not (tmp_path / "state" / "versions" / again["version"]).exists()
    assert current_version(tmp_path)["version"] == first["version"]


def test_an_empty_change_still_makes_a_complete_version(
    spark: SparkSession, tmp_path: Path
) -> None:
    # Given a published state, then a.csv withdrawn from the published batches altogether
    a = upload(tmp_path, "a.csv", 8, A_LINES)
    merge(spark, tmp_path, 1)
    (tmp_path / naming.manifest_key(a)).unlink()
    # When the state is merged
    manifest = merge(spark, tmp_path, 2)
    # Then the version is valid and empty
    assert manifest["batches"] == {}
    assert manifest["counts"] == {"lines": 0, "orders": 0, "clients": 0}
    tables = read_version(tmp_path, manifest)
    assert all(rows == [] for rows in tables.values())
    assert manifest["merge"]["withdrawn_batches"] == [a]


def test_times_are_utc(spark: SparkSession, tmp_path: Path) -> None:
    upload(tmp_path, "a.csv", 8, A_LINES)
    merge(spark, tmp_path, 1)
    (event,) = {row[12] for row in table(tmp_path, "order_lines_current")}
    assert event == datetime.fromisoformat("2026-11-02T08:00:00+00:00")
