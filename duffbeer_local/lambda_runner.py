"""Runs deployed Lambda functions locally: the uploaded zip, in worker processes, with timeouts.

Each function's code is extracted once per code hash under `<state_dir>/lambda/`. An
invocation is served by a worker process (like a warm Lambda container: one invocation at
a time, module state kept between invocations); a new worker starts when all are busy. The
worker's PYTHONPATH is the extracted code only, its environment is the function's
configuration plus the reserved Lambda variables and the local endpoint, and it is killed
when an invocation outlives the function's timeout. A handler exception comes back as a
Lambda function error payload (errorType, errorMessage, stackTrace).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import os
import select
import shutil
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from duffbeer.errors import ConfigurationError
from duffbeer_local.lambda_bootstrap import REQUEST_FD_VAR, RESPONSE_FD_VAR

BOOTSTRAP = Path(__file__).with_name("lambda_bootstrap.py")
# How long a worker may take to start and import its handler (Lambda's init phase limit).
INIT_TIMEOUT_SECONDS = 10.0
# How long to wait for an invocation's last log line once its response has arrived.
LOG_WAIT_SECONDS = 2.0


@functools.cache
def _site_packages(python: str) -> tuple[str, ...]:
    """The site-packages folders of `python` (they stand for the Lambda runtime's libraries)."""
    code = "import sysconfig; p = sysconfig.get_paths(); print(p['purelib']); print(p['platlib'])"
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout
    return tuple(dict.fromkeys(line for line in out.splitlines() if line))


@dataclass(frozen=True)
class LayerSpec:
    """One layer version attached to a function: its zip is mounted like /opt."""

    arn: str
    code_zip: bytes = field(repr=False)
    code_sha256: str


@dataclass(frozen=True)
class FunctionSpec:
    """What local mode needs to know about one deployed function (read from moto's model)."""

    name: str
    arn: str
    handler: str
    code_zip: bytes = field(repr=False)
    code_sha256: str
    environment: Mapping[str, str]
    timeout_seconds: float
    memory_mb: int = 128
    region: str = "us-east-1"
    runtime: str = "python3.11"
    version: str = "$LATEST"
    layers: tuple[LayerSpec, ...] = ()


@dataclass(frozen=True)
class InvokeResult:
    """The response of one invocation, as Lambda's Invoke API shapes it."""

    payload: str  # JSON text: the handler's result, or the error document
    is_error: bool
    duration_ms: float
    logs: str = ""  # the invocation's output, START to REPORT, as Lambda logs it

    def error(self) -> dict[str, Any] | None:
        """The parsed error document of a failed invocation."""
        if not self.is_error:
            return None
        parsed: dict[str, Any] = json.loads(self.payload)
        return parsed


@dataclass(frozen=True)
class RuntimeSettings:
    """Where and how workers run; one per local stack."""

    state_dir: Path
    endpoint_url: str
    region: str = "us-east-1"
    python: str = sys.executable
    reuse_workers: bool = True
    max_workers_per_function: int = 4
    credentials: Mapping[str, str] = field(
        default_factory=lambda: {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
        }
    )


def _error_payload(error_type: str, message: str) -> str:
    return json.dumps({"errorType": error_type, "errorMessage": message})


class _Worker:
    """One worker process, its request/response pipes and its log stream."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path, log_path: Path) -> None:
        request_read, self._request_write = os.pipe()
        self._response_read, response_write = os.pipe()
        env = {**env, REQUEST_FD_VAR: str(request_read), RESPONSE_FD_VAR: str(response_write)}
        try:
            self.process = subprocess.Popen(
                args,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                pass_fds=(request_read, response_write),
                close_fds=True,
            )
        finally:
            os.close(request_read)
            os.close(response_write)
        self._requests = os.fdopen(self._request_write, "wb")
        self._responses = os.fdopen(self._response_read, "rb")
        self._buffer = b""
        self.exited = False  # the worker closed its response pipe (it exited or crashed)
        self._output = threading.Condition()
        self._lines: list[str] = []
        self._reported: str | None = None
        self._eof = False
        threading.Thread(
            target=self._read_output, args=(log_path,), name="lambda-log", daemon=True
        ).start()

    def _read_output(self, log_path: Path) -> None:
        """Copy the worker's output to its log file and keep the current invocation's lines."""
        assert self.process.stdout is not None
        with log_path.open("ab") as log:
            for raw in self.process.stdout:
                log.write(raw)
                log.flush()
                line = raw.decode("utf-8", "replace").rstrip("\n")
                with self._output:
                    self._lines.append(line)
                    if line.startswith("REPORT RequestId: "):
                        self._reported = line.split()[2]
                        self._output.notify_all()
        with self._output:
            self._eof = True
            self._output.notify_all()

    def take_logs(self, request_id: str, timeout: float) -> str:
        """The output since the previous invocation, through this one's REPORT line."""
        deadline = time.monotonic() + timeout
        with self._output:
            while self._reported != request_id and not self._eof:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._output.wait(remaining)
            lines, self._lines = self._lines, []
        return "\n".join(lines)

    def send(self, request: dict[str, Any]) -> None:
        self._requests.write(json.dumps(request).encode("utf-8") + b"\n")
        self._requests.flush()

    def receive(self, timeout: float) -> dict[str, Any] | None:
        """The next response, or None if none came within `timeout` or the worker died."""
        deadline = time.monotonic() + timeout
        fd = self._responses.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                self.exited = True
                return None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        response: dict[str, Any] = json.loads(line)
        return response

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        for stream in (self._requests, self._responses):
            with contextlib.suppress(OSError):
                stream.close()
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


class _Pool:
    """The workers of one function configuration (code, handler, environment, timeout)."""

    def __init__(self, limit: int) -> None:
        self.idle: list[_Worker] = []
        self.busy = 0
        self.limit = limit
        self.condition = threading.Condition()


class LambdaRuntime:
    """Invokes deployed functions in local worker processes; safe to call from many threads."""

    def __init__(self, settings: RuntimeSettings) -> None:
        self._settings = settings
        self._pools: dict[tuple[str, ...], _Pool] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._lambda_dir = settings.state_dir / "lambda"
        self._log_dir = settings.state_dir / "logs" / "lambda"

    # Code and environment ---------------------------------------------------------------

    def _extract(self, folder: str, digest: str, archive_bytes: bytes, what: str) -> Path:
        """Extract a zip once per content hash (atomic rename, safe between threads)."""
        root = self._lambda_dir / folder
        target = root / digest[:24]
        if target.is_dir():
            return target
        root.mkdir(parents=True, exist_ok=True)
        staging = root / f".{target.name}.{uuid.uuid4().hex}"
        try:
            with zipfile.ZipFile(io.BytesIO(archive_bytes)) as archive:
                archive.extractall(staging)
        except zipfile.BadZipFile as e:
            shutil.rmtree(staging, ignore_errors=True)
            raise ConfigurationError(f"{what}: the code is not a zip file") from e
        try:
            staging.rename(target)
        except OSError:
            # Another thread extracted the same code first; its copy is identical.
            shutil.rmtree(staging, ignore_errors=True)
        return target

    def code_path(self, spec: FunctionSpec) -> Path:
        """The function's extracted code (Lambda's /var/task)."""
        return self._extract("code", spec.code_sha256, spec.code_zip, f"function {spec.name}")

    def layer_paths(self, spec: FunctionSpec) -> list[Path]:
        """Import paths of the function's layers, in order (Lambda's /opt/python and /opt)."""
        paths: list[Path] = []
        for layer in spec.layers:
            root = self._extract("layers", layer.code_sha256, layer.code_zip, f"layer {layer.arn}")
            paths += [root / "python", root]
        return paths

    def environment(
        self, spec: FunctionSpec, code: Path, overrides: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """The worker's environment: function variables, then the reserved ones Lambda sets.

        PYTHONPATH is the code, then the layers; the interpreter's own site-packages come
        last and stand for the Lambda runtime's libraries (boto3) and the local query engine.
        """
        env: dict[str, str] = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "TZ": "UTC",
        }
        env.update(spec.environment)
        env.update(overrides or {})
        env.update(
            {
                "PYTHONPATH": os.pathsep.join(
                    [str(code), *(str(p) for p in self.layer_paths(spec))]
                ),
                "PYTHONUNBUFFERED": "1",
                # No X-Ray daemon here: the functions' Powertools Tracer stays off.
                "POWERTOOLS_TRACE_DISABLED": "true",
                "LAMBDA_TASK_ROOT": str(code),
                "_HANDLER": spec.handler,
                "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
                "AWS_LAMBDA_FUNCTION_NAME": spec.name,
                "AWS_LAMBDA_FUNCTION_VERSION": spec.version,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
                "AWS_LAMBDA_LOG_STREAM_NAME": f"local/{spec.code_sha256[:12]}",
                "AWS_REGION": spec.region,
                "AWS_DEFAULT_REGION": spec.region,
                "AWS_ENDPOINT_URL": self._settings.endpoint_url,
                **self._settings.credentials,
            }
        )
        return env

    # Workers ------------------------------------------------------------------------------

    def _prepare(
        self, spec: FunctionSpec, overrides: Mapping[str, str] | None
    ) -> tuple[Path, dict[str, str], _Pool]:
        """The code folder, environment and worker pool of one function configuration."""
        code = self.code_path(spec)
        env = self.environment(spec, code, overrides)
        key = (
            spec.arn,
            spec.code_sha256,
            spec.handler,
            str(spec.timeout_seconds),
            hashlib.sha256(json.dumps(env, sort_keys=True).encode()).hexdigest(),
        )
        return code, env, self._pool_for(key)

    def _pool_for(self, key: tuple[str, ...]) -> _Pool:
        with self._lock:
            if self._closed:
                raise RuntimeError("the local Lambda runtime is closed")
            pool = self._pools.get(key)
            if pool is None:
                pool = _Pool(self._settings.max_workers_per_function)
                self._pools[key] = pool
            return pool

    def _start_worker(self, spec: FunctionSpec, env: dict[str, str], code: Path) -> _Worker:
        self._log_dir.mkdir(parents=True, exist_ok=True)
        # -P: the bootstrap's folder must not shadow the function's own modules. -S: no .pth
        # file runs, so an editable install of the project cannot put its packages on the
        # path; the interpreter's site-packages are appended as plain folders instead.
        runtime = os.pathsep.join(_site_packages(self._settings.python))
        worker = _Worker(
            [self._settings.python, "-S", "-P", str(BOOTSTRAP)],
            {**env, "PYTHONPATH": os.pathsep.join(filter(None, [env["PYTHONPATH"], runtime]))},
            code,
            self._log_dir / f"{spec.name}.log",
        )
        # The worker says "ready" once its handler is imported (or failed to import); an init
        # that hangs is then cut off by the invocation timeout like a hanging handler.
        worker.receive(INIT_TIMEOUT_SECONDS)
        return worker

    def _acquire(self, pool: _Pool, start: Any) -> _Worker:
        with pool.condition:
            while True:
                while pool.idle:
                    idle = pool.idle.pop()
                    if idle.alive():
                        pool.busy += 1
                        return idle
                    idle.stop()
                if pool.busy < pool.limit:
                    pool.busy += 1
                    break
                pool.condition.wait()
        try:
            worker: _Worker = start()
        except BaseException:
            with pool.condition:
                pool.busy -= 1
                pool.condition.notify()
            raise
        return worker

    def _release(self, pool: _Pool, worker: _Worker, healthy: bool) -> None:
        keep = healthy and self._settings.reuse_workers and not self._closed
        if not keep:
            worker.stop()
        with pool.condition:
            pool.busy -= 1
            if keep:
                pool.idle.append(worker)
            pool.condition.notify()

    def invoke(
        self,
        spec: FunctionSpec,
        event: Any,
        *,
        env_overrides: Mapping[str, str] | None = None,
    ) -> InvokeResult:
        """Run the function's handler on `event` and return its response or error payload."""
        started = time.monotonic()
        code, env, pool = self._prepare(spec, env_overrides)
        worker = self._acquire(pool, lambda: self._start_worker(spec, env, code))
        request_id = str(uuid.uuid4())
        deadline_ms = int((time.time() + spec.timeout_seconds) * 1000)
        healthy = False
        try:
            worker.send(
                {
                    "request_id": request_id,
                    "function_arn": spec.arn,
                    "deadline_ms": deadline_ms,
                    "event": event,
                }
            )
            response = worker.receive(spec.timeout_seconds)
            elapsed = time.monotonic() - started
            # The REPORT line was written before the response: it is at most a read away.
            logs = worker.take_logs(request_id, LOG_WAIT_SECONDS)
            if response is None:
                if not worker.exited:
                    payload = _error_payload(
                        "Sandbox.Timedout",
                        f"RequestId: {request_id} Error: Task timed out after "
                        f"{spec.timeout_seconds:.2f} seconds",
                    )
                else:
                    payload = _error_payload(
                        "Runtime.ExitError",
                        f"RequestId: {request_id} Error: Runtime exited with error: "
                        f"exit status {worker.process.wait()}",
                    )
                return InvokeResult(payload, True, elapsed * 1000, logs)
            healthy = True
            if response["ok"]:
                return InvokeResult(str(response["payload"]), False, elapsed * 1000, logs)
            return InvokeResult(json.dumps(response["payload"]), True, elapsed * 1000, logs)
        except (BrokenPipeError, OSError) as e:
            payload = _error_payload("Runtime.ExitError", f"RequestId: {request_id} Error: {e}")
            return InvokeResult(payload, True, (time.monotonic() - started) * 1000)
        finally:
            self._release(pool, worker, healthy and worker.alive())

    def provision(
        self, spec: FunctionSpec, count: int, *, env_overrides: Mapping[str, str] | None = None
    ) -> None:
        """Start `count` workers now and serve `spec` with exactly those (like provisioned
        plus reserved concurrency): a burst queues for a warm worker instead of paying for
        cold starts, which on a small machine cost far more than the wait."""
        code, env, pool = self._prepare(spec, env_overrides)
        with pool.condition:
            pool.limit = max(1, count)
            missing = pool.limit - len(pool.idle) - pool.busy
        for _ in range(max(0, missing)):
            worker = self._start_worker(spec, env, code)
            with pool.condition:
                pool.idle.append(worker)
                pool.condition.notify()

    def close(self) -> None:
        """Stop every worker; later invocations raise."""
        with self._lock:
            self._closed = True
            pools = list(self._pools.values())
            self._pools.clear()
        for pool in pools:
            with pool.condition:
                idle, pool.idle = pool.idle, []
            for worker in idle:
                worker.stop()
