"""PlanState, PublishState and CleanUp against moto: plans, conditional publication, clean-up."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from lambdas.plan_state.plan import plan_state
from lambdas.publish_state.publish import ALREADY_PUBLISHED, PUBLISHED, publish_state
from moto import mock_aws

from duffbeer import naming, state
from duffbeer.errors import StateConflictError, StateNotPublishedError
from lambdas.clean_up.cleanup import Grace, clean_up

pytestmark = pytest.mark.functional

BUCKET = "duffbeer-processed-orders"
DATABASE = "duffbeer_reports"
VERSIONS = "duffbeer_reports_versions"
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SETTINGS = state.StateSettings(line_buckets=4, client_buckets=8)
GRACE = Grace(reader=timedelta(hours=1), orphan=timedelta(hours=24))


@pytest.fixture
def aws() -> Iterator[tuple[Any, Any]]:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        glue = boto3.client("glue", region_name="us-east-1")
        glue.create_database(DatabaseInput={"Name": DATABASE})
        yield s3, glue


def _pointer_to(s3: Any, batch: str, run: str, event_time: str = "2026-11-28T08:00:00.000Z") -> str:
    """A batch pointer publishing `run`, as the Store step writes it; returns its ETag."""
    prefix = f"runs/{batch}/{run}/"
    published = {
        "run_id": run,
        "published_at": event_time,
        "source_event_time": event_time,
        "partitions": [],
        "outputs": {"order_lines": f"{prefix}order_lines/", "reports": {}, "rejects": ""},
        "rows_valid": 1,
        "total_sales": "1.00",
    }
    document = {"batch_id": batch, "run_id": run, "status": "SUCCEEDED", "published": published}
    response = s3.put_object(
        Bucket=BUCKET, Key=f"manifests/{batch}.json", Body=json.dumps(document)
    )
    return str(response["ETag"])


def _plan(s3: Any, token: str = "0a1b2c3d", run_id: str = "exec-1") -> Any:
    return plan_state(
        bucket=BUCKET, client=s3, run_id=run_id, now=NOW, settings=SETTINGS, token=token
    )


def _read(s3: Any, key: str) -> Any:
    return json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())


def _build_version(s3: Any, plan: state.MergePlan, *, reuse: str | None = None) -> None:
    """Write what the MergeState job writes for `plan`: one partition per partitioned table
    (or, with `reuse`, the lines partition of that older version), small tables, and the
    version manifest last."""
    version = plan["version"]
    tables: dict[str, state.TableLocation] = {}
    for name, table in state.STATE_TABLES.items():
        own = state.table_prefix(version, name)
        if table.partitioned:
            values = {key: "x" for key, _ in table.partition_keys}
            location = f"{own}p=1/"
            if reuse and name == state.CURRENT_LINES_TABLE:
                location = f"{state.table_prefix(reuse, name)}p=1/"
            else:
                s3.put_object(Bucket=BUCKET, Key=f"{location}part-0.parquet", Body=b"p")
            partition = state.PartitionLocation(values=values, location=location, rows=1)
            tables[name] = state.TableLocation(rows=1, partitions=[partition])
        else:
            s3.put_object(Bucket=BUCKET, Key=f"{own}part-0.parquet", Body=b"p")
            tables[name] = state.TableLocation(rows=1, location=own)
    manifest = state.StateManifest(
        state_format=1,
        version=version,
        seq=plan["seq"],
        base_version=plan["base"]["version"] if plan["base"] else None,
        created_at="2026-11-28T11:00:00.000Z",
        run_id=plan["run_id"],
        settings=plan["settings"],
        batches=plan["batches"],
        tables=tables,
        counts={"lines": 3, "orders": 2, "clients": 1},
        merge=state.MergeFacts(
            changed_batches=[c["batch_id"] for c in plan["changes"]],
            withdrawn_batches=plan["withdrawn"],
            touched_partitions=1,
            touched_orders=2,
            fallback_lines=0,
            timings={},
        ),
    )
    s3.put_object(
        Bucket=BUCKET, Key=naming.state_manifest_key(version), Body=state.dumps(manifest)
    )


def _publish(s3: Any, glue: Any, version: str, now: datetime = NOW) -> Any:
    return publish_state(
        version=version,
        plan_key=naming.state_plan_key(version),
        bucket=BUCKET,
        s3=s3,
        glue=glue,
        versions_database=VERSIONS,
        now=now,
        reader_grace=GRACE.reader,
    )


def _merge(s3: Any, glue: Any, token: str, now: datetime = NOW) -> str:
    """Plan, build and publish one version; its id."""
    result = _plan(s3, token=token)
    assert result.changed
    _build_version(s3, _read(s3, result.plan_key))
    _publish(s3, glue, result.version, now)
    return str(result.version)


# --- PlanState -----------------------------------------------------------------------------


def test_first_plan_merges_every_published_batch(aws: tuple[Any, Any]) -> None:
    s3, _ = aws
    etag_a = _pointer_to(s3, "a-1", "r1")
    _pointer_to(s3, "b-1", "r1", event_time="2026-11-28T09:00:00.000Z")

    result = _plan(s3)

    assert (result.changed, result.version, result.changes, result.withdrawn) == (
        True,
        "0000000001-0a1b2c3d",
        2,
        0,
    )
    plan = _read(s3, "state/plans/0000000001-0a1b2c3d.json")
    assert plan["base"] is None
    assert plan["settings"] == SETTINGS
    assert plan["changes"] == [
        {
            "batch_id": "a-1",
            "run_id": "r1",
            "source_event_time": "2026-11-28T08:00:00.000Z",
            "lines_prefix": "runs/a-1/r1/order_lines/",
        },
        {
            "batch_id": "b-1",
            "run_id": "r1",
            "source_event_time": "2026-11-28T09:00:00.000Z",
            "lines_prefix": "runs/b-1/r1/order_lines/",
        },
    ]
    assert plan["batches"]["a-1"]["manifest_etag"] == etag_a


def test_an_up_to_date_state_plans_nothing_and_reads_no_pointer_again(
    aws: tuple[Any, Any],
) -> None:
    s3, glue = aws
    _pointer_to(s3, "a-1", "r1")
    version = _merge(s3, glue, "0a1b2c3d")
    reads: list[str] = []
    s3.meta.events.register(
        "before-parameter-build.s3.GetObject",
        lambda params, **_: reads.append(params["Key"]),
    )

    result = _plan(s3, token="11111111")

    assert (result.changed, result.version, result.plan_key) == (False, version, None)
    assert [key for key in reads if key.startswith("manifests/")] == []


def test_a_newer_run_and_a_vanished_batch_are_withdrawn(aws: tuple[Any, Any]) -> None:
    s3, glue = aws
    _pointer_to(s3, "a-1", "r1")
    _pointer_to(s3, "b-1", "r1")
    base = _merge(s3, glue, "0a1b2c3d")
    # A corrected upload republished a-1, and b-1's pointer was removed by an operator
    _pointer_to(s3, "a-1", "r2", event_time="2026-11-28T10:00:00.000Z")
    s3.delete_object(Bucket=BUCKET, Key="manifests/b-1.json")

    result = _plan(s3, token="22222222")

    plan = _read(s3, result.plan_key)
    assert (plan["seq"], plan["base"]["version"]) == (2, base)
    assert [c["batch_id"] for c in plan["changes"]] == ["a-1"]
    assert plan["withdrawn"] == ["a-1", "b-1"]
    assert sorted(plan["batches"]) == ["a-1"]


# --- PublishState --------------------------------------------------------------------------


def test_first_version_is_registered_then_published(aws: tuple[Any, Any]) -> None:
    s3, glue = aws
    _pointer_to(s3, "a-1", "r1")
    plan = _plan(s3)
    _build_version(s3, _read(s3, plan.plan_key))

    result = _publish(s3, glue, plan.version)

    assert (result.outcome, result.seq, result.lines) == (PUBLISHED, 1, 3)
    pointer = _read(s3, naming.STATE_POINTER_KEY)
    assert pointer == {
        "pointer_format": 1,
        "version": plan.version,
        "seq": 1,
        "published_at": "2026-11-28T12:00:00.000Z",
        "state_manifest": f"state/versions/{plan.version}/_state.json",
        "settings": SETTINGS,
        "history": [],
    }
    # Every table of the version is in the versions database, partitions with locations
    tables = {
        t["Name"]: t for t in glue.get_tables(DatabaseName=VERSIONS)["TableList"]
    }
    suffix = "_v0000000001_0a1b2c3d"
    assert sorted(tables) == sorted(f"{name}{suffix}" for name in state.STATE_TABLES)
    lines = tables[f"order_lines_current{suffix}"]
    assert lines["StorageDescriptor"]["BucketColumns"] == ["client_id"]
    assert lines["StorageDescriptor"]["NumberOfBuckets"] == 4
    assert lines["Parameters"]["bucketing_format"] == "spark"
    partitions = glue.get_partitions(DatabaseName=VERSIONS, TableName=f"client_orders{suffix}")
    assert [p["StorageDescriptor"]["Location"] for p in partitions["Partitions"]] == [
        f"s3://{BUCKET}/state/versions/{plan.version}/client_orders/p=1/"
    ]


def test_a_retry_after_publication_changes_nothing(aws: tuple[Any, Any]) -> None:
    s3, glue = aws
    _pointer_to(s3, "a-1", "r1")
    version = _merge(s3, glue, "0a1b2c3d")
    before = s3.get_object(Bucket=BUCKET, Key=naming.STATE_POINTER_KEY)["Body"].read()

    result = _publish(s3, glue, version, NOW + timedelta(minutes=5))

    assert result.outcome == ALREADY_PUBLISHED
    assert s3.get_object(Bucket=BUCKET, Key=naming.STATE_POINTER_KEY)["Body"].read() == before


def test_of_two_merges_planned_on_one_base_only_the_first_is_published(
    aws: tuple[Any, Any],
) -> None:
    # Given two executions that planned on the same (empty) state and both built a version
    s3, glue = aws
    _pointer_to(s3, "a-1", "r1")
    first = _plan(s3, token="aaaaaaaa")
    _pointer_to(s3, "b-1", "r1")
    second = _plan(s3, token="bbbbbbbb")
    for plan in (first, second):
        _build_version(s3, _read(s3, plan.plan_key))
    # When both publish
    assert _publish(s3, glue, first.version).outcome == PUBLISHED
    with pytest.raises(StateConflictError, match="plan again"):
        _publish(s3, glue, second.version)
    # Then the pointer names the first, and planning again merges b-1 on top of it
    assert _read(s3, naming.STATE_POINTER_KEY)["version"] == first.version
    again = _read(s3, _plan(s3, token="cccccccc").plan_key)
    assert (again["base"]["version"], [c["batch_id"] for c in again["changes"]]) == (
        first.version,
        ["b-1"],
    )


def test_a_merge_that_wrote_nothing_is_a_conflict_or_an_error(aws: tuple[Any, Any]) -> None:
    s3, glue = aws
    _pointer_to(s3, "a-1", "r1")
    stale = _plan(s3, token="aaaaaaaa")
    # With the pointer unchanged, a missing version is an error of the merge ...
    with pytest.raises(StateNotPublishedError, match="wrote no version manifest"):
        _publish(s3, glue, stale.version)
    # ... once another version is published, it was a stale plan the job refused
    _merge(s3, glue, "bbbbbbbb")
    with pytest.raises(StateConflictError, match="before the merge ran"):
        _publish(s3, glue, stale.version)


def test_a_location_without_objects_is_not_published(aws: tuple[Any, Any]) -> None:
    s3, glue = aws
    _pointer_to(s3, "a-1", "r1")
    plan = _plan(s3)
    _build_version(s3, _read(s3, plan.plan_key))
    s3.delete_object(
        Bucket=BUCKET, Key=f"state/versions/{plan.version}/client_report/p=1/part-0.parquet"
    )

    with pytest.raises(StateNotPublishedError, match="client_report/p=1/"):
        _publish(s3, glue, plan.version)
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix=naming.STATE_POINTER_KEY)


def test_the_pointer_keeps_superseded_versions_within_the_grace_period(
    aws: tuple[Any, Any],
) -> None:
    s3, glue = aws
    _pointer_to(s3, "a-1", "r1")
    first = _merge(s3, glue, "aaaaaaaa", NOW)
    _pointer_to(s3, "b-1", "r1")
    second = _merge(s3, glue, "bbbbbbbb", NOW + timedelta(minutes=10))
    _pointer_to(s3, "c-1", "r1")
    _merge(s3, glue, "cccccccc", NOW + timedelta(hours=2))

    history = _read(s3, naming.STATE_POINTER_KEY)["history"]

    # first stopped being current 1 h 50 min before: dropped; second just now: kept
    assert history == [
        {
            "version": second,
            "published_at": "2026-11-28T12:10:00.000Z",
            "superseded_at": "2026-11-28T14:00:00.000Z",
        }
    ]
    assert first not in json.dumps(history)


# --- CleanUp -------------------------------------------------------------------------------


def _put_run(s3: Any, batch: str, run: str, *, manifest: bool = True) -> None:
    s3.put_object(Bucket=BUCKET, Key=f"runs/{batch}/{run}/order_lines/x.parquet", Body=b"p")
    if manifest:
        body = json.dumps(
            {"batch_id": batch, "run_id": run, "status": "SUCCEEDED", "published": None}
        )
        s3.put_object(Bucket=BUCKET, Key=f"runs/{batch}/{run}/_manifest.json", Body=body)


def _keys(s3: Any, prefix: str) -> set[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return {o["Key"] for page in pages for o in page.get("Contents", [])}


def _clean(s3: Any, glue: Any, batch: str, now: datetime) -> Any:
    return clean_up(
        batch_id=batch,
        bucket=BUCKET,
        s3=s3,
        glue=glue,
        database=DATABASE,
        versions_database=VERSIONS,
        now=now,
        grace=GRACE,
    )


def test_superseded_runs_go_after_the_grace_period_and_in_flight_ones_stay(
    aws: tuple[Any, Any],
) -> None:
    s3, glue = aws
    # Given batch a-1 published by r2, an older r1, and r3 still running (no run manifest)
    for run in ("r1", "r2"):
        _put_run(s3, "a-1", run)
    _put_run(s3, "a-1", "r3", manifest=False)
    _pointer_to(s3, "a-1", "r2", event_time="2026-11-28T11:30:00.000Z")
    _put_run(s3, "b-1", "r1")
    other = _keys(s3, "runs/b-1/")

    # Within the grace period nothing goes
    assert _clean(s3, glue, "a-1", NOW).deleted_runs == []
    # After it, r1 goes; r3 stays until it is an orphan; the other batch is untouched
    later = datetime.now(UTC) + timedelta(hours=2)
    result = _clean(s3, glue, "a-1", later)
    assert (result.deleted_runs, result.errors) == (["r1"], [])
    assert {k.split("/")[2] for k in _keys(s3, "runs/a-1/")} == {"r2", "r3"}
    assert _keys(s3, "runs/b-1/") == other
    assert _clean(s3, glue, "a-1", later + timedelta(days=1)).deleted_runs == ["r3"]


def test_old_versions_go_but_not_what_readers_or_later_versions_still_name(
    aws: tuple[Any, Any],
) -> None:
    s3, glue = aws
    _pointer_to(s3, "a-1", "r1")
    first = _merge(s3, glue, "aaaaaaaa", NOW)
    # The second version reuses the first one's lines partition
    _pointer_to(s3, "b-1", "r1")
    plan = _plan(s3, token="bbbbbbbb")
    _build_version(s3, _read(s3, plan.plan_key), reuse=first)
    _publish(s3, glue, plan.version, NOW + timedelta(minutes=1))
    reused = f"state/versions/{first}/order_lines_current/p=1/part-0.parquet"

    # Soon after, the first version is still in the pointer's history: kept whole
    soon = datetime.now(UTC) + timedelta(minutes=30)
    assert _clean(s3, glue, "b-1", soon).deleted_versions == []
    assert _keys(s3, f"state/versions/{first}/")
    # Hours later it goes, except the partition the current version reuses
    later = datetime.now(UTC) + timedelta(hours=3)
    result = _clean(s3, glue, "b-1", later)
    assert result.errors == []
    assert _keys(s3, f"state/versions/{first}/") == {reused}
    assert _keys(s3, f"state/versions/{plan.version}/")
    # Its tables are dropped; the current version's and the empty version's stay
    names = {t["Name"] for t in glue.get_tables(DatabaseName=VERSIONS)["TableList"]}
    assert not any(name.endswith("_v0000000001_aaaaaaaa") for name in names)
    assert any(name.endswith("_v0000000002_bbbbbbbb") for name in names)
    assert result.dropped_tables == len(state.STATE_TABLES)
    assert "state/plans/0000000001-aaaaaaaa.json" not in _keys(s3, "state/plans/")
