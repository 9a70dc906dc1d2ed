"""Bring the Glue Data Catalog up to date for one batch, idempotently.

Ensures the database, the partitioned tables and the Athena views (created when missing,
updated only when their definition changed), then makes the batch's partitions match the
published run of its manifest: missing partitions are created, moved ones (a re-run
published a new run prefix) get the new location, and partitions the published run no
longer has are deleted. Running it twice changes nothing the second time.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from duffbeer import manifest as manifests
from duffbeer import naming
from duffbeer.errors import BatchNotPublishedError, CatalogError, InvalidParameterError
from lambdas.catalog_batch import tables

logger = Logger(child=True)

_CREATE_BATCH = 100  # Glue limits per BatchCreatePartition / BatchUpdatePartition call
_UPDATE_BATCH = 100
_DELETE_BATCH = 25  # ... and per BatchDeletePartition call
# The parts of a TableInput this module owns; anything else on an existing table (owner,
# statistics, parameters added by other tools) is left alone when comparing.
_COMPARED_TABLE_KEYS = ("TableType", "PartitionKeys", "ViewOriginalText", "ViewExpandedText")
_COMPARED_STORAGE_KEYS = ("Columns", "Location", "InputFormat", "OutputFormat", "SerdeInfo")

Values = tuple[str, ...]
_BATCH_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,127}$")


@dataclass
class SchemaChanges:
    """What ensure_catalog changed: the database, tables and views."""

    database_created: bool = False
    tables_created: list[str] = field(default_factory=list)
    tables_updated: list[str] = field(default_factory=list)


@dataclass
class CatalogResult:
    batch_id: str
    run_id: str
    published_run_id: str
    database_created: bool = False
    tables_created: list[str] = field(default_factory=list)
    tables_updated: list[str] = field(default_factory=list)
    partitions_created: int = 0
    partitions_updated: int = 0
    partitions_deleted: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def ensure_database(glue: Any, database: str) -> bool:
    """Create the database if missing; True when this call created it."""
    try:
        glue.get_database(Name=database)
        return False
    except ClientError as e:
        if _code(e) != "EntityNotFoundException":
            raise CatalogError(f"cannot read Glue database {database}: {e}") from e
    try:
        glue.create_database(
            DatabaseInput={
                "Name": database,
                "Description": "Duff Beer orders: curated order lines, batch reports, views",
            }
        )
    except ClientError as e:
        if _code(e) != "AlreadyExistsException":  # created concurrently: fine
            raise CatalogError(f"cannot create Glue database {database}: {e}") from e
        return False
    return True


def _comparable(table: dict[str, Any]) -> dict[str, Any]:
    storage = table.get("StorageDescriptor", {})
    # Glue may drop empty values ("" or {}) it was given: compare them as absent.
    result: dict[str, Any] = {key: table.get(key) or None for key in _COMPARED_TABLE_KEYS}
    result["PartitionKeys"] = [
        {"Name": c["Name"], "Type": c["Type"]} for c in table.get("PartitionKeys", [])
    ]
    result["Parameters"] = {
        k: v for k, v in table.get("Parameters", {}).items() if k in _owned_parameters(table)
    }
    compared_storage = {key: storage.get(key) or None for key in _COMPARED_STORAGE_KEYS}
    compared_storage["Columns"] = [
        {"Name": c["Name"], "Type": c["Type"]} for c in storage.get("Columns", [])
    ]
    result["StorageDescriptor"] = compared_storage
    return result


def _owned_parameters(table: dict[str, Any]) -> set[str]:
    if table.get("TableType") == "VIRTUAL_VIEW":
        return {"presto_view", "comment"}
    return set(tables.TABLE_PARAMETERS)


def ensure_table(glue: Any, database: str, table_input: dict[str, Any]) -> str | None:
    """Create or update one table/view; 'created', 'updated' or None (already as defined)."""
    name = table_input["Name"]
    existing = _get_table(glue, database, name)
    try:
        if existing is None:
            try:
                glue.create_table(DatabaseName=database, TableInput=table_input)
                return "created"
            except ClientError as e:
                # Another batch's Catalog step created it first: compare with theirs.
                if _code(e) != "AlreadyExistsException":
                    raise
            existing = _get_table(glue, database, name)
        if existing is None or _comparable(existing) != _comparable(table_input):
            glue.update_table(DatabaseName=database, TableInput=table_input)
            return "updated"
    except ClientError as e:
        raise CatalogError(f"cannot create or update table {database}.{name}: {e}") from e
    return None


def _get_table(glue: Any, database: str, name: str) -> dict[str, Any] | None:
    try:
        table: dict[str, Any] = glue.get_table(DatabaseName=database, Name=name)["Table"]
    except ClientError as e:
        if _code(e) != "EntityNotFoundException":
            raise CatalogError(f"cannot read table {database}.{name}: {e}") from e
        return None
    return table


def ensure_catalog(glue: Any, *, database: str, bucket: str) -> SchemaChanges:
    """The database, every table and every view, as defined in tables.py (no partitions).

    The Catalog step calls it for each batch; deploy may call it too, so that the views
    exist (and answer with no rows) before the first batch arrives.
    """
    result = SchemaChanges(database_created=ensure_database(glue, database))
    for table_input in [*tables.base_tables(bucket).values(), *tables.views(database).values()]:
        change = ensure_table(glue, database, table_input)
        if change == "created":
            result.tables_created.append(table_input["Name"])
        elif change == "updated":
            result.tables_updated.append(table_input["Name"])
    return result


def _existing_partitions(
    glue: Any, database: str, table: str, batch_id: str
) -> Iterator[dict[str, Any]]:
    # catalog_batch admits only [a-z0-9-] batch ids: safe inside a quoted literal.
    expression = f"{tables.BATCH_KEY[0]} = '{batch_id}'"
    paginator = glue.get_paginator("get_partitions")
    for page in paginator.paginate(DatabaseName=database, TableName=table, Expression=expression):
        yield from page.get("Partitions", [])


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _error_code(error: dict[str, Any]) -> str:
    return str(error.get("ErrorDetail", {}).get("ErrorCode", ""))


def _raise_errors(action: str, table: str, errors: list[dict[str, Any]]) -> None:
    if errors:
        details = "; ".join(
            f"{e.get('PartitionValues')}: {_error_code(e)} "
            f"{e.get('ErrorDetail', {}).get('ErrorMessage', '')}".strip()
            for e in errors
        )
        raise CatalogError(f"cannot {action} partitions of {table}: {details}")


def sync_partitions(
    glue: Any,
    database: str,
    table_input: dict[str, Any],
    desired: dict[Values, str],
    *,
    batch_id: str,
) -> tuple[int, int, int]:
    """Make one batch's partitions of one table equal `desired`: (created, updated, deleted)."""
    table = table_input["Name"]
    existing = {
        tuple(p["Values"]): p["StorageDescriptor"].get("Location", "")
        for p in _existing_partitions(glue, database, table, batch_id)
    }
    to_create = [values for values in desired if values not in existing]
    to_update = [v for v in desired if v in existing and existing[v] != desired[v]]
    to_delete = [values for values in existing if values not in desired]

    raced: list[Values] = []
    for chunk in _chunks(to_create, _CREATE_BATCH):
        response = glue.batch_create_partition(
            DatabaseName=database,
            TableName=table,
            PartitionInputList=[
                tables.partition_input(table_input, list(v), desired[v]) for v in chunk
            ],
        )
        errors = response.get("Errors", [])
        # Created concurrently by another run of this batch: converge by updating instead.
        already = [e for e in errors if _error_code(e) == "AlreadyExistsException"]
        _raise_errors("create", table, [e for e in errors if e not in already])
        raced += [tuple(e["PartitionValues"]) for e in already]
    to_update += raced
    for chunk in _chunks(to_update, _UPDATE_BATCH):
        response = glue.batch_update_partition(
            DatabaseName=database,
            TableName=table,
            Entries=[
                {
                    "PartitionValueList": list(v),
                    "PartitionInput": tables.partition_input(table_input, list(v), desired[v]),
                }
                for v in chunk
            ],
        )
        _raise_errors("update", table, response.get("Errors", []))
    for chunk in _chunks(to_delete, _DELETE_BATCH):
        response = glue.batch_delete_partition(
            DatabaseName=database,
            TableName=table,
            PartitionsToDelete=[{"Values": list(v)} for v in chunk],
        )
        _raise_errors("delete", table, response.get("Errors", []))
    return len(to_create) - len(raced), len(to_update), len(to_delete)


