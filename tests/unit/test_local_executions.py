"""Reading execution histories: the follower's lines, the first failure, the inbox scan."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from duffbeer_local.cli import _ready_inbox_files
from duffbeer_local.executions import ExecutionFollower, Failure, failure_of

T0 = datetime(2026, 11, 28, 8, 0, 0, tzinfo=UTC)


def _event(seconds: float, kind: str, **details: Any) -> dict[str, Any]:
    key = {
        "TaskStateEntered": "stateEnteredEventDetails",
        "TaskStateExited": "stateExitedEventDetails",
        "FailStateEntered": "stateEnteredEventDetails",
        "TaskFailed": "taskFailedEventDetails",
        "ExecutionFailed": "executionFailedEventDetails",
        "ExecutionSucceeded": "executionSucceededEventDetails",
    }[kind]
    return {"timestamp": T0 + timedelta(seconds=seconds), "type": kind, key: details}


GLUE_CAUSE = json.dumps(
    {"JobRunState": "FAILED", "ErrorMessage": "RejectThresholdExceededError: 9 of 10 rows"}
)
HISTORY = [
    _event(0.0, "TaskStateEntered", name="ValidateOrders", input=json.dumps({"key": "o.csv"})),
    _event(
        0.4,
        "TaskStateExited",
        name="ValidateOrders",
        output=json.dumps({"key": "o.csv", "validation": {"size": 462, "columns": ["a", "b"]}}),
    ),
    _event(0.4, "TaskStateEntered", name="TransformOrders", input="{}"),
    _event(20.9, "TaskFailed", error="States.TaskFailed", cause=GLUE_CAUSE),
    _event(21.0, "TaskStateEntered", name="QuarantineInput", input="{}"),
    _event(21.5, "FailStateEntered", name="BatchFailed", input="{}"),
    _event(21.5, "ExecutionFailed", error="States.TaskFailed", cause=GLUE_CAUSE),
]


def test_follower_prints_each_state_with_offsets_durations_and_new_counts() -> None:
    follower = ExecutionFollower()
    first = list(follower.lines(HISTORY[:2]))
    rest = list(follower.lines(HISTORY))  # a longer history: only the new events
    assert first == [
        "+   0.0s  -> ValidateOrders",
        "+   0.4s  <- ValidateOrders (0.4s) size=462 columns=2",
    ]
    assert rest == [
        "+   0.4s  -> TransformOrders",
        "+  20.9s  !! TaskFailed: States.TaskFailed: RejectThresholdExceededError: 9 of 10 rows",
        "+  21.0s  -> QuarantineInput",
        "+  21.5s  -> BatchFailed",
        "+  21.5s  !! ExecutionFailed: States.TaskFailed: "
        "RejectThresholdExceededError: 9 of 10 rows",
    ]


def test_failure_is_the_first_failing_state_with_a_readable_cause() -> None:
    assert failure_of(HISTORY) == Failure(
        "TransformOrders", "States.TaskFailed", "RejectThresholdExceededError: 9 of 10 rows"
    )
    lambda_failure = [
        _event(0, "TaskStateEntered", name="ValidateOrders", input="{}"),
        _event(
            1,
            "TaskFailed",
            error="MissingColumnsError",
            cause=json.dumps({"errorType": "MissingColumnsError", "errorMessage": "no status"}),
        ),
    ]
    assert failure_of(lambda_failure) == Failure(
        "ValidateOrders", "MissingColumnsError", "no status"
    )
    assert failure_of(HISTORY[:3]) is None


def test_inbox_takes_a_file_once_its_size_and_mtime_are_stable(tmp_path: Path) -> None:
    sizes: dict[Path, tuple[int, float]] = {}
    partial = tmp_path / "orders.CSV"
    partial.write_text("client_id")
    (tmp_path / ".hidden.csv").write_text("x")
    (tmp_path / "notes.txt").write_text("not an orders file")
    (tmp_path / "done").mkdir()
    # First sight: not yet known to be complete
    assert _ready_inbox_files(tmp_path, sizes) == []
    # Still being written between two polls
    partial.write_text("client_id,client_name\n")
    os.utime(partial, (1_000_000, 1_000_000))
    assert _ready_inbox_files(tmp_path, sizes) == []
    # Unchanged since the last poll: ready, and handed out once
    assert _ready_inbox_files(tmp_path, sizes) == [partial]
    assert sizes == {}
