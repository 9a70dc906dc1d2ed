"""catalog_batch against moto: batch tables, static views over Iceberg, partitions, idempotently."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from duffbeer import catalog_tables as tables
from duffbeer.errors import BatchNotPublishedError, InvalidParameterError
from duffbeer.glue_catalog import ensure_table
from lambdas.catalog_batch.catalog import catalog_batch, ensure_catalog

pytestmark = pytest.mark.functional

BUCKET = "duffbeer-processed-orders"
DATABASE = "duffbeer_reports"
BATCH = "orders-aaaaaaaaaaaa"
OTHER = "orders-bbbbbbbbbbbb"
DATE = "2026-11-28"

# What catalog_batch owns in the database: the batch history and the Athena views.
BATCH_TABLES = {
    "order_lines": "EXTERNAL_TABLE",
    "rejects": "EXTERNAL_TABLE",
    "batch_client_sales": "EXTERNAL_TABLE",
    "batch_product_channel_sales": "EXTERNAL_TABLE",
    "batch_order_status": "EXTERNAL_TABLE",
}
VIEWS = {
    "orders_per_client": "VIRTUAL_VIEW",
    "sales_by_product": "VIRTUAL_VIEW",
    "order_status_report": "VIRTUAL_VIEW",
}
# What it never creates: the state job's Iceberg tables.
ICEBERG_TABLES = (
    "order_lines_current",
    "client_report",
    "client_orders",
    "product_daily",
    "status_daily",
    "spanning_order_cells",
    "orders_summary",
    "client_order_cells",
    "state_publications",
)


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
        batch_id=batch, run_id=run, bucket=BUCKET, database=DATABASE, glue=glue, s3=s3
    )


def _ensure(glue: Any) -> Any:
    return ensure_catalog(glue, database=DATABASE, bucket=BUCKET)


def _register_iceberg_table(glue: Any, name: str) -> None:
    """A state table as Iceberg's GlueCatalog registers it when the state job creates it."""
    location = f"s3://{BUCKET}/warehouse/{DATABASE}.db/{name}"
    glue.create_table(
        DatabaseName=DATABASE,
        TableInput={
            "Name": name,
            "TableType": "EXTERNAL_TABLE",
            "Parameters": {
                "table_type": "ICEBERG",
                "metadata_location": f"{location}/metadata/00003-5f1c.metadata.json",
                "previous_metadata_location": f"{location}/metadata/00002-9b0e.metadata.json",
            },
            "StorageDescriptor": {
                "Columns": [{"Name": "client_id", "Type": "int"}],
                "Location": location,
            },
        },
    )


def _view_document(glue: Any, name: str) -> dict[str, Any]:
    text = glue.get_table(DatabaseName=DATABASE, Name=name)["Table"]["ViewOriginalText"]
    assert text.startswith("/* Presto View: ") and text.endswith(" */")
    document: dict[str, Any] = json.loads(
        base64.b64decode(text[len("/* Presto View: ") : -len(" */")])
    )
    return document


def _presto_view_text(sql: str) -> str:
    """A view definition as someone else (or the old design) could have stored it."""
    document = {"originalSql": sql, "catalog": "awsdatacatalog", "schema": DATABASE, "columns": []}
    return f"/* Presto View: {base64.b64encode(json.dumps(document).encode()).decode()} */"


def _read_tables(sql: str) -> set[tuple[str, str]]:
    return set(re.findall(r'"(\w+)"\."(\w+)"', sql))


def _table_types(glue: Any) -> dict[str, str]:
    pages = glue.get_paginator("get_tables").paginate(DatabaseName=DATABASE)
    return {t["Name"]: t["TableType"] for page in pages for t in page["TableList"]}


def _table_versions(glue: Any) -> dict[str, str]:
    return {t["Name"]: t["VersionId"] for t in glue.get_tables(DatabaseName=DATABASE)["TableList"]}


