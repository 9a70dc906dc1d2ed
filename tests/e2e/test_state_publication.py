"""Each step after the transform failing in turn: what readers see meanwhile, and a retry.

One deployed local stack. A baseline batch is published first. Then, for each step, the
step is broken through the real configuration API (a function's environment, the state
job's script location), a new batch is uploaded and its execution fails at that step. Readers
must still see the previous state whole: the API's figures, the state pointer, the stable
views and every file the published version names. The step is repaired and the execution is
run again (a new execution with the same input, as an operator would): the batch is then
published and the reports show it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from duffbeer import catalog_tables, naming, state
from duffbeer_local.executions import execution_history, failure_of
from duffbeer_local.pipeline import LocalPipeline, LocalSettings

pytestmark = pytest.mark.e2e

HEADER = (
    "client_id,client_name,order_id,product_id,product_description,product_price,"
    "product_ccf,product_volume,point_of_sale_channel,status,order_date"
)
# The steps a test breaks, and the component each of them depends on.
FUNCTION_OF = {
    "PublishBatch": "publish_batch",
    "PlanState": "plan_state",
    "PublishState": "publish_state",
    "CatalogBatch": "catalog_batch",
}


def _orders_file(client: int, orders: int) -> str:
    """`orders` one-line orders of one client, 2.00 x 3 = 6.00 each."""
    rows = [
        f"{client},Client {client},{client * 100 + n},301,Duff Test,2.00,3,0.5,Online,created,"
        "2025-01-15"
        for n in range(orders)
    ]
    return "\n".join([HEADER, *rows]) + "\n"


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPipeline]:
    settings = LocalSettings(state_dir=tmp_path_factory.mktemp("state-publication"))
    with LocalPipeline(settings) as stack:
        stack.start_api()
        folder = tmp_path_factory.mktemp("uploads")
        baseline = folder / "baseline.csv"
        baseline.write_text(_orders_file(7000, 4))
        assert stack.process(baseline, "baseline.csv")["status"] == "SUCCEEDED"
        yield stack


def _client(pipeline: LocalPipeline, client: int) -> tuple[int, Any]:
    return pipeline.get(f"/orders/{client}")


def _served_versions(pipeline: LocalPipeline, probes: int = 6) -> set[str | None]:
    """The state versions the API's warm workers answer from (each checks the pointer every
    few seconds, as each Lambda container does)."""
    versions = set()
    for _ in range(probes):
        pipeline.get("/order-status-report")  # a request is what makes a worker check
        status, health = pipeline.get("/health", api_key=False)
        assert status == 200
        versions.add((health.get("snapshot") or {}).get("state_version"))
    return versions


def _reader_view(pipeline: LocalPipeline) -> dict[str, Any]:
    """What every kind of reader sees of the state, once the API serves the published one."""
    s3 = pipeline.aws.client("s3")
    bucket = pipeline.outputs.processed_bucket
    pointer = state.loads_pointer(
        s3.get_object(Bucket=bucket, Key=naming.STATE_POINTER_KEY)["Body"].read()
    )
    deadline = time.monotonic() + 60
    while _served_versions(pipeline) != {pointer["version"]}:
        assert time.monotonic() < deadline, f"the API never served {pointer['version']}"
        time.sleep(0.5)
    manifest = state.loads_manifest(
        s3.get_object(Bucket=bucket, Key=pointer["state_manifest"])["Body"].read()
    )
    # Every location the published version names still holds its files
    for where in manifest["tables"].values():
        locations = [where["location"]] if "location" in where else []
        locations += [p["location"] for p in where.get("partitions", []) if p["rows"]]
        for location in locations:
            listed = s3.list_objects_v2(Bucket=bucket, Prefix=location, MaxKeys=1)
            assert listed.get("KeyCount", 0) == 1, location
    view = pipeline.aws.client("glue").get_table(
        DatabaseName=pipeline.outputs.database, Name=state.CURRENT_LINES_TABLE
    )["Table"]
    return {
        "version": pointer["version"],
        "views_show": view["Parameters"].get(catalog_tables.STATE_VERSION_PARAMETER),
        "status_report": pipeline.get("/order-status-report"),
        "baseline_client": _client(pipeline, 7000),
    }


@contextmanager
def _broken(pipeline: LocalPipeline, step: str) -> Iterator[None]:
    """Break `step` through the real configuration APIs, then repair it."""
    if step == "MergeState":
        # moto has no UpdateJob: the job is replaced by one whose script does not exist.
        glue = pipeline.aws.client("glue")
        job = glue.get_job(JobName=pipeline.outputs.state_job_name)["Job"]
        fields = ("Role", "Command", "GlueVersion", "DefaultArguments", "ExecutionProperty")
        definition = {k: job[k] for k in fields if k in job}
        broken = {**definition, "Command": {**job["Command"], "ScriptLocation": "s3://no/x.py"}}
        glue.delete_job(JobName=job["Name"])
        glue.create_job(Name=job["Name"], **broken)
        try:
            yield
        finally:
            glue.delete_job(JobName=job["Name"])
            glue.create_job(Name=job["Name"], **definition)
        return
    lam = pipeline.aws.client("lambda")
    name = pipeline.outputs.function_arns[FUNCTION_OF[step]]
    environment = lam.get_function_configuration(FunctionName=name)["Environment"]
    broken = {**environment["Variables"], "PROCESSED_BUCKET": "duffbeer-no-such-bucket"}
    lam.update_function_configuration(FunctionName=name, Environment={"Variables": broken})
    try:
        yield
    finally:
        lam.update_function_configuration(FunctionName=name, Environment=environment)


def _retry(pipeline: LocalPipeline, execution_arn: str) -> dict[str, Any]:
    """Run a failed execution again: a new execution with the same input."""
    sfn = pipeline.aws.client("stepfunctions")
    described = sfn.describe_execution(executionArn=execution_arn)
    arn = sfn.start_execution(
        stateMachineArn=pipeline.outputs.state_machine_arn,
        name=f"{described['name'][:70]}-retry",
        input=described["input"],
    )["executionArn"]
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        result: dict[str, Any] = sfn.describe_execution(executionArn=arn)
        if result["status"] != "RUNNING":
            return result
        time.sleep(0.5)
    raise AssertionError(f"{arn} still running")


STEPS = ["PublishBatch", "PlanState", "MergeState", "PublishState", "CatalogBatch"]


@pytest.mark.parametrize("step", STEPS)
def test_a_failed_step_leaves_the_previous_state_and_a_retry_completes_it(
    pipeline: LocalPipeline, tmp_path: Path, step: str
) -> None:
    # Given the published state, and the step broken
    client = 7100 + STEPS.index(step)
    before = _reader_view(pipeline)
    upload = tmp_path / f"{step}.csv"
    upload.write_text(_orders_file(client, 2))
    with _broken(pipeline, step):
        # When a new batch's execution runs into it
        described = pipeline.process(upload, f"failing/{step}.csv")

    # Then it fails at that step ...
    assert described["status"] == "FAILED"
    failure = failure_of(
        execution_history(pipeline.aws.client("stepfunctions"), described["executionArn"])
    )
    assert failure is not None and failure.state == step
    during = _reader_view(pipeline)
    if step == "CatalogBatch":
        # ... the state is published: the API serves it, while the stable views still show
        # the previous version, whole; each reader sees one version
        assert during["version"] != before["version"]
        assert during["views_show"] == before["views_show"] == before["version"]
        assert _client(pipeline, client)[0] == 200
    else:
        # ... and every reader still sees the previous state, whole
        assert during == before
        assert _client(pipeline, client)[0] == 404

    # When the execution is run again with the step repaired
    retried = _retry(pipeline, described["executionArn"])

    # Then the batch is published and every reader sees it
    assert retried["status"] == "SUCCEEDED", retried.get("cause")
    after = _reader_view(pipeline)
    assert after["version"] not in (before["version"], None)
    assert after["views_show"] == after["version"]
    status, body = _client(pipeline, client)
    assert (status, body["totals"]) == (200, {"orders": 2, "lines": 2, "units": 6, "sales": 12.0})
    assert after["baseline_client"] == before["baseline_client"]


def test_a_failed_clean_up_never_fails_a_published_batch(
    pipeline: LocalPipeline, tmp_path: Path
) -> None:
    lam = pipeline.aws.client("lambda")
    name = pipeline.outputs.function_arns["clean_up"]
    environment = lam.get_function_configuration(FunctionName=name)["Environment"]
    broken = {**environment["Variables"], "PROCESSED_BUCKET": "duffbeer-no-such-bucket"}
    upload = tmp_path / "cleanup.csv"
    upload.write_text(_orders_file(7200, 1))
    lam.update_function_configuration(FunctionName=name, Environment={"Variables": broken})
    try:
        described = pipeline.process(upload, "failing/cleanup.csv")
    finally:
        lam.update_function_configuration(FunctionName=name, Environment=environment)
    assert described["status"] == "SUCCEEDED"
    output = json.loads(described["output"])
    assert output["clean_up"]["errors"]  # recorded, and alarmed on through CleanupErrors
    _reader_view(pipeline)
    status, body = _client(pipeline, 7200)
    assert (status, body["totals"]["orders"]) == (200, 1)
