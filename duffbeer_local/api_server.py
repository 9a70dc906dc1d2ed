"""The local HTTP front of the deployed REST API: real HTTP in, API Gateway proxy events out.

moto records the REST API (resources, methods, Lambda proxy integrations, API keys) but does
not route HTTP to Lambda. This front reads that configuration from the endpoint, matches
each request to a resource (`{param}` and `{proxy+}` templates), enforces `apiKeyRequired`
with the deployed keys (`x-api-key`), builds the REST proxy event and invokes the integrated
function in warm local workers (the API must answer in milliseconds, not a process start).
A function error is API Gateway's 502. It serves the deployed routes and nothing else.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from duffbeer import utc
from duffbeer.errors import LocalModeError
from duffbeer_local import moto_extensions
from duffbeer_local.lambda_runner import InvokeResult, LambdaRuntime

_INTEGRATION_FUNCTION = re.compile(r"functions/(?P<arn>arn:[^/]+)/invocations")


@dataclass(frozen=True)
class Route:
    """One deployed method: a resource template bound to a Lambda proxy integration."""

    resource: str
    method: str
    function_name: str
    api_key_required: bool
    pattern: re.Pattern[str] = field(compare=False)

    @classmethod
    def build(cls, resource: str, method: str, function_name: str, key_required: bool) -> Route:
        parts = []
        for segment in resource.strip("/").split("/"):
            match = re.fullmatch(r"\{(\w+)(\+?)\}", segment)
            if match and match.group(2):
                parts.append(f"(?P<{match.group(1)}>.+)")
            elif match:
                parts.append(f"(?P<{match.group(1)}>[^/]+)")
            else:
                parts.append(re.escape(segment))
        pattern = re.compile("/" + "/".join(parts) if parts != [""] else "/")
        return cls(resource, method, function_name, key_required, pattern)

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if self.method not in (method, "ANY"):
            return None
        found = self.pattern.fullmatch(path)
        return found.groupdict() if found else None


@dataclass(frozen=True)
class ApiDefinition:
    """What the front needs from one deployed REST API."""

    api_id: str
    stage: str
    routes: tuple[Route, ...]
    api_keys: frozenset[str]

    def find(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The route for `path`; literal segments win over templates, as on API Gateway."""
        candidates = []
        for route in self.routes:
            params = route.match(method, path)
            if params is not None:
                candidates.append((route.resource.count("{"), route, params))
        if not candidates:
            return None
        _, route, params = min(candidates, key=lambda c: (c[0], -len(c[1].resource)))
        return route, params


def load_api(apigateway: Any, api_id: str, stage: str | None = None) -> ApiDefinition:
    """Read resources, methods, integrations and API keys of a deployed REST API."""
    routes: list[Route] = []
    paginator = apigateway.get_paginator("get_resources")
    for page in paginator.paginate(restApiId=api_id):
        for resource in page["items"]:
            for method in resource.get("resourceMethods", {}) or {}:
                described = apigateway.get_method(
                    restApiId=api_id, resourceId=resource["id"], httpMethod=method
                )
                uri = (described.get("methodIntegration") or {}).get("uri", "")
                found = _INTEGRATION_FUNCTION.search(uri)
                if not found:
                    continue
                function_name = found.group("arn").split(":function:")[1].split(":")[0]
                routes.append(
                    Route.build(
                        resource["path"],
                        method,
                        function_name,
                        bool(described.get("apiKeyRequired")),
                    )
                )
    if not routes:
        raise LocalModeError(f"REST API {api_id} has no Lambda proxy integrations to serve")
    if stage is None:
        stages = apigateway.get_stages(restApiId=api_id).get("item", [])
        stage = stages[0]["stageName"] if stages else "local"
    keys = frozenset(
        key["value"]
        for key in apigateway.get_api_keys(includeValues=True).get("items", [])
        if key.get("enabled", True) and key.get("value")
    )
    return ApiDefinition(api_id, stage, tuple(routes), keys)


