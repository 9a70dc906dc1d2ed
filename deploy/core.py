"""Shared deploy machinery: lazily created clients, change reporting, AWS error wrapping."""

from __future__ import annotations

import enum
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from duffbeer import aws
from duffbeer.errors import DeploymentError

T = TypeVar("T")


class Change(enum.Enum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    DELETED = "deleted"
    ABSENT = "absent"
    KEPT = "kept"
    SKIPPED = "skipped"


@dataclass
class Reporter:
    """Prints one line per resource as it is handled and keeps the tally."""

    out: TextIO = field(default_factory=lambda: sys.stdout)
    changes: list[tuple[str, str, Change]] = field(default_factory=list)

    def record(self, kind: str, name: str, change: Change, detail: str = "") -> Change:
        self.changes.append((kind, name, change))
        suffix = f" ({detail})" if detail else ""
        print(f"  {self.label(change):<9} {kind:<22} {name}{suffix}", file=self.out, flush=True)
        return change

    def label(self, change: Change) -> str:
        return change.value

    def section(self, title: str) -> None:
        print(f"- {title}", file=self.out, flush=True)

    def count(self, change: Change) -> int:
        return sum(1 for _, _, seen in self.changes if seen is change)


class DiffReporter(Reporter):
    """Reports what a deploy would do: the same lines, in the future tense."""

    _WOULD = {Change.CREATED: "create", Change.UPDATED: "update", Change.DELETED: "delete"}

    def label(self, change: Change) -> str:
        return self._WOULD.get(change, change.value)


class Clients:
    """boto3 clients for one region/endpoint, created on first use (never at import)."""

    def __init__(self, region: str, endpoint_url: str | None, profile: str | None = None) -> None:
        self.region = region
        self.endpoint_url = endpoint_url
        self.profile = profile

    def __getattr__(self, service: str) -> Any:
        if service.startswith("_"):
            raise AttributeError(service)
        return aws.client(service.replace("_", "-"), self.region, self.endpoint_url, self.profile)


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def is_not_found(error: ClientError) -> bool:
    code = error_code(error)
    return (
        code.startswith("NoSuch")
        or code.endswith(("NotFoundException", "NotFound", "NotFoundError", "DoesNotExist"))
        or code in {"ResourceNotFoundException", "EntityNotFoundException", "404"}
    )


@contextmanager
def aws_errors(what: str) -> Iterator[None]:
    """Re-raise any AWS failure as a DeploymentError naming the resource and the AWS error."""
    try:
        yield
    except ClientError as e:
        message = e.response.get("Error", {}).get("Message", str(e))
        raise DeploymentError(f"{what}: {error_code(e)}: {message}") from e
    except BotoCoreError as e:
        raise DeploymentError(f"{what}: {e}") from e


def get_or_none(call: Callable[[], T]) -> T | None:
    """The result of a describe/get call, or None when the resource does not exist."""
    try:
        return call()
    except ClientError as e:
        if is_not_found(e):
            return None
        raise


# A wait says what it waits for once it has lasted this long, then again at this interval.
PROGRESS_AFTER_S = 5.0
PROGRESS_EVERY_S = 10.0


class Progress:
    """Lines on stderr saying what a wait is for and how long it has lasted so far."""

    def __init__(
        self,
        what: str,
        out: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what = what
        self.out = out
        self.clock = clock
        self.started = clock()
        self._next = self.started + PROGRESS_AFTER_S

    def tick(self) -> None:
        """Called on every turn of the wait: prints when a line is due."""
        now = self.clock()
        if now >= self._next:
            print(
                f"  waiting for {self.what} ({now - self.started:.0f} s so far)",
                file=self.out or sys.stderr,
                flush=True,
            )
            self._next = now + PROGRESS_EVERY_S


def retry_on(
    codes: set[str],
    call: Callable[[], T],
    *,
    waiting_for: str,
    message: str = "",
    attempts: int = 10,
    delay: float = 3.0,
) -> T:
    """Retry a call refused while IAM changes propagate (a new role is not usable at once),
    saying what it waits for (`waiting_for`) once the wait lasts.

    Only errors with one of `codes` whose message contains `message` are retried, so a
    genuinely invalid request still fails at once.
    """
    progress = Progress(waiting_for)
    for attempt in range(attempts):
        try:
            return call()
        except ClientError as e:
            text = str(e.response.get("Error", {}).get("Message", ""))
            if error_code(e) not in codes or message not in text or attempt == attempts - 1:
                raise
            time.sleep(delay)
            progress.tick()
    raise AssertionError("unreachable")


def canonical(document: Any) -> str:
    """A policy or definition as comparable text (AWS may return it re-serialised or quoted)."""
    if isinstance(document, str) and document[:1] in {"{", "["}:
        document = json.loads(document)
    return json.dumps(document, sort_keys=True, separators=(",", ":"))
