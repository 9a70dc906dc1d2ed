"""The maintain_state entry script: arguments, main(argv, spark), what it returns and raises."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from bench.state_history import plan_state, publish_run, publish_state, write_run
from duffbeer import naming
from duffbeer.errors import ConfigurationError, StateNotPublishedError
from glue_jobs.maintain_state import main
from glue_jobs.state.args import StateJobArgs
from tests.unit.state_support import Line, at, lines_table

BASE = [
    "maintain_state.py",
    "--JOB_NAME",
    "maintain_state",
    "--processed_path",
    "s3://processed/",
    "--plan_key",
    "state/plans/0000000001-0000abcd.json",
]


def test_arguments_are_parsed_once() -> None:
    # Given the job's arguments and Glue's own (ignored)
    argv = [*BASE, "--job-bookmark-option", "job-bookmark-disable", "--TempDir", "s3://t/"]
    # When parsed
    args = StateJobArgs.from_args(argv)
    # Then the root loses its trailing slash and keys join onto it
    assert args == StateJobArgs(
        job_name="maintain_state",
        processed_path="s3://processed",
        plan_key="state/plans/0000000001-0000abcd.json",
    )
    assert args.path("state/current.json") == "s3://processed/state/current.json"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (BASE[:-2], "the job needs --JOB_NAME --processed_path --plan_key"),
        ([*BASE[:-1], "/abs/plan.json"], "--plan_key '/abs/plan.json' must be a key relative"),
        ([*BASE[:-1], ""], "--plan_key must not be empty"),
    ],
)
def test_invalid_arguments_are_configuration_errors(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        StateJobArgs.from_args(argv)
    assert str(raised.value).startswith(message)


def _argv(root: Path, plan_key: str) -> list[str]:
    return [*BASE[:4], str(root), "--plan_key", plan_key]


@pytest.mark.spark
def test_main_builds_the_planned_version(spark: SparkSession, tmp_path: Path) -> None:
    # Given a published batch and a plan for the first version
    batch = naming.batch_id_for("duffbeer-input-orders", "orders/a.csv")
    run = write_run(tmp_path, batch, f"{batch}-run-1", at(8), lines_table([Line(1, 1), Line(2, 1)]))
    publish_run(tmp_path, run, at(9))
    plan = plan_state(tmp_path, run_id="exec-1", token="0000abcd", now=at(10))
    assert plan is not None
    key = naming.state_plan_key(plan["version"])
    # When the entry script runs it
    manifest = main(_argv(tmp_path, key), spark)
    # Then it returns the version manifest it wrote last, and the state is not published yet
    written = tmp_path / naming.state_manifest_key(plan["version"])
    assert manifest is not None and json.loads(written.read_text()) == manifest
    assert (manifest["version"], manifest["run_id"], manifest["counts"]["lines"]) == (
        plan["version"],
        "exec-1",
        2,
    )
    assert not (tmp_path / naming.STATE_POINTER_KEY).exists()
    # When it runs again after PublishState, it returns the same manifest
    publish_state(tmp_path, plan, at(11))
    assert main(_argv(tmp_path, key), spark) == manifest


@pytest.mark.spark
def test_main_returns_none_for_a_stale_plan(spark: SparkSession, tmp_path: Path) -> None:
    batch = naming.batch_id_for("duffbeer-input-orders", "orders/a.csv")
    publish_run(tmp_path, write_run(tmp_path, batch, "r1", at(8), lines_table([Line(1, 1)])), at(9))
    first = plan_state(tmp_path, run_id="exec-1", token="00000001", now=at(10))
    second = plan_state(tmp_path, run_id="exec-2", token="00000002", now=at(10))
    assert first is not None and second is not None
    main(_argv(tmp_path, naming.state_plan_key(first["version"])), spark)
    publish_state(tmp_path, first, at(11))
    assert main(_argv(tmp_path, naming.state_plan_key(second["version"])), spark) is None


@pytest.mark.spark
def test_a_missing_or_mislabelled_plan_is_an_error(spark: SparkSession, tmp_path: Path) -> None:
    with pytest.raises(StateNotPublishedError, match="no merge plan at state/plans/"):
        main(_argv(tmp_path, "state/plans/0000000001-0000abcd.json"), spark)
    plans = tmp_path / "state" / "plans"
    plans.mkdir(parents=True)
    (plans / "0000000001-0000abcd.json").write_text(
        json.dumps(
            {
                "version": "0000000002-0000abcd",
                "seq": 2,
                "base": None,
                "changes": [],
                "withdrawn": [],
                "batches": {},
                "settings": {"line_buckets": 4, "client_buckets": 64},
            }
        )
    )
    with pytest.raises(StateNotPublishedError, match="holds the plan of 0000000002-0000abcd"):
        main(_argv(tmp_path, "state/plans/0000000001-0000abcd.json"), spark)
