"""Step Functions: the orders state machine from workflows/, created or updated in place."""

from __future__ import annotations

from typing import Any

from deploy.core import Change, Clients, Reporter, aws_errors, canonical, get_or_none, retry_on

# A just-created execution role is refused until IAM has propagated it.
_ROLE_NOT_READY = {"AccessDeniedException", "InvalidArn"}


def logging_configuration(log_group_arn: str) -> dict[str, Any]:
    """Execution history (with inputs/outputs) of every execution goes to CloudWatch Logs."""
    return {
        "level": "ALL",
        "includeExecutionData": True,
        "destinations": [{"cloudWatchLogsLogGroup": {"logGroupArn": f"{log_group_arn}:*"}}],
    }


def _comparable_logging(config: dict[str, Any] | None) -> dict[str, Any]:
    config = config or {}
    return {
        "level": config.get("level"),
        "data": bool(config.get("includeExecutionData")),
        "groups": [
            item.get("cloudWatchLogsLogGroup", {}).get("logGroupArn")
            for item in config.get("destinations", [])
        ],
    }


# X-Ray traces every execution, joined with the functions' traces.
TRACING = {"enabled": True}


def ensure_state_machine(
    clients: Clients,
    reporter: Reporter,
    *,
    name: str,
    arn: str,
    definition: str,
    role_arn: str,
    logging: dict[str, Any],
    tags: list[dict[str, str]],
) -> str:
    """CreateStateMachine, or UpdateStateMachine when the definition, role, logging or tracing
    changed.

    The SDK's Workflow.create() returns an existing machine unchanged, so updates go through
    UpdateStateMachine directly; the definition itself is the SDK's output from workflows/.
    """
    sfn = clients.stepfunctions
    with aws_errors(f"state machine {name}"):
        current = get_or_none(lambda: sfn.describe_state_machine(stateMachineArn=arn))
        if current is None:
            created = retry_on(
                _ROLE_NOT_READY,
                lambda: sfn.create_state_machine(
                    name=name,
                    definition=definition,
                    roleArn=role_arn,
                    type="STANDARD",
                    loggingConfiguration=logging,
                    tracingConfiguration=TRACING,
                    tags=tags,
                ),
                waiting_for=f"the role of {name} to be usable by Step Functions",
            )
            reporter.record("state machine", name, Change.CREATED)
            return str(created["stateMachineArn"])
        changes = []
        if canonical(current["definition"]) != canonical(definition):
            changes.append("definition")
        if current["roleArn"] != role_arn:
            changes.append("role")
        if _comparable_logging(current.get("loggingConfiguration")) != _comparable_logging(logging):
            changes.append("logging")
        if not current.get("tracingConfiguration", {}).get("enabled"):
            changes.append("tracing")
        if changes:
            sfn.update_state_machine(
                stateMachineArn=arn,
                definition=definition,
                roleArn=role_arn,
                loggingConfiguration=logging,
                tracingConfiguration=TRACING,
            )
    reporter.record(
        "state machine", name, Change.UPDATED if changes else Change.UNCHANGED, ", ".join(changes)
    )
    return arn


def remove_state_machine(clients: Clients, reporter: Reporter, name: str, arn: str) -> None:
    sfn = clients.stepfunctions
    with aws_errors(f"state machine {name}"):
        if get_or_none(lambda: sfn.describe_state_machine(stateMachineArn=arn)) is None:
            reporter.record("state machine", name, Change.ABSENT)
            return
        sfn.delete_state_machine(stateMachineArn=arn)
        reporter.record("state machine", name, Change.DELETED)
