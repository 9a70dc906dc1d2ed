"""The operations routes: liveness, the deployment's status and the batch history."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler.api_gateway import Router

# pydantic (the OpenAPI schema of the responses) needs this TypedDict before Python 3.12.
from typing_extensions import TypedDict

from duffbeer import __version__
from duffbeer.errors import QueryError
from duffbeer.state import Publication
from duffbeer.telemetry import logger
from lambdas.api.batches import BATCH_PARAMS, DEFAULT_PAGE_SIZE, BatchesPage, BatchHistory
from lambdas.api.declarations import ALWAYS, RouteTable, responses
from lambdas.api.parameters import BatchesCursorParam, BatchesLimitParam, check_query
from lambdas.api.queries import ReportService


class Health(TypedDict):
    status: str
    version: str


def operations_router(
    service: ReportService,
    batch_history: Callable[[], BatchHistory],
    currency: str,
    table: RouteTable,
) -> Router:
    """/health, /status (with `currency`, the one of every amount) and /batches."""
    router = Router()

    @table.get(
        router,
        "/health",
        summary="Liveness: the API answers, and its release (no key needed).",
        tags=["operations"],
        responses=responses(*ALWAYS),
    )
    def health() -> Health:
        # Says nothing of the deployment: anyone may call it.
        check_query(router, ())
        return {"status": "ok", "version": __version__}

    @table.get(
        router,
        "/status",
        summary="The currency of the amounts, the query backend and the publication it "
        "serves (the key is needed).",
        tags=["operations"],
        responses=responses(*ALWAYS),
    )
    def status() -> dict[str, Any]:
        check_query(router, ())
        return {
            "status": "ok",
            "version": __version__,
            "currency": currency,
            **service.backend.status(),
        }

    @table.get(
        router,
        "/batches",
        summary="The batch history: every run with a record, newest first, paged.",
        tags=["operations"],
        responses=responses(*ALWAYS),
    )
    def batches(limit: BatchesLimitParam = None, cursor: BatchesCursorParam = None) -> BatchesPage:
        check_query(router, BATCH_PARAMS)
        published = _publications_if_readable(service)
        return batch_history().page(limit or DEFAULT_PAGE_SIZE, cursor, published)

    return router


def _publications_if_readable(service: ReportService) -> list[Publication]:
    """The state's publications, or none when the catalog cannot be read: the batch history
    comes from the bucket and still answers, without the instants runs entered the reports."""
    try:
        return service.backend.published()
    except QueryError as e:
        logger.warning("publications not read for the batch history", extra={"error": str(e)})
        return []
