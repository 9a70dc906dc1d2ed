"""Runs a Glue job run locally: the deployed script under `spark-submit`, data staged via S3.

Local Spark has no S3 connector, so a run is staged the way a job would see S3 on Glue:
the script and its `--extra-py-files` are downloaded from their S3 locations, the input
object is downloaded to a local folder, and an output root (`--output_path`,
`--processed_path`) becomes a local view of its bucket (duffbeer_local.s3_mirror): the job
reads any object there, and after the process exits what it wrote is uploaded back, run
manifests last, as the job writes them on Glue.

A job with `--datalake-formats iceberg` gets what Glue gives it: the Iceberg jars (the
pinned ones, duffbeer_local/jars.py) and the Spark settings of its `--conf` argument, plus
the settings that point Iceberg's Glue and S3 clients at the local endpoint. Its Iceberg
tables are read and written there directly, not through the view.

A job's run usually starts in a driver started ahead of it (duffbeer_local.spark_driver):
`prewarm` starts one per job with the launch options its next small run will have, and a
run whose options match takes it (otherwise it starts its own spark-submit); each driver
runs one job run and ends with it, and with `again` another is started once no run is left.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from botocore.exceptions import ClientError

from duffbeer import iceberg
from duffbeer import manifest as manifest_mod
from duffbeer.errors import ConfigurationError
from duffbeer.naming import RUNS_PREFIX
from duffbeer_local import class_archive, jars
from duffbeer_local.s3_mirror import BucketMirror, BucketView, local_relative
from duffbeer_local.spark_driver import HandedRun
from glue_jobs.orders.session import spark_settings

# Arguments Glue itself consumes (it never hands them to spark-submit's script as data).
GLUE_RUNTIME_ARGUMENTS = frozenset(
    {
        "--extra-py-files",
        "--extra-jars",
        "--extra-files",
        "--additional-python-modules",
        "--python-modules-installer-option",
        "--conf",
        "--job-language",
        "--enable-metrics",
        "--enable-observability-metrics",
        "--enable-continuous-cloudwatch-log",
        "--enable-continuous-log-filter",
        "--enable-spark-ui",
        "--spark-event-logs-path",
        "--enable-job-insights",
        "--enable-glue-datacatalog",
        "--enable-auto-scaling",
        "--job-bookmark-option",
        "--TempDir",
        "--datalake-formats",
    }
)
# The script a driver started ahead of its run runs (duffbeer_local/spark_driver.py).
SPARK_DRIVER = Path(__file__).with_name("spark_driver.py")
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit)\w*): (.+)$")

StateCallback = Callable[[str, str | None], None]


@dataclass(frozen=True)
class GlueRunSpec:
    """One job run as moto recorded it: the job's script and the run's merged arguments."""

    job_name: str
    job_run_id: str
    script_location: str
    arguments: Mapping[str, str]
    timeout_minutes: int | None = None


@dataclass(frozen=True)
class GlueOutcome:
    """How a run ended, in GetJobRun's words."""

    state: str  # SUCCEEDED | FAILED | TIMEOUT | STOPPED
    error_message: str | None
    duration_seconds: float
    log_path: Path


