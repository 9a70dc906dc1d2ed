"""catalog_batch against moto: tables, views and the batch's partitions, idempotently."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from duffbeer import catalog_tables as tables
from duffbeer import reports_sql
from duffbeer.errors import BatchNotPublishedError, InvalidParameterError
from duffbeer.glue_catalog import ensure_table
from lambdas.catalog_batch.catalog import catalog_batch, ensure_catalog

pytestmark = pytest.mark.functional

BUCKET = "duffbeer-processed-orders"
DATABASE = "duffbeer_reports"
VERSIONS = "duffbeer_reports_versions"
BATCH = "orders-aaaaaaaaaaaa"
OTHER = "orders-bbbbbbbbbbbb"
DATE = "2026-11-28"


@pytest.fixture
def aws() -> Iterator[tuple[Any, Any]]:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        yield boto3.client("glue", region_name="us-east-1"), s3


def _publish(s3: Any, batch: str, run: str, channels: list[str]) -> None:
    """Write the batch manifest the Glue job would write for a successful run."""
    root = f"runs/{batch}/{run}/"
    published = {
        "run_id": run,
        "published_at": "2026-11-28T08:03:00+00:00",
        "source_event_time": "2026-11-28T08:00:00+00:00",
        "partitions": [
            {
                "point_of_sale_channel": channel,
                "order_date": DATE,
                "location": f"{root}order_lines/point_of_sale_channel={channel}/order_date={DATE}/",
                "rows": 1,
            }
            for channel in channels
        ],
        "outputs": {
            "order_lines": f"{root}order_lines/",
            "reports": {
                "client_sales": f"{root}reports/client_sales/",
                "product_channel_sales": f"{root}reports/product_channel_sales/",
                "order_status": f"{root}reports/order_status/",
            },
            "rejects": f"{root}rejects/",
        },
        "rows_valid": len(channels),
        "total_sales": "10.00",
    }
    manifest = {"batch_id": batch, "run_id": run, "status": "SUCCEEDED", "published": published}
    s3.put_object(Bucket=BUCKET, Key=f"manifests/{batch}.json", Body=json.dumps(manifest))


def _catalog(glue: Any, s3: Any, batch: str, run: str) -> Any:
    return catalog_batch(
        batch_id=batch,
        run_id=run,
        bucket=BUCKET,
        database=DATABASE,
        versions_database=VERSIONS,
        glue=glue,
        s3=s3,
    )


def _ensure(glue: Any, version: str | None = None) -> Any:
    return ensure_catalog(
        glue, database=DATABASE, versions_database=VERSIONS, bucket=BUCKET, state_version=version
    )


def _point_state_at(s3: Any, version: str) -> None:
    """The state pointer as PublishState writes it (only the fields the catalog reads)."""
    pointer = {
        "pointer_format": 1,
        "version": version,
        "seq": int(version[:10]),
        "published_at": "2026-11-28T08:05:00.000Z",
        "state_manifest": f"state/versions/{version}/_state.json",
        "settings": {"line_buckets": 4, "client_buckets": 8},
        "history": [],
    }
    s3.put_object(Bucket=BUCKET, Key="state/current.json", Body=json.dumps(pointer))


def _view_sql(glue: Any, name: str) -> str:
    text = glue.get_table(DatabaseName=DATABASE, Name=name)["Table"]["ViewOriginalText"]
    document = json.loads(base64.b64decode(text[len("/* Presto View: ") : -len(" */")]))
    return str(document["originalSql"])


def _partitions(glue: Any, table: str) -> dict[tuple[str, ...], str]:
    pages = glue.get_paginator("get_partitions").paginate(DatabaseName=DATABASE, TableName=table)
    return {
        tuple(p["Values"]): p["StorageDescriptor"]["Location"]
        for page in pages
        for p in page["Partitions"]
    }


def _columns(glue: Any, table: str) -> list[tuple[str, str]]:
    descriptor = glue.get_table(DatabaseName=DATABASE, Name=table)["Table"]["StorageDescriptor"]
    return [(c["Name"], c["Type"]) for c in descriptor["Columns"]]


def test_first_batch_creates_database_tables_views_and_partitions(aws: tuple[Any, Any]) -> None:
    # Given an empty catalog and a published batch with two channel partitions
    glue, s3 = aws
    _publish(s3, BATCH, "run-1", ["Retail", "B2B"])

    # When the Catalog step runs
    result = _catalog(glue, s3, BATCH, "run-1")

    # Then the database, the 5 tables and the 5 views exist
    tables = {
        t["Name"]: t["TableType"] for t in glue.get_tables(DatabaseName=DATABASE)["TableList"]
    }
    assert tables == {
        "order_lines": "EXTERNAL_TABLE",
        "rejects": "EXTERNAL_TABLE",
        "batch_client_sales": "EXTERNAL_TABLE",
        "batch_product_channel_sales": "EXTERNAL_TABLE",
        "batch_order_status": "EXTERNAL_TABLE",
        "order_lines_current": "VIRTUAL_VIEW",
        "orders_summary": "VIRTUAL_VIEW",
        "orders_per_client": "VIRTUAL_VIEW",
        "sales_by_product": "VIRTUAL_VIEW",
        "order_status_report": "VIRTUAL_VIEW",
    }
    assert result.database_created is True
    assert sorted(result.tables_created) == sorted(tables)
    # ... the order lines are partitioned by channel, date and batch, at the run's prefix
    root = f"s3://{BUCKET}/runs/{BATCH}/run-1/"
    assert _partitions(glue, "order_lines") == {
        (
            "Retail",
            DATE,
            BATCH,
        ): f"{root}order_lines/point_of_sale_channel=Retail/order_date={DATE}/",
        ("B2B", DATE, BATCH): f"{root}order_lines/point_of_sale_channel=B2B/order_date={DATE}/",
    }
    assert _partitions(glue, "batch_client_sales") == {(BATCH,): f"{root}reports/client_sales/"}
    assert _partitions(glue, "rejects") == {(BATCH,): f"{root}rejects/"}
    assert (result.partitions_created, result.partitions_updated, result.partitions_deleted) == (
        6,
        0,
        0,
    )


def test_order_lines_table_schema(aws: tuple[Any, Any]) -> None:
    # Given a cataloged batch
    glue, s3 = aws
    _publish(s3, BATCH, "run-1", ["Retail"])
    _catalog(glue, s3, BATCH, "run-1")

    # When the curated table is read back
    table = glue.get_table(DatabaseName=DATABASE, Name="order_lines")["Table"]

    # Then it is Parquet with the contract's columns; batch_id is a partition key only
    assert _columns(glue, "order_lines") == [
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
        ("source_event_time", "timestamp"),
    ]
    assert [(k["Name"], k["Type"]) for k in table["PartitionKeys"]] == [
        ("point_of_sale_channel", "string"),
        ("order_date", "date"),
        ("batch_id", "string"),
    ]
    serde = table["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"]
    assert serde == "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"


def test_orders_summary_is_an_athena_view_with_the_seed_columns(aws: tuple[Any, Any]) -> None:
    # Given a cataloged batch
    glue, s3 = aws
    _publish(s3, BATCH, "run-1", ["Retail"])
    _catalog(glue, s3, BATCH, "run-1")

    # When the orders_summary view is read back
    view = glue.get_table(DatabaseName=DATABASE, Name="orders_summary")["Table"]

    # Then it has exactly the seed's columns, as a Presto view Athena can run
    assert _columns(glue, "orders_summary") == [
        ("client_id", "int"),
        ("client_name", "string"),
        ("total_orders", "int"),
        ("total_sales", "double"),
    ]
    text = view["ViewOriginalText"]
    assert text.startswith("/* Presto View: ") and text.endswith(" */")
    document = json.loads(base64.b64decode(text[len("/* Presto View: ") : -len(" */")]))
    # Nothing published yet: the seed's columns, no rows
    assert document["originalSql"] == reports_sql.empty_view("orders_summary")
    assert (document["catalog"], document["schema"]) == ("awsdatacatalog", DATABASE)
    assert document["columns"] == [
        {"name": "client_id", "type": "integer"},
        {"name": "client_name", "type": "varchar"},
        {"name": "total_orders", "type": "integer"},
        {"name": "total_sales", "type": "double"},
    ]
    assert view["Parameters"]["presto_view"] == "true"


def test_running_twice_changes_nothing(aws: tuple[Any, Any]) -> None:
    # Given a batch cataloged once
    glue, s3 = aws
    _publish(s3, BATCH, "run-1", ["Retail", "B2B"])
    _catalog(glue, s3, BATCH, "run-1")
    partitions_before = {t: _partitions(glue, t) for t in ("order_lines", "rejects")}
    versions_before = {
        t["Name"]: t.get("VersionId") for t in glue.get_tables(DatabaseName=DATABASE)["TableList"]
    }

    # When the Catalog step runs again for the same run
    again = _catalog(glue, s3, BATCH, "run-1")

    # Then nothing is created, updated or deleted
    assert again.as_dict() == {
        "batch_id": BATCH,
        "run_id": "run-1",
        "published_run_id": "run-1",
        "state_version": None,
        "database_created": False,
        "tables_created": [],
        "tables_updated": [],
        "partitions_created": 0,
        "partitions_updated": 0,
        "partitions_deleted": 0,
    }
    assert {t: _partitions(glue, t) for t in ("order_lines", "rejects")} == partitions_before
    versions_after = {
        t["Name"]: t.get("VersionId") for t in glue.get_tables(DatabaseName=DATABASE)["TableList"]
    }
    assert versions_after == versions_before


def test_rerun_moves_partitions_and_drops_vanished_ones_only_for_its_batch(
    aws: tuple[Any, Any],
) -> None:
    # Given batch A cataloged at run-1 (Retail, B2B) and batch B cataloged too
    glue, s3 = aws
    _publish(s3, BATCH, "run-1", ["Retail", "B2B"])
    _catalog(glue, s3, BATCH, "run-1")
    _publish(s3, OTHER, "run-7", ["B2B"])
    _catalog(glue, s3, OTHER, "run-7")
    other_before = {k: v for k, v in _partitions(glue, "order_lines").items() if k[2] == OTHER}

    # When a corrected upload of A publishes run-2 with Retail and Online (no B2B)
    _publish(s3, BATCH, "run-2", ["Retail", "Online"])
    result = _catalog(glue, s3, BATCH, "run-2")

    # Then Retail points at run-2, Online is new, B2B is gone; batch B is untouched
    root = f"s3://{BUCKET}/runs/{BATCH}/run-2/"
    lines = _partitions(glue, "order_lines")
    assert {k: v for k, v in lines.items() if k[2] == BATCH} == {
        (
            "Retail",
            DATE,
            BATCH,
        ): f"{root}order_lines/point_of_sale_channel=Retail/order_date={DATE}/",
        (
            "Online",
            DATE,
            BATCH,
        ): f"{root}order_lines/point_of_sale_channel=Online/order_date={DATE}/",
    }
    assert {k: v for k, v in lines.items() if k[2] == OTHER} == other_before
    assert _partitions(glue, "batch_order_status")[(BATCH,)] == f"{root}reports/order_status/"
    # 1 new line partition; Retail + 3 reports + rejects moved; B2B deleted
    assert (result.partitions_created, result.partitions_updated, result.partitions_deleted) == (
        1,
        5,
        1,
    )


def test_changed_view_definition_is_updated(aws: tuple[Any, Any]) -> None:
    # Given a catalog whose orders_summary view was edited by hand
    glue, s3 = aws
    _publish(s3, BATCH, "run-1", ["Retail"])
    _catalog(glue, s3, BATCH, "run-1")
    view = glue.get_table(DatabaseName=DATABASE, Name="orders_summary")["Table"]
    glue.update_table(
        DatabaseName=DATABASE,
        TableInput={
            "Name": "orders_summary",
            "TableType": "VIRTUAL_VIEW",
            "ViewOriginalText": "/* Presto View: e30= */",
            "StorageDescriptor": view["StorageDescriptor"],
        },
    )

    # When the Catalog step runs
    result = _catalog(glue, s3, BATCH, "run-1")

    # Then the project's definition is restored
    assert result.tables_updated == ["orders_summary"]
    restored = glue.get_table(DatabaseName=DATABASE, Name="orders_summary")["Table"]
    assert restored["ViewOriginalText"] == view["ViewOriginalText"]


def test_batch_without_manifest_is_not_cataloged(aws: tuple[Any, Any]) -> None:
    # Given no manifest for the batch / When the Catalog step runs / Then it refuses
    glue, s3 = aws
    with pytest.raises(BatchNotPublishedError, match=f"manifests/{BATCH}.json"):
        _catalog(glue, s3, BATCH, "run-1")


def test_batch_id_outside_the_pipeline_alphabet_is_refused(aws: tuple[Any, Any]) -> None:
    # Given a batch id that would break out of the partition expression
    glue, s3 = aws

    # When the Catalog step is asked for it / Then it refuses before any catalog call
    with pytest.raises(InvalidParameterError, match="not a pipeline batch id"):
        _catalog(glue, s3, "x' OR '1'='1", "run-1")
    assert glue.get_databases()["DatabaseList"] == []


def test_schema_can_be_ensured_before_the_first_batch(aws: tuple[Any, Any]) -> None:
    # Given an empty catalog (a fresh deployment)
    glue, _ = aws

    # When deploy ensures the schema
    first = _ensure(glue)
    second = _ensure(glue)

    # Then every table and view exists once, with no partitions, and a repeat changes nothing
    assert first.database_created is True
    assert len(first.tables_created) == 10
    assert (second.database_created, second.tables_created, second.tables_updated) == (
        False,
        [],
        [],
    )
    assert _partitions(glue, "order_lines") == {}


def test_table_created_concurrently_is_compared_not_failed(aws: tuple[Any, Any]) -> None:
    # Given a table another Catalog step created between our read and our create
    glue, _ = aws
    _ensure(glue)
    table_input = tables.base_tables(BUCKET)["order_lines"]

    class RacingGlue:
        """Reports the table missing once, as a read before the other writer finished would."""

        def __init__(self) -> None:
            self.first_read = True

        def __getattr__(self, name: str) -> Any:
            return getattr(glue, name)

        def get_table(self, **kwargs: Any) -> Any:
            if self.first_read:
                self.first_read = False
                return glue.get_table(DatabaseName=DATABASE, Name="no_such_table")
            return glue.get_table(**kwargs)

    # When ensure_table runs into AlreadyExists / Then it treats the table as existing
    assert ensure_table(RacingGlue(), DATABASE, table_input) is None


def test_views_move_to_the_published_state_and_never_back(aws: tuple[Any, Any]) -> None:
    # Given a cataloged batch and the state pointer naming version 3
    glue, s3 = aws
    _publish(s3, BATCH, "run-1", ["Retail"])
    _point_state_at(s3, "0000000003-0a1b2c3d")

    # When the Catalog step runs
    result = _catalog(glue, s3, BATCH, "run-1")

    # Then every stable view reads version 3's tables in the versions database
    assert result.state_version == "0000000003-0a1b2c3d"
    for name in reports_sql.VIEW_COLUMNS:
        view = glue.get_table(DatabaseName=DATABASE, Name=name)["Table"]
        assert view["Parameters"]["duffbeer_state_version"] == "0000000003-0a1b2c3d"
    assert f'"{VERSIONS}"."orders_summary_v0000000003_0a1b2c3d"' in _view_sql(
        glue, "orders_summary"
    )

    # When a late step of another execution still sees version 2 (or no state at all)
    before = _view_sql(glue, "sales_by_product")
    assert _ensure(glue, "0000000002-ffffffff").state_version == "0000000003-0a1b2c3d"
    assert _ensure(glue, None).state_version == "0000000003-0a1b2c3d"
    # Then the views stay on version 3; a later version moves them on
    assert _view_sql(glue, "sales_by_product") == before
    _ensure(glue, "0000000004-0b0b0b0b")
    assert "_v0000000004_0b0b0b0b" in _view_sql(glue, "sales_by_product")
