"""A Spark standalone cluster on 127.0.0.1 for the job's cluster test and bench.

A master and N one-core workers are started from the pinned pyspark
(`bin/spark-class org.apache.spark.deploy.master.Master` / `...deploy.worker.Worker`), with
SPARK_LOCAL_IP=127.0.0.1 so that nothing listens beyond loopback. The job runs on it with
`spark-submit --master spark://127.0.0.1:PORT`; `ExecutorKiller` watches the driver's
REST API and kills one executor (SIGKILL) once a phase of the job is running, the way a
lost Glue worker takes its executor away. `compare_outputs` compares two runs' outputs
table by table (pyarrow, no Spark).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyspark

ROOT = Path(__file__).resolve().parents[1]
SPARK_HOME = Path(pyspark.__file__).parent
JOB_SCRIPT = ROOT / "glue_jobs" / "transform_orders.py"
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def get_json(url: str, timeout: float = 2.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # loopback only
        return json.loads(response.read())


def loopback_env(**extra: str) -> dict[str, str]:
    python = sys.executable
    return {
        **os.environ,
        "SPARK_LOCAL_IP": LOOPBACK,
        "SPARK_HOME": str(SPARK_HOME),
        "PYSPARK_PYTHON": python,
        "PYSPARK_DRIVER_PYTHON": python,
        "PYTHONPATH": str(ROOT),
        **extra,
    }


@dataclass
class StandaloneCluster:
    """A master and `workers` workers of one core and `worker_memory` each."""

    base: Path
    workers: int = 2
    worker_memory: str = "2g"
    port: int = field(default_factory=free_port)
    web_port: int = field(default_factory=free_port)
    _processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"spark://{LOOPBACK}:{self.port}"

    def _spawn(self, name: str, *arguments: str) -> None:
        log = (self.base / f"{name}.log").open("wb")
        env = loopback_env(SPARK_LOG_DIR=str(self.base), SPARK_LOCAL_DIRS=str(self.base / "tmp"))
        self._processes.append(
            subprocess.Popen(
                [str(SPARK_HOME / "bin" / "spark-class"), *arguments],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        )

    def start(self, timeout: float = 60.0) -> StandaloneCluster:
        self.base.mkdir(parents=True, exist_ok=True)
        (self.base / "tmp").mkdir(exist_ok=True)
        self._spawn(
            "master",
            "org.apache.spark.deploy.master.Master",
            "--host", LOOPBACK,
            "--port", str(self.port),
            "--webui-port", str(self.web_port),
        )  # fmt: skip
        for n in range(self.workers):
            work = self.base / f"worker-{n}"
            work.mkdir(exist_ok=True)
            self._spawn(
                f"worker-{n}",
                "org.apache.spark.deploy.worker.Worker",
                "--host", LOOPBACK,
                "--cores", "1",
                "--memory", self.worker_memory,
                "--webui-port", str(free_port()),
                "--work-dir", str(work),
                self.url,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for process in self._processes:
                if process.poll() is not None:
                    raise RuntimeError(f"a cluster process exited; see {self.base}/*.log")
            with contextlib.suppress(OSError, ValueError):
                state = get_json(f"http://{LOOPBACK}:{self.web_port}/json/")
                if sum(w["state"] == "ALIVE" for w in state["workers"]) == self.workers:
                    return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the cluster did not start in {timeout:.0f} s; see {self.base}/*.log")

    def executor_pids(self) -> dict[str, int]:
        """Executor id -> pid of the executor JVMs the workers started."""
        workers = {p.pid for p in self._processes[1:]}
        found: dict[str, int] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent in workers and b"--executor-id" in argv:
                found[argv[argv.index(b"--executor-id") + 1].decode()] = int(entry.name)
        return found

    def stop(self) -> None:
        # Workers first (they stop their executors), then the master; only our processes.
        for process in reversed(self._processes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in reversed(self._processes):
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self._processes.clear()

    def __enter__(self) -> StandaloneCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def job_command(
    master: str,
    source: Path,
    out: Path,
    *,
    ui_port: int | None = None,
    conf: dict[str, str] | None = None,
    submit_options: Sequence[str] = (),
    batch_id: str = "bench",
    run_id: str = "bench-run",
) -> list[str]:
    """spark-submit of the job on `master`; the driver's UI (REST API) on `ui_port`."""
    settings = {"spark.driver.host": LOOPBACK, **(conf or {})}
    if ui_port is None:
        settings["spark.ui.enabled"] = "false"
    else:
        settings.update({"spark.ui.port": str(ui_port), "spark.ui.showConsoleProgress": "false"})
    command = [str(Path(sys.executable).with_name("spark-submit")), "--master", master]
    for key, value in settings.items():
        command += ["--conf", f"{key}={value}"]
    return [
        *command,
        *submit_options,
        str(JOB_SCRIPT),
        "--JOB_NAME", "transform_orders",
        "--input_path", str(source),
        "--output_path", str(out),
        "--batch_id", batch_id,
        "--run_id", run_id,
        "--ingest_date", "2026-11-28",
    ]  # fmt: skip


@dataclass(frozen=True)
class Kill:
    """What an `ExecutorKiller` did: the phase and stage it hit, the executor it killed."""

    phase: str
    stage: int
    executor: str
    seconds_into_run: float


