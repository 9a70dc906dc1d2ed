"""The state's rules in plain Python: which runs a merge takes in, which run the state holds,
the order of the runs of one upload, and which publication a reader sees at an instant."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from duffbeer import manifest, state

T0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)


def run(
    batch: str, run_id: str, minute: int, sequencer: str = "", rerun_at: str = ""
) -> state.BatchRun:
    return state.BatchRun(batch, run_id, T0 + timedelta(minutes=minute), sequencer, rerun_at)


def test_a_merge_takes_new_batches_and_newer_runs_only() -> None:
    # Given the state holding a@8:00 and b@8:05
    held = {"a": run("a", "a1", 0), "b": run("b", "b1", 5)}
    # When the pointers name a (the same run), b's older upload and c's first run
    plan = state.plan_merge(held, [run("a", "a1", 0), run("b", "b0", 3), run("c", "c1", 1)])
    # Then only c is merged, nothing withdrawn: b never moves back
    assert plan is not None
    assert plan.merged == {"c": "c1"}
    assert plan.withdrawn == ()
    # And a newer run of b replaces the held one
    plan = state.plan_merge(held, [run("b", "b2", 9)])
    assert plan is not None and plan.withdrawn == (held["b"],)
    # And nothing new is no merge at all
    assert state.plan_merge(held, [run("a", "a1", 0)]) is None


def test_a_hand_rerun_of_the_same_upload_replaces_the_held_run() -> None:
    # Given the state holding an upload's automatic run
    held = {"a": run("a", "a-auto", 0, "00AA")}
    # When the pointer names a re-run of the same upload (same time and sequencer)
    rerun = run("a", "a-manual-1", 0, "00AA", "2026-11-28T09:00:00.000Z")
    plan = state.plan_merge(held, [rerun])
    # Then it is merged, withdrawing the automatic run's lines
    assert plan is not None and plan.merged == {"a": "a-manual-1"}


def test_runs_of_one_key_are_totally_ordered() -> None:
    # Upload time first, then S3's sequencer (right-padded: AWS compares them so), then the
    # re-run time ("" for an upload's own run), then the run id
    runs = [
        manifest.run_order("z", "2026-11-28T08:00:00.000Z", "0055AED6DCD9028100"),
        manifest.run_order("y", "2026-11-28T08:00:00.000Z", "0055AED6DCD90281E5"),
        manifest.run_order(
            "x", "2026-11-28T08:00:00.000Z", "0055AED6DCD90281E5", "2026-11-28T09:00:00Z"
        ),
        manifest.run_order(
            "y", "2026-11-28T08:00:00.000Z", "0055AED6DCD90281E5", "2026-11-28T09:00:01Z"
        ),
        manifest.run_order(
            "z", "2026-11-28T08:00:00.000Z", "0055AED6DCD90281E5", "2026-11-28T09:00:01Z"
        ),
        manifest.run_order("a", "2026-11-28T08:00:00.001Z"),
    ]
    assert sorted(runs) == runs
    assert len(set(runs)) == len(runs)
    # A shorter sequencer of the same prefix is the earlier PUT
    assert manifest.run_order("a", "2026-11-28T08:00:00Z", "0055AE") < manifest.run_order(
        "a", "2026-11-28T08:00:00Z", "0055AE01"
    )


def test_the_held_run_is_the_latest_merge_publications() -> None:
    rows = [
        {
            "seq": 1,
            "kind": "merge",
            "batch_id": "a",
            "run_id": "a1",
            "source_event_time": T0,
            "source_sequencer": None,
            "rerun_at": None,
            "pointer_etag": '"e1"',
        },
        {
            "seq": 2,
            "kind": "maintenance",
            "batch_id": None,
            "run_id": None,
            "source_event_time": None,
            "source_sequencer": None,
            "rerun_at": None,
            "pointer_etag": None,
        },
        {
            "seq": 3,
            "kind": "merge",
            "batch_id": "a",
            "run_id": "a2",
            "source_event_time": T0,
            "source_sequencer": "00AA",
            "rerun_at": "2026-11-28T09:00:00.000Z",
            "pointer_etag": '"e2"',
        },
        {
            "seq": 3,
            "kind": "merge",
            "batch_id": "b",
            "run_id": "b1",
            "source_event_time": T0,
            "source_sequencer": "",
            "rerun_at": "",
            "pointer_etag": '"e3"',
        },
    ]
    held = state.held_runs(reversed(rows))
    assert list(held) == ["a", "b"]
    assert held["a"] == state.BatchRun("a", "a2", T0, "00AA", "2026-11-28T09:00:00.000Z", '"e2"')
    assert held["b"].run_id == "b1"


def snapshot(seq: int, minute: int, merged: dict[str, str]) -> state.SnapshotInfo:
    publication = state.Publication(
        seq=seq,
        published_at=T0,
        kind=state.KIND_MERGE,
        snapshots={state.CURRENT_LINES_TABLE: 100 + seq},
        merged=merged,
    )
    millis = int((T0 + timedelta(minutes=minute)).timestamp() * 1000)
    return state.SnapshotInfo(1000 + seq, millis, publication.summary())


def test_a_reader_sees_the_latest_publication_at_or_before_an_instant() -> None:
    # Given the publications table's snapshots: its empty first one, then publications 1, 2
    infos = [
        state.SnapshotInfo(1, int(T0.timestamp() * 1000), {}),
        snapshot(2, 10, {"b": "b1"}),
        snapshot(1, 5, {"a": "a1"}),
    ]
    published = state.publications(infos)
    # Then they are read back in order, with what each merged and each table's snapshot
    assert [(p.seq, dict(p.merged)) for p in published] == [(1, {"a": "a1"}), (2, {"b": "b1"})]
    assert published[0].snapshots == {state.CURRENT_LINES_TABLE: 101}
    assert json.loads(infos[1].summary[state.SUMMARY_MERGED]) == {"b": "b1"}
    # And an instant picks the publication readers saw then
    assert state.as_of(published, T0 + timedelta(minutes=7)) == published[0]
    assert state.as_of(published, T0 + timedelta(minutes=10)) == published[1]
    assert state.as_of(published, None) == published[1]
    assert state.as_of(published, T0 + timedelta(minutes=4)) is None


@pytest.mark.parametrize(
    ("pointer_run", "candidate", "decision"),
    [
        (None, ("a-auto", ""), manifest.PUBLISH),
        (("a-auto", ""), ("a-auto", ""), manifest.ALREADY_PUBLISHED),
        (("a-auto", ""), ("a-manual", "2026-11-28T09:00:00.000Z"), manifest.PUBLISH),
        (("a-manual", "2026-11-28T09:00:00.000Z"), ("a-auto", ""), manifest.SUPERSEDED),
    ],
)
def test_the_store_step_publishes_only_runs_ordering_after_the_pointer(
    pointer_run: tuple[str, str] | None, candidate: tuple[str, str], decision: str
) -> None:
    def made(run_id: str, rerun_at: str) -> manifest.Manifest:
        return {
            "batch_id": "a",
            "run_id": run_id,
            "source": {
                "path": "s3://i/a.csv",
                "size": 1,
                "event_time": "2026-11-28T08:00:00.000Z",
                "sequencer": "00AA",
                "rerun_at": rerun_at or None,
            },
        }  # type: ignore[typeddict-item]

    pointer = None
    if pointer_run is not None:
        pointer = {**made(*pointer_run), "published": {"run_id": pointer_run[0]}}
    assert manifest.publication_decision(pointer, made(*candidate)) == decision  # type: ignore[arg-type]


class _RefStatements:
    """A session whose ref statements lose their commit `losses` times, then land."""

    def __init__(self, losses: int, error: str) -> None:
        self.losses = losses
        self.error = error
        self.statements: list[str] = []

    def sql(self, statement: str) -> None:
        self.statements.append(statement)
        if len(self.statements) <= self.losses:
            raise RuntimeError(self.error)


LOST_REF_COMMIT = (
    "org.apache.iceberg.exceptions.CommitFailedException: Table metadata refresh is required"
)


def test_a_ref_change_that_loses_its_commit_is_run_again_as_a_new_statement() -> None:
    from glue_jobs.state.catalog import change_refs  # noqa: PLC0415  (imports pyspark)

    # Given a branch creation that loses to other merges' commits three times
    session = _RefStatements(losses=3, error=LOST_REF_COMMIT)
    waits: list[float] = []
    # When it is run
    change_refs(session, "ALTER TABLE t CREATE OR REPLACE BRANCH b", sleep=waits.append)  # type: ignore[arg-type]
    # Then the statement ran four times, with a bounded wait between attempts
    assert session.statements == ["ALTER TABLE t CREATE OR REPLACE BRANCH b"] * 4
    assert len(waits) == 3 and all(0 <= w <= 2.0 for w in waits)


def test_a_ref_change_gives_up_after_its_attempts_and_never_retries_other_errors() -> None:
    from glue_jobs.state.catalog import REF_CHANGE_ATTEMPTS, change_refs  # noqa: PLC0415

    always_losing = _RefStatements(losses=10**6, error=LOST_REF_COMMIT)
    with pytest.raises(RuntimeError, match="refresh is required"):
        change_refs(always_losing, "DROP", sleep=lambda _: None)  # type: ignore[arg-type]
    assert len(always_losing.statements) == REF_CHANGE_ATTEMPTS
    broken = _RefStatements(losses=1, error="AnalysisException: no such branch")
    with pytest.raises(RuntimeError, match="no such branch"):
        change_refs(broken, "DROP", sleep=lambda _: None)  # type: ignore[arg-type]
    assert len(broken.statements) == 1
