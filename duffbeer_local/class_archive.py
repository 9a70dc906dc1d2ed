"""A class-data archive for local Spark drivers, made once by `make setup` (local mode only).

A local Spark driver with the Iceberg jars loads, parses and verifies tens of thousands of
classes before its first query, in every process: every Glue job run starts one, and so does
every driver started ahead of a run. The JVM can map classes it loaded in an earlier run
from an archive instead (JDK's class-data sharing, `-XX:SharedArchiveFile`). Measured on the
2-core machine: a driver's start, an aggregation and a Parquet round trip took 7.9 s wall
and 9.1 s of CPU without the archive, 4.5 s and 5.3 s with it.

`make setup` records the archive from one run of class_archive_exercise.py (the jobs' kinds
of work, Iceberg on Glue and S3 served by moto on 127.0.0.1), under the classpath the drivers
use. A JVM whose version or classpath no longer matches the archive ignores it and loads
its classes as usual; so does one whose archive is missing (`make setup` then says why).

    python -m duffbeer_local.class_archive [PATH]   # default build/jvm/spark-driver.jsa
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import boto3
from moto.server import ThreadedMotoServer

from duffbeer import iceberg
from duffbeer.errors import LocalModeError
from duffbeer_local import jars

DEFAULT_ARCHIVE = jars.PROJECT_DIR / "build" / "jvm" / "spark-driver.jsa"
EXERCISE = Path(__file__).with_name("class_archive_exercise.py")
_BUCKET, _DATABASE, _REGION = "class-archive", "class_archive", "us-east-1"


def java_options(archive: Path = DEFAULT_ARCHIVE) -> str:
    """The JVM option that maps the archive into a driver; empty without an archive."""
    return f"-XX:SharedArchiveFile={archive}" if archive.is_file() else ""


def record(archive: Path = DEFAULT_ARCHIVE, jars_dir: Path = jars.DEFAULT_JARS_DIR) -> Path:
    """Run the exercise in a driver that writes the classes it loaded to `archive` at exit."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(archive.name + ".partial")
    partial.unlink(missing_ok=True)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        credentials = {"AWS_ACCESS_KEY_ID": "archive", "AWS_SECRET_ACCESS_KEY": "archive"}
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=_REGION,
            aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
        )
        s3.create_bucket(Bucket=_BUCKET)
        conf = {
            **iceberg.spark_conf(iceberg.warehouse_uri(_BUCKET)),
            **iceberg.endpoint_conf(endpoint, _REGION),
            "spark.ui.enabled": "false",
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.driver.extraJavaOptions": f"-XX:ArchiveClassesAtExit={partial}",
        }
        command = [str(Path(sys.executable).with_name("spark-submit")), "--master", "local[2]"]
        command += ["--jars", ",".join(str(path) for path in jars.jar_paths(jars_dir))]
        for key, value in conf.items():
            command += ["--conf", f"{key}={value}"]
        environment = {
            **os.environ,
            **credentials,
            "AWS_REGION": _REGION,
            "PYSPARK_PYTHON": sys.executable,
            "PYSPARK_DRIVER_PYTHON": sys.executable,
        }
        with tempfile.TemporaryDirectory(prefix="class-archive-") as folder:
            command += [str(EXERCISE), folder, _DATABASE]
            result = subprocess.run(
                command, env=environment, capture_output=True, text=True, check=False
            )
    finally:
        server.stop()
    if result.returncode != 0 or not partial.is_file():
        partial.unlink(missing_ok=True)
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-15:])
        raise LocalModeError(f"the Spark driver's class archive was not recorded:\n{tail}")
    partial.replace(archive)
    return archive


def main(argv: list[str]) -> int:
    archive = Path(argv[1]) if len(argv) > 1 else DEFAULT_ARCHIVE
    try:
        path = record(archive)
    except LocalModeError as e:
        # Optional: drivers start without it, only slower.
        print(f"note: {e}\nSpark drivers start without a class archive.", file=sys.stderr)  # noqa: T201
        return 0
    print(f"{path} ok ({path.stat().st_size // 1024**2} MiB)")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
