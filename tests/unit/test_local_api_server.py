"""The local HTTP front's translation: routes from the deployed API, proxy events, responses."""

from __future__ import annotations

import base64
import json

from duffbeer_local.api_server import ApiDefinition, Route, http_response, proxy_event
from duffbeer_local.lambda_runner import InvokeResult

API = ApiDefinition(
    api_id="abc123",
    stage="v1",
    routes=(
        Route.build("/orders/{client_id}", "GET", "orders-api", True),
        Route.build("/orders/summary", "GET", "orders-api", True),
        Route.build("/files/{proxy+}", "ANY", "files-api", False),
        Route.build("/health", "GET", "orders-api", False),
    ),
    api_keys=frozenset({"secret"}),
)


def test_routes_match_templates_literals_first_and_greedy_proxies() -> None:
    by_id = API.find("GET", "/orders/1001")
    literal = API.find("GET", "/orders/summary")
    proxy = API.find("DELETE", "/files/a/b.csv")
    assert by_id is not None and (by_id[0].resource, by_id[1]) == (
        "/orders/{client_id}",
        {"client_id": "1001"},
    )
    assert literal is not None and (literal[0].resource, literal[1]) == ("/orders/summary", {})
    assert proxy is not None and proxy[1] == {"proxy": "a/b.csv"}
    assert API.find("POST", "/orders/1001") is None
    assert API.find("GET", "/orders/1001/extra") is None


def test_proxy_event_has_the_rest_api_v1_shape() -> None:
    route, params = API.find("GET", "/orders/1001") or (None, {})
    assert route is not None
    event = proxy_event(
        API,
        route,
        params,
        method="GET",
        path="/orders/1001",
        query={"include": ["orders"], "tag": ["a", "b"]},
        headers={"x-api-key": ["secret"], "user-agent": ["curl/8"]},
        body=b"",
        source_ip="127.0.0.1",
    )
    context = event.pop("requestContext")
    assert event == {
        "resource": "/orders/{client_id}",
        "path": "/orders/1001",
        "httpMethod": "GET",
        "headers": {"x-api-key": "secret", "user-agent": "curl/8"},
        "multiValueHeaders": {"x-api-key": ["secret"], "user-agent": ["curl/8"]},
        "queryStringParameters": {"include": "orders", "tag": "b"},
        "multiValueQueryStringParameters": {"include": ["orders"], "tag": ["a", "b"]},
        "pathParameters": {"client_id": "1001"},
        "stageVariables": None,
        "body": None,
        "isBase64Encoded": False,
    }
    assert (context["resourcePath"], context["path"], context["stage"], context["apiId"]) == (
        "/orders/{client_id}",
        "/v1/orders/1001",
        "v1",
        "abc123",
    )
    assert context["identity"] == {"sourceIp": "127.0.0.1", "userAgent": "curl/8"}


def test_binary_request_body_is_base64_encoded() -> None:
    route, params = API.find("PUT", "/files/x.bin") or (None, {})
    assert route is not None
    event = proxy_event(
        API,
        route,
        params,
        method="PUT",
        path="/files/x.bin",
        query={},
        headers={},
        body=b"\xff\x00",
        source_ip="127.0.0.1",
    )
    assert (event["body"], event["isBase64Encoded"]) == ("/wA=", True)


def test_lambda_proxy_result_becomes_the_http_response() -> None:
    payload = {
        "statusCode": 404,
        "headers": {"Content-Type": "application/json"},
        "multiValueHeaders": {"X-Trace": ["a", "b"]},
        "body": json.dumps({"message": "client 9 not found"}),
    }
    binary = {"statusCode": 200, "body": base64.b64encode(b"PK").decode(), "isBase64Encoded": True}
    assert http_response(InvokeResult(json.dumps(payload), False, 1.0)) == (
        404,
        {"Content-Type": "application/json", "X-Trace": "a, b"},
        b'{"message": "client 9 not found"}',
    )
    assert http_response(InvokeResult(json.dumps(binary), False, 1.0)) == (200, {}, b"PK")


def test_function_errors_and_malformed_results_are_bad_gateway() -> None:
    error = InvokeResult(json.dumps({"errorType": "QueryError", "errorMessage": "x"}), True, 1.0)
    malformed = InvokeResult(json.dumps({"body": "no status"}), False, 1.0)
    expected = (502, {"Content-Type": "application/json"}, b'{"message": "Internal server error"}')
    assert http_response(error) == expected
    assert http_response(malformed) == expected
