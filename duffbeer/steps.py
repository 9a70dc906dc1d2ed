"""The payloads the state machine passes to its Lambda steps, as Pydantic models.

Payloads are parsed with Powertools Parser; a malformed one fails the step with an
InvalidPayloadError that names each wrong field, which Step Functions shows and the
quarantine record keeps. Unknown fields are ignored: the ASL chooses what it passes.
"""

from __future__ import annotations

from typing import Any, TypeVar

from aws_lambda_powertools.utilities.parser import parse
from pydantic import BaseModel, ConfigDict, ValidationError

from duffbeer.errors import InvalidPayloadError

_M = TypeVar("_M", bound=BaseModel)


class Payload(BaseModel):
    """Base of the step payloads and results: immutable, unknown fields ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    def as_dict(self) -> dict[str, Any]:
        """The JSON document the state machine receives."""
        return self.model_dump(mode="json")


class StepEvent(Payload):
    """What every step after the trigger receives: the batch and the run (execution name)."""

    batch_id: str
    run_id: str

    @property
    def log_keys(self) -> dict[str, str]:
        return {"batch_id": self.batch_id, "execution_name": self.run_id}


class InputEvent(StepEvent):
    """A step that also names the uploaded object (the execution's input)."""

    bucket: str
    key: str
    version_id: str | None = None
    event_time: str = ""


def parse_event(event: Any, model: type[_M]) -> _M:
    """`event` as `model`, or an InvalidPayloadError naming every wrong field."""
    try:
        return parse(event=event, model=model)
    except ValidationError as e:
        raise InvalidPayloadError(f"{model.__name__}: {describe(e)}") from e


def describe(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in detail['loc']) or '(payload)'}: {detail['msg']}"
        for detail in error.errors(include_url=False)
    )
