"""Latency of a running local API under concurrent keep-alive clients (prints figures only)."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from duffbeer.errors import LocalModeError

DEFAULT_PATHS = ("/orders/1001", "/sales-by-product", "/order-status-report")


@dataclass(frozen=True)
class LatencyReport:
    clients: int
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    def line(self) -> str:
        return (
            f"clients={self.clients} requests={self.requests} errors={self.errors} "
            f"rps={self.requests / self.seconds:.0f} p50={self.p50_ms:.1f}ms "
            f"p95={self.p95_ms:.1f}ms p99={self.p99_ms:.1f}ms max={self.max_ms:.1f}ms"
        )


def _quantile(ordered: Sequence[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure(
    base_url: str,
    api_key: str,
    *,
    clients: int,
    requests_per_client: int,
    paths: Sequence[str] = DEFAULT_PATHS,
) -> LatencyReport:
    """Each client keeps one connection and cycles over `paths`; latencies in milliseconds."""
    parts = urlsplit(base_url)
    if parts.scheme != "http" or not parts.hostname:
        raise LocalModeError(f"expected the local API's http:// URL, got {base_url!r}")
    latencies: list[float] = []
    errors: list[int] = []
    lock = threading.Lock()

    def client() -> None:
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=30)
        mine: list[float] = []
        failed = 0
        for i in range(requests_per_client):
            started = time.perf_counter()
            connection.request("GET", paths[i % len(paths)], headers={"x-api-key": api_key})
            response = connection.getresponse()
            response.read()
            mine.append((time.perf_counter() - started) * 1000)
            failed += response.status != 200
        connection.close()
        with lock:
            latencies.extend(mine)
            errors.append(failed)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    ordered = sorted(latencies)
    if not ordered:
        raise LocalModeError("no request completed")
    return LatencyReport(
        clients=clients,
        requests=len(ordered),
        errors=sum(errors),
        seconds=seconds,
        p50_ms=_quantile(ordered, 0.50),
        p95_ms=_quantile(ordered, 0.95),
        p99_ms=_quantile(ordered, 0.99),
        max_ms=ordered[-1],
    )