def _published(bucket: str, batch_id: str, *, client: Any) -> manifests.Published:
    key = naming.manifest_key(batch_id)
    where = f"s3://{bucket}/{key}"
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
    except ClientError as e:
        raise BatchNotPublishedError(f"cannot read {where}: {e}") from e
    published = manifests.published_block(manifests.loads(body.read()))
    if published is None:
        raise BatchNotPublishedError(f"{where} publishes no run of batch {batch_id}")
    return published


def catalog_batch(
    *, batch_id: str, run_id: str, bucket: str, database: str, glue: Any, s3: Any
) -> CatalogResult:
    """Ensure database, tables and views; point the batch's partitions at its published run."""
    if not _BATCH_ID.match(batch_id):
        # The id is quoted into a GetPartitions expression: only naming.batch_id_for's alphabet.
        raise InvalidParameterError(f"batch_id {batch_id!r} is not a pipeline batch id")
    published = _published(bucket, batch_id, client=s3)
    if published["run_id"] != run_id:
        logger.info(
            "A newer run of the batch is published; cataloging it",
            extra={"published_run_id": published["run_id"]},
        )
    changes = ensure_catalog(glue, database=database, bucket=bucket)
    result = CatalogResult(
        batch_id=batch_id,
        run_id=run_id,
        published_run_id=published["run_id"],
        database_created=changes.database_created,
        tables_created=changes.tables_created,
        tables_updated=changes.tables_updated,
    )
    base = tables.base_tables(bucket)
    partitions = tables.batch_partitions(dict(published), batch_id=batch_id, bucket=bucket)
    for table_name, desired in partitions.items():
        created, updated, deleted = sync_partitions(
            glue, database, base[table_name], desired, batch_id=batch_id
        )
        result.partitions_created += created
        result.partitions_updated += updated
        result.partitions_deleted += deleted
    return result
