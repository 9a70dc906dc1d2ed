"""The local-mode CLI: python -m duffbeer_local demo | serve | batches | loadtest | screenshot."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from deploy.stack import DASHBOARD_ROUTE
from duffbeer.errors import DuffBeerError, LocalModeError
from duffbeer_local import browser
from duffbeer_local.executions import execution_history, failure_of
from duffbeer_local.loadtest import measure
from duffbeer_local.pipeline import LocalPipeline, LocalSettings

PROJECT_DIR = Path(__file__).resolve().parents[1]
SAMPLE = PROJECT_DIR / "data" / "sample" / "orders.csv"
DEMO_ROUTES = ("/orders/1001", "/sales-by-product", "/order-status-report", "/batches")
INBOX_POLL_S = 1.0
# The one page `batches` prints (the API's largest).
BATCHES_SHOWN = 100
SCREENSHOT = PROJECT_DIR / "docs" / "images" / "dashboard.png"
# The key of a running `serve` reaches `batches` and `loadtest` through this variable or
# through the file `serve` writes in its state folder (readable by the user only): never as
# a command-line argument, which any user sees in `ps`.
API_KEY_VARIABLE = "DUFFBEER_API_KEY"
API_KEY_FILE = "api-key"
# The local endpoint's credentials for the user's tools, as `export` lines (source it).
AWS_ENV_FILE = "aws.env"


@dataclass(frozen=True)
class CliArgs:
    """The parsed command line."""

    command: str
    state_dir: Path
    port: int
    files: tuple[Path, ...]
    sample: Path
    clients: int = 20
    requests: int = 100
    out: Path = SCREENSHOT

    @classmethod
    def from_args(cls, argv: Sequence[str]) -> CliArgs:
        parser = argparse.ArgumentParser(
            prog="python -m duffbeer_local",
            description="Run the Duff Beer orders pipeline on this machine (no AWS account).",
            epilog=f"batches and loadtest read the API key from {API_KEY_VARIABLE}, else from "
            f"the {API_KEY_FILE} file that serve writes in --state-dir.",
        )
        parser.add_argument(
            "--state-dir",
            type=Path,
            default=PROJECT_DIR / ".local",
            help="where local mode keeps code, logs, Spark staging and the inbox (.local/)",
        )
        commands = parser.add_subparsers(dest="command", required=True)
        demo = commands.add_parser("demo", help="deploy, process the sample, call the API, exit")
        demo.add_argument("--file", type=Path, default=SAMPLE, help="the orders file to process")
        serve = commands.add_parser(
            "serve", help="deploy, process FILEs in order, then serve the API until Ctrl-C"
        )
        serve.add_argument("--port", type=int, default=8080)
        serve.add_argument("files", nargs="*", type=Path, metavar="FILE")
        shot = commands.add_parser(
            "screenshot", help="deploy, process the sample, save a PNG of the reports page, exit"
        )
        shot.add_argument("--file", type=Path, default=SAMPLE, help="the orders file to process")
        shot.add_argument("--out", type=Path, default=SCREENSHOT, help="where to write the PNG")
        batches = commands.add_parser(
            "batches", help="the batch history (GET /batches) of a running `serve`"
        )
        batches.add_argument("--port", type=int, default=8080)
        load = commands.add_parser(
            "loadtest", help="API latency of a running `serve` with 1, then N keep-alive clients"
        )
        load.add_argument("--port", type=int, default=8080)
        load.add_argument("--clients", type=int, default=20)
        load.add_argument("--requests", type=int, default=100, help="requests per client")
        parsed = parser.parse_args(list(argv))
        files = tuple(getattr(parsed, "files", ()) or ())
        missing = [str(f) for f in (*files, getattr(parsed, "file", SAMPLE)) if not f.is_file()]
        if missing and parsed.command in ("demo", "serve", "screenshot"):
            parser.error(f"no such file: {', '.join(missing)}")
        return cls(
            command=parsed.command,
            state_dir=parsed.state_dir.resolve(),
            port=getattr(parsed, "port", 0),
            files=files,
            sample=getattr(parsed, "file", SAMPLE),
            clients=getattr(parsed, "clients", 20),
            requests=getattr(parsed, "requests", 100),
            out=getattr(parsed, "out", SCREENSHOT),
        )


def _print(line: str = "") -> None:
    print(line, flush=True)


def _report_outcome(pipeline: LocalPipeline, described: dict[str, Any]) -> bool:
    """Print how an execution ended; True when it succeeded."""
    took = (described["stopDate"] - described["startDate"]).total_seconds()
    if described["status"] == "SUCCEEDED":
        _print(f"execution {described['name']}: SUCCEEDED in {took:.1f} s")
        return True
    events = execution_history(pipeline.aws.client("stepfunctions"), described["executionArn"])
    failure = failure_of(events)
    where = failure.state if failure and failure.state else "?"
    error = (failure.error if failure else None) or described.get("error") or described["status"]
    message = (failure.message if failure else None) or described.get("cause") or ""
    _print(
        f"execution {described['name']}: {described['status']} in state {where}: {error}: {message}"
    )
    return False


def _process(pipeline: LocalPipeline, path: Path, key: str | None = None) -> bool:
    key = key or path.name
    _print(f"upload {path} -> s3://{pipeline.outputs.input_bucket}/{key}")
    described = pipeline.process(path, key, emit=lambda line: _print(f"  {line}"))
    return _report_outcome(pipeline, described)


def _serve_one(pipeline: LocalPipeline, path: Path) -> bool:
    """Process one file for `serve`: a file that goes wrong must not stop the server."""
    try:
        return _process(pipeline, path)
    except (DuffBeerError, TimeoutError, OSError) as e:
        _print(f"{path.name}: {type(e).__name__}: {e}")
        return False


def _banner(pipeline: LocalPipeline) -> Path:
    """Print where the stack is and how to reach it; returns the credentials file (the
    caller removes it when the stack stops)."""
    exports = " ".join(
        f"{name}={value}"
        for name, value in pipeline.aws.environ().items()
        if name in {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"}
    )
    env_file = _write_private_file(
        pipeline.settings.state_dir / AWS_ENV_FILE,
        f"export {exports} AWS_REGION={pipeline.settings.region}\n",
    )
    _print(f"local AWS endpoint  {pipeline.aws.endpoint_url}")
    # The endpoint answers only to this run's credentials (ready to paste; also in the file).
    _print(f"  export {exports}   (also in {env_file})")
    _print(
        f"deployed            {pipeline.outputs.state_machine_arn.rsplit(':', 1)[-1]} and its "
        f"stack in {pipeline.deploy_seconds:.1f} s (log: {pipeline.settings.deploy_log})"
    )
    return env_file


def demo(args: CliArgs) -> int:
    started = time.monotonic()
    settings = LocalSettings(state_dir=args.state_dir, rewarm_spark_drivers=False)
    with LocalPipeline(settings) as pipeline, _removed_at_exit(_banner(pipeline)):
        if not _process(pipeline, args.sample):
            return 1
        url = pipeline.start_api()
        _print(f"API                 {url}  (x-api-key: {pipeline.api_key})")
        failed = False
        for route in DEMO_ROUTES:
            status, body = pipeline.get(route)
            failed = failed or status != 200
            _print(f"GET {route} -> {status}")
            _print(json.dumps(body, indent=2))
        page_status = pipeline.dashboard_status()
        failed = failed or page_status != 200
        _print(f"GET {DASHBOARD_ROUTE} and its files -> {page_status}")
        _print(f"demo finished in {time.monotonic() - started:.1f} s")
        # The key rides in the #fragment, which browsers never send; the page moves it to
        # session storage. The demo's server stops with it: `make serve` keeps one up.
        _print(
            f"dashboard           {pipeline.dashboard_url()}  (up until the demo exits; "
            "`make serve` keeps it up)"
        )
        return 1 if failed else 0


def screenshot(args: CliArgs) -> int:
    """The README's picture of the reports page over the demo data."""
    settings = LocalSettings(state_dir=args.state_dir, rewarm_spark_drivers=False)
    with LocalPipeline(settings) as pipeline, _removed_at_exit(_banner(pipeline)):
        if not _process(pipeline, args.sample):
            return 1
        pipeline.start_api()
        out = browser.screenshot(pipeline.dashboard_url(), args.out)
        _print(f"screenshot          {out}")
        return 0


