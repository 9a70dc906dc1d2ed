"""Bring the Glue Data Catalog up to date for one batch, idempotently.

Ensures the database, the per-batch tables and the Athena views over the state's tables
(created when missing, updated only when their definition changed), then makes the batch's
partitions match the published run of its manifest: missing partitions are created, moved
ones (a re-run published a new run prefix) get the new location, and partitions the
published run no longer has are deleted. Running it twice changes nothing the second time.
The state's own tables are Iceberg tables the state job creates and commits to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError
from pydantic import ConfigDict, Field

from duffbeer import catalog_tables as tables
from duffbeer import manifest as manifests
from duffbeer import naming
from duffbeer.errors import BatchNotPublishedError, InvalidParameterError
from duffbeer.glue_catalog import ensure_database, ensure_table, sync_partitions
from duffbeer.steps import Payload
from duffbeer.telemetry import Measure

logger = Logger(child=True)

DATABASE_DESCRIPTION = (
    "Duff Beer orders: the current state (Iceberg tables and views over them) and the "
    "batch history (curated order lines, batch reports, rejects)"
)
_BATCH_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,127}$")


@dataclass
class SchemaChanges:
    """What ensure_catalog changed: the database, tables and views."""

    database_created: bool = False
    tables_created: list[str] = field(default_factory=list)
    tables_updated: list[str] = field(default_factory=list)


class CatalogResult(Payload):
    # Counted up partition by partition.
    model_config = ConfigDict(frozen=False)

    batch_id: str
    run_id: str
    published_run_id: str
    database_created: bool = False
    tables_created: list[str] = Field(default_factory=list)
    tables_updated: list[str] = Field(default_factory=list)
    partitions_created: int = 0
    partitions_updated: int = 0
    partitions_deleted: int = 0

    def measures(self) -> list[Measure]:
        return [
            Measure("PartitionsCreated", self.partitions_created),
            Measure("PartitionsUpdated", self.partitions_updated),
            Measure("PartitionsDeleted", self.partitions_deleted),
        ]


def ensure_catalog(glue: Any, *, database: str, bucket: str) -> SchemaChanges:
    """The database, every per-batch table and every view over the state's tables.

    Deploy calls it so that they exist before the first batch arrives; the Catalog step
    calls it for each batch (a table or view someone dropped comes back).
    """
    result = SchemaChanges(database_created=ensure_database(glue, database, DATABASE_DESCRIPTION))
    for table_input in (*tables.base_tables(bucket).values(), *tables.views(database).values()):
        change = ensure_table(glue, database, table_input)
        if change == "created":
            result.tables_created.append(table_input["Name"])
        elif change == "updated":
            result.tables_updated.append(table_input["Name"])
    return result


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
    *,
    batch_id: str,
    run_id: str,
    bucket: str,
    database: str,
    glue: Any,
    s3: Any,
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
        # catalog_batch admits only [a-z0-9-] batch ids: safe inside a quoted literal.
        created, updated, deleted = sync_partitions(
            glue,
            database,
            base[table_name],
            desired,
            expression=f"{tables.BATCH_KEY[0]} = '{batch_id}'",
        )
        result.partitions_created += created
        result.partitions_updated += updated
        result.partitions_deleted += deleted
    return result