def _databases(glue: Any) -> list[str]:
    return [d["Name"] for d in glue.get_databases()["DatabaseList"]]


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

    # Then the one database holds the 5 batch history tables and the 3 views, nothing else
    assert _databases(glue) == [DATABASE]
    assert glue.get_database(Name=DATABASE)["Database"]["Description"] == (
        "Duff Beer orders: the current state (Iceberg tables and views over them) and the "
        "batch history (curated order lines, batch reports, rejects)"
    )
    assert _table_types(glue) == {**BATCH_TABLES, **VIEWS}
    assert result.database_created is True
    assert sorted(result.tables_created) == sorted({**BATCH_TABLES, **VIEWS})
    assert result.tables_updated == []
    assert (result.batch_id, result.run_id, result.published_run_id) == (BATCH, "run-1", "run-1")
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
    assert _partitions(glue, "batch_product_channel_sales") == {
        (BATCH,): f"{root}reports/product_channel_sales/"
    }
    assert _partitions(glue, "batch_order_status") == {(BATCH,): f"{root}reports/order_status/"}
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


def test_views_read_the_iceberg_state_tables_by_name(aws: tuple[Any, Any]) -> None:
    # Given a cataloged batch
    glue, s3 = aws
    _publish(s3, BATCH, "run-1", ["Retail"])
    _catalog(glue, s3, BATCH, "run-1")

    # When the views are read back
    documents = {name: _view_document(glue, name) for name in VIEWS}

    # Then each is an Athena (Presto) view of the reports database ...
    for name, document in documents.items():
        view = glue.get_table(DatabaseName=DATABASE, Name=name)["Table"]
        assert view["Parameters"] == {"presto_view": "true", "comment": "Presto View"}, name
        assert view["ViewExpandedText"] == "/* Presto View */", name
        assert view["PartitionKeys"] == [], name
        assert (document["catalog"], document["schema"]) == ("awsdatacatalog", DATABASE), name
        # ... over the Iceberg tables by name: their current snapshot, no pinned version,
        # no versioned table
        assert "FOR VERSION AS OF" not in document["originalSql"], name
        assert "_versions" not in document["originalSql"], name
    assert _read_tables(documents["orders_per_client"]["originalSql"]) == {
        (DATABASE, "client_report")
    }
    assert _read_tables(documents["sales_by_product"]["originalSql"]) == {
        (DATABASE, "product_daily")
    }
    assert _read_tables(documents["order_status_report"]["originalSql"]) == {
        (DATABASE, "status_daily"),
        (DATABASE, "spanning_order_cells"),
    }
    assert documents["orders_per_client"]["originalSql"] == (
        "SELECT client_id, client_name,\n"
        "       orders AS total_orders,\n"
        "       lines AS total_lines,\n"
        "       units AS total_units,\n"
        "       total_sales\n"
        'FROM "duffbeer_reports"."client_report"\n'
        "WHERE all_statuses = 1 AND all_channels = 1"
    )
    # ... with the columns the reports always had, in Hive types for Glue, Trino's for Athena
    assert _columns(glue, "orders_per_client") == [
        ("client_id", "int"),
        ("client_name", "string"),
        ("total_orders", "bigint"),
        ("total_lines", "bigint"),
        ("total_units", "bigint"),
        ("total_sales", "decimal(38,2)"),
    ]
    assert documents["orders_per_client"]["columns"] == [
        {"name": "client_id", "type": "integer"},
        {"name": "client_name", "type": "varchar"},
        {"name": "total_orders", "type": "bigint"},
        {"name": "total_lines", "type": "bigint"},
        {"name": "total_units", "type": "bigint"},
        {"name": "total_sales", "type": "decimal(38,2)"},
    ]
    assert _columns(glue, "sales_by_product") == [
        ("product_id", "int"),
        ("product_description", "string"),
        ("point_of_sale_channel", "string"),
        ("orders", "bigint"),
        ("units", "bigint"),
        ("total_sales", "decimal(38,2)"),
        ("total_volume_l", "decimal(38,3)"),
    ]
    assert _columns(glue, "order_status_report") == [
        ("status", "string"),
        ("orders", "bigint"),
        ("lines", "bigint"),
        ("total_sales", "decimal(38,2)"),
    ]


