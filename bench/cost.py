"""AWS cost of the pipeline: one batch of N rows, one API request, a month, an idle month.

    python -m bench.cost [--rows 10000,1000000,10000000] [--measure-rows 10000,200000]
                         [--batches-per-day 24] [--requests-per-day 10000]
                         [--prices bench/prices.toml] [--work-dir build/cost] [--remeasure]

The quantities come from real local runs (bench.cost_measure: the local stack processes a
generated batch of each `--measure-rows` size, then the API's routes and the daily upkeep
job run), saved as build/cost/measured-<rows>.json and reused until `--remeasure`. A size of
`--rows` that was measured is priced as measured; any other is extrapolated from the two
measured sizes, each quantity on the line through its two measurements (a fixed part plus
a part per row). The prices are bench/prices.toml's (edit it for your region); the
arithmetic is bench.cost_model's.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.cost_model import (
    BatchUsage,
    GlueRun,
    LambdaCall,
    LineItem,
    Prices,
    RequestUsage,
    StackUsage,
    batch_items,
    extrapolate,
    extrapolate_requests,
    idle_items,
    mean_items,
    month_items,
    request_items,
    total,
)
from duffbeer.errors import ConfigurationError, DuffBeerError

ROOT = Path(__file__).resolve().parents[1]
PRICES = Path(__file__).with_name("prices.toml")
WORK_DIR = ROOT / "build" / "cost"


def measurement_path(work_dir: Path, rows: int) -> Path:
    return work_dir / f"measured-{rows}.json"


def measured(work_dir: Path, rows: int, remeasure: bool) -> dict[str, Any]:
    """The saved measurement of a `rows`-row batch, or a new one from a real local run."""
    path = measurement_path(work_dir, rows)
    if path.is_file() and not remeasure:
        document: dict[str, Any] = json.loads(path.read_text())
        return document
    # Spark, moto and the local stack load only when a run is needed.
    from bench.cost_measure import measure_batch  # noqa: PLC0415

    print(f"measuring a {rows:,}-row batch on the local stack (a few minutes)", flush=True)
    document = measure_batch(rows, work_dir)
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return document


def batch_usage(document: dict[str, Any]) -> BatchUsage:
    """The billed quantities of a saved measurement's batch."""
    lambdas = document["lambda"]
    log_bytes = (
        sum(f["log_bytes"] for f in lambdas.values())
        + document["execution"]["log_bytes"]
        + document["glue_log_bytes"]
    )
    return BatchUsage(
        rows=int(document["rows"]),
        glue_runs=tuple(
            GlueRun(r["worker_type"], int(r["workers"]), float(r["seconds"]))
            for r in document["glue_runs"]
        ),
        lambda_calls=tuple(
            LambdaCall(int(f["memory_mb"]), float(ms))
            for _key, f in sorted(lambdas.items())
            for ms in f["durations_ms"]
        ),
        state_transitions=float(document["execution"]["state_transitions"]),
        s3_put_requests=float(document["s3"]["put_class_requests"]),
        s3_get_requests=float(document["s3"]["get_class_requests"]),
        bytes_stored=float(sum(document["s3"]["bytes_added"].values())),
        log_bytes=float(log_bytes),
    )


def request_usages(document: dict[str, Any]) -> list[RequestUsage]:
    api = document["api"]
    return [
        RequestUsage(
            route=route,
            query_bytes=tuple(float(b) for b in scans),
            memory_mb=int(api["memory_mb"]),
            local_duration_ms=float(api["median_duration_ms"]),
            log_bytes=float(api["log_bytes_per_request"]),
        )
        for route, scans in sorted(document["api"]["query_scan_bytes"].items())
    ]


def stack_usage(document: dict[str, Any]) -> StackUsage:
    upkeep = document["upkeep"]["runs"][-1]
    return StackUsage(
        alarms=int(document["stack"]["alarms"]),
        dashboards=int(document["stack"]["dashboards"]),
        custom_metrics=len(document.get("custom_metrics", [])),
        upkeep_run=GlueRun(upkeep["worker_type"], int(upkeep["workers"]), float(upkeep["seconds"])),
        artifact_bytes=float(document["s3"]["stack_bytes_before_batch"]),
    )


# --- Printing ---------------------------------------------------------------------------------

NAME_WIDTH = 38
CELL_WIDTH = 31


def _quantity(item: LineItem) -> str:
    value = item.quantity
    if value >= 100 or value == int(value):
        text = f"{value:,.0f}"
    else:
        text = f"{value:.3f}".rstrip("0") if value >= 0.001 else "< 0.001"
    return f"{text} {item.unit}"