def proxy_event(
    api: ApiDefinition,
    route: Route,
    path_parameters: dict[str, str],
    *,
    method: str,
    path: str,
    query: Mapping[str, list[str]],
    headers: Mapping[str, list[str]],
    body: bytes,
    source_ip: str,
) -> dict[str, Any]:
    """The REST API (v1) Lambda proxy integration event for one request."""
    now = utc.now()
    is_text = True
    try:
        text = body.decode("utf-8") if body else None
    except UnicodeDecodeError:
        text, is_text = base64.b64encode(body).decode(), False
    return {
        "resource": route.resource,
        "path": path,
        "httpMethod": method,
        "headers": {name: values[-1] for name, values in headers.items()} or None,
        "multiValueHeaders": {name: list(values) for name, values in headers.items()} or None,
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": {k: list(v) for k, v in query.items()} or None,
        "pathParameters": path_parameters or None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": route.resource,
            "httpMethod": method,
            "path": f"/{api.stage}{path}",
            "stage": api.stage,
            "apiId": api.api_id,
            "accountId": moto_extensions.DEFAULT_ACCOUNT_ID,
            "requestId": str(uuid.uuid4()),
            "extendedRequestId": str(uuid.uuid4()),
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "protocol": "HTTP/1.1",
            "identity": {
                "sourceIp": source_ip,
                "userAgent": (headers.get("user-agent") or [""])[-1],
            },
            "domainName": "127.0.0.1",
        },
        "body": text,
        "isBase64Encoded": not is_text,
    }


def http_response(result: InvokeResult) -> tuple[int, dict[str, str], bytes]:
    """API Gateway's answer for a proxy integration result (502 for errors or bad shapes)."""
    bad_gateway = (
        502,
        {"Content-Type": "application/json"},
        b'{"message": "Internal server error"}',
    )
    if result.is_error:
        return bad_gateway
    try:
        response = json.loads(result.payload)
        status = int(response["statusCode"])
    except (ValueError, KeyError, TypeError):
        return bad_gateway
    headers = {str(k): str(v) for k, v in (response.get("headers") or {}).items()}
    for name, values in (response.get("multiValueHeaders") or {}).items():
        headers[str(name)] = ", ".join(str(v) for v in values)
    body = response.get("body") or ""
    data = base64.b64decode(body) if response.get("isBase64Encoded") else str(body).encode()
    return status, headers, data


# API Gateway refuses payloads above 10 MB (its quota for REST APIs).
MAX_BODY_BYTES = 10 * 1024**2


class _BodyError(Exception):
    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def _read_chunked(stream: Any, limit: int) -> bytes:
    """A chunked request body, refused once it exceeds `limit`."""
    body = bytearray()
    while True:
        size_line = stream.readline(64).split(b";", 1)[0].strip()
        try:
            size = int(size_line, 16)
        except ValueError as e:
            raise _BodyError(400, b'{"message": "Invalid chunked body"}') from e
        if size == 0:
            while stream.readline(1024) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return bytes(body)
        if len(body) + size > limit:
            raise _BodyError(413, b'{"message": "Request Too Long"}')
        body += stream.read(size)
        stream.readline(8)  # the CRLF after the chunk


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 drops the SYNs of a burst of new clients, which
    # then retry after a full second.
    request_queue_size = 128


