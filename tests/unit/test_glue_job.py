"""The Glue job end to end, in-process on the test session: outputs, manifest, failures."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from bench.generate_orders import generate_orders
from duffbeer.contract import REJECT_COLUMNS
from duffbeer.errors import (
    DelimiterError,
    EmptyFileError,
    EncodingError,
    FileTooLargeError,
    InvalidFileError,
    MissingColumnsError,
    RejectThresholdExceededError,
    TooManyChannelsError,
    TotalsOutOfRangeError,
)
from glue_jobs.orders import session
from glue_jobs.orders.read import (
    BLOCK_COLUMN,
    HEAD_BYTES,
    ROW_ID_COLUMN,
    line_separator,
    parse_header,
    read_orders,
)
from glue_jobs.orders.storage import HadoopStorage
from glue_jobs.transform_orders import main

pytestmark = pytest.mark.spark

AssertRows = Callable[[DataFrame, Sequence[Row]], None]
SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "orders.csv"
HEADER = (
    "client_id,client_name,order_id,product_id,product_description,product_price,"
    "product_ccf,product_volume,point_of_sale_channel,status"
)


def run_job(
    spark: SparkSession, source: Path, out: Path, batch: str, run: str, *extra: str
) -> dict:
    argv = [
        "transform_orders.py",
        "--JOB_NAME",
        "transform_orders",
        "--input_path",
        str(source),
        "--output_path",
        str(out),
        "--batch_id",
        batch,
        "--run_id",
        run,
        "--ingest_date",
        "2026-11-28",
        *extra,
    ]
    return dict(main(argv, spark))


def on_disk(out: Path, batch: str, run: str) -> dict:
    """The run manifest the job wrote last."""
    return json.loads((out / "runs" / batch / run / "_manifest.json").read_text())


def files_under(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_sample_end_to_end(spark: SparkSession, tmp_path: Path, assert_rows: AssertRows) -> None:
    # Given the bundled five-row sample (no order_date column)
    out = tmp_path / "processed"
    # When the job runs on it
    manifest = run_job(spark, SAMPLE, out, "orders-sample", "run-1")
    # Then the manifest has the sample's figures, worked out by hand:
    # 2.50*6 + 2.00*12 + 3.00*8 + 4.00*24 + 2.50*6 = 15+24+24+96+15 = 174.00; units 56
    run = "runs/orders-sample/run-1/"
    lines = f"{run}order_lines/"
    partitions = [
        {
            "point_of_sale_channel": "B2B",
            "order_date": "2026-11-28",
            "rows": 2,
            "location": f"{lines}point_of_sale_channel=B2B/order_date=2026-11-28/",
        },
        {
            "point_of_sale_channel": "Online",
            "order_date": "2026-11-28",
            "rows": 1,
            "location": f"{lines}point_of_sale_channel=Online/order_date=2026-11-28/",
        },
        {
            "point_of_sale_channel": "Retail",
            "order_date": "2026-11-28",
            "rows": 2,
            "location": f"{lines}point_of_sale_channel=Retail/order_date=2026-11-28/",
        },
    ]
    outputs = {
        "order_lines": lines,
        "rejects": f"{run}rejects/",
        "reports": {
            "client_sales": f"{run}reports/client_sales/",
            "product_channel_sales": f"{run}reports/product_channel_sales/",
            "order_status": f"{run}reports/order_status/",
        },
    }
    assert {
        k: manifest[k]
        for k in (
            "status",
            "error",
            "rows_read",
            "rows_valid",
            "rows_rejected",
            "rejects_by_reason",
            "duplicates",
            "total_sales",
            "total_units",
            "partitions",
            "outputs",
            "warnings",
            "ingest_date",
        )
    } == {
        "status": "SUCCEEDED",
        "error": None,
        "rows_read": 5,
        "rows_valid": 5,
        "rows_rejected": 0,
        "rejects_by_reason": {},
        "duplicates": 0,
        "total_sales": "174.00",
        "total_units": 56,
        "partitions": partitions,
        "outputs": outputs,
        "warnings": [],
        "ingest_date": "2026-11-28",
    }
    assert manifest["source"] == {
        "path": str(SAMPLE),
        "bucket": None,
        "key": None,
        "etag": None,
        "version_id": None,
        "size": SAMPLE.stat().st_size,
        "event_time": "2026-11-28T00:00:00.000Z",
        "sequencer": None,
        "rerun_at": None,
    }
    # ... the run publishes nothing itself (the Store step writes the batch pointer)
    assert manifest["published"] is None
    assert not (out / "manifests").exists()
    assert on_disk(out, "orders-sample", "run-1") == manifest
    # ... one Parquet file per partition and per report, no checksum side files
    parquet = sorted(str(p.relative_to(out)) for p in out.rglob("*.parquet"))
    assert [p.rsplit("/", 1)[0] + "/" for p in parquet] == sorted(
        [p["location"] for p in partitions] + [f"{run}rejects/"] + list(outputs["reports"].values())
    )
    assert list(out.rglob("*.crc")) == []
    # ... and the reports hold the sample's figures
    reports = out / run / "reports"
    assert_rows(
        spark.read.parquet(str(reports / "client_sales")),
        [
            Row(
                client_id=1001,
                client_name="Moe's Tavern",
                total_orders=1,
                total_lines=1,
                total_units=6,
                total_sales=Decimal("15.00"),
            ),
            Row(
                client_id=1002,
                client_name="Kwik-E-Mart",
                total_orders=1,
                total_lines=1,
                total_units=12,
                total_sales=Decimal("24.00"),
            ),
            Row(
                client_id=1003,
                client_name="Krusty Burger",
                total_orders=1,
                total_lines=1,
                total_units=8,
                total_sales=Decimal("24.00"),
            ),
            Row(
                client_id=1004,
                client_name="Springfield Mall",
                total_orders=1,
                total_lines=1,
                total_units=24,
                total_sales=Decimal("96.00"),
            ),
            Row(
                client_id=1005,
                client_name="Moe's Tavern",
                total_orders=1,
                total_lines=1,
                total_units=6,
                total_sales=Decimal("15.00"),
            ),
        ],
    )
    assert_rows(
        spark.read.parquet(str(reports / "order_status")),
        [
            Row(status="broken", orders=1, lines=1, total_sales=Decimal("24.00")),
            Row(status="created", orders=2, lines=2, total_sales=Decimal("111.00")),
            Row(status="delivered", orders=2, lines=2, total_sales=Decimal("39.00")),
        ],
    )
    assert_rows(
        spark.read.parquet(str(reports / "product_channel_sales")),
        [
            Row(
                product_id=102,
                product_description="Duff Classic",
                point_of_sale_channel="B2B",
                orders=1,
                units=6,
                total_sales=Decimal("15.00"),
                total_volume_l=Decimal("1.980"),
            ),
            Row(
                product_id=102,
                product_description="Duff Classic",
                point_of_sale_channel="Retail",
                orders=1,
                units=6,
                total_sales=Decimal("15.00"),
                total_volume_l=Decimal("1.980"),
            ),
            Row(
                product_id=103,
                product_description="Duff Lite",
                point_of_sale_channel="B2B",
                orders=1,
                units=12,
                total_sales=Decimal("24.00"),
                total_volume_l=Decimal("6.000"),
            ),
            Row(
                product_id=104,
                product_description="Duff Dry",
                point_of_sale_channel="Online",
                orders=1,
                units=8,
                total_sales=Decimal("24.00"),
                total_volume_l=Decimal("2.000"),
            ),
            Row(
                product_id=105,
                product_description="Duff Special",
                point_of_sale_channel="Retail",
                orders=1,
                units=24,
                total_sales=Decimal("96.00"),
                total_volume_l=Decimal("24.000"),
            ),
        ],
    )
    curated = spark.read.parquet(str(out / lines))
    assert_rows(curated.agg(F.sum("line_total").alias("sales")), [Row(sales=Decimal("174.00"))])


def test_rejects_keep_original_text_reason_and_row(
    spark: SparkSession, tmp_path: Path, assert_rows: AssertRows
) -> None:
    # Given three valid rows, then a bad price, a short row and a repeat of the first row
    rows = [
        "1001,Moe's Tavern,5678,102,Duff Classic,2.50,6,0.33,Retail,created",
        "1002,Kwik-E-Mart,5679,103,Duff Lite,2.00,12,0.5,B2B,delivered",
        '1003,"Krusty, ""The"" Burger",5680,104,Duff Dry,3.00,8,0.25,Online,broken',
        "1004,Springfield Mall,5681,105,Duff Special,4.0O,24,1.00,Retail,created",
        "1005,Moe's Tavern,5682,102,Duff Classic,2.50,6,0.33,B2B",
        "1001,Moe's Tavern,5678,102,Duff Classic,2.50,6,0.33,Retail,created",
    ]
    source = tmp_path / "orders.csv"
    source.write_text("\n".join([HEADER, *rows]) + "\n")
    out = tmp_path / "processed"
    # When the job runs with a lenient threshold
    manifest = run_job(spark, source, out, "b", "r", "--max_reject_ratio", "0.5")
    # Then valid + rejected account for every row read, and the rejects say what and where
    assert (manifest["rows_read"], manifest["rows_valid"], manifest["rows_rejected"]) == (6, 3, 3)
    assert manifest["rejects_by_reason"] == {
        "bad_price": 1,
        "duplicate_line": 1,
        "malformed_row": 1,
    }
    assert manifest["total_sales"] == "63.00"  # 15 + 24 + 24
    rejects = spark.read.parquet(str(out / "runs/b/r/rejects"))
    assert [(f.name, f.dataType.simpleString()) for f in rejects.schema.fields] == list(
        REJECT_COLUMNS
    )
    assert_rows(
        rejects.select(
            "client_id",
            "product_price",
            "status",
            "order_date",
            "reject_reason",
            "reject_detail",
            "source_row",
            "batch_id",
        ),
        [
            Row(
                client_id="1004",
                product_price="4.0O",
                status="created",
                order_date=None,
                reject_reason="bad_price",
                reject_detail="product_price must be decimal >= 0 with a dot separator, at "
                "most 2 decimals, got '4.0O'",
                source_row=4,
                batch_id="b",
            ),
            Row(
                client_id="1005",
                product_price="2.50",
                status=None,
                order_date=None,
                reject_reason="malformed_row",
                reject_detail=f"the row does not have the header's number of fields: {rows[4]}",
                source_row=5,
                batch_id="b",
            ),
            Row(
                client_id="1001",
                product_price="2.50",
                status="created",
                order_date=None,
                reject_reason="duplicate_line",
                reject_detail="line key (order_id, product_id) = (5678, 102) already "
                "appeared in an earlier row",
                source_row=6,
                batch_id="b",
            ),
        ],
    )
    client = spark.read.parquet(str(out / "runs/b/r/reports/client_sales"))
    assert_rows(
        client.where("client_id = 1003").select("client_name"),
        [Row(client_name='Krusty, "The" Burger')],
    )


def test_generated_file_every_row_accounted_for(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a generated CRLF file without order_date, 3% dirty rows of every reject kind,
    # split over several input partitions
    source = tmp_path / "gen.csv"
    generated = generate_orders(
        source, 3000, dirty_fraction=0.03, seed=7, order_date_column=False, crlf=True
    )
    monkeypatch.setattr(session, "MAX_SPLIT_BYTES", 64 * 1024)
    monkeypatch.setattr(session, "MIN_SPLIT_BYTES", 1024)
    cores = spark.sparkContext.defaultParallelism
    assert session.split_bytes(source.stat().st_size, cores) * 3 < source.stat().st_size
    # When the job runs on it
    manifest = run_job(spark, source, tmp_path / "out", "gen", "r1")
    # Then each dirty row is rejected for the reason it was made with, no more, no less
    assert manifest["status"] == "SUCCEEDED"
    assert manifest["rejects_by_reason"] == generated.dirty_by_reason
    assert manifest["rows_read"] == 3000
    assert manifest["rows_valid"] + manifest["rows_rejected"] == 3000
    assert manifest["rows_rejected"] == 90
    assert sum(p["rows"] for p in manifest["partitions"]) == manifest["rows_valid"]
    # ... and rejected rows are numbered 1..3000 in file order (every 33rd row is dirty)
    rejects = spark.read.parquet(str(tmp_path / "out/runs/gen/r1/rejects"))
    numbers = sorted(r.source_row for r in rejects.select("source_row").collect())
    assert numbers == list(range(33, 3001, 33))[:90]


def make_file(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


FAULTS = {
    "empty": (b"", EmptyFileError, "is empty"),
    "header-only": (f"{HEADER}\r\n".encode(), EmptyFileError, "holds only a header row"),
    "semicolons": (
        f"{HEADER}\n1,a,1,1,b,1.00,1,1,Retail,created\n".replace(",", ";").encode(),
        DelimiterError,
        "the header is delimited by ';', not ','",
    ),
    "missing-column": (
        f"{HEADER.replace(',status', '')}\n1,a,1,1,b,1.00,1,1,Retail\n".encode(),
        MissingColumnsError,
        "required columns ['status'] are missing",
    ),
    # Past the 64 KiB the driver samples, so found by the Spark scan (the header is added
    # by the test): 2000 good rows, then one with a Latin-1 byte.
    "latin-1-late": (
        b"".join(f"1,Moe,{i},1,Duff,1.00,1,1,Retail,created\n".encode() for i in range(1, 2001))
        + "2,Mo\xe9,9999,1,Duff,1.00,1,1,Retail,created\n".encode("latin-1"),
        EncodingError,
        "1 rows hold bytes that are not UTF-8",
    ),
    # Ten valid lines of 9,999,999,999,990,000.00 each: every line fits its column, their
    # sum does not fit the 64-bit whole-cent sums behind the reports.
    "totals-beyond-exact-sums": (
        f"{HEADER}\n".encode()
        + b"".join(
            f"1,Moe,{i},1,Duff,9999999999.99,1000000,1,Retail,created\n".encode()
            for i in range(1, 11)
        ),
        TotalsOutOfRangeError,
        "total sales 99999999999900000.00 exceeds 92233720368547758.07",
    ),
    # 10,000 valid lines, each in a channel of its own: each would be a partition of every
    # table and a column of the reports.
    "ten-thousand-channels": (
        f"{HEADER}\n".encode()
        + b"".join(
            f"1,Moe,{i},1,Duff,1.00,1,1,Shop {i:05d},created\n".encode() for i in range(1, 10_001)
        ),
        TooManyChannelsError,
        "its valid rows name 10000 distinct channels, more than the 50 a batch may have "
        "(e.g. Shop 00001, Shop 00002",
    ),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_file_level_fault_fails_the_batch_and_publishes_nothing(
    spark: SparkSession, tmp_path: Path, fault: str
) -> None:
    content, error, message = FAULTS[fault]
    if fault == "latin-1-late":
        content = f"{HEADER}\n".encode() + content
    source = make_file(tmp_path / "orders.csv", content)
    out = tmp_path / "processed"
    # When the job runs on a faulty file
    with pytest.raises(error) as raised:
        run_job(spark, source, out, "b", "r")
    # Then it raises the named error, writes a FAILED manifest naming it, publishes nothing
    assert type(raised.value) is error
    assert message in str(raised.value)
    manifest = on_disk(out, "b", "r")
    assert (manifest["status"], manifest["error"]) == (
        "FAILED",
        {"type": error.__name__, "message": str(raised.value)},
    )
    assert (manifest["published"], manifest["outputs"], manifest["partitions"]) == (None, None, [])
    assert not (out / "runs/b/r/order_lines").exists()
    assert not (out / "runs/b/r/reports").exists()


def test_file_larger_than_the_limit(spark: SparkSession, tmp_path: Path) -> None:
    out = tmp_path / "processed"
    with pytest.raises(FileTooLargeError, match=r"is 462 bytes, more than the limit of 100"):
        run_job(spark, SAMPLE, out, "b", "r", "--max_file_bytes", "100")
    assert on_disk(out, "b", "r")["error"]["type"] == "FileTooLargeError"


def test_reject_share_above_threshold_fails_but_keeps_rejects(
    spark: SparkSession, tmp_path: Path
) -> None:
    # Given 1 bad row out of 5 (20%) and the default 5% limit
    source = make_file(
        tmp_path / "o.csv", SAMPLE.read_bytes().replace(b",6,0.33,B2B", b",0,0.33,B2B")
    )
    out = tmp_path / "processed"
    # When the job runs
    with pytest.raises(RejectThresholdExceededError, match=r"1 of 5 rows rejected \(20.00%\)"):
        run_job(spark, source, out, "b", "r")
    # Then the batch fails with its counts, the rejects stay for inspection, no lines
    manifest = on_disk(out, "b", "r")
    assert (manifest["status"], manifest["rows_read"], manifest["rejects_by_reason"]) == (
        "FAILED",
        5,
        {"bad_quantity": 1},
    )
    assert spark.read.parquet(str(out / "runs/b/r/rejects")).count() == 1
    assert not (out / "runs/b/r/order_lines").exists()


def test_rerun_is_idempotent_and_leaves_other_batches_alone(
    spark: SparkSession, tmp_path: Path
) -> None:
    # Given batch "other" and batch "b" each run once
    out = tmp_path / "processed"
    run_job(spark, SAMPLE, out, "other", "run-o")
    first = run_job(spark, SAMPLE, out, "b", "run-1")
    other_files = files_under(out / "runs/other")
    lines_before = {k: v for k, v in files_under(out / "runs/b").items() if "order_lines" in k}
    # When batch "b" runs again with the same run id
    second = run_job(spark, SAMPLE, out, "b", "run-1")
    # Then it writes the same outputs (only the clock fields differ) ...
    clock = ("started_at", "finished_at", "timings")
    assert {k: v for k, v in second.items() if k not in clock} == {
        k: v for k, v in first.items() if k not in clock
    }
    lines_after = {k: v for k, v in files_under(out / "runs/b").items() if "order_lines" in k}
    assert sorted(v for v in lines_after.values()) == sorted(v for v in lines_before.values())
    # ... never duplicates a line, and never touches the other batch
    assert spark.read.parquet(str(out / "runs/b/run-1/order_lines")).count() == 5
    assert files_under(out / "runs/other") == other_files


def test_source_uri_names_the_staged_object(spark: SparkSession, tmp_path: Path) -> None:
    # Given a local copy of an S3 object, as the local runner stages it
    out = tmp_path / "processed"
    # When the job runs on the copy and is told where it came from
    manifest = run_job(
        spark, SAMPLE, out, "b", "run-1", "--source_uri", "s3://duff-raw/incoming/orders.csv"
    )
    # Then the manifest's source names the S3 object, not the local file
    assert {k: manifest["source"][k] for k in ("path", "bucket", "key")} == {
        "path": "s3://duff-raw/incoming/orders.csv",
        "bucket": "duff-raw",
        "key": "incoming/orders.csv",
    }


# Object keys with characters Spark's path globbing gives a meaning to, and others that
# URIs escape, as local paths (a deep prefix included). Each lies next to decoys that a
# globbed path would also read.
ODD_NAMES = [
    "orders*.csv",
    "orders?.csv",
    "orders[1].csv",
    "orders{a,b}.csv",
    "orders\\[1].csv",
    "my orders+1%20%.csv",
    "bestellungen-äöü-日本.csv",
    "co:lon.csv",
    "a/b/c/d/e/f/g/orders.csv",
]
DECOYS = ["ordersX.csv", "orders1.csv", "ordersa.csv", "ordersb.csv", "orders.csv"]


def _odd_tree(root: Path, name: str) -> Path:
    """The sample under `name`, decoys of 50 rows each beside it (and in its folder)."""
    target = root / name
    target.parent.mkdir(parents=True, exist_ok=True)
    decoy = f"{HEADER}\n" + "".join(
        f"9,Decoy,{i},1,Duff,1.00,1,1,Retail,created\n" for i in range(1, 51)
    )
    for folder in {root, target.parent}:
        for other in DECOYS:
            if folder / other != target:
                (folder / other).write_text(decoy)
    target.write_bytes(SAMPLE.read_bytes())
    return target


@pytest.mark.parametrize("name", ODD_NAMES)
def test_the_job_reads_exactly_the_key_it_is_given(
    spark: SparkSession, tmp_path: Path, name: str
) -> None:
    # Given the sample saved under an odd name, next to files a glob of it would match
    source = _odd_tree(tmp_path / "in", name)
    # When the file is listed, checked and parsed as the job does
    files = HadoopStorage(spark).list_inputs(str(source))
    head = source.read_bytes()
    layout = parse_header(head, file_size=len(head), where=name)
    rows = read_orders(spark, [f.path for f in files], layout)
    # Then exactly that file is read: its five rows and its size, no decoy
    assert [f.size for f in files] == [len(head)]
    assert sorted(r.client_id for r in rows.select("client_id").collect()) == [
        "1001",
        "1002",
        "1003",
        "1004",
        "1005",
    ]


def test_an_odd_key_end_to_end(spark: SparkSession, tmp_path: Path) -> None:
    # Given the sample under a deep prefix and a name made of glob characters, next to a
    # decoy far above the size limit that the glob would match
    name = "in/2026/11/28/day one/orders [1]{a,b}*?+%20 é.csv"
    source = _odd_tree(tmp_path, name)
    (source.parent / "orders 1a.csv").write_text(f"{HEADER}\n" + "x" * 5000)
    out = tmp_path / "processed"
    # When the job runs on it with a limit the sample fits but the decoy does not
    manifest = run_job(spark, source, out, "b", "r", "--max_file_bytes", "1000")
    # Then it publishes the sample's figures and records the object as named
    assert (manifest["status"], manifest["rows_read"], manifest["total_sales"]) == (
        "SUCCEEDED",
        5,
        "174.00",
    )
    assert manifest["source"]["path"] == str(source)
    assert manifest["source"]["size"] == SAMPLE.stat().st_size


@pytest.mark.parametrize("name", ["_orders.csv", ".orders.csv"])
def test_a_name_spark_would_skip_is_refused(spark: SparkSession, tmp_path: Path, name: str) -> None:
    # Given the sample under a name Spark takes for a marker or a temporary file
    source = make_file(tmp_path / name, SAMPLE.read_bytes())
    out = tmp_path / "processed"
    # When the job runs on it
    # Then it refuses it by name, rather than reading no row and calling the file empty
    with pytest.raises(InvalidFileError, match=r"Spark does not read files whose names start"):
        run_job(spark, source, out, "b", "r")
    assert on_disk(out, "b", "r")["error"]["type"] == "InvalidFileError"


def test_quoted_line_breaks_are_part_of_their_field(
    spark: SparkSession, tmp_path: Path, assert_rows: AssertRows
) -> None:
    # Given a CRLF file whose quoted fields hold line breaks (CRLF, a bare LF, a blank line,
    # one in the last column), a line of spaces, a quoted comma and a short row
    rows = [
        '1001,"Moe\'s\r\nTavern",5678,102,Duff Classic,2.50,6,0.33,Retail,created',
        '1002,Kwik-E-Mart,5679,103,"Duff\nLite",2.00,12,0.5,B2B,delivered',
        "   ",
        '1003,"Krusty, ""The""\r\n\r\nBurger",5680,104,Duff Dry,3.00,8,0.25,Online,broken',
        "1004,Springfield Mall,5681,105,Duff Special,4.00,24,1.00,Retail",
        '1005,Moe\'s Tavern,5682,102,Duff Classic,2.50,6,0.33,B2B,"created\r\n"',
    ]
    source = make_file(tmp_path / "orders.csv", "\r\n".join([HEADER, *rows, ""]).encode())
    out = tmp_path / "processed"
    # When the job runs on it
    manifest = run_job(spark, source, out, "b", "r", "--max_reject_ratio", "0.5")
    # Then each quoted line break stays in its field, as it was in the file; the records
    # are numbered as records; the short row is still malformed; the spaces are skipped
    assert (manifest["rows_read"], manifest["rows_valid"]) == (5, 3)
    assert manifest["rejects_by_reason"] == {"bad_status": 1, "malformed_row": 1}
    curated = spark.read.parquet(str(out / "runs/b/r/order_lines"))
    assert_rows(
        curated.select("client_id", "client_name", "product_description"),
        [
            Row(client_id=1001, client_name="Moe's\r\nTavern", product_description="Duff Classic"),
            Row(client_id=1002, client_name="Kwik-E-Mart", product_description="Duff\nLite"),
            Row(
                client_id=1003,
                client_name='Krusty, "The"\r\n\r\nBurger',
                product_description="Duff Dry",
            ),
        ],
    )
    rejects = spark.read.parquet(str(out / "runs/b/r/rejects"))
    assert_rows(
        rejects.select("client_id", "status", "reject_reason", "source_row"),
        [
            Row(client_id="1004", status=None, reject_reason="malformed_row", source_row=4),
            Row(client_id="1005", status="created\r\n", reject_reason="bad_status", source_row=5),
        ],
    )


def test_multi_line_parse_of_a_file_without_line_breaks_matches_the_line_parse(
    spark: SparkSession, tmp_path: Path
) -> None:
    # Given a generated CRLF file with dirty rows of every kind and quoted fields
    source = tmp_path / "gen.csv"
    generate_orders(source, 2000, dirty_fraction=0.05, seed=5, crlf=True)
    head = source.read_bytes()[:HEAD_BYTES]
    layout = parse_header(head, file_size=source.stat().st_size, where="gen.csv")
    separator = line_separator(head)
    assert separator == "\r\n"
    # When it is parsed line by line and as multi-line records
    by_line, by_record = (
        read_orders(spark, [str(source)], layout, multi_line=multi, line_sep="\r\n")
        .drop(BLOCK_COLUMN, ROW_ID_COLUMN)
        .collect()
        for multi in (False, True)
    )
    # Then both give the same rows in the same order
    assert by_record == by_line
    assert len(by_line) == 2000
