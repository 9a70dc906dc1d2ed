"""State merge benchmark: a batch merged into a large Iceberg state by the maintain_state job,
each merge its own spark-submit process; prints the whole process's wall time (median of
`--repeat`) and the job's phases. Figures are printed, never asserted.

    python -m bench.bench_state [--state-lines 10000000] [--batch-lines 100000] [--repeat 2]

The state (default 10M current lines: one generated batch merged by the job, untimed) is
kept under build/bench/: its processed root (runs and batch pointers) and its Iceberg
warehouse on local disk, whose tables a moto Glue catalog on 127.0.0.1 registers again on
every run. Each timed run publishes a new batch of `--batch-lines` lines (half of them new
versions of existing lines picked uniformly, half new orders), merges it, then puts the
tables back on the state as built, so every run merges into the same state.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import numpy as np
from moto.server import ThreadedMotoServer
from pyiceberg.catalog import load_catalog

from bench.bench_glue_job import JAVA_OPTIONS
from bench.state_data import History
from duffbeer import iceberg, naming, state
from duffbeer_local import jars, moto_extensions

ROOT = Path(__file__).resolve().parents[1]
READY = "bench-state-ready.json"
BUILD_SEED = 1
DATABASE = "bench_state"
REGION = "us-east-1"
TABLES = (*state.STATE_TABLES, state.PUBLICATIONS_TABLE)


class BenchCatalog:
    """A moto Glue catalog on 127.0.0.1 over a warehouse on local disk."""

    def __init__(self, warehouse: Path) -> None:
        self.warehouse = warehouse.resolve()
        moto_extensions.install()
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        # moto's backends are per process: start from an empty catalog every time.
        urllib.request.urlopen(
            urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        ).close()
        credentials = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench"}
        self.glue = boto3.client(
            "glue", endpoint_url=self.endpoint, region_name=REGION, **credentials
        )
        self.glue.create_database(DatabaseInput={"Name": DATABASE})
        self.catalog = load_catalog(
            "bench",
            type="glue",
            **{
                "glue.endpoint": self.endpoint,
                "glue.region": REGION,
                "glue.access-key-id": "bench",
                "glue.secret-access-key": "bench",
            },
        )

    def spark_conf(self) -> dict[str, str]:
        """The job's catalog settings, with files on local disk instead of S3."""
        return {
            **iceberg.spark_conf(self.warehouse.as_uri()),
            **iceberg.endpoint_conf(self.endpoint, REGION),
            f"spark.sql.catalog.{iceberg.CATALOG}.io-impl": (
                "org.apache.iceberg.hadoop.HadoopFileIO"
            ),
        }

    def metadata_locations(self) -> dict[str, str]:
        return {
            name: self.glue.get_table(DatabaseName=DATABASE, Name=name)["Table"]["Parameters"][
                "metadata_location"
            ]
            for name in TABLES
        }

    def register(self, locations: dict[str, str]) -> None:
        """Make the catalog's tables those metadata files (dropping what it had)."""
        for name, location in locations.items():
            with contextlib.suppress(self.glue.exceptions.EntityNotFoundException):
                self.glue.delete_table(DatabaseName=DATABASE, Name=name)
            self.catalog.register_table(f"{DATABASE}.{name}", location)

    def close(self) -> None:
        self.server.stop()


@contextmanager
def bench_catalog(warehouse: Path) -> Iterator[BenchCatalog]:
    catalog = BenchCatalog(warehouse)
    try:
        yield catalog
    finally:
        catalog.close()


def spark_submit_command(
    root: Path, conf: dict[str, str], batch_id: str, run_id: str, driver_memory: str
) -> list[str]:
    """The state job as the local Glue runner starts it: its own spark-submit process."""
    command = [
        str(Path(sys.executable).parent / "spark-submit"),
        *("--master", "local[2]", "--driver-memory", driver_memory),
        *("--driver-java-options", " ".join(JAVA_OPTIONS)),
        *("--jars", ",".join(str(path) for path in jars.jar_paths())),
        *("--conf", "spark.ui.enabled=false"),
    ]
    for key, value in conf.items():
        command += ["--conf", f"{key}={value}"]
    return [
        *command,
        str(ROOT / "glue_jobs" / "maintain_state.py"),
        *("--JOB_NAME", "maintain_state", "--processed_path", str(root)),
        *("--database", DATABASE, "--batch_id", batch_id, "--run_id", run_id),
    ]


