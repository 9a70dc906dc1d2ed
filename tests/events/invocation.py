"""Helpers to invoke Lambda handlers in tests: the recorded event samples and a context."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).resolve().parent


def load_event(name: str) -> dict[str, Any]:
    """A sample from tests/events/ by file name (without .json)."""
    data: dict[str, Any] = json.loads((EVENTS_DIR / f"{name}.json").read_text(encoding="utf-8"))
    return data


@dataclass
class LambdaContextStub:
    """The attributes Powertools reads from the Lambda context object."""

    function_name: str = "duffbeer-test-function"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = (
        "arn:aws:lambda:us-east-1:123456789012:function:duffbeer-test-function"
    )
    aws_request_id: str = "3f4c7a52-6d1e-4a57-9d0c-2b8e1f0a9c11"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000