def _cell(item: LineItem) -> str:
    return f"{_quantity(item)} ${item.usd:,.4f}".rjust(CELL_WIDTH)


def print_table(title: str, headers: Sequence[str], columns: Sequence[Sequence[LineItem]]) -> None:
    print(f"\n{title}")
    print(" " * NAME_WIDTH + "".join(h.rjust(CELL_WIDTH) for h in headers))
    for i, first in enumerate(columns[0]):
        print(first.name.ljust(NAME_WIDTH) + "".join(_cell(column[i]) for column in columns))
    print(
        "total".ljust(NAME_WIDTH)
        + "".join(f"${total(column):,.4f}".rjust(CELL_WIDTH) for column in columns)
    )


def _kind(rows: int, measured_rows: Sequence[int]) -> str:
    if rows in measured_rows:
        return "measured"
    return "interpolated" if min(measured_rows) < rows < max(measured_rows) else "extrapolated"


def _shown(path: Path) -> str:
    resolved = path.resolve()
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else str(path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--rows", default="10000,1000000,10000000", help="batch sizes to price (rows)"
    )
    parser.add_argument(
        "--measure-rows", default="10000,200000", help="the two batch sizes run locally"
    )
    parser.add_argument("--batches-per-day", type=float, default=24.0)
    parser.add_argument("--requests-per-day", type=float, default=10_000.0)
    parser.add_argument("--prices", type=Path, default=PRICES, help="the price file")
    parser.add_argument("--work-dir", type=Path, default=WORK_DIR, help="measurements kept here")
    parser.add_argument(
        "--remeasure", action="store_true", help="run the measurements again even if saved"
    )
    ns = parser.parse_args(argv)
    try:
        sizes = [int(r) for r in ns.rows.split(",")]
        measure_rows = sorted(int(r) for r in ns.measure_rows.split(","))
    except ValueError:
        parser.error("--rows and --measure-rows are comma-separated row counts")
    if len(measure_rows) != 2 or measure_rows[0] == measure_rows[1] or min(sizes) <= 0:
        parser.error("--measure-rows takes two different sizes; --rows positive sizes")
    try:
        return report(ns, sizes, measure_rows)
    except (DuffBeerError, OSError, RuntimeError, TimeoutError) as e:
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


def report(ns: argparse.Namespace, sizes: list[int], measure_rows: list[int]) -> int:
    prices = Prices.load(ns.prices)
    ns.work_dir.mkdir(parents=True, exist_ok=True)
    documents = [measured(ns.work_dir, rows, ns.remeasure) for rows in measure_rows]
    small, large = (batch_usage(d) for d in documents)
    measured_requests = [(d["rows"], request_usages(d)) for d in documents]
    if small.rows != measure_rows[0] or large.rows != measure_rows[1]:
        raise ConfigurationError("a saved measurement does not hold the size its name says")
    by_rows = {small.rows: small, large.rows: large}
    batches = [by_rows.get(n) or extrapolate(small, large, n) for n in sizes]
    requests = [
        request_usages(documents[measure_rows.index(n)])
        if n in measure_rows
        else extrapolate_requests(measured_requests[0], measured_requests[1], n)
        for n in sizes
    ]
    stack = stack_usage(documents[-1])
    machine = documents[-1]["machine"]
    days = prices("assumptions", "days_per_month")

    print(
        f"prices: {_shown(ns.prices)}, {prices.region} list prices as of {prices.as_of} (not "
        f"fetched from AWS that day: check {', '.join(prices.urls().values())})"
    )
    print(
        "measured: "
        + " and ".join(f"a {d['rows']:,}-row batch ({d['measured_at']})" for d in documents)
        + f" on the local stack, {machine['cpus']} CPUs ({machine['platform']}), load average "
        + " and ".join(str(d["machine"].get("load_average", "?")) for d in documents)
        + "; other sizes: "
        "each quantity on the line through its two measurements (fixed part + part per row)"
    )
    headers = [f"{n:,} rows ({_kind(n, measure_rows)})" for n in sizes]
    print_table("One batch", headers, [batch_items(b, prices) for b in batches])
    print_table(
        "One API request (the mean of the report routes; Athena over a state of one batch)",
        headers,
        [mean_items([request_items(r, prices) for r in rs]) for rs in requests],
    )
    print_table(
        f"A month ({days:.0f} days) at {ns.batches_per_day:g} batches a day and "
        f"{ns.requests_per_day:,.0f} API requests a day",
        headers,
        [
            month_items(b, rs, stack, ns.batches_per_day, ns.requests_per_day, prices)
            for b, rs in zip(batches, requests, strict=True)
        ],
    )
    print_table("An idle month (no batch, no request)", ["any size"], [idle_items(stack, prices)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
