"""The cost model's arithmetic (bench.cost_model), the reading of a saved measurement
(bench.cost) and of a local run's logs (bench.cost_measure): every expected figure is worked
out by hand in the test, from round test prices or from the shipped bench/prices.toml."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from bench import cost, cost_measure
from bench.cost_model import (
    BatchUsage,
    GlueRun,
    LambdaCall,
    Prices,
    RequestUsage,
    StackUsage,
    athena_billed_bytes,
    batch_items,
    extrapolate,
    extrapolate_requests,
    glue_dpu_seconds,
    idle_items,
    lambda_gb_seconds,
    linear,
    month_items,
    request_items,
    total,
)
from duffbeer.errors import ConfigurationError

# Round prices, so that each expected figure is easy to work out by hand.
ROUND_PRICES: dict[str, Any] = {
    "region": "test-1",
    "as_of": "2026-01-01",
    "glue": {
        "usd_per_dpu_hour": 3.6,  # $0.001 a DPU-second
        "minimum_seconds_per_run": 60,
        "dpu_per_worker": {"G.1X": 1, "G.2X": 2},
    },
    "athena": {
        "usd_per_tb_scanned": 1.0,
        "bytes_per_tb": 100 * 2**20,  # a "TB" of 100 MB
        "minimum_bytes_per_query": 10 * 2**20,
        "rounding_bytes": 2**20,
    },
    "lambda": {"usd_per_gb_second": 0.01, "usd_per_million_requests": 1.0},
    "step_functions": {"usd_per_thousand_transitions": 1.0},
    "s3": {
        "usd_per_gb_month": 1.0,
        "usd_per_thousand_put_class": 1.0,
        "usd_per_thousand_get_class": 0.1,
    },
    "cloudwatch": {
        "usd_per_alarm_month": 0.1,
        "usd_per_dashboard_month": 3.0,
        "usd_per_metric_month": 0.5,
        "usd_per_gb_ingested": 1.0,
        "usd_per_gb_month_stored": 0.1,
    },
    "xray": {"usd_per_million_traces_recorded": 1.0},
    "api_gateway": {"usd_per_million_requests": 2.0},
    "assumptions": {
        "days_per_month": 30,
        "athena_seconds_per_query": 1.0,
        "xray_traces_per_batch": 2,
        "xray_traces_per_request": 1,
    },
}
MB = 2**20
GB = 2**30


@pytest.fixture
def prices() -> Prices:
    return Prices.from_dict(ROUND_PRICES)


@pytest.fixture
def list_prices() -> Prices:
    return Prices.load(cost.PRICES)


def _usd(items: list[Any]) -> dict[str, float]:
    return {item.name: item.usd for item in items}


# --- Billing rules ---------------------------------------------------------------------------


def test_a_short_glue_run_bills_the_one_minute_minimum(prices: Prices) -> None:
    # 2 G.1X workers x 1 DPU x max(17 s, 60 s) = 120 DPU-s
    assert glue_dpu_seconds(GlueRun("G.1X", 2, 17.0), prices) == 120


def test_a_long_glue_run_bills_its_seconds_times_its_dpus(prices: Prices) -> None:
    # 3 G.2X workers x 2 DPU x 100 s = 600 DPU-s
    assert glue_dpu_seconds(GlueRun("G.2X", 3, 100.0), prices) == 600


def test_an_unknown_worker_type_is_a_configuration_error(prices: Prices) -> None:
    with pytest.raises(ConfigurationError, match=r"G\.9X"):
        glue_dpu_seconds(GlueRun("G.9X", 2, 100.0), prices)


def test_athena_bills_at_least_ten_megabytes_a_query(prices: Prices) -> None:
    assert athena_billed_bytes(1138, prices) == 10_485_760  # 10 x 1,048,576


def test_athena_rounds_bytes_up_to_the_megabyte(prices: Prices) -> None:
    # 12.3 MB = 12,897,485 bytes, rounded up to 13 MB = 13 x 1,048,576 = 13,631,488
    assert athena_billed_bytes(12_897_485, prices) == 13_631_488


def test_lambda_bills_memory_times_duration_rounded_up_to_the_millisecond() -> None:
    # 256 MB = 0.25 GB; 204.6 ms rounds up to 205 ms: 0.25 x 0.205 = 0.05125 GB-s
    assert lambda_gb_seconds(LambdaCall(256, 204.6)) == pytest.approx(0.05125)


# --- One batch, one request, a month ----------------------------------------------------------

BATCH = BatchUsage(
    rows=10_000,
    glue_runs=(GlueRun("G.1X", 2, 17.0), GlueRun("G.1X", 2, 90.0)),
    lambda_calls=(LambdaCall(256, 999.2), LambdaCall(512, 2000.0)),
    state_transitions=8,
    s3_put_requests=600,
    s3_get_requests=3000,
    bytes_stored=2 * GB,
    log_bytes=0.5 * GB,
)


def test_one_batch_priced_per_service(prices: Prices) -> None:
    assert _usd(batch_items(BATCH, prices)) == pytest.approx(
        {
            # (2 x 60 + 2 x 90) DPU-s = 300 DPU-s x $0.001
            "Glue": 0.3,
            # 0.25 GB x 1.000 s + 0.5 GB x 2.000 s = 1.25 GB-s x $0.01
            "Lambda duration": 0.0125,
            # 2 requests x $1 / 1,000,000
            "Lambda requests": 0.000002,
            # 8 transitions x $1 / 1,000
            "Step Functions": 0.008,
            # 600 x $1 / 1,000
            "S3 PUT/LIST requests": 0.6,
            # 3,000 x $0.1 / 1,000
            "S3 GET requests": 0.3,
            # 0.5 GB x $1
            "CloudWatch Logs ingestion": 0.5,
            # 2 traces x $1 / 1,000,000
            "X-Ray traces": 0.000002,
        }
    )


def test_one_batch_at_the_shipped_list_prices(list_prices: Prices) -> None:
    batch = BatchUsage(
        rows=10_000,
        glue_runs=(GlueRun("G.1X", 2, 16.7), GlueRun("G.1X", 2, 54.5)),
        lambda_calls=(),
        state_transitions=8,
        s3_put_requests=0,
        s3_get_requests=0,
        bytes_stored=0,
        log_bytes=0,
    )
    items = _usd(batch_items(batch, list_prices))
    # Both runs bill the minimum: 2 x 120 DPU-s = 240 DPU-s = 240/3600 DPU-h x $0.44
    assert items["Glue"] == pytest.approx(0.0293333, rel=1e-5)
    # 8 transitions x $0.025 / 1,000
    assert items["Step Functions"] == pytest.approx(0.0002)


def test_one_request_waits_for_athena_and_bills_its_minimum(prices: Prices) -> None:
    request = RequestUsage("orders+list", (1138.0, 802.0), 512, 0.6, 0.25 * GB)
    assert _usd(request_items(request, prices)) == pytest.approx(
        {
            # $2 / 1,000,000
            "API Gateway": 0.000002,
            # 0.6 ms + 2 queries x 1,000 ms = 2,000.6 ms -> 2,001 ms; 0.5 GB x 2.001 s
            # = 1.0005 GB-s x $0.01
            "Lambda duration": 0.010005,
            "Lambda requests": 0.000001,
            # 2 queries x 10 MB minimum = 20 MB over a 100 MB "TB" at $1
            "Athena": 0.2,
            # 0.25 GB x $1
            "CloudWatch Logs ingestion": 0.25,
            "X-Ray traces": 0.000001,
        }
    )


STACK = StackUsage(
    alarms=12,
    dashboards=1,
    custom_metrics=18,
    upkeep_run=GlueRun("G.1X", 2, 53.6),
    artifact_bytes=0.5 * GB,
)


def test_an_idle_month_is_alarms_dashboard_upkeep_and_artifacts(prices: Prices) -> None:
    assert _usd(idle_items(STACK, prices)) == pytest.approx(
        {
            "CloudWatch alarms": 1.2,  # 12 x $0.1
            "CloudWatch dashboard": 3.0,  # 1 x $3
            # 30 days x 2 workers x max(53.6, 60) s = 3,600 DPU-s x $0.001
            "Glue daily upkeep job": 3.6,
            "S3 storage (code and artifacts)": 0.5,  # 0.5 GB x $1
        }
    )


def test_the_idle_month_at_the_shipped_list_prices(list_prices: Prices) -> None:
    stack = StackUsage(12, 1, 18, GlueRun("G.1X", 2, 53.6), artifact_bytes=0)
    # 12 x $0.10 + $3.00 + 30 x 120 DPU-s (= 1 DPU-h) x $0.44 = 1.20 + 3.00 + 0.44
    assert total(idle_items(stack, list_prices)) == pytest.approx(4.64)


def test_a_month_adds_batches_requests_storage_logs_and_metrics(prices: Prices) -> None:
    request = RequestUsage("sales-by-product", (1138.0,), 512, 0.0, 0.0)
    items = _usd(month_items(BATCH, [request], STACK, 1, 100, prices))
    # 30 batches x $1.720504 (the sum of test_one_batch_priced_per_service's items)
    assert sum(v for k, v in items.items() if k.startswith("batches: ")) == pytest.approx(51.61512)
    # one request: $0.000002 + 0.5 GB x 1 s x $0.01 + $0.000001 + 10 MB / 100 MB x $1
    # + $0.000001 = $0.105004; 3,000 requests a month
    assert sum(v for k, v in items.items() if k.startswith("API: ")) == pytest.approx(315.012)
    # 30 batches x 2 GB kept = 60 GB-month x $1
    assert items["S3 storage (the month's batches)"] == pytest.approx(60.0)
    # 30 batches x 0.5 GB of logs = 15 GB-month x $0.1
    assert items["CloudWatch Logs storage"] == pytest.approx(1.5)
    # 18 metrics x $0.5
    assert items["CloudWatch custom metrics"] == pytest.approx(9.0)
    # the idle month: 1.2 + 3.0 + 3.6 + 0.5
    assert items["CloudWatch alarms"] + items["Glue daily upkeep job"] == pytest.approx(4.8)


def test_a_month_without_batches_publishes_no_custom_metric(prices: Prices) -> None:
    items = _usd(month_items(BATCH, [], STACK, 0, 0, prices))
    assert items["CloudWatch custom metrics"] == 0
    # nothing but the idle month: 1.2 + 3.0 + 3.6 + 0.5
    assert sum(items.values()) == pytest.approx(8.3)


# --- Extrapolation ----------------------------------------------------------------------------


def test_linear_is_a_fixed_part_plus_a_part_per_row() -> None:
    # slope (48 - 10) / (200,000 - 10,000) = 0.0002 a row; 10 + 0.0002 x 990,000 = 208
    assert linear(1_000_000, (10_000, 10.0), (200_000, 48.0)) == pytest.approx(208.0)


def test_linear_takes_a_falling_pair_as_flat() -> None:
    # 0.21 s at 10k rows, 0.20 s at 200k rows: timing noise, not a saving per row
    assert linear(10_000_000, (10_000, 0.21), (200_000, 0.20)) == pytest.approx(0.21)


def test_a_batch_extrapolated_quantity_by_quantity() -> None:
    small = BatchUsage(
        10_000,
        (GlueRun("G.1X", 2, 20.0),),
        (LambdaCall(256, 100.0),),
        8,
        500,
        200,
        1_000_000,
        10_000,
    )
    large = BatchUsage(
        110_000,
        (GlueRun("G.1X", 2, 30.0),),
        (LambdaCall(256, 300.0),),
        8,
        700,
        400,
        11_000_000,
        20_000,
    )
    at = extrapolate(small, large, 1_010_000)
    # each: value at 10k + (difference / 100,000 rows) x 1,000,000 rows
    assert at == BatchUsage(
        1_010_000,
        (GlueRun("G.1X", 2, 120.0),),  # 20 + 10 x 10
        (LambdaCall(256, 2100.0),),  # 100 + 200 x 10
        8,  # unchanged
        2500,  # 500 + 200 x 10
        2200,  # 200 + 200 x 10
        101_000_000,  # 1,000,000 + 10,000,000 x 10
        110_000,  # 10,000 + 10,000 x 10
    )


def test_batches_that_ran_different_steps_are_not_extrapolated() -> None:
    small = BatchUsage(1, (GlueRun("G.1X", 2, 1.0),), (), 8, 0, 0, 0, 0)
    large = BatchUsage(2, (), (), 8, 0, 0, 0, 0)
    with pytest.raises(ConfigurationError, match="different steps"):
        extrapolate(small, large, 3)


def test_request_scans_extrapolated_per_query() -> None:
    small = [RequestUsage("orders+list", (1000.0, 500.0), 512, 1.0, 100.0)]
    large = [RequestUsage("orders+list", (2000.0, 500.0), 512, 2.0, 200.0)]
    [at] = extrapolate_requests((10, small), (20, large), 110)
    # 1000 + 100 a row x 100 rows; the second query's bytes do not grow
    assert at.query_bytes == (11_000.0, 500.0)
    assert (at.local_duration_ms, at.log_bytes) == (2.0, 200.0)


# --- The price file ---------------------------------------------------------------------------


def test_the_shipped_price_file_is_dated_and_cites_each_service(list_prices: Prices) -> None:
    assert list_prices.region == "us-east-1"
    assert list_prices.as_of
    assert set(list_prices.urls()) == {
        "glue",
        "athena",
        "lambda",
        "step_functions",
        "s3",
        "cloudwatch",
        "xray",
        "api_gateway",
    }
    assert all(url.startswith("https://aws.amazon.com/") for url in list_prices.urls().values())


def test_a_price_file_without_a_price_is_refused() -> None:
    document = {**ROUND_PRICES, "lambda": {"usd_per_million_requests": 0.2}}
    with pytest.raises(ConfigurationError, match="usd_per_gb_second"):
        Prices.from_dict(document)


def test_a_negative_price_is_refused() -> None:
    document = {**ROUND_PRICES, "xray": {"usd_per_million_traces_recorded": -5}}
    with pytest.raises(ConfigurationError, match="usd_per_million_traces_recorded"):
        Prices.from_dict(document)


# --- Reading a saved measurement --------------------------------------------------------------

MEASUREMENT: dict[str, Any] = {
    "rows": 10_000,
    "execution": {"state_transitions": 8, "log_bytes": 30_000},
    "glue_runs": [
        {"job": "t", "seconds": 16.7, "worker_type": "G.1X", "workers": 2},
        {"job": "s", "seconds": 54.5, "worker_type": "G.1X", "workers": 2},
    ],
    "glue_log_bytes": 1_000_000,
    "lambda": {
        "validate_orders": {"memory_mb": 256, "durations_ms": [204.6], "log_bytes": 1000},
        "quarantine_batch": {"memory_mb": 256, "durations_ms": [], "log_bytes": 0},
        "clean_up": {"memory_mb": 256, "durations_ms": [147.5], "log_bytes": 2000},
    },
    "s3": {
        "put_class_requests": 592,
        "get_class_requests": 257,
        "bytes_added": {"input": 90_000, "processed": 2_700_000},
        "stack_bytes_before_batch": 96_000,
    },
    "api": {
        "query_scan_bytes": {"orders": [1138], "orders+list": [1138, 802]},
        "memory_mb": 512,
        "median_duration_ms": 0.7,
        "log_bytes_per_request": 233.0,
    },
    "upkeep": {"runs": [{"seconds": 53.6, "worker_type": "G.1X", "workers": 2}]},
    "stack": {"alarms": 12, "dashboards": 1},
    "custom_metrics": ["a", "b", "c"],
}


def test_a_measurement_read_as_a_batch() -> None:
    assert cost.batch_usage(MEASUREMENT) == BatchUsage(
        rows=10_000,
        glue_runs=(GlueRun("G.1X", 2, 16.7), GlueRun("G.1X", 2, 54.5)),
        # by function name: clean_up, quarantine_batch (no call), validate_orders
        lambda_calls=(LambdaCall(256, 147.5), LambdaCall(256, 204.6)),
        state_transitions=8,
        s3_put_requests=592,
        s3_get_requests=257,
        bytes_stored=2_790_000,  # 90,000 + 2,700,000
        log_bytes=1_033_000,  # 1,000 + 0 + 2,000 + 30,000 + 1,000,000
    )


def test_a_measurement_read_as_requests_and_stack() -> None:
    assert cost.request_usages(MEASUREMENT) == [
        RequestUsage("orders", (1138.0,), 512, 0.7, 233.0),
        RequestUsage("orders+list", (1138.0, 802.0), 512, 0.7, 233.0),
    ]
    assert cost.stack_usage(MEASUREMENT) == StackUsage(12, 1, 3, GlueRun("G.1X", 2, 53.6), 96_000.0)


# --- Reading a local run ----------------------------------------------------------------------


def _request_line(line: str) -> logging.LogRecord:
    # werkzeug logs each request as '"%s" %s %s' % (request line, status, size)
    return logging.LogRecord("werkzeug", logging.INFO, "", 0, '"%s" %s %s', (line, 200, "-"), None)


def test_s3_requests_are_counted_by_billing_class_for_the_stack_buckets_only() -> None:
    counter = cost_measure.S3RequestCounter(frozenset({"in", "out"}))
    for line in (
        "PUT /in/orders.csv HTTP/1.1",  # PUT class
        "POST /out/runs/x?uploads HTTP/1.1",  # PUT class (multipart start)
        "GET /out?list-type=2&prefix=runs/ HTTP/1.1",  # LIST: PUT class
        "\x1b[35m\x1b[1mGET /in/orders.csv?versionId=1 HTTP/1.1\x1b[0m",  # GET class, coloured
        "HEAD /out/artifacts/glue/job.py HTTP/1.1",  # GET class
        "DELETE /out/runs/old HTTP/1.1",  # free
        "PUT /other-bucket/key HTTP/1.1",  # not the stack's
        "POST / HTTP/1.1",  # another service (Step Functions, Glue)
    ):
        counter.emit(_request_line(line))
    assert (counter.put_class, counter.get_class, counter.free) == (3, 2, 1)


def test_lambda_durations_and_custom_metrics_read_from_a_worker_log(tmp_path: Path) -> None:
    log = tmp_path / "duffbeer-publish-batch.log"
    log.write_text(
        "START RequestId: a Version: $LATEST\n"
        '{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"DuffBeerOrders",'
        '"Dimensions":[["service"]],"Metrics":[{"Name":"RowsRead","Unit":"Count"},'
        '{"Name":"RowsValid","Unit":"Count"}]}]},"service":"duffbeer-publish-batch",'
        '"RowsRead":[5.0],"RowsValid":[5.0]}\n'
        "END RequestId: a\n"
        "REPORT RequestId: a\tDuration: 553.84 ms\n"
        "REPORT RequestId: b\tDuration: 12.00 ms\n"
    )
    assert cost_measure.report_durations_ms(log) == [553.84, 12.0]
    assert cost_measure.emf_metrics(tmp_path) == [
        "DuffBeerOrders/RowsRead{service=duffbeer-publish-batch}",
        "DuffBeerOrders/RowsValid{service=duffbeer-publish-batch}",
    ]


def test_state_transitions_are_the_states_entered() -> None:
    events = [
        {"type": "ExecutionStarted"},
        {"type": "PassStateEntered"},
        {"type": "PassStateExited"},
        {"type": "TaskStateEntered"},
        {"type": "TaskScheduled"},
        {"type": "TaskStateExited"},
        {"type": "SucceedStateEntered"},
        {"type": "ExecutionSucceeded"},
    ]
    assert cost_measure.state_transitions(events) == 3
