"""Reading Step Functions executions: follow one as it runs, explain a failure, list the runs.

Everything here works from the public APIs (GetExecutionHistory, DescribeExecution,
ListExecutions and the manifests in the processed bucket), so the same code describes a
local run and one on AWS.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from duffbeer import manifest as manifest_mod
from duffbeer import naming

TERMINAL = frozenset({"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"})
# Counts worth a glance when a state exits (the fields the state machine's selectors keep).
_SHOWN_SCALARS = (int, float, str, bool)
_FAILURE_EVENTS = ("TaskFailed", "LambdaFunctionFailed", "TaskTimedOut", "ExecutionFailed")


@dataclass(frozen=True)
class Failure:
    """Where an execution first failed and why."""

    state: str | None
    error: str | None
    message: str | None


def _readable_cause(cause: str | None) -> str | None:
    """The human part of a cause: a Lambda errorMessage, a Glue ErrorMessage, or the text."""
    if not cause:
        return None
    try:
        parsed = json.loads(cause)
    except ValueError:
        return cause
    if isinstance(parsed, dict):
        for name in ("errorMessage", "ErrorMessage", "Cause", "message"):
            if parsed.get(name):
                return str(parsed[name])
    return cause


def _details(event: dict[str, Any]) -> dict[str, Any]:
    for name, value in event.items():
        if name.endswith("EventDetails") and isinstance(value, dict):
            return value
    return {}


def failure_of(events: list[dict[str, Any]]) -> Failure | None:
    """The first failing task (the cause of a Catch) and its error, else the execution's."""
    state: str | None = None
    for event in events:
        details = _details(event)
        if event["type"].endswith("StateEntered"):
            state = details.get("name")
        if event["type"] in _FAILURE_EVENTS:
            error = details.get("error")
            return Failure(state, error, _readable_cause(details.get("cause")))
    return None


def _new_fields(before: Any, after: Any) -> dict[str, Any]:
    """Scalars a state added to the document (its ResultPath), flattened one level."""
    if not isinstance(after, dict):
        return {}
    before = before if isinstance(before, dict) else {}
    shown: dict[str, Any] = {}
    for key, value in after.items():
        if before.get(key) == value:
            continue
        if isinstance(value, dict):
            for inner, inner_value in value.items():
                if isinstance(inner_value, _SHOWN_SCALARS):
                    shown[inner] = inner_value
                elif isinstance(inner_value, list):
                    shown[inner] = len(inner_value)
        elif isinstance(value, _SHOWN_SCALARS):
            shown[key] = value
    return shown


def _loads(text: str | None) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


@dataclass
class ExecutionFollower:
    """Turns a growing execution history into one line per state entered or exited."""

    started: datetime | None = None
    _seen: int = 0
    _entered: dict[str, tuple[datetime, Any]] = field(default_factory=dict)

    def lines(self, events: list[dict[str, Any]]) -> Iterator[str]:
        for event in events[self._seen :]:
            self._seen += 1
            line = self._line(event)
            if line:
                yield line

    def _line(self, event: dict[str, Any]) -> str | None:
        stamp: datetime = event["timestamp"]
        if self.started is None:
            self.started = stamp
        offset = f"+{(stamp - self.started).total_seconds():6.1f}s"
        details = _details(event)
        kind = event["type"]
        if kind.endswith("StateEntered"):
            self._entered[details["name"]] = (stamp, _loads(details.get("input")))
            return f"{offset}  -> {details['name']}"
        if kind.endswith("StateExited"):
            name = details["name"]
            entered_at, before = self._entered.get(name, (stamp, None))
            took = (stamp - entered_at).total_seconds()
            fields = _new_fields(before, _loads(details.get("output")))
            shown = " ".join(f"{k}={v}" for k, v in fields.items())
            return f"{offset}  <- {name} ({took:.1f}s) {shown}".rstrip()
        if kind in _FAILURE_EVENTS:
            cause = _readable_cause(details.get("cause")) or ""
            return f"{offset}  !! {kind}: {details.get('error')}: {cause}"
        if kind in ("ExecutionSucceeded", "ExecutionAborted", "ExecutionTimedOut"):
            return f"{offset}  == {kind}"
        return None


