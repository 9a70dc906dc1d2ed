"""The cost model's arithmetic: measured quantities times prices, billing minimums, monthly sums.

Pure: no I/O beyond `Prices.load` reading the price file once. bench.cost measures the
quantities (bench.cost_measure) and prints what these functions compute.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from duffbeer.errors import ConfigurationError

MB = 1024**2
GB = 1024**3

_REQUIRED: dict[str, tuple[str, ...]] = {
    "glue": ("usd_per_dpu_hour", "minimum_seconds_per_run"),
    "athena": (
        "usd_per_tb_scanned",
        "bytes_per_tb",
        "minimum_bytes_per_query",
        "rounding_bytes",
    ),
    "lambda": ("usd_per_gb_second", "usd_per_million_requests"),
    "step_functions": ("usd_per_thousand_transitions",),
    "s3": ("usd_per_gb_month", "usd_per_thousand_put_class", "usd_per_thousand_get_class"),
    "cloudwatch": (
        "usd_per_alarm_month",
        "usd_per_dashboard_month",
        "usd_per_metric_month",
        "usd_per_gb_ingested",
        "usd_per_gb_month_stored",
    ),
    "xray": ("usd_per_million_traces_recorded",),
    "api_gateway": ("usd_per_million_requests",),
    "assumptions": (
        "days_per_month",
        "athena_seconds_per_query",
        "xray_traces_per_batch",
        "xray_traces_per_request",
    ),
}


@dataclass(frozen=True)
class Prices:
    """The price file's tables (validated once: every price present, a number, not negative)."""

    region: str
    as_of: str
    sections: Mapping[str, Mapping[str, Any]]
    dpu_per_worker: Mapping[str, float]

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> Prices:
        problems = [f"missing {name}" for name in ("region", "as_of") if name not in document]
        for section, keys in _REQUIRED.items():
            table = document.get(section)
            if not isinstance(table, Mapping):
                problems.append(f"missing table [{section}]")
                continue
            for key in keys:
                value = table.get(key)
                if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                    problems.append(f"[{section}] {key} must be a number >= 0, not {value!r}")
        dpus = document.get("glue", {}).get("dpu_per_worker")
        if not isinstance(dpus, Mapping) or not dpus:
            problems.append("[glue] dpu_per_worker must map worker types to DPUs")
            dpus = {}
        if problems:
            raise ConfigurationError("price file: " + "; ".join(problems))
        return cls(
            region=str(document["region"]),
            as_of=str(document["as_of"]),
            sections={s: dict(document[s]) for s in _REQUIRED},
            dpu_per_worker={str(k): float(v) for k, v in dpus.items()},
        )

    @classmethod
    def load(cls, path: Path) -> Prices:
        try:
            document = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ConfigurationError(f"price file {path}: {e}") from e
        return cls.from_dict(document)

    def __call__(self, section: str, key: str) -> float:
        return float(self.sections[section][key])

    def urls(self) -> dict[str, str]:
        return {s: str(t["url"]) for s, t in self.sections.items() if "url" in t}


@dataclass(frozen=True)
class GlueRun:
    """One Glue job run: its workers and how long it ran."""

    worker_type: str
    workers: int
    seconds: float


@dataclass(frozen=True)
class LambdaCall:
    """One Lambda invocation: the function's memory and the invocation's duration."""

    memory_mb: int
    duration_ms: float


@dataclass(frozen=True)
class BatchUsage:
    """What one batch uses, measured on a local run (or extrapolated from two)."""

    rows: int
    glue_runs: tuple[GlueRun, ...]
    lambda_calls: tuple[LambdaCall, ...]
    state_transitions: float
    s3_put_requests: float
    s3_get_requests: float
    bytes_stored: float
    log_bytes: float


@dataclass(frozen=True)
class RequestUsage:
    """One API request of one route: the bytes each of its Athena queries would scan, the
    function's memory, its local duration (without Athena) and its log bytes."""

    route: str
    query_bytes: tuple[float, ...]
    memory_mb: int
    local_duration_ms: float
    log_bytes: float


@dataclass(frozen=True)
class StackUsage:
    """What the stack holds or runs with no traffic."""

    alarms: int
    dashboards: int
    custom_metrics: int
    upkeep_run: GlueRun
    artifact_bytes: float


@dataclass(frozen=True)
class LineItem:
    """One line of a bill: what, how much of it (in `unit`), and its price."""

    name: str
    quantity: float
    unit: str
    usd: float


# --- Billing rules ----------------------------------------------------------------------------


def glue_dpu_seconds(run: GlueRun, prices: Prices) -> float:
    """DPU-seconds billed for a run: DPUs x seconds, at least the per-run minimum."""
    try:
        dpus = prices.dpu_per_worker[run.worker_type]
    except KeyError:
        raise ConfigurationError(f"no DPUs for worker type {run.worker_type}") from None
    return dpus * run.workers * max(run.seconds, prices("glue", "minimum_seconds_per_run"))


