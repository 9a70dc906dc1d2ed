"""The state jobs' arguments: one frozen dataclass parsed once from sys.argv."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from awsglue.utils import GlueArgumentError, getResolvedOptions

from duffbeer.errors import ConfigurationError

REQUIRED_ARGS: tuple[str, ...] = ("JOB_NAME", "processed_path", "database", "batch_id", "run_id")
OPTIONAL_ARGS: tuple[str, ...] = ("max_attempts", "processed_uri")
DEFAULT_MAX_ATTEMPTS = 8
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
_DATABASE = re.compile(r"^[a-z0-9_]{1,255}$")


def _present(argv: Sequence[str], name: str) -> bool:
    return any(token == f"--{name}" for token in argv)


@dataclass(frozen=True)
class StateJobArgs:
    """Where the state lives and which batch to merge, validated once."""

    job_name: str
    # The processed bucket's root (s3://bucket or a local directory), without a trailing "/".
    processed_path: str
    # The Glue database of the state's Iceberg tables.
    database: str
    batch_id: str
    # The execution that runs the merge (recorded in the publication).
    run_id: str
    # Merges that lose the publication to another one start again on it, this many times.
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    # Where the processed root really is, when `processed_path` is a local copy of it (a
    # local run staged the bucket): its batch pointers are listed there. Default: the path.
    processed_uri: str = ""

    @classmethod
    def from_args(cls, argv: Sequence[str]) -> StateJobArgs:
        names = [*REQUIRED_ARGS, *(n for n in OPTIONAL_ARGS if _present(argv, n))]
        try:
            raw: dict[str, str] = getResolvedOptions(list(argv), names)
        except (GlueArgumentError, SystemExit) as e:
            raise ConfigurationError(
                f"the job needs --{' --'.join(REQUIRED_ARGS)}; got {list(argv[1:])}"
            ) from e
        for name in REQUIRED_ARGS:
            if not raw[name]:
                raise ConfigurationError(f"--{name} must not be empty")
        for name in ("batch_id", "run_id"):
            if not _ID.match(raw[name]):
                raise ConfigurationError(f"--{name} {raw[name]!r} is not a batch or run id")
        if not _DATABASE.match(raw["database"]):
            raise ConfigurationError(f"--database {raw['database']!r} is not a Glue database name")
        try:
            attempts = int(raw.get("max_attempts", DEFAULT_MAX_ATTEMPTS))
        except ValueError as e:
            raise ConfigurationError(f"--max_attempts: {e}") from e
        if attempts < 1:
            raise ConfigurationError("--max_attempts must be at least 1")
        # "/" alone is a local root: keep it, so that keys join as "/manifests/...".
        root = raw["processed_path"].rstrip("/") or "/"
        return cls(
            job_name=raw["JOB_NAME"],
            processed_path=root,
            database=raw["database"],
            batch_id=raw["batch_id"],
            run_id=raw["run_id"],
            max_attempts=attempts,
            processed_uri=raw.get("processed_uri") or root,
        )

    def path(self, key: str) -> str:
        """A key relative to the processed root as a path Spark and Hadoop open."""
        return f"{self.processed_path.rstrip('/')}/{key}"


MAINTENANCE_REQUIRED: tuple[str, ...] = ("JOB_NAME", "database")
MAINTENANCE_OPTIONAL: tuple[str, ...] = (
    "snapshot_retention_hours",
    "orphan_retention_hours",
    "stale_branch_hours",
)


@dataclass(frozen=True)
class MaintenanceArgs:
    """The tables' upkeep: which database, and how long what is kept."""

    job_name: str
    database: str
    # The time-travel window: publications (and the snapshots they name) kept this long.
    snapshot_retention_hours: int = 7 * 24
    # Files no snapshot names are removed once this old: longer than any job or query.
    orphan_retention_hours: int = 3 * 24
    # A merge's branch left by a job that stopped before publishing goes after this long.
    stale_branch_hours: int = 24

    @classmethod
    def from_args(cls, argv: Sequence[str]) -> MaintenanceArgs:
        names = [*MAINTENANCE_REQUIRED, *(n for n in MAINTENANCE_OPTIONAL if _present(argv, n))]
        try:
            raw: dict[str, str] = getResolvedOptions(list(argv), names)
        except (GlueArgumentError, SystemExit) as e:
            raise ConfigurationError(
                f"the job needs --{' --'.join(MAINTENANCE_REQUIRED)}; got {list(argv[1:])}"
            ) from e
        if not _DATABASE.match(raw["database"]):
            raise ConfigurationError(f"--database {raw['database']!r} is not a Glue database name")
        hours: dict[str, int] = {}
        for name in MAINTENANCE_OPTIONAL:
            if name in raw:
                try:
                    hours[name] = int(raw[name])
                except ValueError as e:
                    raise ConfigurationError(f"--{name}: {e}") from e
        # Iceberg refuses to remove orphan files younger than a day (they may be a write in
        # flight); the retention of publications must cover the longest query too.
        if hours.get("orphan_retention_hours", 24) < 24 or min(hours.values(), default=1) < 1:
            raise ConfigurationError(
                "--orphan_retention_hours must be at least 24 and every period positive"
            )
        return cls(job_name=raw["JOB_NAME"], database=raw["database"], **hours)
