"""Athena backend: report queries over one publication of the state's Iceberg tables
(`FOR VERSION AS OF` each table's snapshot), parameterised, run in the workgroup with
result reuse and polled under a deadline."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import BotoCoreError, ClientError

from duffbeer import aws, reports_sql
from duffbeer.errors import QueryError, QueryTimeoutError
from duffbeer.reports_sql import BoundQuery, SqlValue
from duffbeer.state import Publication
from lambdas.api.config import ApiConfig
from lambdas.api.publications import PublicationCache, read_publications
from lambdas.api.queries import Row

logger = Logger(child=True)

_INTEGER_TYPES = frozenset({"tinyint", "smallint", "integer", "int", "bigint"})
_FLOAT_TYPES = frozenset({"double", "float", "real"})
_DONE = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})


def literal(value: SqlValue) -> str:
    """An ExecutionParameters entry: Athena substitutes each one as a SQL literal, so strings
    are quoted here (the API has already restricted their characters)."""
    if isinstance(value, bool):
        raise TypeError("booleans are not bound by the report queries")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, date):
        return f"'{value.isoformat()}'"
    return "'" + value.replace("'", "''") + "'"


def parse_value(text: str | None, column_type: str) -> Any:
    """One result cell (Athena returns every value as text) as the column's Python type."""
    if text is None:
        return None
    kind = column_type.lower()
    if kind in _INTEGER_TYPES:
        return int(text)
    if kind == "decimal":
        return Decimal(text)
    if kind in _FLOAT_TYPES:
        return float(text)
    if kind == "boolean":
        return text == "true"
    return text


@dataclass(frozen=True)
class Backoff:
    """Polling delays: first, multiplied by factor after each poll, never above maximum."""

    first_s: float = 0.1
    factor: float = 2.0
    maximum_s: float = 1.0


def reuse_key(parameters: list[str]) -> str:
    """A digest of a query's execution parameters, distinct for every distinct list."""
    return hashlib.sha256(json.dumps(parameters).encode("utf-8")).hexdigest()[:32]


