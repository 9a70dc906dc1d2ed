"""Every row rule, normalisation and reject reason of the data contract, on tiny inline CSVs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from glue_jobs.orders.job import keep
from glue_jobs.orders.read import ROW_ID_COLUMN, parse_header, read_orders
from glue_jobs.orders.reports import (
    client_sales,
    conform_curated,
    curated_lines,
    order_status,
    product_channel_sales,
    report_totals,
)
from glue_jobs.orders.validate import (
    DETAIL_COLUMN,
    REASON_COLUMN,
    add_details,
    duplicate_keys,
    mark_duplicates,
    validate,
)

pytestmark = pytest.mark.spark

HEADER = (
    "client_id,client_name,order_id,product_id,product_description,product_price,"
    "product_ccf,product_volume,point_of_sale_channel,status,order_date"
)
GOOD = "1001,Moe's Tavern,5678,102,Duff Classic,2.50,6,0.33,Retail,created,2026-11-27"
INGEST = date(2026, 11, 28)
AssertRows = Callable[[DataFrame, Sequence[Row]], None]


def checked(spark: SparkSession, tmp_path: Path, text: str) -> DataFrame:
    """Read, validate and de-duplicate an inline CSV as the job does."""
    path = tmp_path / "orders.csv"
    path.write_bytes(text.encode("utf-8"))
    data = path.read_bytes()
    layout = parse_header(data, file_size=len(data), where=str(path))
    # Kept like the job keeps them: aggregating straight over the
    # rules would generate one method too large for Spark to compile.
    rows = keep(
        validate(
            read_orders(spark, [str(path)], layout),
            has_order_date=layout.has_order_date,
            ingest_date=INGEST,
        )
    )
    return add_details(mark_duplicates(rows, duplicate_keys(rows)))


def reasons(df: DataFrame) -> DataFrame:
    return df.select("order_id", "product_id", REASON_COLUMN)


def with_field(column: str, value: str) -> str:
    fields = dict(zip(HEADER.split(","), GOOD.split(","), strict=True))
    fields[column] = value
    return ",".join(fields.values()).replace("5678,", "9999,", 1)


# One row breaking a single rule each; all of them are checked in one file (one Spark run).
RULE_CASES = [
    ("client_id", "0", "bad_client_id"),
    ("client_id", "-3", "bad_client_id"),
    ("client_id", "12.0", "bad_client_id"),
    ("client_id", "2147483648", "bad_client_id"),
    ("client_name", "   ", "bad_client_name"),
    ("order_id", "abc", "bad_order_id"),
    ("product_id", "0", "bad_product_id"),
    ("product_description", '"  "', "bad_product_description"),
    ("product_price", "-1.00", "bad_price"),
    ("product_price", '"2,50"', "bad_price"),
    ("product_price", "2.505", "bad_price"),
    ("product_ccf", "0", "bad_quantity"),
    ("product_ccf", "1.5", "bad_quantity"),
    ("product_volume", "0", "bad_volume"),
    ("product_volume", "0.3333", "bad_volume"),
    ("point_of_sale_channel", "  ", "bad_channel"),
    ("status", "shipped", "bad_status"),
    ("order_date", "2026-02-30", "bad_date"),
    ("order_date", "2026-00-10", "bad_date"),
    ("order_date", "27/11/2026", "bad_date"),
    ("order_date", "2026-11-27T10:00", "bad_date"),
    ("order_date", "", "bad_date"),
    ("client_id", "", "missing_field"),
    ("client_name", "", "missing_field"),
    ("status", '""', "missing_field"),
    ("client_name", "N" * 201, "field_too_long"),
    ("product_description", "D" * 201, "field_too_long"),
    ("point_of_sale_channel", "C" * 51, "field_too_long"),
]


@pytest.fixture(scope="module")
def rule_rows(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> list[Row]:
    """One valid row, then one row per case (order 9000 + case), checked in file order."""
    bad = [
        with_field(column, value).replace("9999,", f"{9000 + i},", 1)
        for i, (column, value, _) in enumerate(RULE_CASES)
    ]
    text = "\n".join([HEADER, GOOD, *bad]) + "\n"
    result = checked(spark, tmp_path_factory.mktemp("rules"), text)
    return result.orderBy(ROW_ID_COLUMN).select("order_id", "product_id", REASON_COLUMN).collect()


@pytest.mark.parametrize(("column", "value", "reason"), RULE_CASES)
def test_each_rule_rejects_with_its_reason(
    rule_rows: list[Row], column: str, value: str, reason: str
) -> None:
    # Given one valid row and rows breaking a single rule each
    case = [c[:2] for c in RULE_CASES].index((column, value))
    # When the file is checked (rule_rows)
    # Then the valid row is kept and the row breaking this rule has its reason
    assert rule_rows[0] == Row(order_id="5678", product_id="102", reject_reason=None)
    order_id = str(9000 + case) if column != "order_id" else value
    assert rule_rows[1 + case] == Row(
        order_id=order_id,
        product_id="102" if column != "product_id" else value,
        reject_reason=reason,
    )


def test_a_line_total_beyond_its_column_is_a_bad_quantity(
    spark: SparkSession, tmp_path: Path, assert_rows: AssertRows
) -> None:
    # Given the highest price with the largest quantity whose total fits decimal(18,2)
    # (9999999999.99 x 1000000 = 9999999999990000.00), one more unit, and the largest
    # quantity at a price (4656612.87) that takes any quantity
    rows = [
        "1,Ann,10,100,Duff,9999999999.99,1000000,0.5,Retail,created,2026-11-27",
        "1,Ann,11,100,Duff,9999999999.99,1000001,0.5,Retail,created,2026-11-27",
        "1,Ann,12,100,Duff,4656612.87,2147483647,0.5,Retail,created,2026-11-27",
    ]
    # When they are checked
    result = checked(spark, tmp_path, "\n".join([HEADER, *rows]) + "\n")
    # Then only the line whose total would not fit is rejected, as a bad quantity
    assert_rows(
        result.select("order_id", REASON_COLUMN, DETAIL_COLUMN),
        [
            Row(order_id="10", reject_reason=None, reject_detail=None),
            Row(
                order_id="11",
                reject_reason="bad_quantity",
                reject_detail="product_ccf must be integer > 0 (units), with product_price x "
                "product_ccf at most 9999999999999999.99, got '1000001'",
            ),
            Row(order_id="12", reject_reason=None, reject_detail=None),
        ],
    )
    assert_rows(
        curated(result).select("order_id", "line_total"),
        [
            Row(order_id=10, line_total=Decimal("9999999999990000.00")),
            Row(order_id=12, line_total=Decimal("9999999988734736.89")),
        ],
    )


def test_first_broken_rule_in_contract_order_wins_and_detail_says_where(
    spark: SparkSession, tmp_path: Path, assert_rows: AssertRows
) -> None:
    # Given a row with a bad client id, an empty product id and a bad status
    row = "0,Moe's,5679,,Duff,2.50,6,0.33,Retail,lost,2026-11-27"
    # When it is checked
    result = checked(spark, tmp_path, f"{HEADER}\n{row}\n")
    # Then the first rule in contract order (client_id) names the reason
    assert_rows(
        result.select(REASON_COLUMN, DETAIL_COLUMN),
        [
            Row(
                reject_reason="bad_client_id",
                reject_detail="client_id must be integer > 0, got '0'",
            )
        ],
    )


def test_malformed_rows_with_too_few_or_too_many_fields(
    spark: SparkSession, tmp_path: Path, assert_rows: AssertRows
) -> None:
    # Given a row one field short and a row one field long
    short = "1001,Moe's,5679,102,Duff,2.50,6,0.33,Retail,created"
    long = "1001,Moe's,5680,102,Duff,2.50,6,0.33,Retail,created,2026-11-27,extra"
    # When they are checked
    result = checked(spark, tmp_path, f"{HEADER}\n{GOOD}\n{short}\n{long}\n")
    # Then both are malformed, and the detail keeps the original line
    assert_rows(
        result.select("order_id", REASON_COLUMN, DETAIL_COLUMN),
        [
            Row(order_id="5678", reject_reason=None, reject_detail=None),
            Row(
                order_id="5679",
                reject_reason="malformed_row",
                reject_detail=f"the row does not have the header's number of fields: {short}",
            ),
            Row(
                order_id="5680",
                reject_reason="malformed_row",
                reject_detail=f"the row does not have the header's number of fields: {long}",
            ),
        ],
    )


def test_duplicates_keep_the_first_valid_occurrence(
    spark: SparkSession, tmp_path: Path, assert_rows: AssertRows
) -> None:
    # Given a key whose first occurrence breaks a rule, then appears valid three times
    # (the last an exact repeat), and another key that appears once
    rows = [
        "1001,Moe's,7000,1,Duff,2.50,6,0.33,Retail,lost,2026-11-27",
        "1001,Moe's,7000,1,Duff,2.50,6,0.33,Retail,created,2026-11-27",
        "1002,Kwik,7000,1,Duff,3.00,1,0.33,B2B,delivered,2026-11-27",
        "1001,Moe's,7000,1,Duff,2.50,6,0.33,Retail,created,2026-11-27",
        "1001,Moe's,7000,2,Duff,2.50,6,0.33,Retail,created,2026-11-27",
    ]
    # When the file is checked
    result = checked(spark, tmp_path, "\n".join([HEADER, *rows]) + "\n")
    # Then the first rule-valid occurrence is kept and later ones are duplicate_line
    assert_rows(
        result.select("client_id", "status", "product_id", REASON_COLUMN, DETAIL_COLUMN),
        [
            Row(
                client_id="1001",
                status="lost",
                product_id="1",
                reject_reason="bad_status",
                reject_detail="status must be created|delivered|broken, got 'lost'",
            ),
            Row(
                client_id="1001",
                status="created",
                product_id="1",
                reject_reason=None,
                reject_detail=None,
            ),
            Row(
                client_id="1002",
                status="delivered",
                product_id="1",
                reject_reason="duplicate_line",
                reject_detail="line key (order_id, product_id) = (7000, 1) already appeared "
                "in an earlier row",
            ),
            Row(
                client_id="1001",
                status="created",
                product_id="1",
                reject_reason="duplicate_line",
                reject_detail="line key (order_id, product_id) = (7000, 1) already appeared "
                "in an earlier row",
            ),
            Row(
                client_id="1001",
                status="created",
                product_id="2",
                reject_reason=None,
                reject_detail=None,
            ),
        ],
    )


def curated(df: DataFrame) -> DataFrame:
    lines = curated_lines(
        df, batch_id="b-1", source_event_time=datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
    )
    return conform_curated(lines)


def test_normalisation_of_valid_rows(
    spark: SparkSession, tmp_path: Path, assert_rows: AssertRows
) -> None:
    # Given valid rows with padding, odd case, quoted commas/quotes, a plus sign, CRLF and BOM
    rows = [
        '+1001 ,"The ""Frying"" Dutchman, Inc.",5678,102, Duff Classic ,2.5,6,0.33, retail ,'
        " Created ,2026-11-27",
        "1002,Kwik-E-Mart,5679,103,Duff Lite,0,12,1,ONLINE,DELIVERED,2026-11-28",
        "1003,Krusty,5680,104,Duff Dry,3.00,8,0.25,Kiosk 7,broken,2026-11-28",
    ]
    text = "\ufeff" + "\r\n".join([HEADER, *rows]) + "\r\n"
    # When the file is checked and curated
    result = curated(checked(spark, tmp_path, text))
    # Then values are trimmed, channels canonical (unknown kept), statuses lower-cased,
    # amounts exact decimals, and the lineage stamped
    stamp = datetime(2026, 11, 28, 8, 0)
    assert_rows(
        result,
        [
            Row(
                client_id=1001,
                client_name='The "Frying" Dutchman, Inc.',
                order_id=5678,
                product_id=102,
                product_description="Duff Classic",
                product_price=Decimal("2.50"),
                product_ccf=6,
                product_volume=Decimal("0.330"),
                status="created",
                line_total=Decimal("15.00"),
                line_volume_l=Decimal("1.980"),
                batch_id="b-1",
                source_event_time=stamp,
                point_of_sale_channel="Retail",
                order_date=date(2026, 11, 27),
            ),
            Row(
                client_id=1002,
                client_name="Kwik-E-Mart",
                order_id=5679,
                product_id=103,
                product_description="Duff Lite",
                product_price=Decimal("0.00"),
                product_ccf=12,
                product_volume=Decimal("1.000"),
                status="delivered",
                line_total=Decimal("0.00"),
                line_volume_l=Decimal("12.000"),
                batch_id="b-1",
                source_event_time=stamp,
                point_of_sale_channel="Online",
                order_date=date(2026, 11, 28),
            ),
            Row(
                client_id=1003,
                client_name="Krusty",
                order_id=5680,
                product_id=104,
                product_description="Duff Dry",
                product_price=Decimal("3.00"),
                product_ccf=8,
                product_volume=Decimal("0.250"),
                status="broken",
                line_total=Decimal("24.00"),
                line_volume_l=Decimal("2.000"),
                batch_id="b-1",
                source_event_time=stamp,
                point_of_sale_channel="Kiosk 7",
                order_date=date(2026, 11, 28),
            ),
        ],
    )


def test_missing_order_date_column_takes_the_ingest_date(
    spark: SparkSession, tmp_path: Path, assert_rows: AssertRows
) -> None:
    # Given a file without the optional order_date column, columns in another order
    text = (
        "status,order_id,client_id,client_name,product_id,product_description,product_price,"
        "product_ccf,product_volume,point_of_sale_channel\n"
        "created,5678,1001,Moe's,102,Duff,2.50,6,0.33,Retail\n"
    )
    # When it is checked
    result = checked(spark, tmp_path, text)
    # Then the row is valid and dated with the batch's ingest date
    assert_rows(
        curated(result).select("order_id", "status", "line_total", "order_date"),
        [Row(order_id=5678, status="created", line_total=Decimal("15.00"), order_date=INGEST)],
    )


def test_curated_schema_is_the_contracts(
    spark: SparkSession, tmp_path: Path, assert_rows: AssertRows
) -> None:
    # Given any checked file / When curated
    result = curated(checked(spark, tmp_path, f"{HEADER}\n{GOOD}\n"))
    # Then names and types are exactly contract.CURATED_DATA_COLUMNS + the partition columns
    assert [(f.name, f.dataType.simpleString()) for f in result.schema.fields] == [
        ("client_id", "int"),
        ("client_name", "string"),
        ("order_id", "int"),
        ("product_id", "int"),
        ("product_description", "string"),
        ("product_price", "decimal(12,2)"),
        ("product_ccf", "int"),
        ("product_volume", "decimal(8,3)"),
        ("status", "string"),
        ("line_total", "decimal(18,2)"),
        ("line_volume_l", "decimal(18,3)"),
        ("batch_id", "string"),
        ("source_event_time", "timestamp"),
        ("point_of_sale_channel", "string"),
        ("order_date", "date"),
    ]
    assert result.where(F.col("order_id").isNull()).isEmpty()


def test_reports_count_orders_and_sum_money_and_volume_exactly(
    spark: SparkSession, tmp_path: Path, assert_rows: AssertRows
) -> None:
    # Given lines whose amounts a float would round (0.10 x 3 + 0.20 x 1), a line near the
    # top of the price range, a product bought in two orders in one channel and in one order
    # in another, an order with lines in two statuses, and a duplicate line
    text = "\n".join(
        [
            HEADER,
            "1,Ann,10,100,Duff,0.10,3,0.333,Retail,created,2026-11-27",
            "1,Ann,10,101,Fudd,0.20,1,0.5,Retail,delivered,2026-11-27",
            "1,Ann,11,100,Duff,9999999999.99,21474,1.001,Retail,created,2026-11-27",
            "2,Bob,12,100,Duff,2.50,4,0.333,B2B,created,2026-11-27",
            "2,Bob,12,100,Duff,2.50,9,0.333,B2B,created,2026-11-27",
        ]
    )
    lines = curated_lines(
        checked(spark, tmp_path, text + "\n"),
        batch_id="b",
        source_event_time=datetime(2026, 11, 28, tzinfo=UTC),
    )
    totals = report_totals(lines)
    # When the three reports are built
    # Then distinct orders, lines, units and exact sums come out (the duplicate left out)
    assert_rows(
        client_sales(totals),
        [
            Row(
                client_id=1,
                client_name="Ann",
                total_orders=2,
                total_lines=3,
                total_units=21478,
                total_sales=Decimal("214739999999785.76"),
            ),
            Row(
                client_id=2,
                client_name="Bob",
                total_orders=1,
                total_lines=1,
                total_units=4,
                total_sales=Decimal("10.00"),
            ),
        ],
    )
    assert_rows(
        product_channel_sales(totals),
        [
            Row(
                product_id=100,
                product_description="Duff",
                point_of_sale_channel="B2B",
                orders=1,
                units=4,
                total_sales=Decimal("10.00"),
                total_volume_l=Decimal("1.332"),
            ),
            Row(
                product_id=100,
                product_description="Duff",
                point_of_sale_channel="Retail",
                orders=2,
                units=21477,
                total_sales=Decimal("214739999999785.56"),
                total_volume_l=Decimal("21496.473"),
            ),
            Row(
                product_id=101,
                product_description="Fudd",
                point_of_sale_channel="Retail",
                orders=1,
                units=1,
                total_sales=Decimal("0.20"),
                total_volume_l=Decimal("0.500"),
            ),
        ],
    )
    assert_rows(
        order_status(totals),
        [
            Row(status="created", orders=3, lines=3, total_sales=Decimal("214739999999795.56")),
            Row(status="delivered", orders=1, lines=1, total_sales=Decimal("0.20")),
        ],
    )


def test_text_at_its_limit_is_kept_and_a_7_mb_description_is_rejected_with_a_short_detail(
    spark: SparkSession, tmp_path: Path
) -> None:
    # Given a row with every bounded field at its limit (plus spaces trimmed away) and a
    # row whose description is 7 MB
    at_limit = (
        GOOD.replace("Moe's Tavern", "  " + "N" * 200 + "  ")
        .replace("Duff Classic", "D" * 200)
        .replace("Retail", "C" * 50)
    )
    huge = with_field("product_description", "D" * (7 * 1024 * 1024))
    # When the file is checked
    rows = {
        r["order_id"]: r
        for r in checked(spark, tmp_path, "\n".join([HEADER, at_limit, huge]) + "\n").collect()
    }
    # Then the row at the limits is valid, and the 7 MB one is rejected as too long, its
    # detail saying which field, its length and the limit, in a few hundred characters
    assert rows["5678"][REASON_COLUMN] is None
    assert rows["9999"][REASON_COLUMN] == "field_too_long"
    detail = rows["9999"][DETAIL_COLUMN]
    assert detail.startswith(
        "product_description must be at most 200 characters, got 7340032: 'DDD"
    )
    assert detail.endswith("DDD...'") and len(detail) < 700
