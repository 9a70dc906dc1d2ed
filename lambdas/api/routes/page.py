"""The reports page, its files, and the OpenAPI document of the other routes."""

from __future__ import annotations

import json
import re
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import Router

from lambdas.api import dashboard
from lambdas.api.declarations import RouteTable
from lambdas.api.parameters import check_query

API_TITLE = "Duff Beer orders reports"
API_VERSION = "1.0.0"

_REFERENCE = re.compile(r'"#/components/schemas/([^"]+)"')


def page_router(app: APIGatewayRestResolver, table: RouteTable) -> Router:
    """/dashboard and its files, and /openapi.json, the document of `app`'s routes."""
    router = Router()

    @table.get(router, "/dashboard", include_in_schema=False)
    def dashboard_page() -> Response[str]:
        check_query(router, ())
        return dashboard.page_response()

    @table.get(router, "/dashboard/<asset>", include_in_schema=False)
    def dashboard_asset(asset: str) -> Response[str]:
        check_query(router, ())
        return dashboard.asset_response(asset)

    @table.get(router, "/openapi.json", include_in_schema=False)
    def openapi() -> Response[str]:
        return Response(
            status_code=HTTPStatus.OK.value,
            content_type=content_types.APPLICATION_JSON,
            body=openapi_document(app),
        )

    return router


def _plain_parameter(schema: dict[str, Any]) -> dict[str, Any]:
    """A parameter's schema as HTTP carries it: never null (an optional parameter is
    absent), a single choice as an enum like the others, whole numbers as integers."""
    for alternative in schema.pop("anyOf", ()):
        if alternative.get("type") != "null":
            schema.update(alternative)
    if "const" in schema:
        schema["enum"] = [schema.pop("const")]
    for bound in ("minimum", "maximum"):
        if isinstance(schema.get(bound), float) and schema[bound].is_integer():
            schema[bound] = int(schema[bound])
    return schema


def openapi_document(app: APIGatewayRestResolver) -> str:
    """The OpenAPI document of the routes, tidied where the resolver's defaults do not fit
    this API: request validation errors are 400s here (not the resolver's 422), and query
    parameters are absent or strings of their declared shape (never null)."""
    document = json.loads(
        app.get_openapi_json_schema(
            title=API_TITLE,
            version=API_VERSION,
            description="The current-state order reports of the Duff Beer orders pipeline. "
            "API Gateway answers requests without a valid x-api-key, and methods the API does "
            "not define, with 403.",
        )
    )
    for path in document.get("paths", {}).values():
        for operation in path.values():
            operation.get("responses", {}).pop("422", None)
            for parameter in operation.get("parameters", []):
                _plain_parameter(parameter["schema"])
    # Keep only the component schemas the routes use (directly or through one another).
    schemas = document.get("components", {}).get("schemas", {})
    used: set[str] = set()
    found = set(_REFERENCE.findall(json.dumps(document.get("paths", {}))))
    while found - used:
        used |= found
        found = {ref for name in used for ref in _REFERENCE.findall(json.dumps(schemas[name]))}
    for name in set(schemas) - used:
        del schemas[name]
    return json.dumps(document)
