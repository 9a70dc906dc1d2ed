"""The reports page of GET /dashboard: one HTML page, its script, styles and the chart library."""

from __future__ import annotations

import json
from functools import lru_cache
from http import HTTPStatus
from pathlib import Path

from aws_lambda_powertools.event_handler import Response, content_types

STATIC_DIR = Path(__file__).resolve().parent / "static"
# Filled by deploy/packaging.py from node_modules (the version package-lock.json pins); the
# source tree does not hold it.
VENDOR_DIR = Path(__file__).resolve().parent / "vendor"
CHART_LIBRARY = "chart.umd.min.js"

# Only the page's own files: no inline script or style, no other origin, no framing. The
# API calls go to the same origin; Chart.js draws on canvas and sets styles through the
# CSSOM, which style-src does not restrict.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_COMMON_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    # The page's URL may carry the key in its #fragment (never sent, but kept out of
    # Referer headers all the same).
    "Referrer-Policy": "no-referrer",
}
ASSET_TYPES: dict[str, str] = {
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    CHART_LIBRARY: "text/javascript; charset=utf-8",
}


class DashboardAssetMissing(Exception):
    """The deployed package lacks a file of the page (a packaging fault)."""


@lru_cache(maxsize=len(ASSET_TYPES) + 1)
def _read(name: str) -> str:
    path = (VENDOR_DIR if name == CHART_LIBRARY else STATIC_DIR) / name
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise DashboardAssetMissing(
            f"{name} is not in the API package (deploy/artifacts.py vendors it from npm)"
        ) from e


def page_response() -> Response[str]:
    return Response(
        status_code=HTTPStatus.OK.value,
        content_type="text/html; charset=utf-8",
        body=_read("index.html"),
        headers={**_COMMON_HEADERS, "Cache-Control": "no-store"},
    )


def asset_response(name: str) -> Response[str]:
    if name not in ASSET_TYPES:
        status = HTTPStatus.NOT_FOUND
        body = {"status": status.value, "error": status.phrase, "message": f"no asset {name!a}"}
        return Response(
            status_code=status.value,
            content_type=content_types.APPLICATION_JSON,
            body=json.dumps(body),
        )
    return Response(
        status_code=HTTPStatus.OK.value,
        content_type=ASSET_TYPES[name],
        body=_read(name),
        # Short: a redeploy changes the page and its script together.
        headers={**_COMMON_HEADERS, "Cache-Control": "max-age=300"},
    )
