"""A deployed local stack per e2e module: moto on 127.0.0.1, the real deploy, the HTTP API.

Module scope: the stack (and the process-wide moto extensions it binds) is gone before any
other module runs in the same session, and every pipeline scenario lives in one module.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from duffbeer_local.pipeline import LocalPipeline, LocalSettings


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPipeline]:
    settings = LocalSettings(state_dir=tmp_path_factory.mktemp("local-stack"))
    with LocalPipeline(settings) as stack:
        stack.start_api()
        yield stack


@pytest.fixture(scope="module")
def process(
    pipeline: LocalPipeline, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str, str], dict[str, Any]]:
    """Upload CSV text under `key` and wait for its execution to end (DescribeExecution)."""
    folder = tmp_path_factory.mktemp("uploads")

    def run(key: str, text: str) -> dict[str, Any]:
        path = folder / f"{time.monotonic_ns()}-{key}"
        path.write_text(text)
        return pipeline.process(path, key)

    return run