class AthenaBackend:
    """Each request picks a publication (the publications are cached for
    `pointer_cache_s`), then runs its queries with every table pinned to that
    publication's snapshot, so all the queries of one request read one publication."""

    name = "athena"

    def __init__(
        self,
        *,
        database: str,
        workgroup: str,
        bucket: str,
        output_location: str | None,
        timeout_s: float,
        pointer_cache_s: float = 5.0,
        result_reuse_minutes: int = 0,
        client: Any | None = None,
        s3_client: Any | None = None,
        glue_client: Any | None = None,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.database = database
        self.workgroup = workgroup
        self.bucket = bucket
        self.output_location = output_location
        self.timeout_s = timeout_s
        self.result_reuse_minutes = result_reuse_minutes
        self._client = client
        self._s3 = s3_client
        self._glue = glue_client
        self.backoff = backoff or Backoff()
        self._clock = clock
        self._sleep = sleep
        self.publications = PublicationCache(
            lambda: read_publications(self.glue, self.s3, self.database),
            pointer_cache_s,
            clock=clock,
        )

    @classmethod
    def from_config(cls, config: ApiConfig) -> AthenaBackend:
        return cls(
            database=config.database,
            workgroup=config.workgroup,
            bucket=config.processed_bucket,
            output_location=config.athena_output_location,
            timeout_s=config.query_timeout_s,
            pointer_cache_s=config.pointer_cache_s,
            result_reuse_minutes=config.result_reuse_minutes,
        )

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = aws.client("athena")
        return self._client

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            self._s3 = aws.client("s3")
        return self._s3

    @property
    def glue(self) -> Any:
        if self._glue is None:
            self._glue = aws.client("glue")
        return self._glue

    def fetch(
        self, queries: Sequence[BoundQuery], as_of: datetime | None = None
    ) -> list[list[Row]]:
        """Start every query at once, then wait for all of them under one deadline. Before
        the first publication there is nothing to read: every answer is empty."""
        deadline = self._clock() + self.timeout_s
        publication = self.publications.choose(as_of)
        if publication is None:
            return [[] for _ in queries]
        ids = [self._start(query, publication) for query in queries]
        self._wait(ids, deadline)
        return [self._results(query_id) for query_id in ids]

    def published(self) -> list[Publication]:
        return self.publications.get()

    def status(self) -> dict[str, Any]:
        latest = self.publications.last[-1] if self.publications.last else None
        return {
            "backend": self.name,
            "database": self.database,
            "workgroup": self.workgroup,
            "publication": latest.seq if latest else None,
        }

    def _start(self, query: BoundQuery, publication: Publication) -> str:
        try:
            text = query.render(reports_sql.table_references(self.database, publication.snapshots))
        except KeyError as e:
            raise QueryError(f"query {query.name} names a table the API does not read: {e}") from e
        params = [literal(v) for v in query.params]
        request: dict[str, Any] = {
            "QueryString": text,
            "QueryExecutionContext": {"Database": self.database},
            "WorkGroup": self.workgroup,
        }
        if params:
            request["ExecutionParameters"] = params
        if self.result_reuse_minutes:
            # Athena reuses a stored result of the same query string. The text names the
            # tables' snapshots, so a stored result is never one of another publication; AWS
            # does not document whether execution parameters are part of the match, so the
            # text also carries a digest of them (never the values themselves).
            request["QueryString"] = f"{text}\n/* result key {reuse_key(params)} */"
            # Athena reuses a result only under the workgroup's own result configuration,
            # so none is given per query (the deployed workgroup sets one).
            request["ResultReuseConfiguration"] = {
                "ResultReuseByAgeConfiguration": {
                    "Enabled": True,
                    "MaxAgeInMinutes": self.result_reuse_minutes,
                }
            }
        elif self.output_location:
            # Ignored when the workgroup enforces its own result location.
            request["ResultConfiguration"] = {"OutputLocation": self.output_location}
        try:
            query_id: str = self.client.start_query_execution(**request)["QueryExecutionId"]
        except (ClientError, BotoCoreError) as e:
            raise QueryError(
                f"Athena did not start the {query.name} query in workgroup {self.workgroup}: {e}"
            ) from e
        logger.debug(
            "athena query started",
            extra={"query_id": query_id, "query": query.name, "publication": publication.seq},
        )
        return query_id

    def _wait(self, query_ids: list[str], deadline: float) -> None:
        pending = list(query_ids)
        delay = self.backoff.first_s
        while True:
            for query_id in list(pending):
                execution = self._execution(query_id)
                state = execution["Status"]["State"]
                if state == "SUCCEEDED":
                    pending.remove(query_id)
                elif state in _DONE:
                    reason = execution["Status"].get("StateChangeReason", "no reason given")
                    self._cancel(pending)
                    raise QueryError(f"Athena query {query_id} ended {state}: {reason}")
            if not pending:
                return
            remaining = deadline - self._clock()
            if remaining <= 0:
                self._cancel(pending)
                raise QueryTimeoutError(
                    f"Athena queries {', '.join(pending)} did not finish within "
                    f"{self.timeout_s:g} s in workgroup {self.workgroup}; cancelled"
                )
            self._sleep(min(delay, remaining))
            delay = min(delay * self.backoff.factor, self.backoff.maximum_s)

    def _execution(self, query_id: str) -> dict[str, Any]:
        try:
            execution: dict[str, Any] = self.client.get_query_execution(QueryExecutionId=query_id)[
                "QueryExecution"
            ]
        except (ClientError, BotoCoreError) as e:
            raise QueryError(f"could not read the state of Athena query {query_id}: {e}") from e
        return execution

    def _cancel(self, query_ids: list[str]) -> None:
        for query_id in query_ids:
            try:
                self.client.stop_query_execution(QueryExecutionId=query_id)
            except (ClientError, BotoCoreError):
                # The request fails anyway; a query left running only costs its scan.
                logger.warning("could not cancel Athena query", extra={"query_id": query_id})

    def _results(self, query_id: str) -> list[Row]:
        rows: list[Row] = []
        names: list[str] = []
        types: list[str] = []
        try:
            pages = self.client.get_paginator("get_query_results").paginate(
                QueryExecutionId=query_id, PaginationConfig={"PageSize": 1000}
            )
            for page_number, page in enumerate(pages):
                result_set = page["ResultSet"]
                data_rows = result_set.get("Rows", [])
                if page_number == 0:
                    columns = result_set["ResultSetMetadata"]["ColumnInfo"]
                    names = [c["Name"] for c in columns]
                    types = [c["Type"] for c in columns]
                    # The first row of a SELECT's first page repeats the column names.
                    data_rows = data_rows[1:]
                for data_row in data_rows:
                    cells = [cell.get("VarCharValue") for cell in data_row["Data"]]
                    rows.append(
                        {
                            name: parse_value(cell, kind)
                            for name, cell, kind in zip(names, cells, types, strict=True)
                        }
                    )
        except (ClientError, BotoCoreError) as e:
            raise QueryError(f"could not read the results of Athena query {query_id}: {e}") from e
        return rows