def execution_history(sfn: Any, execution_arn: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    paginator = sfn.get_paginator("get_execution_history")
    for page in paginator.paginate(executionArn=execution_arn):
        events.extend(page["events"])
    return events


def follow_execution(
    sfn: Any,
    execution_arn: str,
    emit: Callable[[str], None],
    *,
    timeout: float = 600.0,
    poll_seconds: float = 0.25,
) -> dict[str, Any]:
    """Print each state as it is entered and left; return the final DescribeExecution."""
    follower = ExecutionFollower()
    deadline = time.monotonic() + timeout
    while True:
        described: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
        for line in follower.lines(execution_history(sfn, execution_arn)):
            emit(line)
        if described["status"] in TERMINAL:
            for line in follower.lines(execution_history(sfn, execution_arn)):
                emit(line)
            return described
        if time.monotonic() > deadline:
            raise TimeoutError(f"execution {execution_arn} still running after {timeout:.0f} s")
        time.sleep(poll_seconds)


def execution_arns(sfn: Any, state_machine_arn: str) -> set[str]:
    arns: set[str] = set()
    paginator = sfn.get_paginator("list_executions")
    for page in paginator.paginate(stateMachineArn=state_machine_arn):
        arns.update(item["executionArn"] for item in page["executions"])
    return arns


def wait_for_execution(
    sfn: Any, state_machine_arn: str, key: str, known: set[str] | frozenset[str], timeout: float
) -> str:
    """The ARN of the first execution for input object `key` that is not in `known`."""
    deadline = time.monotonic() + timeout
    checked = set(known)
    while time.monotonic() < deadline:
        for arn in sorted(execution_arns(sfn, state_machine_arn) - checked):
            checked.add(arn)
            described = sfn.describe_execution(executionArn=arn)
            if (_loads(described.get("input")) or {}).get("key") == key:
                return arn
        time.sleep(0.1)
    raise TimeoutError(
        f"no execution started for {key} within {timeout:.0f} s "
        "(start_etl ignores keys that are not .csv files or that it was told to skip)"
    )


@dataclass(frozen=True)
class RunRecord:
    """One execution of the workflow as the run history shows it."""

    run_id: str
    batch_id: str | None
    key: str | None
    status: str
    started: str
    stopped: str | None
    duration_s: float | None
    failed_state: str | None
    error: str | None
    error_message: str | None
    rows_read: int | None
    rows_valid: int | None
    rows_rejected: int | None
    rejects_by_reason: dict[str, int] | None
    total_sales: str | None
    published: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _manifest(s3: Any, bucket: str, key: str) -> manifest_mod.Manifest | None:
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError:
        return None
    try:
        return manifest_mod.loads(body)
    except (ValueError, manifest_mod.BatchNotPublishedError):
        return None


def run_history(
    sfn: Any, s3: Any, state_machine_arn: str, processed_bucket: str, limit: int = 100
) -> list[RunRecord]:
    """The latest executions, newest first, with their counts from the run manifests."""
    records: list[RunRecord] = []
    listed = sfn.list_executions(stateMachineArn=state_machine_arn, maxResults=limit)
    for item in listed["executions"]:
        described = sfn.describe_execution(executionArn=item["executionArn"])
        document = _loads(described.get("input")) or {}
        batch_id = document.get("batch_id")
        run_id = described["name"]
        failure = None
        if described["status"] != "SUCCEEDED" and described["status"] in TERMINAL:
            failure = failure_of(execution_history(sfn, item["executionArn"]))
        run_manifest = None
        published = False
        if batch_id:
            run_manifest = _manifest(
                s3, processed_bucket, naming.run_manifest_key(batch_id, run_id)
            )
            batch_manifest = _manifest(s3, processed_bucket, naming.manifest_key(batch_id))
            if run_manifest is None and batch_manifest and batch_manifest["run_id"] == run_id:
                # The run's own copy goes when the Store step prunes the batch's old runs.
                run_manifest = batch_manifest
            block = manifest_mod.published_block(batch_manifest) if batch_manifest else None
            published = bool(block and block.get("run_id") == run_id)
        started: datetime = described["startDate"]
        stopped: datetime | None = described.get("stopDate")
        records.append(
            RunRecord(
                run_id=run_id,
                batch_id=batch_id,
                key=document.get("key"),
                status=described["status"],
                started=started.isoformat(),
                stopped=stopped.isoformat() if stopped else None,
                duration_s=round((stopped - started).total_seconds(), 1) if stopped else None,
                failed_state=failure.state if failure else None,
                error=failure.error if failure else described.get("error"),
                error_message=failure.message
                if failure
                else _readable_cause(described.get("cause")),
                rows_read=run_manifest["rows_read"] if run_manifest else None,
                rows_valid=run_manifest["rows_valid"] if run_manifest else None,
                rows_rejected=run_manifest["rows_rejected"] if run_manifest else None,
                rejects_by_reason=run_manifest["rejects_by_reason"] if run_manifest else None,
                total_sales=run_manifest["total_sales"] if run_manifest else None,
                published=published,
            )
        )
    records.sort(key=lambda r: r.started, reverse=True)
    return records
