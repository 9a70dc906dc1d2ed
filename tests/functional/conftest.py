"""A moto server on 127.0.0.1 for functional tests: one per session, state reset per test."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator

import pytest
from moto.server import ThreadedMotoServer


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _post(url: str, body: bytes = b"") -> None:
    # A form content type would make moto read an empty body.
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "text/plain"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


@pytest.fixture(scope="session")
def _moto_server_session() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def moto_server(_moto_server_session: str) -> Iterator[str]:
    """The endpoint URL of a moto server holding no resources (IAM enforcement off)."""
    _post(f"{_moto_server_session}/moto-api/reset")
    yield _moto_server_session
    # Never leave IAM enforcement on for the next test.
    _post(f"{_moto_server_session}/moto-api/reset-auth", b"inf")
    _post(f"{_moto_server_session}/moto-api/reset")
