"""The local Glue runner: staging through S3, argument translation, upload order, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from duffbeer_local import spark_driver
from duffbeer_local.glue_runner import GlueRunSpec, GlueRuntime, GlueSettings, error_from_log

# Stands in for spark-submit in these tests: it records its command line and runs the script
# with the same Python, which is all the runner relies on (the e2e tests use the real one).
FAKE_SPARK_SUBMIT = textwrap.dedent(
    f"""\
    #!/bin/sh
    printf '%s\\n' "$@" > "$PWD/spark-submit-args.txt"
    while [ "$#" -gt 0 ]; do
      case "$1" in
        --master|--conf|--py-files) shift 2 ;;
        *) break ;;
      esac
    done
    exec {sys.executable} "$@"
    """
)

JOB = textwrap.dedent(
    """
    import json, pathlib, sys
    args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
    root = pathlib.Path(args["--output_path"])
    run = root / "runs" / args["--batch_id"] / args["--run_id"]
    run.mkdir(parents=True)
    (run / "part-0.parquet").write_text(pathlib.Path(args["--input_path"]).read_text())
    (run / "part-0.parquet.crc").write_text("checksum")
    status = "FAILED" if "bad" in args["--input_path"] else "SUCCEEDED"
    error = {"type": "RejectThresholdExceededError", "message": "3 of 5 rows rejected"}
    (run / "_manifest.json").write_text(json.dumps({
        "batch_id": args["--batch_id"], "run_id": args["--run_id"], "status": status,
        "published": None, "error": error if status == "FAILED" else None}))
    # Anything already in the bucket is readable, as on S3.
    seen = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    (run / "seen.txt").write_text("\\n".join(seen))
    sys.exit(1 if status == "FAILED" else 0)
    """
)


class RecordingS3:
    """A real (moto) S3 client that also remembers the order of uploaded keys."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.uploaded: list[str] = []

    def upload_file(self, filename: str, bucket: str, key: str) -> None:
        self.uploaded.append(key)
        self._client.upload_file(filename, bucket, key)

    def put_object(self, **kwargs: Any) -> Any:
        if kwargs.get("Bucket") == "processed":
            self.uploaded.append(kwargs["Key"])
        return self._client.put_object(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


@pytest.fixture
def s3() -> Iterator[RecordingS3]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        for bucket in ("artifacts", "input", "processed"):
            client.create_bucket(Bucket=bucket)
        client.put_object(Bucket="artifacts", Key="scripts/job.py", Body=JOB.encode())
        client.put_object(Bucket="artifacts", Key="libs/duffbeer.zip", Body=b"PK")
        client.put_object(Bucket="input", Key="raw/good.csv", Body=b"a,b\n1,2\n")
        client.put_object(Bucket="input", Key="raw/bad.csv", Body=b"a,b\n")
        yield RecordingS3(client)


@pytest.fixture
def runtime(tmp_path: Path, s3: RecordingS3) -> GlueRuntime:
    fake = tmp_path / "bin" / "spark-submit"
    fake.parent.mkdir()
    fake.write_text(FAKE_SPARK_SUBMIT)
    fake.chmod(0o755)
    settings = GlueSettings(
        state_dir=tmp_path / "state",
        spark_submit=fake,
        class_archive=tmp_path / "no-class-archive.jsa",  # drivers start without one
    )
    return GlueRuntime(settings, s3=s3)


def _spec(input_key: str, run_id: str) -> GlueRunSpec:
    return GlueRunSpec(
        job_name="transform_orders",
        job_run_id=f"jr_{run_id}",
        script_location="s3://artifacts/scripts/job.py",
        arguments={
            "--input_path": f"s3://input/{input_key}",
            "--output_path": "s3://processed/",
            "--batch_id": "orders-1",
            "--run_id": run_id,
            "--extra-py-files": "s3://artifacts/libs/duffbeer.zip",
            "--job-bookmark-option": "job-bookmark-disable",
        },
    )


def test_successful_run_uploads_its_outputs_then_its_manifest_last(
    runtime: GlueRuntime, s3: RecordingS3, tmp_path: Path
) -> None:
    outcome = runtime.run(_spec("raw/good.csv", "r1"))
    assert (outcome.state, outcome.error_message) == ("SUCCEEDED", None)
    # The run manifest is the last object written, and checksums are not uploaded
    assert s3.uploaded == [
        "runs/orders-1/r1/part-0.parquet",
        "runs/orders-1/r1/seen.txt",
        "runs/orders-1/r1/_manifest.json",
    ]
    body = s3.get_object(Bucket="processed", Key="runs/orders-1/r1/part-0.parquet")["Body"].read()
    assert body == b"a,b\n1,2\n"
    # spark-submit got --py-files for Glue's --extra-py-files, local paths for S3 ones, and
    # none of Glue's own runtime arguments
    args = (tmp_path / "state" / "glue" / "jr_r1" / "spark-submit-args.txt").read_text().split("\n")
    assert args[args.index("--py-files") + 1].endswith("py-files/duffbeer.zip")
    assert "--job-bookmark-option" not in args
    assert "spark.driver.extraJavaOptions=-XX:TieredStopAtLevel=1" in args  # a small input
    assert "spark.driver.memory=1024m" in args  # the floor of the input-sized heap
    assert "--extra-py-files" not in args
    assert args[args.index("--JOB_NAME") + 1] == "transform_orders"
    assert args[args.index("--input_path") + 1].endswith("input/input_path/good.csv")
    assert args[args.index("--source_uri") + 1] == "s3://input/raw/good.csv"
    assert not args[args.index("--output_path") + 1].startswith("s3://")


def test_failed_run_reports_the_manifest_error_and_still_uploads(
    runtime: GlueRuntime, s3: RecordingS3
) -> None:
    outcome = runtime.run(_spec("raw/bad.csv", "r2"))
    assert outcome.state == "FAILED"
    assert outcome.error_message == "RejectThresholdExceededError: 3 of 5 rows rejected"
    run_manifest = s3.get_object(Bucket="processed", Key="runs/orders-1/r2/_manifest.json")
    assert json.loads(run_manifest["Body"].read())["status"] == "FAILED"
    assert s3.uploaded[-1] == "runs/orders-1/r2/_manifest.json"


def test_the_job_sees_the_bucket_and_only_its_own_writes_go_back(
    runtime: GlueRuntime, s3: RecordingS3
) -> None:
    # Given a bucket holding a published batch pointer, an earlier FAILED run, and a result
    # no job reads
    s3.put_object(Bucket="processed", Key="manifests/orders-1.json", Body=b"r0")
    runtime.run(_spec("raw/bad.csv", "r0"))
    s3.put_object(Bucket="processed", Key="athena-results/q.csv", Body=b"x")
    s3.uploaded.clear()
    # When a new run runs
    outcome = runtime.run(_spec("raw/good.csv", "r3"))
    # Then it read those objects through its local root (not the Athena results) ...
    seen = s3.get_object(Bucket="processed", Key="runs/orders-1/r3/seen.txt")["Body"].read()
    assert seen.decode().split("\n") == [
        "manifests/orders-1.json",
        "runs/orders-1/r0/_manifest.json",
        "runs/orders-1/r0/part-0.parquet",
        "runs/orders-1/r0/seen.txt",
        "runs/orders-1/r3/_manifest.json",
        "runs/orders-1/r3/part-0.parquet",
        "runs/orders-1/r3/part-0.parquet.crc",
    ]
    # ... its outcome is its own, not the earlier run's failure ...
    assert (outcome.state, outcome.error_message) == ("SUCCEEDED", None)
    # ... and only what it wrote went back
    assert s3.uploaded == [
        "runs/orders-1/r3/part-0.parquet",
        "runs/orders-1/r3/seen.txt",
        "runs/orders-1/r3/_manifest.json",
    ]
    assert s3.get_object(Bucket="processed", Key="manifests/orders-1.json")["Body"].read() == b"r0"


def test_an_object_changed_between_runs_is_fetched_again(
    runtime: GlueRuntime, s3: RecordingS3, tmp_path: Path
) -> None:
    s3.put_object(Bucket="processed", Key="state/current.json", Body=b"v1")
    runtime.run(_spec("raw/good.csv", "r4"))
    s3.put_object(Bucket="processed", Key="state/current.json", Body=b"v2")
    s3.delete_object(Bucket="processed", Key="runs/orders-1/r4/seen.txt")
    runtime.run(_spec("raw/good.csv", "r5"))
    seen = s3.get_object(Bucket="processed", Key="runs/orders-1/r5/seen.txt")["Body"].read()
    assert "runs/orders-1/r4/seen.txt" not in seen.decode().split("\n")
    view = tmp_path / "state" / "glue" / "jr_r5" / "output" / "output_path"
    assert (view / "state" / "current.json").read_bytes() == b"v2"
    # ... while the earlier run's view still shows what that run saw
    earlier = tmp_path / "state" / "glue" / "jr_r4" / "output" / "output_path"
    assert (earlier / "state" / "current.json").read_bytes() == b"v1"


def test_missing_script_fails_the_run_with_a_staging_error(runtime: GlueRuntime) -> None:
    spec = GlueRunSpec(
        job_name="transform_orders",
        job_run_id="jr_missing",
        script_location="s3://artifacts/scripts/absent.py",
        arguments={},
    )
    outcome = runtime.run(spec)
    assert outcome.state == "FAILED"
    assert outcome.error_message is not None
    assert outcome.error_message.startswith("staging failed")


def test_error_from_log_takes_the_last_python_exception_line() -> None:
    log = "\n".join(
        [
            "24/11/28 08:00:00 WARN NativeCodeLoader: Unable to load native-hadoop library",
            "Traceback (most recent call last):",
            '  File "transform_orders.py", line 9, in <module>',
            "py4j.protocol.Py4JJavaError: An error occurred while calling o1.csv",
            "During handling of the above exception, another exception occurred:",
            "duffbeer.errors.MissingColumnsError: s3://in/o.csv: missing columns ['status']",
        ]
    )
    assert error_from_log(log) == "MissingColumnsError: s3://in/o.csv: missing columns ['status']"
    assert error_from_log("all good\n") is None


def test_a_large_input_gets_the_full_jit_a_heap_sized_from_it_and_the_class_archive(
    tmp_path: Path, s3: RecordingS3
) -> None:
    # Given a runner for which every input counts as large, and an 8-byte input
    fake = tmp_path / "bin" / "spark-submit"
    fake.parent.mkdir()
    fake.write_text(FAKE_SPARK_SUBMIT)
    fake.chmod(0o755)
    archive = tmp_path / "spark-driver.jsa"
    archive.write_bytes(b"recorded classes")
    settings = GlueSettings(
        state_dir=tmp_path / "state",
        spark_submit=fake,
        small_input_bytes=0,
        driver_memory_per_input_byte=1024**2 * 300,  # 8 bytes -> 2400 MiB
        class_archive=archive,
    )
    runtime = GlueRuntime(settings, s3=s3)
    # When the run starts
    outcome = runtime.run(_spec("raw/good.csv", "r9"))
    # Then spark-submit gets the job's hot-code-only JIT flags, the class archive and a heap
    # of 2400 MiB
    assert outcome.state == "SUCCEEDED"
    args = (tmp_path / "state" / "glue" / "jr_r9" / "spark-submit-args.txt").read_text()
    assert "spark.driver.extraJavaOptions=-XX:Tier4InvocationThreshold=20000" in args
    assert f"-XX:SharedArchiveFile={archive}\n" in args
    assert "spark.driver.memory=2400m" in args


def test_staging_never_writes_outside_its_folder_whatever_the_keys(
    runtime: GlueRuntime, s3: RecordingS3, tmp_path: Path
) -> None:
    # Given objects whose keys would climb out of a folder, or look absolute, in both the
    # output bucket and as the input object itself
    for key in ("../escaped.txt", "runs/../../escaped.txt", "/absolute.txt", "./dot.txt"):
        s3.put_object(Bucket="processed", Key=key, Body=b"x")
    s3.put_object(Bucket="input", Key="../../../climb.csv", Body=b"a,b\n1,2\n")
    # When a run stages them
    outcome = runtime.run(_spec("../../../climb.csv", "r6"))
    # Then it ran, and nothing was written beside the state folder
    assert outcome.state == "SUCCEEDED"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "state"]
    assert not list(tmp_path.rglob("escaped.txt"))
    assert not list(tmp_path.rglob("absolute.txt"))
    staged = tmp_path / "state" / "glue" / "jr_r6" / "input" / "input_path" / "climb.csv"
    assert staged.read_bytes() == b"a,b\n1,2\n"


