"""`LocalAwsServer`: moto's server on 127.0.0.1 with Lambda and Glue runs wired to local runners.

    with LocalAwsServer(state_dir=tmp_path) as aws:
        s3 = aws.client("s3")            # this run's credentials, aws.endpoint_url
        subprocess.run(cmd, env={**os.environ, **aws.environ()})

Starting it binds a free loopback port, sets MOTO_PORT (moto's own internal clients, such as
the Step Functions interpreter's service calls, go to localhost:$MOTO_PORT), enables
`stepfunctions.execute_state_machine`, installs the moto extensions and binds a
LambdaRuntime and a GlueRuntime to them. Stopping it stops the workers and Spark jobs it
started, resets moto's in-memory state and restores the previous configuration. moto keeps
its state per process, so only one LocalAwsServer can run in a process at a time.

Loopback is not a trust boundary: any local process can reach the port, and local mode runs
the code of every function it is asked to invoke. So the endpoint answers only requests
signed with credentials made for this run (`RunCredentials`), and moto's control API
(`/moto-api/`) only requests carrying the run's secret; anything else gets 403.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
import secrets
import sys
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3
from botocore.config import Config
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, make_server

from duffbeer.errors import LocalModeError
from duffbeer_local import moto_extensions
from duffbeer_local.glue_runner import GlueRuntime, GlueSettings
from duffbeer_local.lambda_runner import LambdaRuntime, RuntimeSettings

_MOTO_CONFIG = {
    "stepfunctions": {"execute_state_machine": True},
    # The Docker-backed Lambda backend is the one whose invoke path the extensions replace.
    "lambda": {"use_docker": True},
}
# The header that carries the run's secret to moto's control API (/moto-api/).
CONTROL_SECRET_HEADER = "X-Duffbeer-Local-Secret"  # noqa: S105 (a header name)
# The access key of a SigV4 (or S3 SigV2) signature, in the header or a presigned URL.
_SIGNED_KEY = re.compile(r"(?:Credential=|^AWS )([A-Z0-9]+)[/:]")


@dataclass(frozen=True, repr=False)
class RunCredentials:
    """The credentials one run of the local endpoint answers to (new for every start)."""

    access_key_id: str
    secret_access_key: str

    @classmethod
    def generate(cls) -> RunCredentials:
        return cls("AKIALOCAL" + secrets.token_hex(6).upper(), secrets.token_urlsafe(30))

    def environ(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
        }

    def __repr__(self) -> str:
        return f"RunCredentials({self.access_key_id}, <secret>)"


def signed_access_key(environ: dict[str, Any]) -> str | None:
    """The access key a request is signed with (Authorization header, or a presigned URL's
    X-Amz-Credential / AWSAccessKeyId), or None when it is not signed."""
    match = _SIGNED_KEY.search(str(environ.get("HTTP_AUTHORIZATION", "")))
    if match:
        return match.group(1)
    query = urllib.parse.parse_qs(str(environ.get("QUERY_STRING", "")))
    for value in query.get("X-Amz-Credential", []) + query.get("AWSAccessKeyId", []):
        return value.split("/", 1)[0]
    return None


class OnlyThisRun:
    """WSGI middleware: passes a request to moto only if it is signed with the run's access
    key (moto's control API: only if it carries the run's secret); else 403, as AWS answers
    an unknown key."""

    def __init__(self, app: Callable[..., Any], credentials: RunCredentials) -> None:
        self.app = app
        self.credentials = credentials

    def allows(self, environ: dict[str, Any]) -> bool:
        if str(environ.get("PATH_INFO", "")).startswith("/moto-api"):
            given = str(environ.get("HTTP_" + CONTROL_SECRET_HEADER.upper().replace("-", "_"), ""))
            return hmac.compare_digest(given, self.credentials.secret_access_key)
        key = signed_access_key(environ) or ""
        return hmac.compare_digest(key, self.credentials.access_key_id)

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if self.allows(environ):
            return self.app(environ, start_response)
        body = (
            b"<ErrorResponse><Error><Code>InvalidClientTokenId</Code><Message>The security "
            b"token included in the request is invalid: this local endpoint answers only to "
            b"the credentials of its run (see the export line make serve prints)</Message>"
            b"</Error></ErrorResponse>"
        )
        start_response(
            "403 Forbidden",
            [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))],
        )
        return [body]


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
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None
        self.credentials = RunCredentials.generate()
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
            **self.credentials.environ(),
        }

    def client(self, service: str) -> Any:
        """A boto3 client for `service` on this endpoint, signed with the run's credentials."""
        return boto3.session.Session(
            aws_access_key_id=self.credentials.access_key_id,
            aws_secret_access_key=self.credentials.secret_access_key,
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
            headers={
                "Content-Type": "application/json",
                CONTROL_SECRET_HEADER: self.credentials.secret_access_key,
            },
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
            # moto's own server (moto.server.ThreadedMotoServer does the same), behind the
            # middleware that answers only to this run.
            app = OnlyThisRun(DomainDispatcherApplication(create_backend_app), self.credentials)
            self._server = make_server(
                "127.0.0.1",
                self._requested_port,
                app,
                threaded=True,
                request_handler=MotoRequestHandler,
            )
            self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
            self._thread.start()
            self._port = int(self._server.server_address[1])
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
                        credentials=self.credentials.environ(),
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
            moto_extensions.bind(
                self.lambda_runtime,
                self.glue_runtime,
                (self.credentials.access_key_id, self.credentials.secret_access_key),
            )
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
                self._server.shutdown()
                self._server.server_close()
                if self._thread is not None:
                    self._thread.join()
                self._server = None
                self._thread = None
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
