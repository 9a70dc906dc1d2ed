"""start_etl settings, read from the environment once per container."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from duffbeer.errors import ConfigurationError

_STATE_MACHINE_ARN = re.compile(
    r"^arn:aws[a-z-]*:states:[a-z0-9-]+:\d{12}:stateMachine:[\w-]{1,80}$"
)


@dataclass(frozen=True)
class StartEtlConfig:
    state_machine_arn: str

    def __post_init__(self) -> None:
        if not _STATE_MACHINE_ARN.match(self.state_machine_arn):
            raise ConfigurationError(
                f"STATE_MACHINE_ARN {self.state_machine_arn!r} is not a state machine ARN"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> StartEtlConfig:
        return cls(state_machine_arn=env.get("STATE_MACHINE_ARN", ""))
