"""Measures what one batch and the API use on a real local run, for the cost model (bench.cost).

    measurement = measure_batch(rows=10_000, work_dir=Path("build/cost"))

The local stack (duffbeer_local.pipeline.LocalPipeline, as `python -m duffbeer_local demo`
starts it) deploys, a generated file of `rows` rows (bench.generate_orders) is uploaded and
its execution followed to the end; then the quantities AWS bills are read from that run:
the execution history (state transitions: its *StateEntered events), the Glue job runs
(StartedOn to CompletedOn), the REPORT line of every Lambda invocation, the object versions
the batch added to the buckets, the S3 requests the moto server answered for the buckets
during the batch, the log bytes written, the deployed alarms and dashboards. Then each
report route of the API is called on the local front, and the bytes Athena would scan for
its queries are measured on the published Iceberg tables (bench.bench_api.ScanMeter). Last,
the daily upkeep job (the Glue trigger's action) is run once.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pyiceberg.catalog import load_catalog

from bench import bench_api
from bench.generate_orders import generate_orders
from deploy.stack import FUNCTIONS
from duffbeer_local.executions import execution_history
from duffbeer_local.pipeline import LocalPipeline, LocalSettings

# The routes called on the local API, by bench.bench_api.ROUTE_QUERIES key; {client} is a
# client of the batch.
ROUTE_PATHS: dict[str, str] = {
    "orders": "/orders/{client}",
    "orders+list": f"/orders/{{client}}?include=orders&limit={bench_api.ORDERS_PAGE}",
    "sales-by-product": "/sales-by-product",
    "order-status-report": "/order-status-report",
    "daily-sales": "/daily-sales",
    "top-clients": "/top-clients",
}
# Each route is called this often; the median REPORT duration stands for a warm request.
CALLS_PER_ROUTE = 5
UPKEEP_TIMEOUT_S = 900.0
_GLUE_DONE = frozenset({"SUCCEEDED", "FAILED", "TIMEOUT", "STOPPED", "ERROR"})
_REPORT = re.compile(r"^REPORT RequestId: \S+\s+Duration: ([0-9.]+) ms")
_REQUEST_LINE = re.compile(r'"([A-Z]+) (/[^ "]*) HTTP/[0-9.]+"')
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# S3 bills LIST with PUT, COPY and POST; GET, HEAD and the rest at the lower rate.
_PUT_CLASS_METHODS = frozenset({"PUT", "POST", "COPY"})


class S3RequestCounter(logging.Handler):
    """Counts the requests the moto server answers for some buckets (from werkzeug's
    request log: one INFO line per request, path-style `/<bucket>/<key>`)."""

    def __init__(self, buckets: frozenset[str]) -> None:
        super().__init__(logging.INFO)
        self.buckets = buckets
        self.put_class = 0
        self.get_class = 0
        self.free = 0

    def emit(self, record: logging.LogRecord) -> None:
        match = _REQUEST_LINE.search(_ANSI.sub("", record.getMessage()))
        if match is None:
            return
        method, path = match.groups()
        bucket, _, rest = path.lstrip("/").partition("/")
        bucket = bucket.split("?", 1)[0]
        if bucket not in self.buckets:
            return
        key = rest.split("?", 1)[0]
        listing = method == "GET" and not key
        # logging.Handler.handle holds the handler's lock around emit.
        if method == "DELETE":
            self.free += 1
        elif method in _PUT_CLASS_METHODS or listing:
            self.put_class += 1
        else:
            self.get_class += 1


@contextmanager
def counting_s3_requests(buckets: set[str]) -> Iterator[S3RequestCounter]:
    """Count S3 requests for `buckets` while the block runs (the local server logs each
    request through werkzeug; server.py quiets that logger, this turns it on again)."""
    logger = logging.getLogger("werkzeug")
    counter = S3RequestCounter(frozenset(buckets))
    # werkzeug adds a stream handler of its own: the lines are counted, not printed.
    level, propagate, handlers = logger.level, logger.propagate, list(logger.handlers)
    for handler in handlers:
        logger.removeHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(counter)
    try:
        yield counter
    finally:
        logger.removeHandler(counter)
        for handler in handlers:
            logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def object_versions(s3: Any, bucket: str) -> dict[tuple[str, str], int]:
    """Every object version (and delete marker, size 0) of a bucket: (key, version) -> size."""
    found: dict[tuple[str, str], int] = {}
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for version in page.get("Versions", []):
            found[(version["Key"], version["VersionId"])] = int(version["Size"])
        for marker in page.get("DeleteMarkers", []):
            found[(marker["Key"], marker["VersionId"])] = 0
    return found


def report_durations_ms(log: Path) -> list[float]:
    """The Duration of every REPORT line of a local Lambda worker log."""
    if not log.is_file():
        return []
    return [
        float(m.group(1))
        for line in log.read_text(errors="replace").splitlines()
        if (m := _REPORT.match(line))
    ]


def emf_metrics(log_dir: Path) -> list[str]:
    """The custom metrics the Lambdas' embedded-metric-format lines publish, each once
    (namespace, name and dimension values: what CloudWatch bills as one metric)."""
    metrics: set[str] = set()
    for log in sorted(log_dir.glob("*.log")):
        for line in log.read_text(errors="replace").splitlines():
            if '"CloudWatchMetrics"' not in line:
                continue
            try:
                document = json.loads(line[line.index("{") :])
            except ValueError:
                continue
            for directive in document.get("_aws", {}).get("CloudWatchMetrics", []):
                for dimensions in directive.get("Dimensions", []):
                    where = ",".join(f"{d}={document.get(d)}" for d in dimensions)
                    for metric in directive.get("Metrics", []):
                        metrics.add(f"{directive['Namespace']}/{metric['Name']}{{{where}}}")
    return sorted(metrics)


def state_transitions(events: list[dict[str, Any]]) -> int:
    """What Step Functions Standard bills: one transition per state entered."""
    return sum(1 for event in events if event["type"].endswith("StateEntered"))


def glue_runs(glue: Any, job_name: str) -> list[dict[str, Any]]:
    """Each finished run of a job: its seconds (StartedOn to CompletedOn) and workers."""
    job = glue.get_job(JobName=job_name)["Job"]
    runs = []
    for run in glue.get_job_runs(JobName=job_name)["JobRuns"]:
        if run.get("CompletedOn") is None:
            continue
        runs.append(
            {
                "job": job_name,
                "state": run["JobRunState"],
                "seconds": round((run["CompletedOn"] - run["StartedOn"]).total_seconds(), 3),
                "worker_type": job["WorkerType"],
                "workers": int(job["NumberOfWorkers"]),
            }
        )
    return runs


def _wait_for_job_run(glue: Any, job_name: str, run_id: str) -> str:
    deadline = time.monotonic() + UPKEEP_TIMEOUT_S
    while time.monotonic() < deadline:
        state = str(glue.get_job_run(JobName=job_name, RunId=run_id)["JobRun"]["JobRunState"])
        if state in _GLUE_DONE:
            return state
        time.sleep(1.0)
    raise TimeoutError(f"{job_name} run {run_id} still running after {UPKEEP_TIMEOUT_S:.0f} s")


def _folder_bytes(folder: Path, pattern: str = "*") -> int:
    return sum(p.stat().st_size for p in folder.glob(pattern) if p.is_file())


def _lambda_measures(pipeline: LocalPipeline) -> dict[str, dict[str, Any]]:
    """Per function: memory (as deployed), its invocations' durations and log bytes."""
    lam = pipeline.aws.client("lambda")
    logs = pipeline.settings.state_dir / "logs" / "lambda"
    measured = {}
    for spec in FUNCTIONS:
        name = pipeline.outputs.function_arns[spec.key].rsplit(":", 1)[-1]
        memory = int(lam.get_function_configuration(FunctionName=name)["MemorySize"])
        log = logs / f"{name}.log"
        measured[spec.key] = {
            "memory_mb": memory,
            "durations_ms": report_durations_ms(log),
            "log_bytes": log.stat().st_size if log.is_file() else 0,
        }
    return measured