def athena_billed_bytes(scanned: float, prices: Prices) -> float:
    """Bytes billed for one query: rounded up to the unit, at least the minimum."""
    unit = prices("athena", "rounding_bytes")
    rounded = math.ceil(scanned / unit) * unit if unit else scanned
    return max(rounded, prices("athena", "minimum_bytes_per_query"))


def lambda_gb_seconds(call: LambdaCall) -> float:
    """GB-seconds billed: memory in GB x the duration rounded up to the millisecond."""
    return call.memory_mb / 1024 * math.ceil(call.duration_ms) / 1000


# --- Line items ---------------------------------------------------------------------------------


def _item(name: str, quantity: float, unit: str, usd: float) -> LineItem:
    return LineItem(name, quantity, unit, usd)


def _logs_and_traces(log_bytes: float, traces: float, prices: Prices) -> list[LineItem]:
    """The CloudWatch Logs ingestion and X-Ray lines a batch and a request both have."""
    return [
        _item(
            "CloudWatch Logs ingestion",
            log_bytes / MB,
            "MB",
            log_bytes / GB * prices("cloudwatch", "usd_per_gb_ingested"),
        ),
        _item(
            "X-Ray traces",
            traces,
            "traces",
            traces / 1e6 * prices("xray", "usd_per_million_traces_recorded"),
        ),
    ]


def batch_items(batch: BatchUsage, prices: Prices) -> list[LineItem]:
    """The cost of one batch, per service (storage is monthly: see month_items)."""
    dpu_s = sum(glue_dpu_seconds(run, prices) for run in batch.glue_runs)
    gb_s = sum(lambda_gb_seconds(call) for call in batch.lambda_calls)
    invocations = len(batch.lambda_calls)
    traces = prices("assumptions", "xray_traces_per_batch")
    return [
        _item("Glue", dpu_s, "DPU-s", dpu_s / 3600 * prices("glue", "usd_per_dpu_hour")),
        _item("Lambda duration", gb_s, "GB-s", gb_s * prices("lambda", "usd_per_gb_second")),
        _item(
            "Lambda requests",
            invocations,
            "requests",
            invocations / 1e6 * prices("lambda", "usd_per_million_requests"),
        ),
        _item(
            "Step Functions",
            batch.state_transitions,
            "transitions",
            batch.state_transitions
            / 1000
            * prices("step_functions", "usd_per_thousand_transitions"),
        ),
        _item(
            "S3 PUT/LIST requests",
            batch.s3_put_requests,
            "requests",
            batch.s3_put_requests / 1000 * prices("s3", "usd_per_thousand_put_class"),
        ),
        _item(
            "S3 GET requests",
            batch.s3_get_requests,
            "requests",
            batch.s3_get_requests / 1000 * prices("s3", "usd_per_thousand_get_class"),
        ),
        *_logs_and_traces(batch.log_bytes, traces, prices),
    ]


def request_items(request: RequestUsage, prices: Prices) -> list[LineItem]:
    """The cost of one API request: API Gateway, the Lambda (waiting for Athena), Athena."""
    queries = len(request.query_bytes)
    waited_ms = queries * prices("assumptions", "athena_seconds_per_query") * 1000
    gb_s = lambda_gb_seconds(LambdaCall(request.memory_mb, request.local_duration_ms + waited_ms))
    billed = sum(athena_billed_bytes(b, prices) for b in request.query_bytes)
    traces = prices("assumptions", "xray_traces_per_request")
    return [
        _item(
            "API Gateway",
            1,
            "requests",
            prices("api_gateway", "usd_per_million_requests") / 1e6,
        ),
        _item("Lambda duration", gb_s, "GB-s", gb_s * prices("lambda", "usd_per_gb_second")),
        _item("Lambda requests", 1, "requests", prices("lambda", "usd_per_million_requests") / 1e6),
        _item(
            "Athena",
            billed / MB,
            "MB billed",
            billed / prices("athena", "bytes_per_tb") * prices("athena", "usd_per_tb_scanned"),
        ),
        *_logs_and_traces(request.log_bytes, traces, prices),
    ]


def mean_items(lists: Sequence[Sequence[LineItem]]) -> list[LineItem]:
    """Line by line, the mean of equally shaped bills (a request of an even route mix)."""
    if not lists:
        return []
    count = len(lists)
    return [
        _item(
            first.name,
            sum(items[i].quantity for items in lists) / count,
            first.unit,
            sum(items[i].usd for items in lists) / count,
        )
        for i, first in enumerate(lists[0])
    ]


