"""Reading Step Functions executions: follow one as it runs and explain a failure.

Everything here works from the public APIs (GetExecutionHistory, DescribeExecution,
ListExecutions), so the same code describes a local run and one on AWS.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

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