def test_state_tables_are_left_to_the_state_job(aws: tuple[Any, Any]) -> None:
    # Given a deployed catalog in which the state job created its Iceberg tables
    glue, s3 = aws
    _ensure(glue)
    for name in ICEBERG_TABLES:
        _register_iceberg_table(glue, name)
    before = {
        name: glue.get_table(DatabaseName=DATABASE, Name=name)["Table"] for name in ICEBERG_TABLES
    }
    _publish(s3, BATCH, "run-1", ["Retail"])

    # When the Catalog step runs
    result = _catalog(glue, s3, BATCH, "run-1")

    # Then it neither created nor touched any of them: orders_summary stays an Iceberg table
    assert (result.tables_created, result.tables_updated) == ([], [])
    for name in ICEBERG_TABLES:
        after = glue.get_table(DatabaseName=DATABASE, Name=name)["Table"]
        assert after == before[name], name
        assert after["Parameters"]["table_type"] == "ICEBERG", name
    assert _table_types(glue) == {
        **BATCH_TABLES,
        **VIEWS,
        **dict.fromkeys(ICEBERG_TABLES, "EXTERNAL_TABLE"),
    }


def test_no_state_table_and_no_versions_database_are_created(aws: tuple[Any, Any]) -> None:
    # Given a fresh deployment (deploy ensures the schema) and then a first batch
    glue, s3 = aws
    _ensure(glue)
    _publish(s3, BATCH, "run-1", ["Retail"])

    # When the Catalog step runs
    _catalog(glue, s3, BATCH, "run-1")

    # Then no state table exists until the state job creates it, and there is one database
    assert not set(ICEBERG_TABLES) & set(_table_types(glue))
    assert _databases(glue) == [DATABASE]


def test_running_twice_changes_nothing(aws: tuple[Any, Any]) -> None:
    # Given a batch cataloged once
    glue, s3 = aws
    _publish(s3, BATCH, "run-1", ["Retail", "B2B"])
    _catalog(glue, s3, BATCH, "run-1")
    partitions_before = {t: _partitions(glue, t) for t in BATCH_TABLES}
    versions_before = _table_versions(glue)

    # When the Catalog step runs again for the same run
    again = _catalog(glue, s3, BATCH, "run-1")

    # Then nothing is created, updated or deleted
    assert again.as_dict() == {
        "batch_id": BATCH,
        "run_id": "run-1",
        "published_run_id": "run-1",
        "database_created": False,
        "tables_created": [],
        "tables_updated": [],
        "partitions_created": 0,
        "partitions_updated": 0,
        "partitions_deleted": 0,
    }
    assert {t: _partitions(glue, t) for t in BATCH_TABLES} == partitions_before
    assert _table_versions(glue) == versions_before
    assert len(versions_before) == 8


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


def test_a_late_step_catalogs_the_run_the_batch_publishes(aws: tuple[Any, Any]) -> None:
    # Given a batch whose pointer already publishes run-2 (a corrected upload overtook run-1)
    glue, s3 = aws
    _publish(s3, BATCH, "run-2", ["Online"])

    # When run-1's Catalog step runs late
    result = _catalog(glue, s3, BATCH, "run-1")

    # Then the partitions point at run-2, the published run
    root = f"s3://{BUCKET}/runs/{BATCH}/run-2/"
    assert (result.run_id, result.published_run_id) == ("run-1", "run-2")
    assert _partitions(glue, "order_lines") == {
        (
            "Online",
            DATE,
            BATCH,
        ): f"{root}order_lines/point_of_sale_channel=Online/order_date={DATE}/"
    }
    assert _partitions(glue, "rejects") == {(BATCH,): f"{root}rejects/"}