@dataclass(frozen=True)
class GlueSettings:
    """Where runs are staged and how Spark is started; one per local stack."""

    state_dir: Path
    spark_submit: Path = field(
        default_factory=lambda: Path(sys.executable).with_name("spark-submit")
    )
    python: str = sys.executable
    input_arguments: tuple[str, ...] = ("--input_path",)
    # The job records this as its source object; staging replaces the input path with a local
    # file, so the original s3:// URI is passed here (unless the run already sets it).
    source_uri_argument: str = "--source_uri"
    # Output roots: each becomes a local view of its bucket (read anything, upload writes).
    output_arguments: tuple[str, ...] = ("--output_path", "--processed_path")
    # The state job also lists the batch pointers where they really are (their ETags):
    # given the original root of its view, as `--source_uri` is for an input.
    output_uri_arguments: Mapping[str, str] = field(
        default_factory=lambda: {"--processed_path": "--processed_uri"}
    )
    spark_conf: Mapping[str, str] = field(
        default_factory=lambda: {
            "spark.ui.enabled": "false",
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
        }
    )
    extra_env: Mapping[str, str] = field(default_factory=dict)
    # The local AWS endpoint Iceberg's clients talk to (None: AWS itself), and its region.
    endpoint_url: str | None = None
    region: str = "us-east-1"
    jars_dir: Path = jars.DEFAULT_JARS_DIR
    # Classes every driver loads, mapped from the archive `make setup` records
    # (duffbeer_local.class_archive): a driver starts in about half the CPU.
    class_archive: Path = class_archive.DEFAULT_ARCHIVE
    # Small inputs are dominated by JVM warm-up: C1-only JIT roughly halves a 5-row run here
    # (measured 66 s -> 37 s on a loaded 2-core machine); large inputs keep the full JIT.
    small_input_bytes: int = 64 * 1024**2
    small_input_java_options: str = "-XX:TieredStopAtLevel=1"
    # Larger inputs keep the full JIT but let C2 compile only really hot code: in a run of a
    # minute it otherwise spends about half the CPU compiling code that runs a few times.
    large_input_java_options: str = (
        "-XX:Tier4InvocationThreshold=20000 -XX:Tier4MinInvocationThreshold=2000 "
        "-XX:Tier4CompileThreshold=40000 -XX:Tier4BackEdgeThreshold=160000"
    )
    # Locally the driver is also the executor and keeps the checked rows, compressed (about
    # 30 bytes a row): a 450 MB file runs in 1 GiB but spends a third of its time in GC
    # (5M rows: 94.8 s against 68.9 s with 2 GiB), so the heap is sized from the input.
    driver_memory_per_input_byte: int = 4
    driver_memory_mib_bounds: tuple[int, int] = (1024, 6144)