class LocalApiServer:
    """Serves one deployed REST API on 127.0.0.1:port from warm local Lambda workers."""

    def __init__(
        self,
        *,
        lambdas: LambdaRuntime,
        apigateway: Any,
        api_id: str,
        port: int = 0,
        region: str = "us-east-1",
        env_overrides: Mapping[str, str] | None = None,
        warm_workers: int = 2,
        stage: str | None = None,
    ) -> None:
        self._lambdas = lambdas
        self._apigateway = apigateway
        self._api_id = api_id
        self._port = port
        self._region = region
        self._env = dict(env_overrides or {})
        self._warm_workers = warm_workers
        self._stage = stage
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.api: ApiDefinition | None = None

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise LocalModeError("the local API server is not running")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def refresh(self) -> ApiDefinition:
        """Re-read the deployed API (after a redeploy) and warm its functions' workers."""
        api = load_api(self._apigateway, self._api_id, self._stage)
        for name in sorted({route.function_name for route in api.routes}):
            spec = moto_extensions.deployed_function(name, self._region)
            self._lambdas.provision(spec, self._warm_workers, env_overrides=self._env)
        self.api = api
        self._warm_up(api)
        return api

    def _warm_up(self, api: ApiDefinition) -> None:
        """One pass over the parameterless GET routes on every worker at once, so each warm
        process has built its query state before the first client waits on it."""
        paths = [r.resource for r in api.routes if r.method == "GET" and "{" not in r.resource]

        def one_pass(_: int) -> None:
            for path in paths:
                self.handle("GET", path, {"x-api-key": sorted(api.api_keys)[:1]}, b"")

        with ThreadPoolExecutor(max_workers=self._warm_workers) as pool:
            list(pool.map(one_pass, range(self._warm_workers)))

    def handle(
        self,
        method: str,
        raw_path: str,
        headers: Mapping[str, list[str]],
        body: bytes,
        source_ip: str = "127.0.0.1",
    ) -> tuple[int, dict[str, str], bytes]:
        """Answer one request (the HTTP layer only parses and writes)."""
        api = self.api
        if api is None:
            return 503, {"Content-Type": "application/json"}, b'{"message": "starting"}'
        parts = urlsplit(raw_path)
        path = parts.path or "/"
        if path == f"/{api.stage}" or path.startswith(f"/{api.stage}/"):
            path = path[len(api.stage) + 1 :] or "/"
        query = parse_qs(parts.query, keep_blank_values=True)
        found = api.find(method, path)
        if found is None:
            # API Gateway's answer for a path or method the API does not define.
            body_text = b'{"message": "Missing Authentication Token"}'
            return 403, {"Content-Type": "application/json"}, body_text
        route, params = found
        if route.api_key_required and (headers.get("x-api-key") or [""])[-1] not in api.api_keys:
            return 403, {"Content-Type": "application/json"}, b'{"message": "Forbidden"}'
        event = proxy_event(
            api,
            route,
            params,
            method=method,
            path=path,
            query=query,
            headers=headers,
            body=body,
            source_ip=source_ip,
        )
        spec = moto_extensions.deployed_function(route.function_name, self._region)
        return http_response(self._lambdas.invoke(spec, event, env_overrides=self._env))

    def start(self) -> LocalApiServer:
        self.refresh()
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "duffbeer-local-api"
            # Headers and body leave in two writes; with Nagle on, keep-alive clients wait
            # ~40 ms for a delayed ACK on every response.
            disable_nagle_algorithm = True

            def _serve(self) -> None:
                try:
                    body = self._read_body()
                except _BodyError as e:
                    # As API Gateway: refuse the request, never read an unbounded body.
                    self.close_connection = True
                    self._write(e.status, {"Content-Type": "application/json"}, e.body)
                    return
                headers: dict[str, list[str]] = {}
                for name, value in self.headers.items():
                    headers.setdefault(name.lower(), []).append(value)
                try:
                    status, out_headers, data = front.handle(
                        self.command, self.path, headers, body, self.client_address[0]
                    )
                except Exception as e:  # the front's own failure is a 500, never a hang
                    status, out_headers = 500, {"Content-Type": "application/json"}
                    data = json.dumps({"message": f"local API front error: {e}"}).encode()
                self._write(status, out_headers, data)

            def _read_body(self) -> bytes:
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    return _read_chunked(self.rfile, MAX_BODY_BYTES)
                raw = self.headers.get("Content-Length") or "0"
                if not raw.isdigit():
                    raise _BodyError(400, b'{"message": "Invalid Content-Length"}')
                length = int(raw)
                if length > MAX_BODY_BYTES:
                    raise _BodyError(413, b'{"message": "Request Too Long"}')
                return self.rfile.read(length) if length else b""

            def _write(self, status: int, out_headers: dict[str, str], data: bytes) -> None:
                self.send_response(status)
                for name, value in out_headers.items():
                    if name.lower() not in ("content-length", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                if self.close_connection:
                    self.send_header("Connection", "close")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def __getattr__(self, name: str) -> Any:
                # Every method reaches the router (API Gateway answers TRACE, CONNECT or any
                # other token itself); http.server would answer 501 for undefined do_*.
                if name.startswith("do_"):
                    return self._serve
                raise AttributeError(name)

            def log_message(self, format: str, *args: Any) -> None:
                # Request logs would drown the demo's output; the API function logs its own.
                return

        httpd = _HttpServer(("127.0.0.1", self._port), Handler)
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, name="local-api", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