# A kill point that is no phase: the moment the job logs its checked rows' figures, when
# the rows are kept and no later phase has started reading them.
ROWS_KEPT = "rows_kept"
_ROWS_KEPT_LOG_LINE = b'"message": "rows checked"'


class ExecutorKiller(threading.Thread):
    """Kills one executor at each of `phases`, in order. For a phase of the job (its name,
    which its Spark jobs carry as their description): once a stage of the phase has had a
    task running for the phase's seconds, the executor running that task gets SIGKILL.
    For ROWS_KEPT: as soon as the run's log says the rows are checked, the executor with
    the lowest id."""

    def __init__(self, cluster: StandaloneCluster, ui_port: int, phases: dict[str, float]) -> None:
        super().__init__(daemon=True, name="executor-killer")
        self.cluster = cluster
        self.api = f"http://{LOOPBACK}:{ui_port}/api/v1/applications"
        self.phases = dict(phases)
        self.kills: list[Kill] = []
        self._done = threading.Event()
        self._t0 = time.monotonic()
        self._first_seen: dict[tuple[int, int], float] = {}
        self.log: Path | None = None  # the run's log, set by run_job

    def _rows_kept(self) -> tuple[int, str] | None:
        if self.log is None or _ROWS_KEPT_LOG_LINE not in self.log.read_bytes():
            return None
        alive = sorted(self.cluster.executor_pids(), key=int)
        return (-1, alive[0]) if alive else None

    def _running_task(self, app: str, phase: str) -> tuple[int, str] | None:
        """(stage, executor) of a task of the phase seen running for the phase's seconds."""
        now = time.monotonic()
        for stage in get_json(f"{self.api}/{app}/stages?status=active"):
            if stage.get("description") != phase:
                continue
            tasks = get_json(
                f"{self.api}/{app}/stages/{stage['stageId']}/{stage['attemptId']}"
                "/taskList?status=RUNNING"
            )
            for task in tasks:
                seen = self._first_seen.setdefault((stage["stageId"], task["taskId"]), now)
                if now - seen >= self.phases[phase]:
                    return int(stage["stageId"]), str(task["executorId"])
        return None

    def run(self) -> None:
        pending = list(self.phases)
        while pending and not self._done.is_set():
            with contextlib.suppress(OSError, ValueError, KeyError, IndexError):
                if pending[0] == ROWS_KEPT:
                    hit = self._rows_kept()
                else:
                    apps = get_json(self.api)
                    hit = self._running_task(apps[0]["id"], pending[0]) if apps else None
                pid = self.cluster.executor_pids().get(hit[1]) if hit else None
                if hit is not None and pid is not None:
                    os.kill(pid, signal.SIGKILL)
                    self.kills.append(
                        Kill(pending.pop(0), hit[0], hit[1], time.monotonic() - self._t0)
                    )
            time.sleep(0.05)

    def stop(self) -> list[Kill]:
        self._done.set()
        self.join(timeout=5)
        return self.kills


@dataclass(frozen=True)
class RunResult:
    returncode: int
    seconds: float
    log: Path
    kills: list[Kill]


def run_job(
    command: list[str], log: Path, *, killer: ExecutorKiller | None = None, timeout: float = 600
) -> RunResult:
    started = time.monotonic()
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=loopback_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        if killer is not None:
            killer.log = log
            killer.start()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    kills = killer.stop() if killer is not None else []
    return RunResult(process.returncode, time.monotonic() - started, log, kills)


# The run's tables, relative to its run folder; the curated lines are hive-partitioned.
TABLES = (
    "order_lines",
    "rejects",
    "reports/client_sales",
    "reports/product_channel_sales",
    "reports/order_status",
)
# Manifest fields that differ between two runs of the same batch: clocks and timings.
CLOCK_FIELDS = ("started_at", "finished_at", "timings")


def _table(path: Path) -> pa.Table:
    partitioning = "hive" if path.name == "order_lines" else None
    table = ds.dataset(path, format="parquet", partitioning=partitioning).to_table()
    names = sorted(table.column_names)
    return table.select(names).sort_by([(n, "ascending") for n in names])


def compare_outputs(
    a: Path, b: Path, batch_id: str = "bench", run_id: str = "bench-run"
) -> list[str]:
    """The differences between two output roots of one run id: manifest (without clocks),
    then each table's rows (order ignored). An empty list means identical."""
    run = Path("runs") / batch_id / run_id
    differences: list[str] = []
    manifests = [json.loads((root / run / "_manifest.json").read_text()) for root in (a, b)]
    for manifest in manifests:
        for name in CLOCK_FIELDS:
            manifest.pop(name, None)
    if manifests[0] != manifests[1]:
        keys = sorted(k for k in manifests[0] if manifests[0].get(k) != manifests[1].get(k))
        differences.append(f"manifest differs in {keys}")
    for name in TABLES:
        left, right = (_table(root / run / name) for root in (a, b))
        if left.schema != right.schema:
            differences.append(f"{name}: schemas differ")
        elif not left.equals(right):
            differences.append(f"{name}: rows differ ({left.num_rows} and {right.num_rows} rows)")
    return differences