def _split_s3(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ConfigurationError(f"not an s3:// location: {uri!r}")
    return parsed.netloc, parsed.path.lstrip("/")


@dataclass
class _Staged:
    """A run's local copies: script, libraries, rewritten arguments, output roots."""

    script: Path
    py_files: list[Path]
    arguments: dict[str, str] = field(default_factory=dict)
    outputs: list[BucketView] = field(default_factory=list)
    input_bytes: int = 0


@dataclass
class _Spare:
    """A driver started ahead of a job's next run with the options `launch`."""

    launch: list[str]
    process: subprocess.Popen[bytes]
    log_path: Path
    run_file: Path  # where the run is handed over (duffbeer_local/spark_driver.py)


def _timeout_seconds(spec: GlueRunSpec) -> int:
    # Glue's default job timeout is 2880 minutes (48 hours).
    return (spec.timeout_minutes or 2880) * 60


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Kill a driver's whole process group (spark-submit, the JVM, Python) and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def error_from_log(text: str) -> str | None:
    """The last Python exception line (`Type: message`) in a spark-submit log."""
    found: str | None = None
    for line in text.splitlines():
        match = _EXCEPTION_LINE.match(line.strip())
        if match:
            found = f"{match.group(1).rsplit('.', 1)[-1]}: {match.group(2)}"
    return found


class GlueRuntime:
    """Starts job runs in background threads and reports their states through a callback."""

    def __init__(self, settings: GlueSettings, s3: Any) -> None:
        self._settings = settings
        self._s3 = s3
        self._mirror = BucketMirror(settings.state_dir / "glue" / "mirror", s3)
        self._lock = threading.Lock()
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._spares: dict[str, _Spare] = {}
        self._warm_jobs: dict[str, dict[str, str]] = {}
        self._rewarm: set[str] = set()
        self._spare_numbers = itertools.count(1)
        self._threads: list[threading.Thread] = []
        self._closed = False

    # Staging ------------------------------------------------------------------------------

    def _download(self, uri: str, target_dir: Path) -> Path:
        """Download an object (or every object under a prefix ending in '/'), always inside
        `target_dir` whatever the keys look like."""
        bucket, key = _split_s3(uri)
        target_dir.mkdir(parents=True, exist_ok=True)
        if not key.endswith("/"):
            name = key.rsplit("/", 1)[-1]
            target = target_dir / (name if local_relative(name) else "object")
            self._s3.download_file(bucket, key, str(target))
            return target
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=key):
            for item in page.get("Contents", []):
                relative = local_relative(item["Key"][len(key) :])
                if relative is None:
                    continue  # a folder marker, or a key that would leave the folder
                target = target_dir / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                self._s3.download_file(bucket, item["Key"], str(target))
        return target_dir

    # Running ------------------------------------------------------------------------------

    def _launch(self, arguments: Mapping[str, str], input_bytes: int) -> list[str]:
        """spark-submit and the options that start a run's driver (not yet its script)."""
        command = [str(self._settings.spark_submit), "--master", "local[*]"]
        # The job's own session settings, given at launch too: a driver started ahead of
        # its run then has them from its first query (a cached file system, static settings).
        conf = {**spark_settings(), **self._settings.spark_conf}
        settings = self._settings
        small = input_bytes <= settings.small_input_bytes
        java_options = [
            settings.small_input_java_options if small else settings.large_input_java_options,
            class_archive.java_options(settings.class_archive),
        ]
        conf.setdefault("spark.driver.extraJavaOptions", " ".join(filter(None, java_options)))
        low, high = settings.driver_memory_mib_bounds
        wanted = input_bytes * settings.driver_memory_per_input_byte // 1024**2
        conf.setdefault("spark.driver.memory", f"{min(high, max(low, wanted))}m")
        formats = arguments.get("--datalake-formats", "").split(",")
        if "iceberg" in (name.strip() for name in formats):
            command += ["--jars", ",".join(str(p) for p in jars.jar_paths(settings.jars_dir))]
            conf.update(iceberg.parse_glue_conf_argument(arguments.get("--conf", "")))
            if settings.endpoint_url is not None:
                conf.update(iceberg.endpoint_conf(settings.endpoint_url, settings.region))
        for key, value in conf.items():
            command += ["--conf", f"{key}={value}"]
        return command

    def _script_arguments(self, spec: GlueRunSpec, staged: _Staged) -> list[str]:
        arguments = {
            name: value
            for name, value in spec.arguments.items()
            if name not in GLUE_RUNTIME_ARGUMENTS
        }
        arguments.setdefault("--JOB_NAME", spec.job_name)
        arguments.update(staged.arguments)
        return [part for name, value in arguments.items() for part in (name, value)]

    def _command(self, spec: GlueRunSpec, staged: _Staged) -> list[str]:
        command = self._launch(spec.arguments, staged.input_bytes)
        if staged.py_files:
            command += ["--py-files", ",".join(str(p) for p in staged.py_files)]
        command.append(str(staged.script))
        return command + self._script_arguments(spec, staged)

    def _run_error(self, views: list[BucketView], log_text: str) -> str | None:
        """The run's error: from the run manifest the job wrote, else from its log."""
        for view in views:
            for path in self._mirror.new_files(view):
                relative = path.relative_to(view.root).as_posix()
                if not (relative.startswith(RUNS_PREFIX) and path.name == "_manifest.json"):
                    continue
                try:
                    run_manifest = manifest_mod.loads(path.read_bytes())
                except (ValueError, manifest_mod.BatchNotPublishedError):
                    continue
                error = run_manifest.get("error")
                if error:
                    return f"{error['type']}: {error['message']}"
        return error_from_log(log_text)

    def _stage(self, spec: GlueRunSpec, run_dir: Path) -> _Staged:
        """Download the script, libraries and input; prepare the local output roots."""
        script = self._download(spec.script_location, run_dir / "script")
        py_files = [
            self._download(uri.strip(), run_dir / "py-files")
            for uri in spec.arguments.get("--extra-py-files", "").split(",")
            if uri.strip()
        ]
        staged = _Staged(script=script, py_files=py_files)
        for name in self._settings.input_arguments:
            if spec.arguments.get(name, "").startswith("s3://"):
                local_input = self._download(
                    spec.arguments[name], run_dir / "input" / name.strip("-")
                )
                staged.arguments[name] = str(local_input)
                if self._settings.source_uri_argument not in spec.arguments:
                    staged.arguments[self._settings.source_uri_argument] = spec.arguments[name]
                files = [local_input] if local_input.is_file() else local_input.rglob("*")
                staged.input_bytes += sum(p.stat().st_size for p in files if p.is_file())
        for name in self._settings.output_arguments:
            uri = spec.arguments.get(name, "")
            if uri.startswith("s3://"):
                bucket, prefix = _split_s3(uri)
                prefix = prefix.rstrip("/") + "/" if prefix else ""
                view = self._mirror.view(bucket, prefix, run_dir / "output" / name.strip("-"))
                staged.outputs.append(view)
                staged.arguments[name] = str(view.root)
                original = self._settings.output_uri_arguments.get(name)
                if original is not None and original not in spec.arguments:
                    staged.arguments[original] = uri
        return staged

    def _environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "PYSPARK_PYTHON": self._settings.python,
            "PYSPARK_DRIVER_PYTHON": self._settings.python,
            **self._settings.extra_env,
        }

    def _start_process(
        self, command: list[str], cwd: Path, log_path: Path
    ) -> subprocess.Popen[bytes]:
        with log_path.open("wb") as log:
            log.write(("$ " + " ".join(command) + "\n").encode())
            log.flush()
            # A new session, so a timeout or shutdown ends the JVM and its Python workers too.
            return subprocess.Popen(
                command,
                cwd=cwd,
                env=self._environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def _hand_over(self, spare: _Spare, spec: GlueRunSpec, staged: _Staged, cwd: Path) -> bool:
        """Give the run to a driver started ahead of it; False if that driver is gone."""
        if spare.process.poll() is not None:
            return False
        run: HandedRun = {
            "script": str(staged.script),
            "py_files": [str(p) for p in staged.py_files],
            "arguments": self._script_arguments(spec, staged),
            "cwd": str(cwd),
        }
        # Written whole, then renamed into place: the driver never reads half a run.
        written = spare.run_file.with_suffix(".tmp")
        written.write_text(json.dumps(run))
        written.replace(spare.run_file)
        return True

    def _spawn(self, spec: GlueRunSpec, staged: _Staged, cwd: Path, log_path: Path) -> int | None:
        """Run the job to completion, in a driver started ahead of it when one matches, else
        in a new spark-submit: its exit status, or None when it timed out."""
        launch = self._launch(spec.arguments, staged.input_bytes)
        spare = self._take_spare(spec.job_name, launch)
        if spare is not None and self._hand_over(spare, spec, staged, cwd):
            # The driver keeps writing to the same file under the run's name.
            spare.log_path.replace(log_path)
            process = spare.process
        else:
            if spare is not None:
                _stop(spare.process)
                spare.log_path.unlink(missing_ok=True)
            command = self._command(spec, staged)
            process = self._start_process(command, cwd, log_path)
        with self._lock:
            self._processes[spec.job_run_id] = process
        try:
            process.wait(timeout=_timeout_seconds(spec))
        except subprocess.TimeoutExpired:
            _stop(process)
            return None
        finally:
            with self._lock:
                self._processes.pop(spec.job_run_id, None)
        return process.returncode

    # Drivers started ahead of their runs ----------------------------------------------------

    def prewarm(self, job_name: str, arguments: Mapping[str, str], *, again: bool = True) -> None:
        """Start a driver for the next run of `job_name` (arguments: the job's defaults),
        unless one is already waiting; with `again`, another after each run of the job."""
        with self._lock:
            if self._closed or job_name in self._spares:
                return
            if again:
                self._warm_jobs[job_name] = dict(arguments)
            launch = self._launch(arguments, 0)
            folder = self._settings.state_dir / "glue" / "drivers"
            logs = self._settings.state_dir / "logs" / "glue"
            folder.mkdir(parents=True, exist_ok=True)
            logs.mkdir(parents=True, exist_ok=True)
            number = next(self._spare_numbers)
            log_path = logs / f".driver-{job_name}-{number}.log"
            run_file = folder / f"{job_name}-{number}.run.json"
            command = [
                *launch,
                str(SPARK_DRIVER),
                *("--job", job_name, "--run-file", str(run_file), "--owner", str(os.getpid())),
            ]
            process = self._start_process(command, folder, log_path)
            self._spares[job_name] = _Spare(launch, process, log_path, run_file)

    def _take_spare(self, job_name: str, launch: list[str]) -> _Spare | None:
        with self._lock:
            spare = self._spares.get(job_name)
            if spare is None or spare.launch != launch:
                return None  # none, or started for other options: it waits for the next run
            del self._spares[job_name]
        return spare

    def _replace_spare(self, job_name: str) -> None:
        """After a run: another driver for the job, once no run is left (a warm-up would
        take the cores from a running job)."""
        with self._lock:
            if job_name in self._warm_jobs:
                self._rewarm.add(job_name)
            if self._processes:
                return
            due = {name: self._warm_jobs[name] for name in sorted(self._rewarm)}
            self._rewarm.clear()
        for name, arguments in due.items():
            self.prewarm(name, arguments)

    def run(self, spec: GlueRunSpec) -> GlueOutcome:
        """Stage, run and publish one job run; blocks until it ends."""
        started = time.monotonic()
        run_dir = self._settings.state_dir / "glue" / spec.job_run_id
        log_path = (
            self._settings.state_dir / "logs" / "glue" / f"{spec.job_name}-{spec.job_run_id}.log"
        )
        log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            staged = self._stage(spec, run_dir)
        except (ClientError, ConfigurationError) as e:
            log_path.write_text(f"staging failed: {e}\n")
            return GlueOutcome(
                "FAILED", f"staging failed: {e}", time.monotonic() - started, log_path
            )
        try:
            status = self._spawn(spec, staged, run_dir, log_path)
        finally:
            self._replace_spare(spec.job_name)
        state, error = "SUCCEEDED", None
        if status is None:
            state = "TIMEOUT"
            error = f"job run timed out after {_timeout_seconds(spec) // 60} minutes"
        elif self._closed:
            state, error = "STOPPED", "the local stack was shut down during the run"
        elif status != 0:
            state = "FAILED"
            error = self._run_error(staged.outputs, log_path.read_text(errors="replace")) or (
                f"spark-submit exited with status {status}; see {log_path}"
            )
        try:
            for view in staged.outputs:
                self._mirror.upload(view)
        except ClientError as e:
            state, error = "FAILED", f"uploading the run's outputs failed: {e}"
        return GlueOutcome(state, error, time.monotonic() - started, log_path)

    def start(self, spec: GlueRunSpec, on_state: StateCallback) -> None:
        """Run `spec` in the background; `on_state` hears RUNNING, then the final state."""

        def target() -> None:
            on_state("RUNNING", None)
            try:
                outcome = self.run(spec)
            except Exception as e:  # a bug in staging must still end the run, visibly
                on_state("FAILED", f"local Glue runner error: {type(e).__name__}: {e}")
                raise
            on_state(outcome.state, outcome.error_message)

        thread = threading.Thread(target=target, name=f"glue-{spec.job_run_id[:12]}", daemon=True)
        with self._lock:
            if self._closed:
                raise RuntimeError("the local Glue runtime is closed")
            self._threads.append(thread)
        thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Stop running jobs (their process groups) and wait for their threads."""
        with self._lock:
            self._closed = True
            processes = list(self._processes.values())
            threads = list(self._threads)
            spares = list(self._spares.values())
            self._spares.clear()
        for process in processes:
            _stop(process)
        for spare in spares:
            _stop(spare.process)
            spare.log_path.unlink(missing_ok=True)
        for thread in threads:
            thread.join(timeout)
