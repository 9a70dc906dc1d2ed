"""`LocalAwsServer`: moto's server on 127.0.0.1 with Lambda and Glue runs wired to local runners.

    with LocalAwsServer(state_dir=tmp_path) as aws:
        s3 = aws.client("s3")            # fake credentials, aws.endpoint_url
        subprocess.run(cmd, env={**os.environ, **aws.environ()})

Starting it binds a free loopback port, sets MOTO_PORT (moto's own internal clients, such as
the Step Functions interpreter's service calls, go to localhost:$MOTO_PORT), enables
`stepfunctions.execute_state_machine`, installs the moto extensions and binds a
LambdaRuntime and a GlueRuntime to them. Stopping it stops the workers and Spark jobs it
started, resets moto's in-memory state and restores the previous configuration. moto keeps
its state per process, so only one LocalAwsServer can run in a process at a time.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3
from botocore.config import Config
from moto.server import ThreadedMotoServer

from duffbeer.errors import LocalModeError
from duffbeer_local import moto_extensions
from duffbeer_local.glue_runner import GlueRuntime, GlueSettings
from duffbeer_local.lambda_runner import LambdaRuntime, RuntimeSettings

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
_MOTO_CONFIG = {
    "stepfunctions": {"execute_state_machine": True},
    # The Docker-backed Lambda backend is the one whose invoke path the extensions replace.
    "lambda": {"use_docker": True},
}


class _Active:
    """The one server a process may run: moto's backends and MOTO_PORT are process-wide."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.server: LocalAwsServer | None = None


_ACTIVE = _Active()


class LocalAwsServer:
    """An AWS endpoint on 127.0.0.1 that runs the deployed Lambda and Glue code for real."""

    def __init__(
        self,
        *,
        state_dir: Path | str = ".local",
        region: str = "us-east-1",
        port: int = 0,
        run_lambdas: bool = True,
        run_glue: bool = True,
        reuse_lambda_workers: bool = True,
        python: str = sys.executable,
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self.region = region
        self._requested_port = port
        self._run_lambdas = run_lambdas
        self._run_glue = run_glue
        self._reuse_lambda_workers = reuse_lambda_workers
        self._python = python
        self._server: Any = None
        self._port: int | None = None
        self._previous_moto_port: str | None = None
        self._previous_config: dict[str, Any] | None = None
        self.lambda_runtime: LambdaRuntime | None = None
        self.glue_runtime: GlueRuntime | None = None

    # Addresses ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise LocalModeError("the local AWS server is not running")
        return self._port

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environ(self) -> dict[str, str]:
        """Environment for a process (or os.environ) that should talk to this endpoint."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            **FAKE_CREDENTIALS,
        }

    def client(self, service: str) -> Any:
        """A boto3 client for `service` on this endpoint, with fake credentials."""
        return boto3.session.Session(
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
            region_name=self.region,
        ).client(
            service,
            endpoint_url=self.endpoint_url,
            config=Config(retries={"max_attempts": 3, "mode": "standard"}, read_timeout=120),
        )

    # Lifecycle ----------------------------------------------------------------------------

    def _moto_api(
        self, path: str, body: dict[str, Any] | None = None, *, method: str = "POST"
    ) -> dict[str, Any]:
        """Call moto's own control API (config, reset) on this server."""
        data = json.dumps(body).encode() if body is not None else b""
        # The URL is always this server's http://127.0.0.1 address.
        request = urllib.request.Request(  # noqa: S310
            f"{self.endpoint_url}/moto-api/{path}",
            data=data if method == "POST" else None,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            text = response.read().decode() or "{}"
        parsed: dict[str, Any] = json.loads(text)
        return parsed

    def start(self) -> LocalAwsServer:
        with _ACTIVE.lock:
            if _ACTIVE.server is not None:
                raise LocalModeError(
                    "a LocalAwsServer is already running in this process at "
                    f"{_ACTIVE.server.endpoint_url}"
                )
            _ACTIVE.server = self
        try:
            moto_extensions.install()
            self.state_dir.mkdir(parents=True, exist_ok=True)
            # werkzeug logs every request at INFO on stderr; local mode has its own logs.
            logging.getLogger("werkzeug").setLevel(logging.WARNING)
            server = ThreadedMotoServer(
                ip_address="127.0.0.1", port=self._requested_port, verbose=False
            )
            server.start()
            self._server = server
            self._port = int(server.get_host_and_port()[1])
            self._previous_moto_port = os.environ.get("MOTO_PORT")
            os.environ["MOTO_PORT"] = str(self._port)
            # moto's GET /moto-api/config omits `stepfunctions`: restore it to moto's shipped
            # default explicitly, or decorator-mode tests later in this process would run
            # every state machine they create.
            self._previous_config = {
                **self._moto_api("config", method="GET"),
                "stepfunctions": {"execute_state_machine": False},
            }
            self._moto_api("config", _MOTO_CONFIG)
            if self._run_lambdas:
                self.lambda_runtime = LambdaRuntime(
                    RuntimeSettings(
                        state_dir=self.state_dir,
                        endpoint_url=self.endpoint_url,
                        region=self.region,
                        python=self._python,
                        reuse_workers=self._reuse_lambda_workers,
                        credentials=dict(FAKE_CREDENTIALS),
                    )
                )
            if self._run_glue:
                self.glue_runtime = GlueRuntime(
                    GlueSettings(
                        state_dir=self.state_dir,
                        python=self._python,
                        extra_env=self.environ(),
                        endpoint_url=self.endpoint_url,
                        region=self.region,
                    ),
                    s3=self.client("s3"),
                )
            moto_extensions.bind(self.lambda_runtime, self.glue_runtime)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop runners and server; reset moto's state; idempotent."""
        moto_extensions.unbind()
        if self.lambda_runtime is not None:
            self.lambda_runtime.close()
            self.lambda_runtime = None
        if self.glue_runtime is not None:
            self.glue_runtime.close()
            self.glue_runtime = None
        if self._server is not None:
            try:
                self._moto_api("reset")
                if self._previous_config is not None:
                    self._moto_api("config", self._previous_config)
            finally:
                self._server.stop()
                self._server = None
        if self._port is not None:
            if self._previous_moto_port is None:
                os.environ.pop("MOTO_PORT", None)
            else:
                os.environ["MOTO_PORT"] = self._previous_moto_port
            self._port = None
        with _ACTIVE.lock:
            if _ACTIVE.server is self:
                _ACTIVE.server = None

    def __enter__(self) -> LocalAwsServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
