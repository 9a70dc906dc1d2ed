"""Lambda cold-start benchmark: the deploy-built layer and function zips, their sizes, and the
time to import each handler module from them as Lambda does. Figures are printed, never
asserted.

    python -m bench.bench_lambda_cold_start [--runs 5] [--keep <folder>] [--trace-disabled]

The layer and each function zip are built by deploy's own build functions, extracted, and
each handler module is imported in a fresh `python -S` whose import path is the function's
code, then the layer's python/, then the libraries the Lambda Python runtime ships (boto3,
botocore and their dependencies, linked from this environment): nothing else from this
environment or the repository is importable. LAMBDA_TASK_ROOT is set as on Lambda, so the
Powertools Tracer is active (as with X-Ray tracing on) unless the function sets
POWERTOOLS_TRACE_DISABLED (--trace-disabled sets it, as local mode does). The machine's
load average is printed next to the medians.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

from deploy.artifacts import build_lambda_zip, build_layer_zip
from deploy.stack import FUNCTIONS

# What the Lambda Python runtime itself provides (not in the layer).
RUNTIME_MODULES = ("boto3", "botocore", "jmespath", "s3transfer", "urllib3", "dateutil", "six")
ENVIRONMENT = {
    "AWS_REGION": "eu-west-1",
    "AWS_DEFAULT_REGION": "eu-west-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "PROCESSED_BUCKET": "duffbeer-processed-bench",
    "GLUE_DATABASE": "duffbeer_bench",
    "VERSIONS_DATABASE": "duffbeer_bench_versions",
    "STATE_MACHINE_ARN": "arn:aws:states:eu-west-1:123456789012:stateMachine:bench",
    "QUERY_BACKEND": "athena",
    "ATHENA_WORKGROUP": "bench",
    "POWERTOOLS_SERVICE_NAME": "bench",
    "POWERTOOLS_METRICS_NAMESPACE": "DuffBeer/Bench",
    "LANG": "C.UTF-8",
    "TZ": "UTC",
}
_TIMER = (
    "import time; t = time.perf_counter(); import {module}; "
    "print(time.perf_counter() - t)"
)


def _extract(archive: Path, folder: Path) -> Path:
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(folder)
    return folder


def _unpacked_size(archive: Path) -> int:
    with zipfile.ZipFile(archive) as zf:
        return sum(info.file_size for info in zf.infolist())


def _runtime_folder(folder: Path) -> Path:
    """Links to the runtime's own libraries, as installed here."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in RUNTIME_MODULES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            continue
        source = Path(spec.origin)
        source = source.parent if source.name == "__init__.py" else source
        (folder / source.name).symlink_to(source)
    return folder


def import_seconds(
    module: str, path: Sequence[Path], runs: int, trace_disabled: bool = False
) -> list[float]:
    env = {**ENVIRONMENT, "PYTHONPATH": os.pathsep.join(str(p) for p in path)}
    if trace_disabled:
        env["POWERTOOLS_TRACE_DISABLED"] = "true"
    env["LAMBDA_TASK_ROOT"] = str(path[0])
    times = []
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-S", "-P", "-c", _TIMER.format(module=module)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"importing {module} failed:\n{done.stderr}")
        times.append(float(done.stdout.strip().splitlines()[-1]))
    return times


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", type=Path, default=None, help="build here and keep the zips")
    parser.add_argument("--trace-disabled", action="store_true", help="Tracer off (local mode)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        layer_zip = build_layer_zip(work / "zips")
        layer = _extract(layer_zip, work / "layer")
        runtime = _runtime_folder(work / "runtime")
        print(
            f"layer {layer_zip.name}: {layer_zip.stat().st_size / 1e6:.2f} MB zipped, "
            f"{_unpacked_size(layer_zip) / 1e6:.2f} MB unpacked"
        )
        print(f"load average before: {Path('/proc/loadavg').read_text().strip()}")
        print(f"{'function':<18}{'zip KB':>9}{'import median s':>17}{'min s':>8}{'max s':>8}")
        for spec in FUNCTIONS:
            archive = build_lambda_zip(spec.package, work / "zips")
            code = _extract(archive, work / "code" / spec.package)
            module = spec.handler.rpartition(".")[0]
            paths = [code, layer / "python", runtime]
            times = import_seconds(module, paths, args.runs, args.trace_disabled)
            print(
                f"{spec.package:<18}{archive.stat().st_size / 1e3:>9.1f}"
                f"{statistics.median(times):>17.3f}{min(times):>8.3f}{max(times):>8.3f}"
            )
        print(f"load average after: {Path('/proc/loadavg').read_text().strip()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
