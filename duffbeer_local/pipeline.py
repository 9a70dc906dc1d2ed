"""The whole pipeline on one machine: local AWS endpoint, the real deploy, uploads, the API front.

    with LocalPipeline(LocalSettings(state_dir=Path(".local"))) as pipeline:
        described = pipeline.process(Path("data/sample/orders.csv"), emit=print)
        pipeline.start_api()
        status, body = pipeline.get("/sales-by-product")

`start()` starts a LocalAwsServer, points this process's AWS settings at it (the deploy
script's clients read them), and deploys the stack with deploy/create_workflow.py exactly
as against AWS. A file is processed the way it is on AWS: one PutObject to the input
bucket; the S3 notification invokes start_etl, which starts the state machine.
"""

from __future__ import annotations

import io
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

from deploy.create_workflow import deploy
from deploy.resources.analytics import iceberg_arguments
from deploy.stack import (
    DASHBOARD_ROUTE,
    DASHBOARD_ROUTES,
    DeployOptions,
    StackOutputs,
)
from duffbeer.errors import LocalModeError
from duffbeer_local.api_server import LocalApiServer
from duffbeer_local.executions import execution_arns, follow_execution, wait_for_execution
from duffbeer_local.server import LocalAwsServer

# The local HTTP front answers with DuckDB over the processed bucket instead of Athena.
LOCAL_API_ENVIRONMENT = {"QUERY_BACKEND": "duckdb"}


@dataclass(frozen=True)
class LocalSettings:
    """Where local mode keeps its files and how it serves; validated once."""

    state_dir: Path
    api_port: int = 0
    region: str = "us-east-1"
    api_warm_workers: int = 2
    execution_timeout_s: float = 600.0
    # Start another warm Spark driver after each job run (serve, tests); a run of one file
    # (demo, screenshot) needs the first two only.
    rewarm_spark_drivers: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.api_port <= 65535:
            raise LocalModeError(f"port {self.api_port} is not a TCP port")
        if self.api_warm_workers < 1:
            raise LocalModeError("the API needs at least one warm worker")

    @property
    def inbox(self) -> Path:
        return self.state_dir / "inbox"

    @property
    def deploy_log(self) -> Path:
        return self.state_dir / "logs" / "deploy.log"


@dataclass(frozen=True)
class Upload:
    """One object put into the input bucket, and the executions that existed before it."""

    key: str
    executions_before: frozenset[str]


