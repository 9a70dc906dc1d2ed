"""Structured JSON log lines on stdout, with the batch id and run id on every line."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping, MutableMapping
from datetime import UTC, datetime
from typing import Any

# One logger for every Glue job: each record names its job ("job").
LOGGER_NAME = "duffbeer.glue"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, sort_keys=False)


class StdoutHandler(logging.Handler):
    """Writes to whatever sys.stdout is at the time (test runners swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stdout.write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)


class JobLogger(logging.LoggerAdapter[logging.Logger]):
    """Adds the run's keys (batch_id, run_id) and any `fields=` of a call to the JSON line."""

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        fields = {**(self.extra or {}), **kwargs.pop("fields", {})}
        kwargs["extra"] = {"fields": fields}
        return msg, kwargs


def job_logger(keys: Mapping[str, str]) -> JobLogger:
    """The job's logger; configured once per process (stdout, JSON, INFO)."""
    logger = logging.getLogger(LOGGER_NAME)
    if not logger.handlers:
        handler = StdoutHandler()
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return JobLogger(logger, dict(keys))