def idle_items(stack: StackUsage, prices: Prices) -> list[LineItem]:
    """A month with no batch and no request: what the stack keeps and its daily upkeep."""
    days = prices("assumptions", "days_per_month")
    upkeep_dpu_s = glue_dpu_seconds(stack.upkeep_run, prices) * days
    return [
        _item(
            "CloudWatch alarms",
            stack.alarms,
            "alarms",
            stack.alarms * prices("cloudwatch", "usd_per_alarm_month"),
        ),
        _item(
            "CloudWatch dashboard",
            stack.dashboards,
            "dashboards",
            stack.dashboards * prices("cloudwatch", "usd_per_dashboard_month"),
        ),
        _item(
            "Glue daily upkeep job",
            upkeep_dpu_s,
            "DPU-s",
            upkeep_dpu_s / 3600 * prices("glue", "usd_per_dpu_hour"),
        ),
        _item(
            "S3 storage (code and artifacts)",
            stack.artifact_bytes / GB,
            "GB-month",
            stack.artifact_bytes / GB * prices("s3", "usd_per_gb_month"),
        ),
    ]


def scaled(items: Iterable[LineItem], factor: float, prefix: str = "") -> list[LineItem]:
    return [_item(prefix + i.name, i.quantity * factor, i.unit, i.usd * factor) for i in items]


def month_items(
    batch: BatchUsage,
    requests: Sequence[RequestUsage],
    stack: StackUsage,
    batches_per_day: float,
    requests_per_day: float,
    prices: Prices,
) -> list[LineItem]:
    """A month at `batches_per_day` batches and `requests_per_day` requests (an even mix of
    the routes): the batches, the requests, the month's data and logs kept (each batch's
    bytes held for the whole month: an upper bound), custom metrics, and the idle stack."""
    days = prices("assumptions", "days_per_month")
    batches, calls = batches_per_day * days, requests_per_day * days
    per_request = mean_items([request_items(r, prices) for r in requests])
    stored_gb = batch.bytes_stored * batches / GB
    logs_gb = (
        batch.log_bytes * batches
        + sum(r.log_bytes for r in requests) / max(1, len(requests)) * calls
    ) / GB
    metrics = stack.custom_metrics if batches else 0
    return [
        *scaled(batch_items(batch, prices), batches, "batches: "),
        *scaled(per_request, calls, "API: "),
        _item(
            "S3 storage (the month's batches)",
            stored_gb,
            "GB-month",
            stored_gb * prices("s3", "usd_per_gb_month"),
        ),
        _item(
            "CloudWatch Logs storage",
            logs_gb,
            "GB-month",
            logs_gb * prices("cloudwatch", "usd_per_gb_month_stored"),
        ),
        _item(
            "CloudWatch custom metrics",
            metrics,
            "metrics",
            metrics * prices("cloudwatch", "usd_per_metric_month"),
        ),
        *idle_items(stack, prices),
    ]


def total(items: Iterable[LineItem]) -> float:
    return sum(item.usd for item in items)


# --- Extrapolation -----------------------------------------------------------------------------


def linear(rows: int, small: tuple[int, float], large: tuple[int, float]) -> float:
    """The value at `rows` on the line through two measured (rows, value) points: a fixed
    part plus a part per row. A slope below zero (noise between two runs) counts as zero."""
    (n1, q1), (n2, q2) = small, large
    if n2 == n1:
        return q2
    slope = max(0.0, (q2 - q1) / (n2 - n1))
    return max(0.0, q1 + slope * (rows - n1))


def extrapolate(small: BatchUsage, large: BatchUsage, rows: int) -> BatchUsage:
    """A batch of `rows` rows from two measured batches, each quantity on its own line
    (Glue runs and Lambda calls matched in order)."""
    if len(small.glue_runs) != len(large.glue_runs) or len(small.lambda_calls) != len(
        large.lambda_calls
    ):
        raise ConfigurationError("the two measured batches ran different steps")

    def line(a: float, b: float) -> float:
        return linear(rows, (small.rows, a), (large.rows, b))

    return BatchUsage(
        rows=rows,
        glue_runs=tuple(
            replace(b, seconds=line(a.seconds, b.seconds))
            for a, b in zip(small.glue_runs, large.glue_runs, strict=True)
        ),
        lambda_calls=tuple(
            replace(b, duration_ms=line(a.duration_ms, b.duration_ms))
            for a, b in zip(small.lambda_calls, large.lambda_calls, strict=True)
        ),
        state_transitions=line(small.state_transitions, large.state_transitions),
        s3_put_requests=line(small.s3_put_requests, large.s3_put_requests),
        s3_get_requests=line(small.s3_get_requests, large.s3_get_requests),
        bytes_stored=line(small.bytes_stored, large.bytes_stored),
        log_bytes=line(small.log_bytes, large.log_bytes),
    )


def extrapolate_requests(
    small: tuple[int, Sequence[RequestUsage]], large: tuple[int, Sequence[RequestUsage]], rows: int
) -> list[RequestUsage]:
    """The routes' requests over a state of `rows` rows (query bytes on a line in rows;
    duration and logs as measured on the larger state)."""
    (n1, first), (n2, second) = small, large
    return [
        replace(
            b,
            query_bytes=tuple(
                linear(rows, (n1, qa), (n2, qb))
                for qa, qb in zip(a.query_bytes, b.query_bytes, strict=True)
            ),
        )
        for a, b in zip(first, second, strict=True)
    ]