def run_merge(command: list[str], log: Path) -> dict[str, Any]:
    """Run the job; its wall and CPU seconds and the facts it logged on publishing."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    env = {
        **os.environ,
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "PYTHONPATH": str(ROOT),
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_REGION": REGION,
    }
    started = time.monotonic()
    with log.open("w") as out:
        done = subprocess.run(command, cwd=ROOT, env=env, stdout=out, stderr=out, check=False)
    seconds = time.monotonic() - started
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"maintain_state exited {done.returncode}; see {log}")
    published = [
        json.loads(line)
        for line in log.read_text().splitlines()
        if line.startswith("{") and '"state published"' in line
    ]
    return {
        "seconds": seconds,
        "cpu": used.ru_utime + used.ru_stime - before.ru_utime - before.ru_stime,
        "timings": published[-1].get("timings", {}) if published else {},
    }


def build_state(root: Path, lines: int, driver_memory: str) -> dict[str, Any]:
    """The state of one batch of `lines` lines (reused when already built)."""
    ready = root / READY
    if ready.exists():
        return dict(json.loads(ready.read_text()))
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    started = time.monotonic()
    batch = History(root, seed=BUILD_SEED).next_batch(lines, 0.0)
    written = time.monotonic() - started
    with bench_catalog(root / "warehouse") as catalog:
        command = spark_submit_command(
            root, catalog.spark_conf(), batch["batch_id"], "bench-build", driver_memory
        )
        merged = run_merge(command, root.parent / "bench-state-build.log")
        facts = {
            "lines": batch["lines"],
            "write_seconds": round(written, 1),
            "merge_seconds": round(merged["seconds"], 1),
            "metadata": catalog.metadata_locations(),
        }
    ready.write_text(json.dumps(facts))
    return facts


def timed_merge(
    root: Path,
    built: dict[str, Any],
    batch_lines: int,
    update_share: float,
    attempt: int,
    driver_memory: str,
) -> dict[str, Any]:
    """Publish a new batch and merge it into the state as built (timed), then take the
    batch away again."""
    # The generator must know the state's keys to update them: draw the first batch's keys
    # again as build_state drew them, then this run's lines from a seed of its own.
    history = History(root, seed=BUILD_SEED)
    history.lines.add_orders(built["lines"], history.rng)
    history.rng = np.random.default_rng(100 + attempt)
    history.index = 1000 + attempt
    batch = history.next_batch(batch_lines, update_share)
    try:
        with bench_catalog(root / "warehouse") as catalog:
            catalog.register(built["metadata"])
            command = spark_submit_command(
                root, catalog.spark_conf(), batch["batch_id"], f"bench-{attempt}", driver_memory
            )
            result = run_merge(command, root.parent / f"bench-state-merge-{attempt}.log")
    finally:
        (root / naming.manifest_key(batch["batch_id"])).unlink()
        shutil.rmtree(
            root / naming.run_prefix(batch["batch_id"], batch["run_id"]), ignore_errors=True
        )
    return {**result, "batch": batch}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-lines", type=int, default=10_000_000)
    parser.add_argument("--batch-lines", type=int, default=100_000)
    parser.add_argument("--update-share", type=float, default=0.5)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--driver-memory", default="6g")
    parser.add_argument("--work-dir", type=Path, default=ROOT / "build" / "bench")
    ns = parser.parse_args(argv)
    root = ns.work_dir / f"iceberg-state-{ns.state_lines}"
    built = build_state(root, ns.state_lines, ns.driver_memory)
    print(
        f"state: {built['lines']:,} current lines (batch written in {built['write_seconds']} s, "
        f"first merge {built['merge_seconds']} s; not timed below)",
        flush=True,
    )
    runs = []
    for attempt in range(1, ns.repeat + 1):
        result = timed_merge(
            root, built, ns.batch_lines, ns.update_share, attempt, ns.driver_memory
        )
        runs.append(result["seconds"])
        phases = ", ".join(f"{k} {v:.1f}" for k, v in result["timings"].items())
        print(
            f"  run {attempt}/{ns.repeat}: {result['batch']['lines']:,} lines "
            f"({result['batch']['updates']:,} updates) into {built['lines']:,}: "
            f"{result['seconds']:.1f} s whole spark-submit process ({result['cpu']:.0f} CPU s), "
            f"load average {os.getloadavg()[0]:.1f}; phases (s): {phases}",
            flush=True,
        )
    print(
        f"\n{os.cpu_count()} CPUs: merge of a {ns.batch_lines:,}-line batch into "
        f"{built['lines']:,} current lines: median {statistics.median(runs):.1f} s "
        f"(runs: {', '.join(f'{r:.1f}' for r in runs)})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
