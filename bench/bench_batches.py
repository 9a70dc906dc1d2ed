"""GET /batches benchmark: one page of the batch history at 10 and at 10,000 recorded runs;
prints the page's latency (median of `--repeat`) and the S3 requests it made, by operation.
Figures are printed, never asserted.

    python -m bench.bench_batches [--runs 10,10000] [--repeat 20]

Each run is written as the pipeline leaves it: the run manifest and a data file under
runs/<batch>/<run>/, its batch pointer, and its entry in the run index (written by the code
PublishBatch calls), ten runs per batch; one run in ten failed and has a quarantine report.
The history is read by the API's own BatchHistory over HTTP from a moto server on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import statistics
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from duffbeer import history, naming
from lambdas.api.batches import BatchHistory

BUCKET = "bench-batches"
REGION = "us-east-1"
RUNS_PER_BATCH = 10
FIRST_UPLOAD = datetime(2025, 1, 1, tzinfo=UTC)


def _write_run(s3: Any, number: int) -> None:
    batch = f"orders-{number // RUNS_PER_BATCH:012x}"
    run = f"{batch}-{number:016x}"
    event_time = FIRST_UPLOAD + timedelta(minutes=number)
    failed = number % 10 == 9
    manifest = {
        "batch_id": batch,
        "run_id": run,
        "status": "FAILED" if failed else "SUCCEEDED",
        "source": {"bucket": "in", "key": f"{batch}.csv", "event_time": event_time.isoformat()},
        "rows_read": 100,
        "rows_valid": 100,
        "rows_rejected": 0,
        "total_sales": "1234.50",
    }
    prefix = naming.run_prefix(batch, run)
    s3.put_object(Bucket=BUCKET, Key=f"{prefix}order_lines/part-0.parquet", Body=b"PAR1")
    s3.put_object(Bucket=BUCKET, Key=naming.run_manifest_key(batch, run), Body=json.dumps(manifest))
    if failed:
        report = {"reason": "RejectThresholdExceededError", "message": "too many rejects"}
        key = f"{naming.quarantine_prefix(batch, run)}{naming.ERROR_REPORT_FILE}"
        s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(report))
    else:
        pointer = {**manifest, "published": {"run_id": run}}
        s3.put_object(Bucket=BUCKET, Key=naming.manifest_key(batch), Body=json.dumps(pointer))
    history.record(
        s3,
        BUCKET,
        batch_id=batch,
        run_id=run,
        at=event_time,
        outcome="quarantined" if failed else "published",
        quarantined=failed,
    )


def _grow(s3: Any, have: int, want: int) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda n: _write_run(s3, n), range(have, want)))


def _measure(s3: Any, repeat: int) -> tuple[float, dict[str, int], int]:
    """Median seconds of one page, the S3 requests of one page, the page's size."""
    calls: collections.Counter[str] = collections.Counter()

    def count(model: Any, **_: Any) -> None:
        calls[model.name] += 1

    s3.meta.events.register("before-call.s3", count)
    page = BatchHistory(BUCKET, s3).page()
    s3.meta.events.unregister("before-call.s3", count)
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        BatchHistory(BUCKET, s3).page()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), dict(calls), len(page["items"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="10,10000", help="history sizes, comma-separated")
    parser.add_argument("--repeat", type=int, default=20)
    ns = parser.parse_args(argv)
    sizes = sorted(int(size) for size in ns.runs.split(","))
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        s3 = boto3.client(
            "s3",
            region_name=REGION,
            endpoint_url=f"http://{host}:{port}",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        s3.create_bucket(Bucket=BUCKET)
        have = 0
        for size in sizes:
            start = time.perf_counter()
            _grow(s3, have, size)
            have = size
            objects = sum(
                page.get("KeyCount", 0)
                for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
            )
            written = time.perf_counter() - start
            median, calls, items = _measure(s3, ns.repeat)
            requests = ", ".join(f"{name} {n}" for name, n in sorted(calls.items()))
            print(
                f"{size:>6,} runs ({objects:,} objects, written in {written:.0f} s): "
                f"GET /batches page of {items} runs in {median * 1000:.0f} ms "
                f"(median of {ns.repeat}); S3 requests: {requests}",
                flush=True,
            )
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
