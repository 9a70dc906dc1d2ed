"""What readers see while the state is being published: failed steps, a merge killed in the
middle of its commit, and hand re-runs of one upload.

One deployed local stack. A baseline batch is published first. For each step after the
transform, the step is broken through the real configuration API (a function's environment,
the state job's script location), a new batch is uploaded and its execution fails at that
step; readers must still see the previous publication whole (pyiceberg on the Glue catalog,
the API's figures). The step is repaired and the execution run again: the batch is then
published and the reports show it. The hand re-runs are started as docs/operations.md says: the
request `python deploy/create_workflow.py start-execution <key> --print-only` prints, sent as
printed.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from duffbeer import state
from duffbeer_local.executions import execution_history, failure_of
from duffbeer_local.pipeline import LocalPipeline, LocalSettings
from tests.state_support import StateReader

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
HEADER = (
    "client_id,client_name,order_id,product_id,product_description,product_price,"
    "product_ccf,product_volume,point_of_sale_channel,status,order_date"
)
# The Lambda steps a test breaks, and their functions.
FUNCTION_OF = {"PublishBatch": "publish_batch", "CatalogBatch": "catalog_batch"}
BASELINE_CLIENT = 7000


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
        baseline.write_text(_orders_file(BASELINE_CLIENT, 4))
        assert stack.process(baseline, "baseline.csv")["status"] == "SUCCEEDED"
        yield stack


@pytest.fixture(scope="module")
def reader(pipeline: LocalPipeline) -> StateReader:
    return StateReader(pipeline.aws.endpoint_url, pipeline.outputs.database)


def _client(pipeline: LocalPipeline, client: int) -> tuple[int, Any]:
    return pipeline.get(f"/orders/{client}")


def _served_publications(pipeline: LocalPipeline, probes: int = 6) -> set[int | None]:
    """The publications the API's warm workers answer from (each reads the publications
    again every few seconds, as each Lambda container does)."""
    served = set()
    for _ in range(probes):
        pipeline.get("/order-status-report")  # a request is what makes a worker check
        status, details = pipeline.get("/status")
        assert status == 200
        served.add(details["publication"])
    return served


def _lines_by_client(rows: list[dict[str, Any]]) -> dict[int, int]:
    return dict(Counter(int(row["client_id"]) for row in rows))


def _reader_view(pipeline: LocalPipeline, reader: StateReader) -> dict[str, Any]:
    """What every kind of reader sees of the state, once the API serves the latest
    publication: the publication, the lines it names, what a query by table name reads, and
    the API's figures."""
    latest = reader.publications()[-1]
    deadline = time.monotonic() + 60
    while _served_publications(pipeline) != {latest.seq}:
        assert time.monotonic() < deadline, f"the API never served publication {latest.seq}"
        time.sleep(0.5)
    published = _lines_by_client(reader.rows(state.CURRENT_LINES_TABLE))
    # A query naming the table (Athena, Spark) reads its main branch: the same lines.
    assert _lines_by_client(reader.main_rows(state.CURRENT_LINES_TABLE)) == published
    return {
        "publication": latest.seq,
        "lines_by_client": published,
        "status_report": pipeline.get("/order-status-report"),
        "baseline_client": _client(pipeline, BASELINE_CLIENT),
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


def _wait(pipeline: LocalPipeline, execution_arn: str, timeout: float = 600) -> dict[str, Any]:
    sfn = pipeline.aws.client("stepfunctions")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
        if result["status"] != "RUNNING":
            return result
        time.sleep(0.5)
    raise AssertionError(f"{execution_arn} still running")


def _retry(pipeline: LocalPipeline, execution_arn: str) -> dict[str, Any]:
    """Run a failed execution again: a new execution with the same input."""
    sfn = pipeline.aws.client("stepfunctions")
    described = sfn.describe_execution(executionArn=execution_arn)
    arn = sfn.start_execution(
        stateMachineArn=pipeline.outputs.state_machine_arn,
        name=f"{described['name'][:70]}-retry",
        input=described["input"],
    )["executionArn"]
    return _wait(pipeline, arn)


STEPS = ["PublishBatch", "MergeState", "CatalogBatch"]


@pytest.mark.parametrize("step", STEPS)
def test_a_failed_step_leaves_the_previous_state_and_a_retry_completes_it(
    pipeline: LocalPipeline, reader: StateReader, tmp_path: Path, step: str
) -> None:
    # Given the published state, and the step broken
    client = 7100 + STEPS.index(step)
    before = _reader_view(pipeline, reader)
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
    during = _reader_view(pipeline, reader)
    if step == "CatalogBatch":
        # ... after the state was published: every reader sees the new publication, whole
        assert during["publication"] == before["publication"] + 1
        assert during["lines_by_client"] == {**before["lines_by_client"], client: 2}
        assert _client(pipeline, client)[0] == 200
    else:
        # ... and every reader still sees the previous publication, whole
        assert during == before
        assert _client(pipeline, client)[0] == 404

    # When the execution is run again with the step repaired
    retried = _retry(pipeline, described["executionArn"])

    # Then the batch is published and every reader sees it
    assert retried["status"] == "SUCCEEDED", retried.get("cause")
    after = _reader_view(pipeline, reader)
    assert after["publication"] > before["publication"]
    assert after["lines_by_client"] == {**before["lines_by_client"], client: 2}
    status, body = _client(pipeline, client)
    assert (status, body["totals"]) == (200, {"orders": 2, "lines": 2, "units": 6, "sales": 12.0})
    assert after["baseline_client"] == before["baseline_client"]


def _merge_branches(reader: StateReader) -> set[str]:
    """The per-attempt branches the state job works on, over every state table."""
    names: set[str] = set()
    for table in state.STATE_TABLES:
        loaded = reader.catalog.load_table(f"{reader.database}.{table}")
        names.update(ref for ref in loaded.metadata.refs if ref.startswith("merge_"))
    return names


def test_a_merge_killed_during_its_writes_publishes_nothing_and_its_retry_publishes_once(
    pipeline: LocalPipeline, reader: StateReader, tmp_path: Path
) -> None:
    # Given the published state
    client = 7300
    before = _reader_view(pipeline, reader)
    branches_before = _merge_branches(reader)
    upload = tmp_path / "killed.csv"
    upload.write_text(_orders_file(client, 3))
    arn = pipeline.execution_for(pipeline.upload(upload, "killed/orders.csv"))
    # When its state job is killed (SIGKILL, as a lost worker) once it has started writing
    # the tables on its own branch
    deadline = time.monotonic() + 300
    killed = False
    while not killed and time.monotonic() < deadline:
        if _merge_branches(reader) - branches_before:
            for pid in _state_job_pids():
                os.killpg(os.getpgid(pid), signal.SIGKILL)
                killed = True
        time.sleep(0.2)
    assert killed, "the state job never started writing"

    # Then, meanwhile, readers still see the previous publication whole ...
    assert _reader_view(pipeline, reader) == before
    # ... and the workflow's retry of MergeState publishes the batch exactly once
    described = _wait(pipeline, arn)
    assert described["status"] == "SUCCEEDED", described.get("cause")
    after = _reader_view(pipeline, reader)
    assert after["publication"] == before["publication"] + 1
    assert after["lines_by_client"] == {**before["lines_by_client"], client: 3}
    assert _client(pipeline, client)[1]["totals"]["orders"] == 3


def _state_job_pids() -> list[int]:
    """Every process running the state job now."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # the process ended meanwhile
        # Its own spark-submit, or the driver started ahead of it (duffbeer_local/spark_driver)
        if any(a.endswith(b"maintain_state.py") or a == b"duffbeer-maintain-state" for a in argv):
            pids.append(int(entry.name))
    return pids


def test_a_failed_clean_up_never_fails_a_published_batch(
    pipeline: LocalPipeline, reader: StateReader, tmp_path: Path
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
    assert _reader_view(pipeline, reader)["lines_by_client"][7200] == 1
    status, body = _client(pipeline, 7200)
    assert (status, body["totals"]["orders"]) == (200, 1)


# --- Hand re-runs (docs/operations.md) --------------------------------------------------------


def _printed_request(pipeline: LocalPipeline, key: str) -> dict[str, Any]:
    """What `python deploy/create_workflow.py start-execution <key> --print-only` prints: the
    name, the input and the `aws stepfunctions start-execution` command, parsed as a shell
    would."""
    printed = subprocess.run(
        [
            sys.executable,
            str(ROOT / "deploy" / "create_workflow.py"),
            *("start-execution", key, "--print-only"),
            *("--endpoint-url", pipeline.aws.endpoint_url),
            *("--region", pipeline.settings.region),
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env=os.environ.copy(),
    ).stdout
    command = next(line for line in printed.splitlines() if "start-execution" in line)
    words = shlex.split(command.removeprefix("Or: "))
    assert words[:3] == ["aws", "stepfunctions", "start-execution"], command
    options = dict(zip(words[3::2], words[4::2], strict=True))
    return {
        "printed": printed,
        "stateMachineArn": options["--state-machine-arn"],
        "name": options["--name"],
        "input": options["--input"],
    }


def _start_printed(pipeline: LocalPipeline, request: dict[str, Any]) -> str:
    """The printed command's API call (StartExecution with its three arguments)."""
    sfn = pipeline.aws.client("stepfunctions")
    return str(
        sfn.start_execution(
            stateMachineArn=request["stateMachineArn"],
            name=request["name"],
            input=request["input"],
        )["executionArn"]
    )


def test_a_hand_rerun_started_as_printed_runs_and_replaces_its_batch(
    pipeline: LocalPipeline, reader: StateReader, tmp_path: Path
) -> None:
    # Given an upload whose automatic run published it
    client = 7400
    upload = tmp_path / "h1.csv"
    upload.write_text(_orders_file(client, 2))
    automatic = pipeline.process(upload, "console/h1.csv")
    assert automatic["status"] == "SUCCEEDED"
    before = _reader_view(pipeline, reader)

    # When the re-run request is printed twice and the printed command is run
    first, second = (_printed_request(pipeline, "console/h1.csv") for _ in range(2))
    assert len({automatic["name"], first["name"], second["name"]}) == 3
    assert "-manual-" in first["name"]
    rerun = _wait(pipeline, _start_printed(pipeline, first))

    # Then it succeeds, publishes the batch again from its own run, and the figures are the
    # file's, counted once
    assert rerun["status"] == "SUCCEEDED", rerun.get("cause")
    after = _reader_view(pipeline, reader)
    assert after["publication"] == before["publication"] + 1
    assert after["lines_by_client"] == before["lines_by_client"]
    status, body = _client(pipeline, client)
    assert (status, body["totals"]) == (200, {"orders": 2, "lines": 2, "units": 6, "sales": 12.0})
    batch = json.loads(rerun["input"])["batch_id"]
    assert _published_run(pipeline, batch) == first["name"]


def _published_run(pipeline: LocalPipeline, batch_id: str) -> str:
    """The run the batch history (GET /batches) marks as the batch's published one."""
    query = "/batches?limit=50"
    while True:
        status, page = pipeline.get(query)
        assert status == 200, page
        for run in page["items"]:
            if run["batch_id"] == batch_id and run["published"]:
                return str(run["run_id"])
        assert page["next_cursor"], f"no published run of {batch_id} in the history"
        query = f"/batches?limit=50&cursor={page['next_cursor']}"


def test_two_hand_reruns_started_together_both_succeed_and_publish_the_batch_once(
    pipeline: LocalPipeline, reader: StateReader, tmp_path: Path
) -> None:
    # Given an upload whose automatic run published it
    client = 7500
    upload = tmp_path / "h2.csv"
    upload.write_text(_orders_file(client, 3))
    assert pipeline.process(upload, "console/h2.csv")["status"] == "SUCCEEDED"
    before = _reader_view(pipeline, reader)

    # When two re-runs printed one after the other are started at the same moment
    requests = [_printed_request(pipeline, "console/h2.csv") for _ in range(2)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        arns = list(pool.map(lambda r: _start_printed(pipeline, r), requests))
    finals = [_wait(pipeline, arn) for arn in arns]

    # Then both succeed; the batch's lines are in the state once, with the file's figures
    assert [f["status"] for f in finals] == ["SUCCEEDED", "SUCCEEDED"], [
        f.get("cause") for f in finals
    ]
    after = _reader_view(pipeline, reader)
    assert after["lines_by_client"] == before["lines_by_client"]
    status, body = _client(pipeline, client)
    assert (status, body["totals"]) == (200, {"orders": 3, "lines": 3, "units": 9, "sales": 18.0})
    # The batch names the newest of the two runs (printed last: the later re-run time)
    batch = json.loads(requests[1]["input"])["batch_id"]
    assert _published_run(pipeline, batch) == requests[1]["name"]