def _ready_inbox_files(inbox: Path, sizes: dict[Path, tuple[int, float]]) -> list[Path]:
    """Files whose size and mtime did not change since the last poll (fully copied)."""
    ready = []
    current: dict[Path, tuple[int, float]] = {}
    for path in sorted(inbox.iterdir()):
        if not path.is_file() or path.name.startswith(".") or path.suffix.lower() != ".csv":
            continue
        stat = path.stat()
        current[path] = (stat.st_size, stat.st_mtime)
        if sizes.get(path) == current[path]:
            ready.append(path)
    sizes.clear()
    sizes.update({p: v for p, v in current.items() if p not in ready})
    return ready


def serve(args: CliArgs, should_stop: Callable[[], bool] | None = None) -> int:
    settings = LocalSettings(state_dir=args.state_dir, api_port=args.port)
    settings.inbox.mkdir(parents=True, exist_ok=True)
    with LocalPipeline(settings) as pipeline, _removed_at_exit(_banner(pipeline)):
        for path in args.files:
            _serve_one(pipeline, path)
        url = pipeline.start_api()
        key_file = _write_key_file(args.state_dir, pipeline.api_key)
        _print(f"API                 {url}  (x-api-key: {pipeline.api_key})")
        _print(f"  curl -H 'x-api-key: {pipeline.api_key}' {url}/sales-by-product")
        _print(f"  curl -H 'x-api-key: {pipeline.api_key}' {url}/batches      curl {url}/health")
        _print(f"  export {API_KEY_VARIABLE}={pipeline.api_key}   (also in {key_file})")
        _print(f"dashboard           {pipeline.dashboard_url()}")
        _print(f"inbox               {settings.inbox} (drop CSV files here; Ctrl-C stops)")
        sizes: dict[Path, tuple[int, float]] = {}
        try:
            while not (should_stop and should_stop()):
                for path in _ready_inbox_files(settings.inbox, sizes):
                    ok = _serve_one(pipeline, path)
                    done = settings.inbox / ("processed" if ok else "failed")
                    done.mkdir(exist_ok=True)
                    shutil.move(str(path), done / path.name)
                time.sleep(INBOX_POLL_S)
        finally:
            # The key dies with this stack: a stale file would only mislead.
            key_file.unlink(missing_ok=True)
    return 0