def _scan_bytes(pipeline: LocalPipeline) -> tuple[dict[str, list[int]], list[int]]:
    """Per route, the bytes Athena would scan for each of its queries (the most over a
    few clients, no filter: bench.bench_api's scan measure), and a few client ids."""
    outputs = pipeline.outputs
    endpoint = pipeline.aws.endpoint_url
    catalog = load_catalog(
        "cost",
        type="glue",
        **{
            "glue.endpoint": endpoint,
            "glue.region": outputs.region,
            "s3.endpoint": endpoint,
            "s3.region": outputs.region,
        },
    )
    publication = bench_api.catalog_publications(catalog, outputs.database)[-1]
    space = bench_api.target_space(catalog, outputs.database, publication)
    targets = bench_api.scan_targets(space)["no filter"]
    meter = bench_api.ScanMeter(catalog, outputs.database, publication)
    per_route = {
        route: [
            max(meter.request_bytes([queries(t)[i]]) for t in targets)
            for i in range(len(queries(targets[0])))
        ]
        for route, queries in bench_api.ROUTE_QUERIES.items()
    }
    return per_route, list(space.client_ids[:3])


def _call_routes(pipeline: LocalPipeline, client: int) -> dict[str, int]:
    statuses: Counter[str] = Counter()
    for route, path in ROUTE_PATHS.items():
        for _ in range(CALLS_PER_ROUTE):
            status, _body = pipeline.get(path.format(client=client))
            statuses[f"{route} {status}"] += 1
    return dict(statuses)