class LocalPipeline:
    """The deployed stack on a local endpoint, with helpers to feed it and query it."""

    def __init__(self, settings: LocalSettings) -> None:
        self.settings = settings
        self.aws = LocalAwsServer(state_dir=settings.state_dir, region=settings.region)
        self._outputs: StackOutputs | None = None
        self._api: LocalApiServer | None = None
        self._api_key: str | None = None
        self._saved_environ: dict[str, str | None] = {}
        self.deploy_seconds: float | None = None

    # Lifecycle ----------------------------------------------------------------------------

    def start(self) -> LocalPipeline:
        self.aws.start()
        try:
            for name, value in self.aws.environ().items():
                self._saved_environ[name] = os.environ.get(name)
                os.environ[name] = value
            started = time.monotonic()
            report = io.StringIO()
            options = DeployOptions(
                region=self.settings.region,
                endpoint_url=self.aws.endpoint_url,
                build_dir=self.settings.state_dir / "build",
            )
            # The transform's driver warms up on the core the deploy (one Python process)
            # leaves free; the state job's, needed a transform later, once the deploy is done.
            names = options.names()
            self._prewarm_spark(names.glue_job, {})
            self._outputs = deploy(options, out=report)
            self.deploy_seconds = time.monotonic() - started
            self._prewarm_spark(names.state_job, iceberg_arguments(names))
            self.settings.deploy_log.parent.mkdir(parents=True, exist_ok=True)
            self.settings.deploy_log.write_text(report.getvalue())
        except BaseException:
            self.stop()
            raise
        return self

    def _prewarm_spark(self, job_name: str, arguments: dict[str, str]) -> None:
        """Start a driver for the next run of one of the workflow's Spark jobs, with the
        launch options its runs will have (`arguments`: the job's Iceberg settings), so that
        the run does not wait for a JVM and a cold Spark (duffbeer_local.spark_driver)."""
        runtime = self.aws.glue_runtime
        if runtime is not None:
            runtime.prewarm(job_name, arguments, again=self.settings.rewarm_spark_drivers)

    def start_api(self) -> str:
        """Serve the deployed REST API on 127.0.0.1 (settings.api_port); return its URL."""
        if self._api is None:
            outputs = self.outputs
            self._api = LocalApiServer(
                lambdas=self._lambda_runtime(),
                apigateway=self.aws.client("apigateway"),
                api_id=outputs.api_id,
                port=self.settings.api_port,
                region=self.settings.region,
                env_overrides=LOCAL_API_ENVIRONMENT,
                warm_workers=self.settings.api_warm_workers,
            ).start()
        return self._api.url

    def stop(self) -> None:
        if self._api is not None:
            self._api.stop()
            self._api = None
        self.aws.stop()
        for name, value in self._saved_environ.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_environ.clear()

    def __enter__(self) -> LocalPipeline:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # Stack --------------------------------------------------------------------------------

    @property
    def outputs(self) -> StackOutputs:
        if self._outputs is None:
            raise LocalModeError("the local stack is not deployed")
        return self._outputs

    @property
    def api_url(self) -> str:
        if self._api is None:
            raise LocalModeError("the local API is not being served: call start_api()")
        return self._api.url

    @property
    def api_key(self) -> str:
        """The deployed API key's value (the routes other than /health require it)."""
        if self._api_key is None:
            described = self.aws.client("apigateway").get_api_key(
                apiKey=self.outputs.api_key_id, includeValue=True
            )
            self._api_key = str(described["value"])
        return self._api_key

    def _lambda_runtime(self) -> Any:
        if self.aws.lambda_runtime is None:
            raise LocalModeError("the local AWS server runs without Lambda workers")
        return self.aws.lambda_runtime

    # Feeding ------------------------------------------------------------------------------

    def upload(self, path: Path, key: str | None = None) -> Upload:
        """Put `path` into the input bucket (key = its file name); S3 then starts the run."""
        key = key or path.name
        before = execution_arns(self.aws.client("stepfunctions"), self.outputs.state_machine_arn)
        self.aws.client("s3").upload_file(str(path), self.outputs.input_bucket, key)
        return Upload(key, frozenset(before))

    def execution_for(self, upload: Upload, timeout: float = 30.0) -> str:
        """The ARN of the execution the upload's S3 notification started."""
        sfn = self.aws.client("stepfunctions")
        return wait_for_execution(
            sfn, self.outputs.state_machine_arn, upload.key, upload.executions_before, timeout
        )

    def process(
        self, path: Path, key: str | None = None, emit: Callable[[str], None] | None = None
    ) -> dict[str, Any]:
        """Upload one file and wait for its execution; `emit` hears each state transition."""
        arn = self.execution_for(self.upload(path, key))
        return follow_execution(
            self.aws.client("stepfunctions"),
            arn,
            emit or (lambda _line: None),
            timeout=self.settings.execution_timeout_s,
        )

    # Reading ------------------------------------------------------------------------------

    def dashboard_url(self) -> str:
        """The reports page with the key in its #fragment: browsers never send a fragment,
        and the page moves the key to session storage and out of the address bar."""
        return f"{self.api_url}{DASHBOARD_ROUTE}#key={quote(self.api_key, safe='')}"

    def dashboard_status(self, timeout: float = 30.0) -> int:
        """200 when the page and each of its files answer 200 (without a key), else the
        first other status."""
        for path in DASHBOARD_ROUTES:
            request = urllib.request.Request(self.api_url + path)  # noqa: S310
            try:
                with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                    response.read()
            except urllib.error.HTTPError as e:
                return e.code
        return 200

    def get(self, path: str, *, api_key: bool = True, timeout: float = 30.0) -> tuple[int, Any]:
        """GET a route of the local API front; (status, parsed JSON body)."""
        headers = {"x-api-key": self.api_key} if api_key else {}
        request = urllib.request.Request(self.api_url + path, headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")
