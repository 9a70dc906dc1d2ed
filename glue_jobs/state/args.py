"""The maintain_state job's arguments: one frozen dataclass parsed once from sys.argv."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from awsglue.utils import GlueArgumentError, getResolvedOptions

from duffbeer import naming
from duffbeer.errors import ConfigurationError

REQUIRED_ARGS: tuple[str, ...] = ("JOB_NAME", "processed_path", "plan_key")


@dataclass(frozen=True)
class StateJobArgs:
    """Where the state lives and which plan to carry out, validated once."""

    job_name: str
    # The processed bucket's root (s3://bucket or a local directory), without a trailing "/".
    processed_path: str
    # The merge plan, relative to the root: state/plans/<version>.json.
    plan_key: str

    @classmethod
    def from_args(cls, argv: Sequence[str]) -> StateJobArgs:
        try:
            raw: dict[str, str] = getResolvedOptions(list(argv), list(REQUIRED_ARGS))
        except (GlueArgumentError, SystemExit) as e:
            raise ConfigurationError(
                f"the job needs --{' --'.join(REQUIRED_ARGS)}; got {list(argv[1:])}"
            ) from e
        for name in REQUIRED_ARGS:
            if not raw[name]:
                raise ConfigurationError(f"--{name} must not be empty")
        plan_key = raw["plan_key"]
        if not (plan_key.startswith(naming.STATE_PLANS_PREFIX) and plan_key.endswith(".json")):
            raise ConfigurationError(
                f"--plan_key {plan_key!r} must be a key relative to the processed root, "
                f"{naming.STATE_PLANS_PREFIX}<version>.json"
            )
        # "/" alone is a local root: keep it, so that keys join as "/state/...".
        root = raw["processed_path"].rstrip("/") or "/"
        return cls(job_name=raw["JOB_NAME"], processed_path=root, plan_key=plan_key)

    def path(self, key: str) -> str:
        """A key relative to the processed root as a path Spark and Hadoop open."""
        return f"{self.processed_path.rstrip('/')}/{key}"
