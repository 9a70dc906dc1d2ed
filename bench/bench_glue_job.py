"""Glue job benchmark: the job under spark-submit vs a pandas script vs DuckDB, same work.

    python -m bench.bench_glue_job [--rows 1000000,5000000] [--dirty-fraction 0.02]

For each size it generates a seeded orders file (reused if present), runs each engine as
its own process under /usr/bin/time, and prints wall time (JVM / interpreter start
included), rows/s, peak RSS of the largest process, the valid/rejected counts each engine
found (they must agree) and the ratios. With --repeat N the engines take turns N times and
the table shows each engine's median run with the range of its wall times (a shared or
virtual machine drifts by 10-20 % over minutes). --quoted-line-break runs each size on a
copy whose middle row's client name holds a quoted line break (the multi-line parse's cost).
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from bench.generate_orders import generate_orders, with_quoted_line_break
from duffbeer_local import class_archive

ROOT = Path(__file__).resolve().parents[1]
TIME = "/usr/bin/time"
SAMPLE = ROOT / "data" / "sample" / "orders.csv"
JOB = "glue-job (spark-submit)"
# JVM flags for local runs, chosen by input size as the local runner chooses them
# (duffbeer_local.glue_runner.GlueSettings). A large file: C2 compiles only code that is
# really hot; in a run of a minute the JIT otherwise spends about half the process CPU
# compiling Spark's planner and generated code that runs a few times (measured: 1M rows,
# 77 -> 67 CPU s, 41 -> 37 s). A small one (up to SMALL_INPUT_BYTES): C1 only, as almost
# nothing runs long enough to repay a C2 compilation.
JAVA_OPTIONS: tuple[str, ...] = (
    "-XX:Tier4InvocationThreshold=20000",
    "-XX:Tier4MinInvocationThreshold=2000",
    "-XX:Tier4CompileThreshold=40000",
    "-XX:Tier4BackEdgeThreshold=160000",
)
SMALL_INPUT_JAVA_OPTIONS: tuple[str, ...] = ("-XX:TieredStopAtLevel=1",)
SMALL_INPUT_BYTES = 64 * 1024**2
# The job's own run manifest (the run id is the bench's).
RUN_MANIFEST = Path("runs") / "bench" / "bench-run" / "_manifest.json"


@dataclass(frozen=True)
class Result:
    engine: str
    rows: int
    seconds: float
    cpu_seconds: float
    peak_mib: float
    valid: int | None
    rejected: int | None
    ok: bool
    slowest: float | None = None  # with repeats: the range of wall times is fastest..slowest
    fastest: float | None = None

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def median_run(runs: Sequence[Result]) -> Result:
    """The run with the median wall time, carrying the range of all runs' wall times; its
    CPU time is the median of the runs' CPU times (not necessarily that run's own)."""
    ordered = sorted(runs, key=lambda r: r.seconds)
    middle = ordered[(len(ordered) - 1) // 2]
    return replace(
        middle,
        ok=all(r.ok for r in runs),
        fastest=ordered[0].seconds,
        slowest=ordered[-1].seconds,
        cpu_seconds=statistics.median(r.cpu_seconds for r in runs),
    )


def _engines(
    source: Path, out: Path, driver_memory: str, java_options: str
) -> dict[str, list[str]]:
    python = sys.executable
    return {
        JOB: [
            str(Path(python).parent / "spark-submit"),
            "--master",
            "local[2]",
            "--driver-memory",
            driver_memory,
            "--driver-java-options",
            java_options,
            "--conf",
            "spark.ui.enabled=false",
            str(ROOT / "glue_jobs" / "transform_orders.py"),
            "--JOB_NAME",
            "bench_transform_orders",
            "--input_path",
            str(source),
            "--output_path",
            str(out),
            "--batch_id",
            "bench",
            "--run_id",
            "bench-run",
            "--ingest_date",
            "2026-11-28",
        ],
        "pandas": [python, "-m", "bench.pandas_reference", str(source), str(out)],
        "duckdb": [python, "-m", "bench.duckdb_reference", str(source), str(out)],
    }


def _counts(engine: str, out: Path, stdout: str) -> tuple[int | None, int | None]:
    try:
        if engine == JOB:
            data = json.loads((out / RUN_MANIFEST).read_text())
        else:
            data = json.loads(stdout.strip().splitlines()[-1])
        return int(data["rows_valid"]), int(data["rows_rejected"])
    except (OSError, ValueError, KeyError, IndexError):
        return None, None


def job_phases(out: Path) -> str:
    """The job's own seconds per phase, from its manifest (the rest of its wall time is the
    JVM, Python and Spark session starting and stopping)."""
    try:
        timings = json.loads((out / RUN_MANIFEST).read_text())["timings"]
    except (OSError, ValueError, KeyError):
        return ""
    return ", ".join(f"{phase} {seconds:.1f}" for phase, seconds in timings.items())


def run_engine(engine: str, command: list[str], rows: int, out: Path, logs: Path) -> Result:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    timing = logs / f"{out.name}.time"
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        "PYTHONPATH": str(ROOT),
    }
    with (logs / f"{out.name}.stderr").open("w") as err:
        done = subprocess.run(
            [TIME, "-f", "%e %U %S %M", "-o", str(timing), *command],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            check=False,
        )
    seconds, user, system, peak_kib = timing.read_text().split()[-4:]
    valid, rejected = _counts(engine, out, done.stdout)
    return Result(
        engine=engine,
        rows=rows,
        seconds=float(seconds),
        cpu_seconds=float(user) + float(system),
        peak_mib=int(peak_kib) / 1024,
        valid=valid,
        rejected=rejected,
        ok=done.returncode == 0,
    )


def _print_table(results: list[Result]) -> None:
    print(
        f"{'rows':>10} {'engine':<24} {'wall s':>8} {'range s':>11} {'cpu s':>7} {'rows/s':>11} "
        f"{'peak MiB':>9} {'valid':>10} {'rejected':>9} {'vs duckdb':>9}"
    )
    by_key = {(r.rows, r.engine): r for r in results}
    for r in results:
        duck = by_key.get((r.rows, "duckdb"))
        ratio = f"{r.seconds / duck.seconds:8.2f}x" if duck and duck.seconds else "        -"
        status = "" if r.ok else "  FAILED (see logs)"
        spread = f"{r.fastest:.1f}-{r.slowest:.1f}" if r.fastest is not None else "-"
        print(
            f"{r.rows:>10} {r.engine:<24} {r.seconds:>8.1f} {spread:>11} {r.cpu_seconds:>7.1f} "
            f"{r.rows_per_second:>11,.0f} "
            f"{r.peak_mib:>9,.0f} {r.valid!s:>10} {r.rejected!s:>9} {ratio}{status}"
        )


def _print_ratios(results: list[Result]) -> None:
    sizes = sorted({r.rows for r in results})
    for rows in sizes:
        at = {r.engine: r for r in results if r.rows == rows}
        glue, pandas, duck = (at.get(k) for k in (JOB, "pandas", "duckdb"))
        if glue and pandas and duck:
            print(
                f"{rows:>10} rows: glue job / duckdb = {glue.seconds / duck.seconds:.2f}x, "
                f"pandas / glue job = {pandas.seconds / glue.seconds:.2f}x"
            )
    if len(sizes) >= 2:
        small, large = sizes[0], sizes[-1]
        for engine in (JOB, "pandas", "duckdb"):
            a = next((r for r in results if r.rows == small and r.engine == engine), None)
            b = next((r for r in results if r.rows == large and r.engine == engine), None)
            if a and b:
                print(
                    f"growth {small} -> {large} rows ({large / small:.0f}x data): {engine} "
                    f"{b.seconds / a.seconds:.2f}x time"
                )


def _sources(ns: argparse.Namespace) -> list[tuple[int, Path, list[str]]]:
    """(rows, file, engines) per size: the bundled 5-row sample for the job alone, then
    the generated files; pandas only up to --pandas-max-rows (it holds the file in memory)."""
    wanted = ns.engines.split(",")
    sizes: list[tuple[int, Path, list[str]]] = []
    if ns.sample and JOB in wanted:
        sizes.append((5, SAMPLE, [JOB]))
    for rows in (int(r) for r in ns.rows.split(",") if r):
        source = ns.work_dir / f"orders-{rows}-dirty{ns.dirty_fraction}-seed1.csv"
        if not source.exists():
            made = generate_orders(source, rows, dirty_fraction=ns.dirty_fraction, seed=1)
            print(f"generated {made.path} ({made.bytes / 1e6:.0f} MB, {made.dirty_rows} dirty)")
        if ns.quoted_line_break:
            variant = source.with_name(source.stem + "-linebreak.csv")
            if not variant.exists():
                with_quoted_line_break(source, variant, rows // 2)
            source = variant
        engines = [e for e in wanted if e != "pandas" or rows <= ns.pandas_max_rows]
        sizes.append((rows, source, engines))
    return sizes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="100000,5000000,20000000")
    parser.add_argument("--dirty-fraction", type=float, default=0.02)
    parser.add_argument("--work-dir", type=Path, default=ROOT / "build" / "bench")
    parser.add_argument("--driver-memory", default="6g")
    parser.add_argument("--engines", default=f"{JOB},pandas,duckdb")
    parser.add_argument("--pandas-max-rows", type=int, default=5_000_000)
    parser.add_argument(
        "--no-sample", dest="sample", action="store_false", help="skip the 5-row sample run"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per engine and size")
    parser.add_argument(
        "--quoted-line-break",
        action="store_true",
        help="each generated file with one client name holding a quoted line break",
    )
    parser.add_argument(
        "--no-class-archive",
        action="store_true",
        help="run the job's JVM without the class-data archive (duffbeer_local/class_archive.py)",
    )
    ns = parser.parse_args(argv)
    ns.work_dir.mkdir(parents=True, exist_ok=True)
    archive = ""
    if not ns.no_class_archive and JOB in ns.engines.split(","):
        made = class_archive.DEFAULT_ARCHIVE
        if made.is_file():
            print(f"JVM class-data archive: {made} (the one `make setup` recorded)")
        else:
            started = time.monotonic()
            class_archive.record(made)
            spent = time.monotonic() - started
            print(f"JVM class-data archive: {made} (recorded in {spent:.1f} s, not timed)")
        archive = class_archive.java_options(made)
    results: list[Result] = []
    for rows, source, wanted in _sources(ns):
        small = source.stat().st_size <= SMALL_INPUT_BYTES
        flags = SMALL_INPUT_JAVA_OPTIONS if small else JAVA_OPTIONS
        java_options = " ".join((*flags, archive)).strip()
        engines = _engines(source, ns.work_dir / "out", ns.driver_memory, java_options)
        runs: dict[str, list[Result]] = {}
        for attempt in range(1, ns.repeat + 1):
            for engine in wanted:
                out = ns.work_dir / f"out-{rows}-{engine.split()[0]}"
                command = [
                    c if c != str(ns.work_dir / "out") else str(out) for c in engines[engine]
                ]
                result = run_engine(engine, command, rows, out, ns.work_dir)
                runs.setdefault(engine, []).append(result)
                phases = job_phases(out) if engine == JOB else ""
                print(
                    f"  {rows} rows, {engine}, run {attempt}/{ns.repeat}: {result.seconds:.1f} s, "
                    f"{result.rows_per_second:,.0f} rows/s, load average {os.getloadavg()[0]:.1f}"
                    + (f"; phases (s): {phases}" if phases else ""),
                    flush=True,
                )
        results.extend(median_run(engine_runs) for engine_runs in runs.values())
    print(f"\n{os.cpu_count()} CPUs, load average now {os.getloadavg()[0]:.1f}")
    _print_table(results)
    print()
    _print_ratios(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
