"""The one module that touches moto internals: real Lambda and Glue runs, and the .sync fix.

moto 5.2.5 serves the AWS APIs but runs no Lambda code without Docker and no Glue job at
all, and its Step Functions interpreter crashes on `.sync` integrations. Three extension
points close those gaps:

1. `LambdaFunction._invoke_lambda` -- every invocation path (Invoke, Step Functions tasks,
   S3 notifications) ends there; it is routed to a `LambdaRuntime` that runs the uploaded
   zip's handler in a worker process and returns the payload or a function error.
2. `StateTaskServiceCallback.__init__` -- a service task that supports `.sync` but not
   `.waitForTaskToken` gets no callback endpoint, and the interpreter then calls
   `interrupt_all()` on None. Sync tasks are given a task-token endpoint, as AWS (and
   LocalStack upstream) allow task tokens with `.sync`, so the endpoint always exists.
   Each attempt gets an endpoint of its own (`_eval_integration_pattern`): the endpoint is
   made once per state entry and interrupted when an attempt ends, so a Retry's next attempt
   found it interrupted and failed at once with States.Timeout.
3. Glue job runs: `FakeJob.start_job_run` hands each new run to a `GlueRuntime`, and the
   run's model class reports the runner's state and error through GetJobRun.
4. S3 event records (`moto.s3.notifications._get_s3_event`) lack the `sequencer` (and the
   `versionId` of versioned buckets) that AWS puts in every record; without it two uploads
   of the same bytes look like one event delivered twice. Each record gets them.
5. `S3Backend.complete_multipart_upload` stores the object through `put_object`, which sends
   an `ObjectCreated:Put` event (and `put_object_tagging` an `ObjectTagging:Put`), before it
   sends the `ObjectCreated:CompleteMultipartUpload` event: every upload above the multipart
   threshold started two executions. AWS sends only the last; so does moto here.
6. Glue `UpdateTable` (`GlueResponse.update_table`) ignores the request's `VersionId`: an
   update based on a stale version replaces a newer one. AWS refuses it with
   `ConcurrentModificationException`, and Iceberg's GlueCatalog relies on that refusal for
   safe concurrent commits (two writers never both replace the same metadata location).
   So does moto here, whether or not a runtime is bound: it is AWS's behaviour.

7. The Step Functions interpreter's clients (`boto_client_for`, imported by each task kind;
   every module importing it is patched) sign with fixed keys ("ak"/"sk"); the local
   endpoint answers only to the run's own credentials, so while a runtime is bound they
   sign with those.

`install()` checks every extension point first and raises LocalModeError if a moto upgrade
moved one. The patches are process-wide; 1 to 5 and 7 only change behaviour while a runtime is
bound (`bind`/`unbind`, done by `LocalAwsServer`), otherwise moto behaves as shipped.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib
import inspect
import re
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import moto
from moto.awslambda import models as lambda_models
from moto.glue import models as glue_models
from moto.glue import responses as glue_responses
from moto.glue.exceptions import GlueClientError
from moto.moto_api._internal.managed_state_model import ManagedState
from moto.s3 import models as s3_models
from moto.s3 import notifications as s3_notifications
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    resource as sfn_resource,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_callback as sfn_callback,
)
from moto.stepfunctions.parser.asl.utils import boto_client as sfn_boto_client

from duffbeer.errors import LocalModeError
from duffbeer_local.glue_runner import GlueRunSpec, GlueRuntime
from duffbeer_local.lambda_runner import FunctionSpec, LambdaRuntime, LayerSpec

SUPPORTED_MOTO_VERSION = "5.2.5"
DEFAULT_ACCOUNT_ID = "123456789012"


@dataclass(frozen=True)
class _Binding:
    lambdas: LambdaRuntime | None
    glue: GlueRuntime | None
    # (access key id, secret access key) the local endpoint answers to, if it checks any.
    credentials: tuple[str, str] | None = None


class _Registry:
    """Process-wide state of the patches (moto's own state is process-wide too)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.installed = False
        self.binding: _Binding | None = None


_registry = _Registry()


def _require(condition: bool, what: str) -> None:
    if not condition:
        raise LocalModeError(
            f"moto {moto.__version__}: extension point changed: {what} "
            f"(duffbeer_local.moto_extensions supports moto {SUPPORTED_MOTO_VERSION})"
        )


def _source(obj: Any) -> str:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        return ""


# Lambda -----------------------------------------------------------------------------------


def _code_digest(function: Any) -> str:
    """Hex SHA-256 of a zip: moto keeps it base64-encoded (CodeSha256); else hash the bytes."""
    encoded = getattr(function, "code_sha_256", "")
    try:
        digest = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        digest = b""
    if len(digest) != hashlib.sha256().digest_size:
        return hashlib.sha256(function.code_bytes).hexdigest()
    return digest.hex()


def _layers(function: Any) -> tuple[LayerSpec, ...]:
    backend = lambda_models.lambda_backends[function.account_id][function.region]
    layers = []
    for attached in function.layers or []:
        version = backend.layers_versions_by_arn(attached["Arn"])
        if version is None:
            raise LocalModeError(
                f"function {function.function_name}: layer {attached['Arn']} is gone"
            )
        layers.append(LayerSpec(version.arn, version.code_bytes, _code_digest(version)))
    return tuple(layers)


def function_spec(function: Any) -> FunctionSpec:
    """A FunctionSpec from moto's LambdaFunction model."""
    code: bytes = function.code_bytes
    return FunctionSpec(
        name=function.function_name,
        arn=function.function_arn,
        handler=function.handler,
        code_zip=code,
        code_sha256=_code_digest(function),
        environment={str(k): str(v) for k, v in (function.environment_vars or {}).items()},
        timeout_seconds=float(function.timeout),
        memory_mb=int(function.memory_size),
        region=function.region,
        runtime=function.run_time or "python3.11",
        version=str(function.version),
        layers=_layers(function),
    )


def deployed_function(
    name: str, region: str = "us-east-1", account_id: str = DEFAULT_ACCOUNT_ID
) -> FunctionSpec:
    """The current code and configuration of a deployed function (for the local HTTP front)."""
    try:
        function = lambda_models.lambda_backends[account_id][region].get_function(name)
    except Exception as e:  # moto raises its own UnknownFunctionException here
        raise LocalModeError(f"function {name!r} is not deployed in {region}: {e}") from e
    return function_spec(function)


def _check_lambda() -> Any:
    models = lambda_models
    cls = models.LambdaFunction
    _require(hasattr(cls, "_invoke_lambda"), "LambdaFunction._invoke_lambda is missing")
    params = list(inspect.signature(cls._invoke_lambda).parameters)
    _require(params == ["self", "event"], f"LambdaFunction._invoke_lambda{params}")
    _require(
        "self._invoke_lambda(" in _source(cls.invoke),
        "LambdaFunction.invoke no longer calls _invoke_lambda",
    )
    init = _source(cls.__init__) + _source(cls._set_function_code)
    for attribute in (
        "self.handler",
        "self.environment_vars",
        "self.timeout",
        "self.code_bytes",
        "self.memory_size",
    ):
        _require(attribute in init, f"LambdaFunction no longer sets {attribute}")
    _require(hasattr(models, "lambda_backends"), "moto.awslambda.models.lambda_backends is missing")
    _require(
        hasattr(models.LambdaBackend, "layers_versions_by_arn")
        and "self.code_bytes" in _source(models.LayerVersion.__init__),
        "LambdaBackend.layers_versions_by_arn / LayerVersion.code_bytes missing",
    )
    _require("self.layers" in init, "LambdaFunction no longer sets self.layers")
    _require(
        hasattr(cls, "save_logs")
        and "self.logs_backend.ensure_log_group(self.logs_group_name)"
        in _source(cls._invoke_lambda),
        "LambdaFunction.save_logs / logs_backend.ensure_log_group changed",
    )
    return cls


def _patch_lambda(cls: Any) -> None:
    original = cls._invoke_lambda

    def _invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
        binding = _registry.binding
        if binding is None or binding.lambdas is None:
            return original(self, event)
        if event is None or event == "{}":
            # moto passes the string "{}" for an empty payload.
            event = {}
        result = binding.lambdas.invoke(function_spec(self), event)
        if result.logs:
            # As moto does for its Docker runs: the function's log group gets the output.
            self.logs_backend.ensure_log_group(self.logs_group_name)
            self.save_logs(result.logs)
        return result.payload, result.is_error, result.logs

    _invoke_lambda.__wrapped__ = original  # type: ignore[attr-defined]
    cls._invoke_lambda = _invoke_lambda


# Step Functions .sync ---------------------------------------------------------------------


def _check_sync() -> tuple[Any, Any]:
    cls = sfn_callback.StateTaskServiceCallback
    condition = sfn_resource.ResourceCondition
    for name in ("WaitForTaskToken", "Sync", "Sync2"):
        _require(hasattr(condition, name), f"ResourceCondition.{name} is missing")
    params = list(inspect.signature(cls.__init__).parameters)
    _require(
        params == ["self", "supported_integration_patterns"],
        f"StateTaskServiceCallback.__init__{params}",
    )
    body = _source(cls._eval_integration_pattern)
    _require(
        'context_object_data["Task"]["Token"]' in body
        and "callback_pool_manager.get(callback_id)" in body
        and "callback_endpoint.interrupt_all()" in body
        and "ResourceCondition.WaitForTaskToken in self._supported_integration_patterns" in body,
        "StateTaskServiceCallback._eval_integration_pattern changed",
    )
    return cls, condition


def _patch_sync(cls: Any, condition: Any) -> None:
    original = cls.__init__
    original_pattern = cls._eval_integration_pattern

    def __init__(self: Any, supported_integration_patterns: set[Any]) -> None:
        patterns = set(supported_integration_patterns)
        if patterns & {condition.Sync, condition.Sync2}:
            patterns.add(condition.WaitForTaskToken)
        original(self, patterns)

    def _eval_integration_pattern(self: Any, env: Any, *args: Any, **kwargs: Any) -> None:
        if self.resource.condition in (condition.Sync, condition.Sync2):
            # A fresh endpoint per attempt: the previous attempt interrupted its own.
            env.callback_pool_manager.add(env.states.context_object.update_task_token())
        original_pattern(self, env, *args, **kwargs)

    __init__.__wrapped__ = original  # type: ignore[attr-defined]
    _eval_integration_pattern.__wrapped__ = original_pattern  # type: ignore[attr-defined]
    cls.__init__ = __init__
    cls._eval_integration_pattern = _eval_integration_pattern


# Task kinds that must reach the endpoint: Lambda, Glue .sync, SNS (the failure alerts).
_SFN_CLIENT_USERS = (
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.lambda_eval_utils",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_glue",
    "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sns",
)


def _sfn_client_importers() -> list[str]:
    """Every module of moto's Step Functions interpreter that imports boto_client_for."""
    root = Path(inspect.getfile(sfn_boto_client)).parents[2]  # .../stepfunctions/parser
    package = "moto.stepfunctions.parser"
    return sorted(
        f"{package}.{'.'.join(path.relative_to(root).with_suffix('').parts)}"
        for path in root.rglob("*.py")
        if "import boto_client_for" in path.read_text()
    )


def _check_sfn_clients() -> list[Any]:
    original = sfn_boto_client.boto_client_for
    params = list(inspect.signature(original).parameters)
    _require(params == ["region", "service", "state_credentials"], f"boto_client_for{params}")
    body = _source(original)
    _require(
        'aws_access_key_id="ak"' in body and "moto_server_port()" in body,
        "boto_client_for no longer signs with fixed keys on moto's port",
    )
    names = _sfn_client_importers()
    _require(
        set(_SFN_CLIENT_USERS) <= set(names),
        f"boto_client_for is no longer imported by {sorted(set(_SFN_CLIENT_USERS) - set(names))}",
    )
    users = [importlib.import_module(name) for name in names]
    for module in users:
        imported = getattr(module, "boto_client_for", None)
        # (once installed, the module holds the patch, which wraps the original)
        _require(
            getattr(imported, "__wrapped__", imported) is original,
            f"{module.__name__} no longer imports boto_client_for",
        )
    return users


def _patch_sfn_clients(users: list[Any]) -> None:
    original = sfn_boto_client.boto_client_for

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        binding = _registry.binding
        if binding is None or binding.credentials is None:
            return original(region, service, state_credentials)
        client = original(region, service, state_credentials)
        # The same client (moto's endpoint, timeouts, no retries), signed with the run's keys.
        access_key, secret_key = binding.credentials
        return boto3.session.Session(
            aws_access_key_id=access_key, aws_secret_access_key=secret_key
        ).client(
            service,
            region_name=region,
            endpoint_url=client.meta.endpoint_url,
            config=client.meta.config,
        )

    boto_client_for.__wrapped__ = original  # type: ignore[attr-defined]
    for module in users:
        module.boto_client_for = boto_client_for


# Glue -------------------------------------------------------------------------------------


def _check_glue() -> Any:
    models = glue_models
    _require(
        isinstance(inspect.getattr_static(ManagedState, "status"), property),
        "ManagedState.status is not a property",
    )
    _require(
        hasattr(models, "FakeJobRun") and hasattr(models.FakeJob, "start_job_run"),
        "Glue FakeJob/FakeJobRun missing",
    )
    _require(
        "FakeJobRun(" in _source(models.FakeJob.start_job_run),
        "FakeJob.start_job_run no longer builds FakeJobRun",
    )
    _require(
        "self.job_runs" in _source(models.FakeJob.__init__), "FakeJob no longer keeps job_runs"
    )
    for attribute in ("self.command", "self.timeout", "self.name"):
        _require(
            attribute in _source(models.FakeJob.__init__), f"FakeJob no longer sets {attribute}"
        )
    _require(
        "self.job_run_id" in _source(models.FakeJobRun.__init__),
        "FakeJobRun no longer sets job_run_id",
    )
    _require(
        "self.arguments" in _source(models.FakeJobRun.__init__),
        "FakeJobRun no longer sets arguments",
    )
    return models


def _patch_glue(models: Any) -> None:
    base = models.FakeJobRun

    class LocalJobRun(base):  # type: ignore[misc, valid-type]
        """A job run whose state comes from the local runner once one drives it."""

        local_state: str | None = None
        local_error: str | None = None
        local_completed_on: datetime | None = None

        @property
        def status(self) -> str | None:
            if self.local_state is not None:
                return self.local_state
            state: str | None = base.status.fget(self)
            return state

        @status.setter
        def status(self, value: str) -> None:
            base.status.fset(self, value)

        def as_dict(self) -> dict[str, Any]:
            data: dict[str, Any] = base.as_dict(self)
            if self.local_state is None:
                return data
            data["JobRunState"] = self.local_state
            if self.local_error:
                data["ErrorMessage"] = self.local_error
            if self.local_completed_on is not None:
                data["CompletedOn"] = self.local_completed_on
                data["ExecutionTime"] = int(
                    (self.local_completed_on - self.started_on).total_seconds()
                )
            else:
                data.pop("CompletedOn", None)
            return data

    original_start = models.FakeJob.start_job_run

    def start_job_run(self: Any, *args: Any, **kwargs: Any) -> str:
        run_id: str = original_start(self, *args, **kwargs)
        binding = _registry.binding
        if binding is None or binding.glue is None:
            return run_id
        run = next(r for r in self.job_runs if r.job_run_id == run_id)
        run.local_state = "STARTING"
        command = self.command or {}

        def on_state(state: str, error: str | None) -> None:
            run.local_error = error
            if state not in ("STARTING", "RUNNING"):
                run.local_completed_on = datetime.now(UTC).replace(tzinfo=None)
            run.local_state = state

        spec = GlueRunSpec(
            job_name=self.name,
            job_run_id=run_id,
            script_location=str(command.get("ScriptLocation", "")),
            arguments={str(k): str(v) for k, v in (run.arguments or {}).items()},
            timeout_minutes=self.timeout,
        )
        binding.glue.start(spec, on_state)
        return run_id

    start_job_run.__wrapped__ = original_start  # type: ignore[attr-defined]
    models.FakeJobRun = LocalJobRun
    models.FakeJob.start_job_run = start_job_run


# S3 event records --------------------------------------------------------------------------


def _check_s3_events() -> Any:
    module = s3_notifications
    _require(hasattr(module, "_get_s3_event"), "moto.s3.notifications._get_s3_event is missing")
    params = list(inspect.signature(module._get_s3_event).parameters)
    _require(
        params == ["event_name", "bucket", "key", "notification_id"],
        f"moto.s3.notifications._get_s3_event{params}",
    )
    _require(
        "_get_s3_event(" in _source(module.send_event), "send_event no longer calls _get_s3_event"
    )
    return module


class _Sequencer:
    """Strictly increasing hex strings, like S3's per-key event sequencers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0

    def next(self) -> str:
        with self._lock:
            self._last = max(self._last + 1, time.time_ns())
            return f"{self._last:016X}"


def _patch_s3_events(module: Any) -> None:
    original = module._get_s3_event
    sequencer = _Sequencer()

    def _get_s3_event(event_name: str, bucket: Any, key: Any, notification_id: str) -> Any:
        event = original(event_name, bucket, key, notification_id)
        if _registry.binding is None:
            return event
        for record in event.get("Records", []):
            s3_object = record["s3"]["object"]
            s3_object.setdefault("sequencer", sequencer.next())
            version = getattr(key, "version_id", None)
            if version and version != "null":
                s3_object.setdefault("versionId", version)
        return event

    _get_s3_event.__wrapped__ = original  # type: ignore[attr-defined]
    module._get_s3_event = _get_s3_event


# S3 multipart completion -------------------------------------------------------------------


def _check_multipart() -> tuple[Any, Any]:
    backend = s3_models.S3Backend
    notifications = s3_notifications
    _require(
        hasattr(backend, "complete_multipart_upload") and hasattr(notifications, "send_event"),
        "S3Backend.complete_multipart_upload / notifications.send_event missing",
    )
    body = _source(backend.complete_multipart_upload)
    put_call = re.search(r"self\.put_object\((.*?)\n\s*\)", body, re.DOTALL)
    _require(
        put_call is not None
        and "disable_notification" not in put_call.group(1)
        and "OBJECT_CREATED_COMPLETE_MULTIPART_UPLOAD_EVENT" in body,
        "S3Backend.complete_multipart_upload changed (does it still notify twice?)",
    )
    _require(
        "notifications.send_event(" in _source(backend.put_object),
        "S3Backend.put_object no longer sends its event through notifications.send_event",
    )
    params = list(inspect.signature(notifications.send_event).parameters)
    _require(
        params == ["account_id", "event_name", "bucket", "key"],
        f"moto.s3.notifications.send_event{params}",
    )
    return backend, notifications


def _patch_multipart(backend: Any, notifications: Any) -> None:
    completing = threading.local()
    events = notifications.S3NotificationEvent
    complete_event = events.OBJECT_CREATED_COMPLETE_MULTIPART_UPLOAD_EVENT
    original_complete = backend.complete_multipart_upload
    original_send = notifications.send_event

    def complete_multipart_upload(self: Any, *args: Any, **kwargs: Any) -> Any:
        completing.active = True
        try:
            return original_complete(self, *args, **kwargs)
        finally:
            completing.active = False

    def send_event(account_id: str, event_name: Any, bucket: Any, key: Any) -> None:
        if (
            _registry.binding is not None
            and getattr(completing, "active", False)
            and event_name != complete_event
        ):
            return  # the intermediate Put/Tagging events of a multipart completion
        original_send(account_id, event_name, bucket, key)

    complete_multipart_upload.__wrapped__ = original_complete  # type: ignore[attr-defined]
    send_event.__wrapped__ = original_send  # type: ignore[attr-defined]
    backend.complete_multipart_upload = complete_multipart_upload
    notifications.send_event = send_event


# Glue UpdateTable's optimistic lock -------------------------------------------------------


class ConcurrentModificationException(GlueClientError):
    def __init__(self, database: str, table: str, version_id: str, current: str) -> None:
        super().__init__(
            "ConcurrentModificationException",
            f"Update table failed due to concurrent modifications: table {database}.{table} "
            f"is at version {current}, the update was based on version {version_id}",
        )


def _check_update_table() -> Any:
    response = glue_responses.GlueResponse
    _require(hasattr(response, "update_table"), "GlueResponse.update_table is missing")
    body = _source(response.update_table)
    _require(
        "self.glue_backend.update_table(" in body and 'get("TableInput")' in body,
        "GlueResponse.update_table changed",
    )
    _require(
        "self._current_version" in _source(glue_models.FakeTable.update),
        "FakeTable.update no longer counts _current_version",
    )
    return response


def _patch_update_table(response: Any) -> None:
    original = response.update_table
    lock = threading.Lock()

    def update_table(self: Any) -> Any:
        version_id = self.parameters.get("VersionId")
        if version_id is None:
            return original(self)
        database = self.parameters.get("DatabaseName")
        name = (self.parameters.get("TableInput") or {}).get("Name")
        # Check and update under one lock: the server answers requests on many threads.
        with lock:
            current = str(self.glue_backend.get_table(database, name)._current_version)
            if current != str(version_id):
                raise ConcurrentModificationException(
                    str(database), str(name), str(version_id), current
                )
            return original(self)

    update_table.__wrapped__ = original  # type: ignore[attr-defined]
    response.update_table = update_table


# Installation and binding -----------------------------------------------------------------


def check() -> None:
    """Verify every extension point without patching anything (raises LocalModeError)."""
    _check_lambda()
    _check_sync()
    _check_glue()
    _check_s3_events()
    _check_multipart()
    _check_update_table()
    _check_sfn_clients()


def install() -> None:
    """Patch moto once per process; every extension point is checked before any is patched."""
    with _registry.lock:
        if _registry.installed:
            return
        lambda_cls = _check_lambda()
        sync_cls, condition = _check_sync()
        glue = _check_glue()
        s3_events = _check_s3_events()
        multipart = _check_multipart()
        update_table = _check_update_table()
        sfn_clients = _check_sfn_clients()
        _patch_lambda(lambda_cls)
        _patch_sync(sync_cls, condition)
        _patch_glue(glue)
        _patch_s3_events(s3_events)
        _patch_multipart(*multipart)
        _patch_update_table(update_table)
        _patch_sfn_clients(sfn_clients)
        _registry.installed = True


def is_installed() -> bool:
    return _registry.installed


def bind(
    lambdas: LambdaRuntime | None,
    glue: GlueRuntime | None,
    credentials: tuple[str, str] | None = None,
) -> None:
    """Route Lambda invocations and Glue runs to these runtimes, and sign the Step Functions
    interpreter's calls with `credentials` (one binding per process)."""
    with _registry.lock:
        if not _registry.installed:
            raise LocalModeError("moto extensions are not installed: call install() first")
        if _registry.binding is not None:
            raise LocalModeError("a local runtime is already bound in this process")
        _registry.binding = _Binding(lambdas, glue, credentials)


def unbind() -> None:
    with _registry.lock:
        _registry.binding = None