def test_changed_view_definition_is_updated(aws: tuple[Any, Any]) -> None:
    # Given a catalog whose sales_by_product view was redefined by hand, over a versioned table
    # the way the old design's views read the state
    glue, s3 = aws
    _publish(s3, BATCH, "run-1", ["Retail"])
    _catalog(glue, s3, BATCH, "run-1")
    view = glue.get_table(DatabaseName=DATABASE, Name="sales_by_product")["Table"]
    glue.update_table(
        DatabaseName=DATABASE,
        TableInput={
            "Name": "sales_by_product",
            "TableType": "VIRTUAL_VIEW",
            "Parameters": {**view["Parameters"], "duffbeer_state_version": "0000000003-0a1b2c3d"},
            "ViewOriginalText": _presto_view_text(
                'SELECT * FROM "duffbeer_reports_versions"."product_daily_v0000000003_0a1b2c3d"'
            ),
            "StorageDescriptor": view["StorageDescriptor"],
        },
    )

    # When the Catalog step runs
    result = _catalog(glue, s3, BATCH, "run-1")

    # Then the project's definition is restored, over the Iceberg table
    assert (result.tables_created, result.tables_updated) == ([], ["sales_by_product"])
    restored = glue.get_table(DatabaseName=DATABASE, Name="sales_by_product")["Table"]
    assert restored["ViewOriginalText"] == view["ViewOriginalText"]
    assert _read_tables(_view_document(glue, "sales_by_product")["originalSql"]) == {
        (DATABASE, "product_daily")
    }


def test_dropped_view_comes_back(aws: tuple[Any, Any]) -> None:
    # Given a cataloged batch whose order_status_report view someone dropped
    glue, s3 = aws
    _publish(s3, BATCH, "run-1", ["Retail"])
    _catalog(glue, s3, BATCH, "run-1")
    glue.delete_table(DatabaseName=DATABASE, Name="order_status_report")

    # When the Catalog step runs for the next batch
    _publish(s3, OTHER, "run-7", ["B2B"])
    result = _catalog(glue, s3, OTHER, "run-7")

    # Then the view is created again, over the state's tables
    assert (result.tables_created, result.tables_updated) == (["order_status_report"], [])
    assert _table_types(glue) == {**BATCH_TABLES, **VIEWS}
    assert _read_tables(_view_document(glue, "order_status_report")["originalSql"]) == {
        (DATABASE, "status_daily"),
        (DATABASE, "spanning_order_cells"),
    }


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


def test_batch_manifest_without_a_published_run_is_not_cataloged(aws: tuple[Any, Any]) -> None:
    # Given a batch pointer whose only run failed (nothing published)
    glue, s3 = aws
    manifest = {"batch_id": BATCH, "run_id": "run-1", "status": "FAILED", "published": None}
    s3.put_object(Bucket=BUCKET, Key=f"manifests/{BATCH}.json", Body=json.dumps(manifest))

    # When the Catalog step runs / Then it refuses and writes nothing to the catalog
    with pytest.raises(BatchNotPublishedError, match="publishes no run"):
        _catalog(glue, s3, BATCH, "run-1")
    assert glue.get_databases()["DatabaseList"] == []


def test_schema_can_be_ensured_before_the_first_batch(aws: tuple[Any, Any]) -> None:
    # Given an empty catalog (a fresh deployment)
    glue, _ = aws

    # When deploy ensures the schema, twice
    first = _ensure(glue)
    versions = _table_versions(glue)
    second = _ensure(glue)

    # Then every batch table and view exists once, with no partitions, and a repeat changes
    # nothing; the state's tables wait for the state job, and there is no versions database
    assert first.database_created is True
    assert sorted(first.tables_created) == sorted({**BATCH_TABLES, **VIEWS})
    assert _table_types(glue) == {**BATCH_TABLES, **VIEWS}
    assert (second.database_created, second.tables_created, second.tables_updated) == (
        False,
        [],
        [],
    )
    assert _table_versions(glue) == versions
    assert [_partitions(glue, t) for t in BATCH_TABLES] == [{}, {}, {}, {}, {}]
    assert _databases(glue) == [DATABASE]