def measure_batch(rows: int, work_dir: Path, emit: Any = print) -> dict[str, Any]:
    """Run one batch of `rows` generated rows through a fresh local stack; what it used."""
    work_dir.mkdir(parents=True, exist_ok=True)
    source = generate_orders(work_dir / f"orders-{rows}.csv", rows, seed=1)
    state_dir = work_dir / f"stack-{rows}"
    settings = LocalSettings(state_dir=state_dir, rewarm_spark_drivers=False)
    # Each measurement starts from empty logs, so every log byte belongs to it.
    for stale in (state_dir / "logs").rglob("*.log") if state_dir.exists() else ():
        stale.unlink()
    with LocalPipeline(settings) as pipeline:
        outputs = pipeline.outputs
        s3 = pipeline.aws.client("s3")
        buckets = (outputs.input_bucket, outputs.processed_bucket)
        before = {b: object_versions(s3, b) for b in buckets}
        emit(f"  {rows:,} rows ({source.bytes:,} bytes): upload and wait for the execution")
        with counting_s3_requests(set(buckets)) as requests:
            described = pipeline.process(source.path, f"cost-{rows}.csv")
        if described["status"] != "SUCCEEDED":
            raise RuntimeError(f"the execution ended {described['status']}")
        events = execution_history(pipeline.aws.client("stepfunctions"), described["executionArn"])
        added = {
            b: {k: v for k, v in object_versions(s3, b).items() if k not in before[b]}
            for b in buckets
        }
        glue = pipeline.aws.client("glue")
        batch_glue = [
            *glue_runs(glue, outputs.glue_job_name),
            *glue_runs(glue, outputs.state_job_name),
        ]
        lambdas = _lambda_measures(pipeline)
        glue_log_bytes = _folder_bytes(state_dir / "logs" / "glue", "*.log")
        cloudwatch = pipeline.aws.client("cloudwatch")
        alarms = len(cloudwatch.describe_alarms()["MetricAlarms"])
        dashboards = len(cloudwatch.list_dashboards()["DashboardEntries"])

        emit("  API: each report route, measured scan of its queries")
        pipeline.start_api()
        scans, clients = _scan_bytes(pipeline)
        statuses = _call_routes(pipeline, clients[0])
        api_lambda = _lambda_measures(pipeline)["orders_api"]

        emit("  daily upkeep job: one run")
        run_id = glue.start_job_run(JobName=outputs.maintenance_job_name)["JobRunId"]
        upkeep_state = _wait_for_job_run(glue, outputs.maintenance_job_name, run_id)
        upkeep = glue_runs(glue, outputs.maintenance_job_name)
        artifacts_bytes = sum(sum(v.values()) for v in before.values())

    api_durations = api_lambda["durations_ms"]
    return {
        "rows": rows,
        "input_bytes": source.bytes,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            # Other work on the machine slows the local runs: the 1-minute load average.
            "load_average": round(os.getloadavg()[0], 2),
        },
        "execution": {
            "status": described["status"],
            "seconds": (described["stopDate"] - described["startDate"]).total_seconds(),
            "state_transitions": state_transitions(events),
            # With logging level ALL and execution data, every history event is logged.
            "log_bytes": sum(len(json.dumps(e, default=str)) for e in events),
        },
        "glue_runs": batch_glue,
        "glue_log_bytes": glue_log_bytes,
        "lambda": {k: v for k, v in lambdas.items() if k != "orders_api"},
        "s3": {
            "put_class_requests": requests.put_class,
            "get_class_requests": requests.get_class,
            "delete_requests": requests.free,
            "versions_added": sum(len(v) for v in added.values()),
            "bytes_added": {b: sum(v.values()) for b, v in added.items()},
            "stack_bytes_before_batch": artifacts_bytes,
        },
        "api": {
            "query_scan_bytes": scans,
            "calls": statuses,
            "memory_mb": api_lambda["memory_mb"],
            "median_duration_ms": statistics.median(api_durations) if api_durations else 0.0,
            "invocations": len(api_durations),
            "log_bytes_per_request": (
                api_lambda["log_bytes"] / len(api_durations) if api_durations else 0.0
            ),
        },
        "upkeep": {"state": upkeep_state, "runs": upkeep},
        "custom_metrics": emf_metrics(state_dir / "logs" / "lambda"),
        "stack": {"alarms": alarms, "dashboards": dashboards},
    }
