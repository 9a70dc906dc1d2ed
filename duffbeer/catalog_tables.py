"""Glue Data Catalog definitions of the processed data: tables, Athena views, partitions.

Pure functions returning Glue API structures (TableInput, PartitionInput), built from the
data contract (duffbeer.contract) and the report SQL (duffbeer.reports_sql). The current
state's Iceberg tables are not here: the state job creates them through Iceberg's Glue
catalog (duffbeer/state.py), and the views below read them by name.

Every run of a batch writes under its own prefix (runs/<batch_id>/<run_id>/), so no single
Hive-style directory tree holds the data: each per-batch table is partitioned by `batch_id`
(plus channel and date for the order lines) and every partition carries the explicit
Location of the published run. Partition projection cannot express that (it derives
locations from a template), which is why partitions are registered (docs/adr/0011).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from duffbeer import contract, naming, reports_sql

Columns = tuple[tuple[str, str], ...]

PARQUET_STORAGE: dict[str, Any] = {
    "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
    "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
    "SerdeInfo": {
        "SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
        "Parameters": {"serialization.format": "1"},
    },
}
TABLE_PARAMETERS = {"classification": "parquet", "EXTERNAL": "TRUE"}
VIEW_PARAMETERS = {"presto_view": "true", "comment": "Presto View"}
BATCH_KEY: tuple[str, str] = (contract.BATCH_ID_COLUMN, "string")

REPORT_COLUMNS: dict[str, Columns] = {
    naming.CLIENT_SALES_REPORT: contract.CLIENT_SALES_COLUMNS,
    naming.PRODUCT_CHANNEL_SALES_REPORT: contract.PRODUCT_CHANNEL_SALES_COLUMNS,
    naming.ORDER_STATUS_REPORT: contract.ORDER_STATUS_COLUMNS,
}

_PRESTO_TYPES = {"int": "integer", "string": "varchar"}


def presto_type(hive_type: str) -> str:
    """The Trino spelling of a Hive type, as Athena stores it in a view definition."""
    return _PRESTO_TYPES.get(hive_type, hive_type)


def _columns(columns: Columns) -> list[dict[str, str]]:
    return [{"Name": name, "Type": kind} for name, kind in columns]


def _without_batch_id(columns: Columns) -> Columns:
    # batch_id is a partition key; Glue refuses a column that is also a partition key.
    return tuple(c for c in columns if c[0] != contract.BATCH_ID_COLUMN)


def _table(name: str, bucket: str, columns: Columns, partition_keys: Columns) -> dict[str, Any]:
    return {
        "Name": name,
        "TableType": "EXTERNAL_TABLE",
        "Parameters": dict(TABLE_PARAMETERS),
        "PartitionKeys": _columns(partition_keys),
        "StorageDescriptor": {
            "Columns": _columns(columns),
            # Partitions carry their own locations; the root only bounds the data.
            "Location": f"s3://{bucket}/{naming.RUNS_PREFIX}",
            **PARQUET_STORAGE,
        },
    }


def base_tables(bucket: str) -> dict[str, dict[str, Any]]:
    """TableInput of every partitioned table, by name."""
    tables = {
        naming.ORDER_LINES_TABLE: _table(
            naming.ORDER_LINES_TABLE,
            bucket,
            _without_batch_id(contract.CURATED_DATA_COLUMNS),
            (*contract.CURATED_PARTITION_COLUMNS, BATCH_KEY),
        ),
        naming.REJECTS_TABLE: _table(
            naming.REJECTS_TABLE, bucket, _without_batch_id(contract.REJECT_COLUMNS), (BATCH_KEY,)
        ),
    }
    for report, table_name in naming.BATCH_REPORT_TABLES.items():
        tables[table_name] = _table(
            table_name, bucket, _without_batch_id(REPORT_COLUMNS[report]), (BATCH_KEY,)
        )
    return tables


def presto_view_text(sql: str, database: str, columns: Columns) -> str:
    """ViewOriginalText of an Athena view: the Trino view document, base64 in a comment."""
    document = {
        "originalSql": sql,
        "catalog": "awsdatacatalog",
        "schema": database,
        "columns": [{"name": name, "type": presto_type(kind)} for name, kind in columns],
        "owner": naming.PROJECT_TAG,
        "runAsInvoker": False,
        "properties": {},
    }
    encoded = base64.b64encode(json.dumps(document).encode("utf-8")).decode("ascii")
    return f"/* Presto View: {encoded} */"


def views(database: str) -> dict[str, dict[str, Any]]:
    """TableInput of every Athena view over the current state's tables, by name."""
    result = {}
    for name, sql in reports_sql.catalog_views(database).items():
        columns = reports_sql.VIEW_COLUMNS[name]
        result[name] = {
            "Name": name,
            "TableType": "VIRTUAL_VIEW",
            "Parameters": dict(VIEW_PARAMETERS),
            "ViewOriginalText": presto_view_text(sql, database, columns),
            "ViewExpandedText": "/* Presto View */",
            "PartitionKeys": [],
            "StorageDescriptor": {
                "Columns": _columns(columns),
                "Location": "",
                "SerdeInfo": {},
            },
        }
    return result


def partition_input(table: dict[str, Any], values: list[str], location: str) -> dict[str, Any]:
    """PartitionInput with the table's storage format and an explicit location."""
    storage = {**table["StorageDescriptor"], "Location": location}
    return {"Values": values, "StorageDescriptor": storage, "Parameters": {}}


def batch_partitions(
    published: dict[str, Any], *, batch_id: str, bucket: str
) -> dict[str, dict[tuple[str, ...], str]]:
    """Table name -> partition values -> location, for the published run of one batch."""

    def uri(key_prefix: str) -> str:
        return f"s3://{bucket}/{key_prefix}"

    outputs = published["outputs"]
    result: dict[str, dict[tuple[str, ...], str]] = {
        naming.ORDER_LINES_TABLE: {
            (p["point_of_sale_channel"], p["order_date"], batch_id): uri(p["location"])
            for p in published["partitions"]
        },
        naming.REJECTS_TABLE: {(batch_id,): uri(outputs["rejects"])},
    }
    for report, table_name in naming.BATCH_REPORT_TABLES.items():
        result[table_name] = {(batch_id,): uri(outputs["reports"][report])}
    return result