def _processes_naming(text: str) -> list[int]:
    """Processes whose command line contains `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue  # ended meanwhile
    return found


@pytest.mark.spark
def test_runs_handed_to_drivers_started_ahead_of_them_end_as_spark_submit_runs_do(
    tmp_path: Path, s3: RecordingS3
) -> None:
    # Given the real spark-submit and a driver started ahead of the job's next run
    state = tmp_path / "state"
    runtime = GlueRuntime(GlueSettings(state_dir=state), s3=s3)
    try:
        runtime.prewarm("transform_orders", {})
        # When a run succeeds, then another fails (each in a driver started ahead of it: the
        # second is started once the first run ends)
        good = runtime.run(_spec("raw/good.csv", "r1"))
        bad = runtime.run(_spec("raw/bad.csv", "r2"))
        waiting = _processes_naming(str(state / "glue" / "drivers"))
    finally:
        runtime.close()
    # Then they end, upload and report errors as spark-submit runs do
    assert (good.state, good.error_message) == ("SUCCEEDED", None)
    assert (bad.state, bad.error_message) == (
        "FAILED",
        "RejectThresholdExceededError: 3 of 5 rows rejected",
    )
    assert s3.uploaded[:3] == [
        "runs/orders-1/r1/part-0.parquet",
        "runs/orders-1/r1/seen.txt",
        "runs/orders-1/r1/_manifest.json",
    ]
    # And each ran in a driver started ahead, whose log became the run's log
    for outcome in (good, bad):
        log = outcome.log_path.read_text(errors="replace")
        assert log.startswith("$ ") and "spark_driver.py --job transform_orders" in log
        assert "spark_driver: running" in log
    # And a third driver was waiting for the next run; the runtime's close stopped it and
    # left no log of a run that never came
    assert waiting
    assert _processes_naming(str(state / "glue" / "drivers")) == []
    assert not list((state / "logs" / "glue").glob(".driver-*"))


@pytest.mark.spark
def test_a_run_with_other_launch_options_starts_its_own_spark_submit(
    tmp_path: Path, s3: RecordingS3
) -> None:
    # Given a driver started ahead for small inputs, and a runner for which this input is
    # large (so its run needs another JIT and heap)
    state = tmp_path / "state"
    runtime = GlueRuntime(GlueSettings(state_dir=state, small_input_bytes=0), s3=s3)
    try:
        runtime.prewarm("transform_orders", {}, again=False)
        outcome = runtime.run(_spec("raw/good.csv", "r1"))
        # Then the run started its own spark-submit of the job's script, and the driver
        # still waits for a run it fits
        log = outcome.log_path.read_text(errors="replace")
        assert outcome.state == "SUCCEEDED"
        assert "spark_driver.py" not in log.splitlines()[0]
        assert log.splitlines()[0].endswith("--source_uri s3://input/raw/good.csv")
        assert _processes_naming(str(state / "glue" / "drivers"))
    finally:
        runtime.close()


def test_a_driver_waits_for_its_run_file_and_gives_up_when_its_owner_is_gone(
    tmp_path: Path,
) -> None:
    # Given a run handed over in a file, as the runner writes it
    handed = tmp_path / "run.json"
    run = {"script": "/s.py", "py_files": [], "arguments": ["--a", "1"], "cwd": "/"}
    handed.write_text(json.dumps(run))
    # Then the driver reads it (and removes it) while its owner lives
    assert spark_driver.wait_for_run(handed, os.getpid()) == run
    assert not handed.exists()
    # And with no run and an owner that has ended, it returns without one
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    assert spark_driver.wait_for_run(tmp_path / "never.json", ended.pid) is None
