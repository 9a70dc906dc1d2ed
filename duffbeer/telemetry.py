"""The Lambdas' Powertools logger, metrics and tracer, the one entry-point decorator, and the
one helper that turns a step's measures into EMF metrics.

Logger, Metrics and Tracer take their service and namespace from POWERTOOLS_SERVICE_NAME and
POWERTOOLS_METRICS_NAMESPACE, which deploy sets on every function; a function created
without the namespace still publishes, under the project's. The Tracer is off outside
Lambda and wherever POWERTOOLS_TRACE_DISABLED is true (local mode's runtime sets it).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple, TypeVar, cast

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from duffbeer import naming

logger = Logger()
# Without a namespace Powertools raises when it flushes, after the step's work is done; the
# step would fail (and be retried) over its metrics.
metrics = Metrics(
    namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or naming.METRICS_NAMESPACE
)
tracer = Tracer()

_H = TypeVar("_H", bound=Callable[..., Any])


class Measure(NamedTuple):
    """One metric of a step's result."""

    name: str
    value: float
    unit: MetricUnit = MetricUnit.Count


def emit(measures: Iterable[Measure], metadata: Mapping[str, str] | None = None) -> None:
    """Add every measure (and metadata) to the invocation's metrics, flushed on return."""
    for measure in measures:
        metrics.add_metric(name=measure.name, unit=measure.unit, value=measure.value)
    for key, value in (metadata or {}).items():
        metrics.add_metadata(key=key, value=value)


def entry_point(correlation_id_path: str | None = None) -> Callable[[_H], _H]:
    """A handler's decorators: the invocation's logging context (cleared on each call),
    its trace segment (response not captured: it may hold report data) and its metrics."""

    def decorate(handler: _H) -> _H:
        logged = logger.inject_lambda_context(
            log_event=False, clear_state=True, correlation_id_path=correlation_id_path
        )(handler)
        traced = tracer.capture_lambda_handler(capture_response=False)(logged)
        return cast(_H, metrics.log_metrics(traced))

    return decorate
