"""Idempotent Glue Data Catalog operations shared by the steps that write the catalog."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError

from duffbeer import catalog_tables
from duffbeer.errors import CatalogError

_CREATE_BATCH = 100  # Glue limits per BatchCreatePartition / BatchUpdatePartition call
_UPDATE_BATCH = 100
_DELETE_BATCH = 25  # ... and per BatchDeletePartition call
# The parts of a TableInput this module owns; anything else on an existing table (owner,
# statistics, parameters added by other tools) is left alone when comparing.
_COMPARED_TABLE_KEYS = ("TableType", "PartitionKeys", "ViewOriginalText", "ViewExpandedText")
_COMPARED_STORAGE_KEYS = (
    "Columns",
    "Location",
    "InputFormat",
    "OutputFormat",
    "SerdeInfo",
)

Values = tuple[str, ...]


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def ensure_database(glue: Any, database: str, description: str) -> bool:
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
                "Description": description,
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
        return set(catalog_tables.VIEW_PARAMETERS)
    return set(catalog_tables.TABLE_PARAMETERS)


def ensure_table(glue: Any, database: str, table_input: dict[str, Any]) -> str | None:
    """Create or update one table/view; 'created', 'updated' or None (already as defined)."""
    name = table_input["Name"]
    existing = get_table(glue, database, name)
    try:
        if existing is None:
            try:
                glue.create_table(DatabaseName=database, TableInput=table_input)
                return "created"
            except ClientError as e:
                # Another batch's Catalog step created it first: compare with theirs.
                if _code(e) != "AlreadyExistsException":
                    raise
            existing = get_table(glue, database, name)
        if existing is None or _comparable(existing) != _comparable(table_input):
            glue.update_table(DatabaseName=database, TableInput=table_input)
            return "updated"
    except ClientError as e:
        raise CatalogError(f"cannot create or update table {database}.{name}: {e}") from e
    return None


def get_table(glue: Any, database: str, name: str) -> dict[str, Any] | None:
    try:
        table: dict[str, Any] = glue.get_table(DatabaseName=database, Name=name)["Table"]
    except ClientError as e:
        if _code(e) != "EntityNotFoundException":
            raise CatalogError(f"cannot read table {database}.{name}: {e}") from e
        return None
    return table


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
    expression: str | None = None,
) -> tuple[int, int, int]:
    """Make the partitions of one table (those `expression` selects, or all) equal
    `desired`: (created, updated, deleted)."""
    table = table_input["Name"]
    existing = {
        tuple(p["Values"]): p["StorageDescriptor"].get("Location", "")
        for p in existing_partitions(glue, database, table, expression)
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
                catalog_tables.partition_input(table_input, list(v), desired[v]) for v in chunk
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
                    "PartitionInput": catalog_tables.partition_input(
                        table_input, list(v), desired[v]
                    ),
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


def existing_partitions(
    glue: Any, database: str, table: str, expression: str | None = None
) -> Iterator[dict[str, Any]]:
    paginator = glue.get_paginator("get_partitions")
    arguments = {"DatabaseName": database, "TableName": table}
    if expression is not None:
        arguments["Expression"] = expression
    for page in paginator.paginate(**arguments):
        yield from page.get("Partitions", [])