class _RacingGlue:
    """Reports `name` missing on its first read, as a read made before another Catalog step
    finished creating it would."""

    def __init__(self, glue: Any, name: str) -> None:
        self.glue = glue
        self.name = name
        self.first_read = True

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.glue, attribute)

    def get_table(self, **kwargs: Any) -> Any:
        if self.first_read and kwargs.get("Name") == self.name:
            self.first_read = False
            return self.glue.get_table(DatabaseName=DATABASE, Name="no_such_table")
        return self.glue.get_table(**kwargs)

    def get_database(self, **kwargs: Any) -> Any:
        if self.first_read and kwargs.get("Name") == self.name:
            self.first_read = False
            return self.glue.get_database(Name="no_such_database")
        return self.glue.get_database(**kwargs)


def test_table_created_concurrently_is_compared_not_failed(aws: tuple[Any, Any]) -> None:
    # Given a table another Catalog step created between our read and our create
    glue, _ = aws
    _ensure(glue)
    version = glue.get_table(DatabaseName=DATABASE, Name="order_lines")["Table"]["VersionId"]
    racing = _RacingGlue(glue, "order_lines")

    # When ensure_table runs into AlreadyExists
    change = ensure_table(racing, DATABASE, tables.base_tables(BUCKET)["order_lines"])

    # Then it treats the table as existing and, the definitions being equal, leaves it alone
    assert racing.first_read is False
    assert change is None
    assert glue.get_table(DatabaseName=DATABASE, Name="order_lines")["Table"]["VersionId"] == (
        version
    )


def test_view_created_concurrently_with_another_definition_is_updated(
    aws: tuple[Any, Any],
) -> None:
    # Given a view another writer created, with another definition, between our read and create
    glue, _ = aws
    _ensure(glue)
    glue.update_table(
        DatabaseName=DATABASE,
        TableInput={
            "Name": "orders_per_client",
            "TableType": "VIRTUAL_VIEW",
            "ViewOriginalText": _presto_view_text("SELECT 1 AS client_id"),
            "StorageDescriptor": {"Columns": [{"Name": "client_id", "Type": "int"}]},
        },
    )
    racing = _RacingGlue(glue, "orders_per_client")

    # When ensure_table runs into AlreadyExists
    change = ensure_table(racing, DATABASE, tables.views(DATABASE)["orders_per_client"])

    # Then it compares, and brings the view to the project's definition
    assert change == "updated"
    assert _read_tables(_view_document(glue, "orders_per_client")["originalSql"]) == {
        (DATABASE, "client_report")
    }
    assert [name for name, _ in _columns(glue, "orders_per_client")] == [
        "client_id",
        "client_name",
        "total_orders",
        "total_lines",
        "total_units",
        "total_sales",
    ]


def test_database_created_concurrently_is_not_reported_as_created(aws: tuple[Any, Any]) -> None:
    # Given the database another Catalog step created between our read and our create
    glue, s3 = aws
    glue.create_database(DatabaseInput={"Name": DATABASE})
    _publish(s3, BATCH, "run-1", ["Retail"])

    racing = _RacingGlue(glue, DATABASE)

    # When the Catalog step runs into AlreadyExists
    result = _catalog(racing, s3, BATCH, "run-1")

    # Then it carries on in the existing database
    assert racing.first_read is False
    assert result.database_created is False
    assert _databases(glue) == [DATABASE]
    assert _table_types(glue) == {**BATCH_TABLES, **VIEWS}
    assert result.partitions_created == 5
