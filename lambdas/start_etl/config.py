"""start_etl settings, read from the environment once per container."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from duffbeer.settings import Settings

_STATE_MACHINE_ARN = re.compile(r"arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:stateMachine:[\w-]{1,80}")


class StartEtlConfig(Settings):
    state_machine_arn: str = Field(validation_alias="STATE_MACHINE_ARN")

    @field_validator("state_machine_arn")
    @classmethod
    def _arn(cls, value: str) -> str:
        if not _STATE_MACHINE_ARN.fullmatch(value):
            raise ValueError(f"{value!r} is not a state machine ARN")
        return value