def _write_private_file(path: Path, text: str) -> Path:
    """`text` in a file only its owner can read (created so, never widened afterwards)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    return path


def _write_key_file(state_dir: Path, key: str) -> Path:
    return _write_private_file(state_dir / API_KEY_FILE, key + "\n")


@contextlib.contextmanager
def _removed_at_exit(path: Path) -> Iterator[Path]:
    """The credentials die with the stack: a stale file would only mislead."""
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def _api_key(state_dir: Path) -> str:
    """The key of the running `serve`: from the environment, else from its key file."""
    key = os.environ.get(API_KEY_VARIABLE, "").strip()
    if key:
        return key
    try:
        return (state_dir / API_KEY_FILE).read_text().strip()
    except FileNotFoundError:
        raise LocalModeError(
            f"no API key: set {API_KEY_VARIABLE} to the key `serve` printed, or give the "
            f"--state-dir of the running serve (no {state_dir / API_KEY_FILE})"
        ) from None


def _count(value: Any) -> str:
    return "-" if value is None else str(value)


def _row(values: Sequence[str], widths: Sequence[int]) -> str:
    return " ".join(v.ljust(w) if w else v for v, w in zip(values, widths, strict=True)).rstrip()


def batches(args: CliArgs) -> int:
    url = f"http://127.0.0.1:{args.port}/batches?limit={BATCHES_SHOWN}"
    request = urllib.request.Request(url, headers={"x-api-key": _api_key(args.state_dir)})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            document = json.loads(response.read())
    except urllib.error.HTTPError as e:
        print(f"GET {url} answered {e.code}: {e.read().decode(errors='replace')}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as e:
        print(
            f"no local stack answers at {url} ({e}); start one with `make serve`", file=sys.stderr
        )
        return 1
    columns = ("finished", "status", "file", "read", "valid", "rej", "sales", "error")
    widths = (19, 10, 36, 7, 7, 5, 12, 0)
    _print(_row(columns, widths))
    for run in document["items"]:
        error = run["error"]
        values = (
            (run["finished_at"] or run["recorded_at"])[:19],
            run["status"],
            str(run["file"] or "-").removeprefix("s3://")[-36:],
            *(_count(run[f]) for f in ("rows_read", "rows_valid", "rows_rejected")),
            _count(run["total_sales"]),
            f"{error['name']}: {error['message']}" if error else "",
        )
        _print(_row(values, widths))
    return 0


def loadtest(args: CliArgs) -> int:
    url = f"http://127.0.0.1:{args.port}"
    for clients in (1, args.clients):
        report = measure(
            url, _api_key(args.state_dir), clients=clients, requests_per_client=args.requests
        )
        _print(report.line())
        if report.errors:
            return 1
    return 0


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = CliArgs.from_args(sys.argv[1:] if argv is None else argv)
    # moto logs every failed execution's internals at ERROR; the follower reports failures.
    logging.getLogger("moto").setLevel(logging.CRITICAL)
    signal.signal(signal.SIGTERM, _interrupt)
    commands: dict[str, Callable[[CliArgs], int]] = {
        "demo": demo,
        "serve": serve,
        "loadtest": loadtest,
        "screenshot": screenshot,
        "batches": batches,
    }
    try:
        return commands[args.command](args)
    except KeyboardInterrupt:
        _print("stopped")
        return 0
    except (DuffBeerError, TimeoutError, OSError) as e:
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
