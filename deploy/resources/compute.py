"""Lambda: the Powertools layer, the six functions and their resource-based permissions."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from deploy.artifacts import code_sha256
from deploy.core import (
    Change,
    Clients,
    Progress,
    Reporter,
    aws_errors,
    error_code,
    get_or_none,
    retry_on,
)
from deploy.stack import LAMBDA_ARCHITECTURE, LAMBDA_RUNTIME, FunctionSpec

# A role created seconds ago is not yet assumable by Lambda (IAM is eventually consistent).
_ROLE_NOT_READY = {"InvalidParameterValueException"}
_ROLE_NOT_READY_MESSAGE = "cannot be assumed by Lambda"
_UPDATE_WAIT_SECONDS = 120


def ensure_layer(clients: Clients, reporter: Reporter, name: str, zip_path: Path) -> str:
    """Publish a new layer version only when the zip differs from the latest one."""
    lam = getattr(clients, "lambda")
    sha = code_sha256(zip_path)
    with aws_errors(f"Lambda layer {name}"):
        versions = lam.list_layer_versions(LayerName=name).get("LayerVersions", [])
        if versions:
            latest = max(versions, key=lambda version: version["Version"])
            detail = lam.get_layer_version(LayerName=name, VersionNumber=latest["Version"])
            if detail["Content"]["CodeSha256"] == sha:
                reporter.record("lambda layer", name, Change.UNCHANGED, f"v{latest['Version']}")
                return str(latest["LayerVersionArn"])
        published = lam.publish_layer_version(
            LayerName=name,
            Description="aws-lambda-powertools and its runtime dependencies",
            Content={"ZipFile": zip_path.read_bytes()},
            CompatibleRuntimes=[LAMBDA_RUNTIME],
            CompatibleArchitectures=[LAMBDA_ARCHITECTURE],
        )
    reporter.record(
        "lambda layer",
        name,
        Change.UPDATED if versions else Change.CREATED,
        f"v{published['Version']}",
    )
    return str(published["LayerVersionArn"])


def remove_layer(clients: Clients, reporter: Reporter, name: str) -> None:
    lam = getattr(clients, "lambda")
    with aws_errors(f"Lambda layer {name}"):
        versions = lam.list_layer_versions(LayerName=name).get("LayerVersions", [])
        for version in versions:
            lam.delete_layer_version(LayerName=name, VersionNumber=version["Version"])
    reporter.record(
        "lambda layer",
        name,
        Change.DELETED if versions else Change.ABSENT,
        f"{len(versions)} versions",
    )


def _wait_until_updated(lam: Any, name: str) -> None:
    # An update is refused while the previous one is still being applied.
    deadline = time.monotonic() + _UPDATE_WAIT_SECONDS
    progress = Progress(f"Lambda to finish updating {name}")
    while time.monotonic() < deadline:
        config = lam.get_function_configuration(FunctionName=name)
        if config.get("State") != "Pending" and config.get("LastUpdateStatus") != "InProgress":
            return
        time.sleep(2)
        progress.tick()


def function_configuration(
    spec: FunctionSpec,
    name: str,
    role_arn: str,
    layer_arn: str,
    environment: dict[str, str],
) -> dict[str, Any]:
    return {
        "FunctionName": name,
        "Runtime": LAMBDA_RUNTIME,
        "Role": role_arn,
        "Handler": spec.handler,
        "Timeout": spec.timeout,
        "MemorySize": spec.memory,
        "Environment": {"Variables": environment},
        "Layers": [layer_arn],
        # X-Ray traces each invocation; the Powertools Tracer adds the handler's subsegments.
        "TracingConfig": {"Mode": "Active"},
    }


def _configuration_differs(current: dict[str, Any], desired: dict[str, Any]) -> bool:
    current_layers = [layer["Arn"] for layer in current.get("Layers", [])]
    current_env = current.get("Environment", {}).get("Variables", {})
    return (
        any(
            current.get(key) != desired[key]
            for key in ("Runtime", "Role", "Handler", "Timeout", "MemorySize")
        )
        or current_env != desired["Environment"]["Variables"]
        or current_layers != desired["Layers"]
        or current.get("TracingConfig", {}).get("Mode") != desired["TracingConfig"]["Mode"]
    )


def ensure_function(
    clients: Clients,
    reporter: Reporter,
    desired: dict[str, Any],
    zip_path: Path,
    tags: dict[str, str],
) -> str:
    lam = getattr(clients, "lambda")
    name = desired["FunctionName"]
    sha = code_sha256(zip_path)
    with aws_errors(f"Lambda function {name}"):
        existing = get_or_none(lambda: lam.get_function(FunctionName=name))
        if existing is None:
            created = retry_on(
                _ROLE_NOT_READY,
                lambda: lam.create_function(
                    **desired,
                    Code={"ZipFile": zip_path.read_bytes()},
                    Architectures=[LAMBDA_ARCHITECTURE],
                    Tags=tags,
                ),
                waiting_for=f"the role of {name} to be usable by Lambda",
                message=_ROLE_NOT_READY_MESSAGE,
            )
            reporter.record("lambda function", name, Change.CREATED)
            return str(created["FunctionArn"])
        current = existing["Configuration"]
        changes = []
        if current.get("CodeSha256") != sha:
            _wait_until_updated(lam, name)
            lam.update_function_code(FunctionName=name, ZipFile=zip_path.read_bytes())
            changes.append("code")
        if _configuration_differs(current, desired):
            _wait_until_updated(lam, name)
            retry_on(
                _ROLE_NOT_READY,
                lambda: lam.update_function_configuration(**desired),
                waiting_for=f"the role of {name} to be usable by Lambda",
                message=_ROLE_NOT_READY_MESSAGE,
            )
            changes.append("configuration")
    reporter.record(
        "lambda function",
        name,
        Change.UPDATED if changes else Change.UNCHANGED,
        " and ".join(changes),
    )
    return str(current["FunctionArn"])


def remove_function(clients: Clients, reporter: Reporter, name: str) -> None:
    lam = getattr(clients, "lambda")
    with aws_errors(f"Lambda function {name}"):
        if get_or_none(lambda: lam.delete_function(FunctionName=name)) is None:
            reporter.record("lambda function", name, Change.ABSENT)
        else:
            reporter.record("lambda function", name, Change.DELETED)


def ensure_permission(
    clients: Clients,
    reporter: Reporter,
    function_name: str,
    *,
    statement_id: str,
    principal: str,
    source_arn: str,
    source_account: str,
) -> None:
    """Allow one AWS service, from one source ARN in this account, to invoke the function."""
    lam = getattr(clients, "lambda")
    what = f"{function_name}/{statement_id}"
    with aws_errors(f"Lambda permission {what}"):
        policy = get_or_none(lambda: lam.get_policy(FunctionName=function_name))
        statements = json.loads(policy["Policy"])["Statement"] if policy else []
        existing = [statement for statement in statements if statement.get("Sid") == statement_id]
        if existing and _permission_matches(existing[0], principal, source_arn, source_account):
            reporter.record("lambda permission", what, Change.UNCHANGED)
            return
        if existing:
            lam.remove_permission(FunctionName=function_name, StatementId=statement_id)
        try:
            lam.add_permission(
                FunctionName=function_name,
                StatementId=statement_id,
                Action="lambda:InvokeFunction",
                Principal=principal,
                SourceArn=source_arn,
                SourceAccount=source_account,
            )
        except ClientError as e:
            if error_code(e) != "ResourceConflictException":
                raise
    reporter.record("lambda permission", what, Change.UPDATED if existing else Change.CREATED)


def _permission_matches(
    statement: dict[str, Any], principal: str, source_arn: str, source_account: str
) -> bool:
    text = json.dumps(statement)
    return principal in text and source_arn in text and source_account in text


def ensure_failure_destination(
    clients: Clients, reporter: Reporter, function_name: str, destination_arn: str
) -> None:
    """Asynchronous invocations (the S3 trigger) that still fail after Lambda's retries are
    sent, with their event, to the destination instead of being dropped."""
    lam = getattr(clients, "lambda")
    desired = {
        "MaximumRetryAttempts": 2,
        "MaximumEventAgeInSeconds": 6 * 3600,
        "DestinationConfig": {"OnFailure": {"Destination": destination_arn}},
    }
    with aws_errors(f"Lambda async invoke config {function_name}"):
        current = get_or_none(
            lambda: lam.get_function_event_invoke_config(FunctionName=function_name)
        )
        if current and all(current.get(key) == value for key, value in desired.items()):
            reporter.record("lambda failure dest.", function_name, Change.UNCHANGED)
            return
        lam.put_function_event_invoke_config(FunctionName=function_name, **desired)
    reporter.record(
        "lambda failure dest.", function_name, Change.UPDATED if current else Change.CREATED
    )
